"""Bit-exact integer model of the learning core: the hardware specification.

Everything here is integer arithmetic on NumPy ``int64`` with explicit saturation; the
gateware in ``hdl/`` must reproduce every bit. ``golden/SPEC.md`` states the same in prose
(formats, order of operations, the event-driven schedule); where the two disagree this file
is right and SPEC.md has a bug.

Conventions (all shifts are arithmetic, i.e. floor division by a power of two):

* ``sat(x, bits)`` clamps to the signed range ``[-2**(bits-1), 2**(bits-1) - 1]``;
  ``usat(x, bits)`` to ``[0, 2**bits - 1]``. Nothing ever wraps.
* ``decay(x, q) = (x * q) >> decay_frac``: a leak factor ``q / 2**decay_frac``.
* Stochastic rounding of ``p / 2**s`` is ``(p + r) >> s`` with ``r`` the low ``s`` bits of
  the lane's next xorshift32 output (``golden/rng.py``).
"""

from dataclasses import dataclass, field, fields, replace

import numpy as np

from .rng import LaneRNG

FEEDBACK_SYMMETRIC = 0
FEEDBACK_RANDOM = 1
RULE_OTTT = 0
RULE_OTPE = 1


def sat(x, bits: int):
    """Clamp to the signed ``bits``-bit range."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return np.clip(x, lo, hi)


def usat(x, bits: int):
    """Clamp to the unsigned ``bits``-bit range."""
    return np.clip(x, 0, (1 << bits) - 1)


def _check_int(name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], not {value!r}")


@dataclass(frozen=True)
class FixedParams:
    """Build-time parameters: sizes and widths baked into a bitstream.

    Widths are in bits. Weights, membrane, readout and error are signed two's complement
    integers in the same unit (one weight LSB); traces are unsigned with ``tr_frac``
    fractional bits (``1 << tr_frac`` is one spike).
    """

    n_in: int = 50          #: input channels (presynaptic spike sources)
    n_hid: int = 128        #: hidden LIF neurons
    n_out: int = 10         #: leaky-integrator readout units (classes)
    recurrent: bool = False  #: hidden->hidden weights present
    lanes: int = 1          #: parallel synapse lanes (accumulation and gradient walk)
    w_bits: int = 10        #: weights (input, recurrent, readout, feedback)
    v_bits: int = 16        #: membrane potential
    tr_bits: int = 12       #: presynaptic traces, unsigned
    tr_frac: int = 7        #: fractional bits of a trace
    y_bits: int = 16        #: readout state and error
    l_bits: int = 16        #: learning signal L_j and modulator m_j
    psi_bits: int = 8       #: surrogate value psi_j = b_th - |V - theta| (and b_th)
    decay_frac: int = 8     #: fractional bits of alpha_q, lam_q, kappa_q
    score_bits: int = 32    #: per-class score accumulator (sum of y over the sample)
    shift_bits: int = 5     #: width of the learning-rate shift registers
    otpe: bool = True       #: build in approximate OTPE (z traces, surrogate sums, normalizer)
    z_bits: int = 16        #: OTPE traces z_in, z_hid, unsigned, ``tr_frac`` fractional bits
    gsum_bits: int = 16     #: OTPE leaky surrogate sums gsum_j, unsigned (unit of psi)
    c_frac: int = 8         #: fractional bits of the OTPE normalizer c (c = 1.0 after step 1)
    recip_frac: int = 16    #: fractional bits of recip = 1 / c
    # Gateware structure only: no effect on any result, ignored by ``==`` (and IDENTIFY).
    #: readout classes updated per cycle (0: all ``n_out``; fewer saves multipliers)
    out_lanes: int = field(default=0, compare=False)
    #: weight banks ``W``: "bram" (dual port) or "spram" (single port, iCE40 SB_SPRAM256KA)
    weight_ram: str = field(default="bram", compare=False)
    #: words per block-RAM memory of a weight bank (a power of two; 0: one memory per bank)
    w_chunk: int = field(default=0, compare=False)

    def __post_init__(self):
        _check_int("n_in", self.n_in, 1, 4096)
        _check_int("n_hid", self.n_hid, 1, 4096)
        _check_int("n_out", self.n_out, 1, 64)
        _check_int("lanes", self.lanes, 1, 64)
        if self.n_hid % self.lanes:
            raise ValueError(f"n_hid must be a multiple of lanes ({self.lanes}), not {self.n_hid}")
        for name, lo, hi in [("w_bits", 2, 16), ("v_bits", 4, 32), ("tr_bits", 2, 24),
                             ("y_bits", 4, 32), ("l_bits", 4, 32), ("psi_bits", 1, 16),
                             ("decay_frac", 1, 16), ("score_bits", 8, 48), ("shift_bits", 1, 6),
                             ("c_frac", 0, 16), ("recip_frac", 1, 24)]:
            _check_int(name, getattr(self, name), lo, hi)
        _check_int("tr_frac", self.tr_frac, 0, self.tr_bits - 1)
        if not isinstance(self.otpe, bool):
            raise TypeError(f"otpe must be a bool, not {self.otpe!r}")
        # z must hold at least one trace, gsum at least one surrogate value
        _check_int("z_bits", self.z_bits, self.tr_bits, 32)
        _check_int("gsum_bits", self.gsum_bits, self.psi_bits, 32)
        _check_int("out_lanes", self.out_lanes, 0, self.n_out)
        if not isinstance(self.w_chunk, int) or self.w_chunk < 0 \
                or self.w_chunk & (self.w_chunk - 1):
            raise ValueError(f"w_chunk must be 0 or a power of two, not {self.w_chunk!r}")
        if self.weight_ram not in ("bram", "spram"):
            raise ValueError(f"weight_ram must be 'bram' or 'spram', not {self.weight_ram!r}")
        if self.w_chunk and self.weight_ram != "bram":
            raise ValueError("w_chunk applies to weight_ram 'bram' only")

    @property
    def n_pre(self) -> int:
        """Presynaptic sources of a hidden neuron: inputs, then hidden neurons if recurrent."""
        return self.n_in + (self.n_hid if self.recurrent else 0)

    @property
    def acc_bits(self) -> int:
        """Synaptic accumulator width: wide enough that a step's sum can never saturate."""
        return self.w_bits + int(self.n_pre).bit_length() + 1

    @property
    def trace_one(self) -> int:
        return 1 << self.tr_frac

    @property
    def max_shift(self) -> int:
        return (1 << self.shift_bits) - 1

    @property
    def c_bits(self) -> int:
        """Width of the normalizer ``c``: it never exceeds ``2**(c_frac + decay_frac)``
        (the fixed point of ``c = decay(c, 2**decay_frac - 1) + 2**c_frac``)."""
        return self.c_frac + self.decay_frac + 1

    @property
    def recip_bits(self) -> int:
        """Width of ``recip = 2**(c_frac + recip_frac) // c <= 2**recip_frac`` (c >= 1.0)."""
        return self.recip_frac + 1

    @property
    def grad_tr_bits(self) -> int:
        """Width of the traces the gradient walk multiplies: ``a`` or (OTPE) ``z``."""
        return max(self.tr_bits, self.z_bits) if self.otpe else self.tr_bits

    def synapse_count(self) -> int:
        """Weights stored on chip: input + recurrent + readout (+ random feedback)."""
        return self.n_hid * self.n_pre + 2 * self.n_out * self.n_hid


@dataclass(frozen=True)
class FixedHyper:
    """Run-time registers (set by the host's configure command).

    Decays are ``q / 2**decay_frac``. ``theta``, ``b_th`` and ``target`` are in weight
    LSBs. The effective learning rates are the shifts: the hidden update is
    ``(L_j * psi_j >> psi_shift) * a_i >> g_shift`` with ``L_j = (B err) >> l_shift``; the
    readout update is ``err_k * a_j >> go_shift``.
    """

    alpha_q: int = 243     #: membrane leak  (0.949)
    lam_q: int = 243       #: presynaptic trace decay (= alpha: exact for one layer)
    kappa_q: int = 243     #: readout leak
    theta: int = 256       #: threshold (one float unit: weights span +-2 theta)
    b_th: int = 96         #: active-neuron band: psi > 0 iff |V - theta| < b_th
    target: int = 256      #: readout target of the labelled class (others 0)
    l_shift: int = 6       #: learning signal scale
    psi_shift: int = 4     #: modulator scale
    g_shift: int = 19      #: hidden learning rate  (float lr 2**-6, golden.quantize)
    go_shift: int = 13     #: readout learning rate (float lr 2**-6)
    feedback: int = FEEDBACK_SYMMETRIC  #: 0 symmetric (B = W_out^T), 1 random (B memory)
    seed: int = 1          #: xorshift32 seed of the stochastic-rounding generators
    rule: int = RULE_OTTT  #: 0 OTTT (psi, a), 1 approximate OTPE (gbar, z; needs p.otpe)

    def validate(self, p: FixedParams) -> "FixedHyper":
        one = (1 << p.decay_frac) - 1
        for name in ("alpha_q", "lam_q", "kappa_q"):
            _check_int(name, getattr(self, name), 0, one)
        _check_int("theta", self.theta, 1, (1 << (p.v_bits - 1)) - 1)
        _check_int("b_th", self.b_th, 0, (1 << p.psi_bits) - 1)
        _check_int("target", self.target, 0, (1 << (p.y_bits - 1)) - 1)
        for name in ("l_shift", "psi_shift", "g_shift", "go_shift"):
            _check_int(name, getattr(self, name), 0, p.max_shift)
        _check_int("feedback", self.feedback, 0, 1)
        _check_int("seed", self.seed, 0, 0xFFFF_FFFF)
        _check_int("rule", self.rule, 0, RULE_OTPE if p.otpe else RULE_OTTT)
        return self

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


COUNTERS = ("samples", "steps", "input_events", "syn_ops", "spikes", "active",
            "weight_updates", "readout_updates")


@dataclass
class Counters:
    """Event counters the hardware keeps (saturating at 32 bits)."""

    samples: int = 0         #: samples finished
    steps: int = 0           #: time steps run
    input_events: int = 0    #: input spike events accepted
    syn_ops: int = 0         #: synaptic accumulations (events x fan-out, incl. recurrent)
    spikes: int = 0          #: hidden spikes emitted
    active: int = 0          #: active-neuron events in learning steps (gradient walk length)
    weight_updates: int = 0  #: hidden synapses visited by the gradient walk
    readout_updates: int = 0  #: readout synapses updated

    def add(self, name: str, n: int):
        setattr(self, name, min(getattr(self, name) + int(n), 0xFFFF_FFFF))

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in COUNTERS}


@dataclass
class StepTrace:
    """What one time step produced (for checking the gateware step by step)."""

    spikes: np.ndarray   #: indices of hidden neurons that spiked
    active: np.ndarray   #: neurons of the gradient walk list (ascending): psi > 0, or gbar > 0
    psi: np.ndarray      #: their walk values: psi (rule 0) or gbar (rule 1)
    v: np.ndarray        #: membrane after the step, all neurons
    y: np.ndarray        #: readout after the step


class FixedCore:
    """The learning core: state, weights and the per-step schedule of the hardware.

    Use ``start_sample(label, learn)``, then ``step(events)`` per time step, then
    ``end_sample()`` which returns the predicted class. ``run_sample`` does all three.
    """

    def __init__(self, params: FixedParams = FixedParams(), hyper: FixedHyper = FixedHyper()):
        self.p = params
        p = params
        self.w = np.zeros((p.n_hid, p.n_pre), dtype=np.int64)      # W[j, i]: pre i -> hid j
        self.w_out = np.zeros((p.n_out, p.n_hid), dtype=np.int64)  # W_out[k, j]
        self.b = np.zeros((p.n_hid, p.n_out), dtype=np.int64)      # random feedback B[j, k]
        self.counters = Counters()
        self.configure(hyper)
        self._clear_state()

    # -- configuration and memories -------------------------------------------------------
    def configure(self, hyper: FixedHyper):
        """Load run-time registers; reseeds the stochastic-rounding generators."""
        self.h = hyper.validate(self.p)
        self.rng_hid = LaneRNG(hyper.seed, self.p.lanes)
        self.rng_out = LaneRNG(hyper.seed, self.p.n_out, first_lane=self.p.lanes)

    def load_weights(self, w=None, w_out=None, b=None):
        """Write weight memories; values out of the ``w_bits`` range are rejected."""
        for name, value, shape in (("w", w, self.w.shape), ("w_out", w_out, self.w_out.shape),
                                   ("b", b, self.b.shape)):
            if value is None:
                continue
            value = np.asarray(value)
            if value.shape != shape:
                raise ValueError(f"{name} must have shape {shape}, not {value.shape}")
            if (value != sat(value, self.p.w_bits)).any():
                raise ValueError(f"{name} values must fit in {self.p.w_bits} signed bits")
            getattr(self, name)[...] = value

    def _clear_state(self):
        p = self.p
        self.v = np.zeros(p.n_hid, dtype=np.int64)
        self.s = np.zeros(p.n_hid, dtype=bool)      # spikes of the previous step
        self.a_in = np.zeros(p.n_in, dtype=np.int64)
        self.a_hid = np.zeros(p.n_hid, dtype=np.int64)
        self.y = np.zeros(p.n_out, dtype=np.int64)
        self.score = np.zeros(p.n_out, dtype=np.int64)
        if p.otpe:
            self.z_in = np.zeros(p.n_in, dtype=np.int64)
            self.z_hid = np.zeros(p.n_hid, dtype=np.int64)
            self.gsum = np.zeros(p.n_hid, dtype=np.int64)
            self.c = 0
            self.recip = 0
        self.label = 0
        self.learn = False

    # -- one sample -----------------------------------------------------------------------
    def start_sample(self, label: int, learn: bool):
        """Clear membrane, spikes, traces (and OTPE state), readout and scores; latch label
        and mode."""
        if not 0 <= label < self.p.n_out:
            raise ValueError(f"label must be in [0, {self.p.n_out - 1}], not {label!r}")
        self._clear_state()
        self.label = int(label)
        self.learn = bool(learn)

    def step(self, events) -> StepTrace:
        """Run one time step with the input spike events ``events`` (input indices).

        Order of operations (each uses the results of the ones before):

        1. accumulate   ``I_j = sum_{i in events} W[j,i] + sum_{j' : s_j'} W[j, n_in+j']``
        2. neuron       ``V = sat_v(decay(V, alpha) + I - theta * s_prev)``;
                        ``s = V >= theta``; ``psi = b_th - |V - theta|`` where positive
        3. input trace  ``a_in = usat_tr(decay(a_in, lam) + one * [i in events])``
        4. readout      ``y = sat_y(decay(y, kappa) + sum_{j : s_j} W_out[:, j])``;
                        ``score = sat_score(score + y)``
        5. (learn) error ``err = sat_y(y - target * onehot(label))``
        6. (learn) gradient walk over active ``j`` ascending, presynaptic ``i`` ascending:
           ``L = sat_l((B_j . err) >> l_shift)``, ``m = sat_l((L * psi_j) >> psi_shift)``,
           ``W[j,i] = sat_w(W[j,i] - ((m * a_i + r) >> g_shift))`` where ``a_i`` is the input
           trace of step 3 for inputs and the *previous* hidden trace for recurrent sources,
           and ``r`` comes from the generator of lane ``i % lanes``.
           Rule 1 (approximate OTPE): the walk is over ``gbar_j > 0`` with ``gbar_j`` in place
           of ``psi_j`` and ``z`` in place of ``a``.
        7. hidden trace ``a_hid = usat_tr(decay(a_hid, lam) + one * s)``

        With ``p.otpe`` (in both rules): before step 2 ``c = decay(c, lam) + 2**c_frac``,
        ``recip = 2**(c_frac + recip_frac) // c``; in step 2 ``gsum = usat_gsum(decay(gsum,
        lam) + psi0)`` (``psi0`` = psi, 0 if inactive), ``gbar = usat_psi((gsum * recip) >>
        recip_frac)``; in step 3 ``z_in = usat_z(decay(z_in, lam) + a_in)``; in step 7
        ``z_hid = usat_z(decay(z_hid, lam) + a_hid)`` (new traces).
        8. (learn) readout update, all ``j`` ascending, all ``k``:
           ``W_out[k,j] = sat_w(W_out[k,j] - ((err_k * a_hid_j + r) >> go_shift))`` with ``r``
           from readout generator ``k``.
        """
        p, h, c = self.p, self.h, self.counters
        events = np.asarray(events, dtype=np.int64)
        if events.size and (events.min() < 0 or events.max() >= p.n_in):
            raise ValueError(f"event indices must be in [0, {p.n_in - 1}]")
        if np.unique(events).size != events.size:
            raise ValueError("event indices within a step must be distinct")
        prev = np.flatnonzero(self.s)

        # 1. accumulate (wide: cannot saturate, see FixedParams.acc_bits)
        acc = self.w[:, events].sum(axis=1)
        c.add("input_events", events.size)
        c.add("syn_ops", events.size * p.n_hid)
        if p.recurrent:
            acc += self.w[:, p.n_in + prev].sum(axis=1)
            c.add("syn_ops", prev.size * p.n_hid)

        # OTPE normalizer (global): c = 1.0 on the first step of a sample
        if p.otpe:
            self.c = ((self.c * h.lam_q) >> p.decay_frac) + (1 << p.c_frac)
            self.recip = (1 << (p.c_frac + p.recip_frac)) // self.c

        # 2. neuron update
        v = sat(((self.v * h.alpha_q) >> p.decay_frac) + acc - h.theta * self.s, p.v_bits)
        s = v >= h.theta
        dist = np.abs(v - h.theta)
        active = np.flatnonzero(dist < h.b_th)
        psi = h.b_th - dist[active]
        self.v, self.s = v, s
        spikes = np.flatnonzero(s)
        c.add("spikes", spikes.size)
        if p.otpe:
            psi0 = np.zeros(p.n_hid, dtype=np.int64)
            psi0[active] = psi
            self.gsum = usat(((self.gsum * h.lam_q) >> p.decay_frac) + psi0, p.gsum_bits)
            gbar = usat((self.gsum * self.recip) >> p.recip_frac, p.psi_bits)
            if h.rule == RULE_OTPE:
                active = np.flatnonzero(gbar)
                psi = gbar[active]

        # 3. input traces
        a_in = (self.a_in * h.lam_q) >> p.decay_frac
        a_in[events] += p.trace_one
        self.a_in = usat(a_in, p.tr_bits)
        if p.otpe:
            self.z_in = usat(((self.z_in * h.lam_q) >> p.decay_frac) + self.a_in, p.z_bits)

        # 4. readout
        y = ((self.y * h.kappa_q) >> p.decay_frac) + self.w_out[:, spikes].sum(axis=1)
        self.y = sat(y, p.y_bits)
        self.score = sat(self.score + self.y, p.score_bits)

        if self.learn:
            onehot = np.zeros(p.n_out, dtype=np.int64)
            onehot[self.label] = h.target
            err = sat(self.y - onehot, p.y_bits)
            self._gradient(active, psi, err)

        # 7. hidden traces
        self.a_hid = usat(((self.a_hid * h.lam_q) >> p.decay_frac) + p.trace_one * s, p.tr_bits)
        if p.otpe:
            self.z_hid = usat(((self.z_hid * h.lam_q) >> p.decay_frac) + self.a_hid, p.z_bits)

        if self.learn:
            self._readout_update(err)
        c.add("steps", 1)
        return StepTrace(spikes=spikes, active=active, psi=psi, v=v.copy(), y=self.y.copy())

    def _gradient(self, active, psi, err):
        """Step 6 over the walk list ``active`` with values ``psi`` (gbar in rule 1)."""
        p, h, c = self.p, self.h, self.counters
        c.add("active", active.size)
        if not active.size:
            return
        c.add("weight_updates", active.size * p.n_pre)
        feedback = self.w_out.T[active] if h.feedback == FEEDBACK_SYMMETRIC else self.b[active]
        learn_sig = sat((feedback @ err) >> h.l_shift, p.l_bits)
        mod = sat((learn_sig * psi) >> h.psi_shift, p.l_bits)
        a_in, a_hid = (self.z_in, self.z_hid) if h.rule == RULE_OTPE else (self.a_in, self.a_hid)
        traces = a_in if not p.recurrent else np.concatenate([a_in, a_hid])
        r = self._lane_randoms(active.size, h.g_shift)
        delta = (mod[:, None] * traces[None, :] + r) >> h.g_shift
        self.w[active] = sat(self.w[active] - delta, p.w_bits)

    def _lane_randoms(self, n_active: int, shift: int) -> np.ndarray:
        """Random offsets ``r[a, i]`` for the walk: lane ``l`` serves ``i = c*lanes + l``."""
        p = self.p
        r = np.empty((n_active, p.n_pre), dtype=np.int64)
        mask = (1 << shift) - 1
        for lane in range(min(p.lanes, p.n_pre)):
            cols = np.arange(lane, p.n_pre, p.lanes)
            draws = self.rng_hid.take(lane, n_active * cols.size).reshape(n_active, cols.size)
            r[:, cols] = draws.astype(np.int64) & mask
        return r

    def _readout_update(self, err):
        p, h = self.p, self.h
        self.counters.add("readout_updates", p.n_out * p.n_hid)
        mask = (1 << h.go_shift) - 1
        r = np.stack([self.rng_out.take(k, p.n_hid).astype(np.int64) & mask
                      for k in range(p.n_out)])
        delta = (err[:, None] * self.a_hid[None, :] + r) >> h.go_shift
        self.w_out = sat(self.w_out - delta, p.w_bits)

    def end_sample(self) -> int:
        """Latch the prediction: the class with the highest score (lowest index on ties)."""
        self.counters.add("samples", 1)
        return int(np.argmax(self.score))

    def run_sample(self, raster: np.ndarray, label: int, learn: bool) -> int:
        """Run a whole sample given as a ``[T, n_in]`` 0/1 raster; returns the prediction."""
        raster = np.asarray(raster)
        if raster.ndim != 2 or raster.shape[1] != self.p.n_in:
            raise ValueError(f"raster must have shape [T, {self.p.n_in}], not {raster.shape}")
        self.start_sample(label, learn)
        for row in raster:
            self.step(np.flatnonzero(row))
        return self.end_sample()

    def memory_bits(self) -> dict:
        """On-chip storage in bits, from the arrays this model actually holds now.

        Each array's element count times its hardware width (SPEC.md section 2). Nothing here
        is sized by the number of time steps, so running longer samples leaves it unchanged.
        """
        p = self.p
        widths = {"w": p.w_bits, "w_out": p.w_bits, "b": p.w_bits, "v": p.v_bits, "s": 1,
                  "a_in": p.tr_bits, "a_hid": p.tr_bits, "y": p.y_bits,
                  "score": p.score_bits}
        if p.otpe:
            widths.update(z_in=p.z_bits, z_hid=p.z_bits, gsum=p.gsum_bits)
        bits = {name: int(getattr(self, name).size) * width for name, width in widths.items()}
        bits["acc"] = p.n_hid * p.acc_bits
        if p.otpe:
            bits["c_recip"] = p.c_bits + p.recip_bits
        bits["rng"] = 32 * (len(self.rng_hid.states) + len(self.rng_out.states))
        bits["total"] = sum(bits.values())
        return bits

    def rng_states(self) -> list[int]:
        """Hidden-lane then readout generator states, as the hardware registers hold them."""
        return ([self.rng_hid.current_state(lane) for lane in range(self.p.lanes)]
                + [self.rng_out.current_state(k) for k in range(self.p.n_out)])


def init_weights(params: FixedParams, seed: int, w_scale: float = 0.5, out_scale: float = 0.5,
                 theta: int = FixedHyper.theta):
    """Seeded initial weights (int): Gaussian with std ``w_scale * theta / sqrt(fan_in)``.

    Returns ``(w, w_out, b)``; ``b`` is a fixed random feedback matrix of the same scale as
    ``w_out`` (used when ``feedback == FEEDBACK_RANDOM``).
    """
    rng = np.random.default_rng(seed)
    hi = (1 << (params.w_bits - 1)) - 1

    def draw(shape, std):
        return np.clip(np.round(rng.normal(0.0, std, size=shape)), -hi - 1, hi).astype(np.int64)

    w = draw((params.n_hid, params.n_pre), w_scale * theta / np.sqrt(params.n_in))
    if params.recurrent:
        w[:, params.n_in:] = draw((params.n_hid, params.n_hid),
                                  0.5 * w_scale * theta / np.sqrt(params.n_hid))
    w_out = draw((params.n_out, params.n_hid), out_scale * theta / np.sqrt(params.n_hid))
    b = draw((params.n_hid, params.n_out), out_scale * theta / np.sqrt(params.n_hid))
    return w, w_out, b


def with_hyper(core: FixedCore, **changes) -> FixedCore:
    """Reconfigure ``core`` with some registers changed (keeps weights)."""
    core.configure(replace(core.h, **changes))
    return core


__all__ = ["FixedParams", "FixedHyper", "FixedCore", "Counters", "StepTrace", "COUNTERS",
           "FEEDBACK_SYMMETRIC", "FEEDBACK_RANDOM", "RULE_OTTT", "RULE_OTPE", "init_weights",
           "with_hyper", "sat", "usat"]
