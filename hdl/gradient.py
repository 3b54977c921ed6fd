"""Active-neuron gradient walk (SPEC.md step 6).

* :class:`LearningSignal`: ``L_j = sat_l((B_j . err) >> l_shift)`` with one multiplier
  (``n_out`` cycles), then ``m_j = sat_l((L_j * psi_j) >> psi_shift)``.
* ``W[j,i] = sat_w(W[j,i] - ((m_j * a_i + r) >> g_shift))`` for ``lanes`` synapses per
  cycle: :class:`hdl.update.StochasticUpdateLanes`.
* :class:`GradientWalk`: per neuron from the active walker, fetch its feedback row, compute
  ``m_j`` and walk its fan-in ``lanes`` synapses per cycle over the skewed weight banks. Each
  weight is updated at most once per step, so the read-modify-write pipeline has no hazards.
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from golden.fixed import FixedParams
from .arith import bits_for, sat
from .interface import hyper_layout
from .lif import w_addr_width
from .readout import wout_word, y_word
from .rng import Xorshift32
from .trace import grad_trace_word
from .update import StochasticUpdateLanes, shares_update, update_signatures
from .weights import WeightBank

__all__ = ["LearningSignal", "GradientWalk"]


class LearningSignal(wiring.Component):
    """Learning signal and modulator of one neuron.

    Interface attributes
    --------------------
    i : stream, in
        ``fb`` (feedback row ``B_j``: ``W_out[:, j]`` or ``B[j, :]``) and ``psi``.
    o : stream (always ready), out
        ``m`` (the modulator), one cycle, ``n_out + 9`` cycles after ``i``.
    err : y_word, in
        Copied when ``i`` is taken.
    hyper : hyper_layout, in
        Uses ``l_shift`` and ``psi_shift``.
    """

    def __init__(self, p: FixedParams):
        self.p = p
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "fb": wout_word(p), "psi": unsigned(p.psi_bits)}))),
            "o": Out(stream.Signature(data.StructLayout({"m": signed(p.l_bits)}),
                                      always_ready=True)),
            "err": In(y_word(p)),
            "hyper": In(hyper_layout(p)),
        })

    def elaborate(self, platform):
        m = Module()
        p, h, K = self.p, self.hyper, self.p.n_out
        # the operands, copied on acceptance and shifted down one class per product
        fb = Signal(wout_word(p))
        err = Signal(y_word(p))
        psi = Signal(unsigned(p.psi_bits))
        running = Signal()
        k = Signal(range(K + 1))
        issue = running & (k < K)
        m.d.comb += self.i.ready.eq(~running)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [fb.eq(self.i.payload.fb), err.eq(self.err), psi.eq(self.i.payload.psi),
                         running.eq(1), k.eq(0)]
        with m.Elif(issue):
            m.d.sync += [k.eq(k + 1), fb.eq(fb.as_value() >> p.w_bits),
                         err.eq(err.as_value() >> p.y_bits)]

        # MAC pipeline: multiply, accumulate
        vb, vc = Signal(), Signal()
        first_b, last_b = Signal(), Signal()
        prod = Signal(signed(p.w_bits + p.y_bits))
        acc = Signal(signed(p.w_bits + p.y_bits + bits_for(K)))
        m.d.sync += [vb.eq(issue), prod.eq(fb[0] * err[0]), first_b.eq(k == 0),
                     last_b.eq(issue & (k == K - 1))]
        with m.If(vb):
            m.d.sync += acc.eq(Mux(first_b, 0, acc) + prod)
        m.d.sync += vc.eq(last_b)
        # learning signal, modulator: select, shift, saturate, multiply, select, shift,
        # saturate; one shifter for both shifts, its operand and amount registered (one
        # neuron in flight: acc at vc, prod2 at vg)
        lsig = Signal(signed(p.l_bits))
        prod2 = Signal(signed(p.l_bits + p.psi_bits + 1))
        operand = Signal(signed(max(len(acc), len(prod2))))
        amount = Signal(unsigned(p.shift_bits))
        shifted = Signal.like(operand)
        vd, ve, vf, vg, vh, vi = (Signal(name=f"v{s}") for s in "defghi")
        with m.If(vc):
            m.d.sync += [operand.eq(acc), amount.eq(h.l_shift)]
        with m.Elif(vg):
            m.d.sync += [operand.eq(prod2), amount.eq(h.psi_shift)]
        m.d.sync += shifted.eq(operand >> amount)
        m.d.sync += [vd.eq(vc), ve.eq(vd), vf.eq(ve), vg.eq(vf), vh.eq(vg), vi.eq(vh)]
        m.d.sync += [lsig.eq(sat(shifted, p.l_bits)), prod2.eq(lsig * psi)]
        m.d.sync += [self.o.valid.eq(vi), self.o.payload.m.eq(sat(shifted, p.l_bits))]
        with m.If(vi):
            m.d.sync += running.eq(0)
        return m


class GradientWalk(wiring.Component):
    """Gradient walk over a stream of neurons (active ones, or all of them in dense mode).

    Per neuron: read its feedback row, compute ``m_j`` (:class:`LearningSignal`), then visit
    presynaptic sources ``i = c*lanes + l`` for ``c = 0 .. ceil(n_pre/lanes) - 1``: lane ``l``
    reads ``W[j, i]`` from bank ``(i + j) mod lanes`` at ``i * n_hid/lanes + j div lanes`` and
    the trace word ``c``, draws from hidden generator ``l`` and writes the result back. Neurons
    with ``flag == 0`` (inactive, dense mode) are walked without updates or draws. With
    ``weight_ram == "spram"`` a word ``c`` is issued every other cycle and each write-back
    comes an odd number of cycles after its read, so a single-port bank never sees both.

    Interface attributes
    --------------------
    neurons : stream, in
        ``j``, ``flag`` (active), ``elem`` (``psi``).
    busy : Signal(1), out
    reseed : Signal(1), in
    err : y_word, in
    fb_rd : read port of the feedback row (``W_out`` column or ``B`` row ``j``), out
    w_rd, w_wr : per-bank weight memory ports (read latency ``WeightBank.LATENCY``), out
    tr_rd : trace read port (``a``, or ``z`` in rule 1: the core selects), out
    rng_state : hidden generator states, out
    upd_i, upd_o : the synapse update stream to and from the core's shared
        :class:`hdl.update.StochasticUpdateLanes` (only if :func:`hdl.update.shares_update`)
    """

    def __init__(self, p: FixedParams):
        self.p = p
        n = p.lanes
        self.c_pre = -(-p.n_pre // n)
        self.c_tr = -(-(p.n_in + p.n_hid) // n)
        aw = w_addr_width(p)
        #: the tag of a synapse update: bank addresses and enables, bank rotation
        self.upd_tag = data.StructLayout({"addr": data.ArrayLayout(unsigned(aw), n),
                                          "en": unsigned(n),
                                          "rot": unsigned(max(ceil_log2(n), 1))})
        shared = {}
        if shares_update(p):
            i_sig, o_sig = update_signatures(p, n, signed(p.l_bits), unsigned(p.grad_tr_bits),
                                             self.upd_tag)
            shared = {"upd_i": Out(i_sig), "upd_o": In(o_sig)}
        super().__init__({
            "neurons": In(stream.Signature(data.StructLayout({
                "j": unsigned(bits_for(p.n_hid)), "flag": unsigned(1),
                "elem": unsigned(p.psi_bits)}))),
            "busy": Out(1), "reseed": In(1),
            "hyper": In(hyper_layout(p)), "err": In(y_word(p)),
            "fb_rd": Out(memory.ReadPort.Signature(addr_width=ceil_log2(p.n_hid),
                                                   shape=wout_word(p))),
            "w_rd": Out(memory.ReadPort.Signature(addr_width=aw, shape=signed(p.w_bits))).array(n),
            "w_wr": Out(memory.WritePort.Signature(addr_width=aw,
                                                   shape=signed(p.w_bits))).array(n),
            "tr_rd": Out(memory.ReadPort.Signature(addr_width=ceil_log2(self.c_tr),
                                                   shape=grad_trace_word(p, n))),
            "rng_state": Out(data.ArrayLayout(unsigned(32), n)),
            **shared,
        })

    def elaborate(self, platform):
        m = Module()
        p = self.p
        n, G = p.lanes, p.n_hid // p.lanes
        lb = ceil_log2(n)
        aw = w_addr_width(p)
        tag = self.upd_tag
        m.submodules.signal = lsig = LearningSignal(p)
        m.d.comb += [lsig.hyper.eq(self.hyper), lsig.err.eq(self.err)]
        if shares_update(p):
            syn_i, syn_o = self.upd_i, self.upd_o
        else:
            m.submodules.synapses = syn = StochasticUpdateLanes(
                p, n, x_shape=signed(p.l_bits), a_shape=unsigned(p.grad_tr_bits),
                tag_shape=tag)
            m.d.comb += syn.shift.eq(self.hyper.g_shift)
            syn_i, syn_o = syn.i, syn.o
        rngs = []
        for l in range(n):
            rng = Xorshift32(lane=l)
            m.submodules[f"rng{l}"] = rng
            rngs.append(rng)
            m.d.comb += [rng.seed.eq(self.hyper.seed), rng.load.eq(self.reseed),
                         self.rng_state[l].eq(rng.state)]

        # front: neuron -> feedback row -> m_j, into a one-entry buffer
        f_j = Signal(bits_for(p.n_hid))
        f_flag = Signal()
        f_psi = Signal(unsigned(p.psi_bits))
        f_row = Signal(wout_word(p))
        f_m = Signal(signed(p.l_bits))
        buf_valid = Signal()
        buf_j, buf_flag, buf_m = Signal.like(f_j), Signal(), Signal.like(f_m)
        # back: the fan-in walk of the buffered neuron, overlapping the next front
        j = Signal.like(f_j)
        flag = Signal()
        mod = Signal(signed(p.l_bits))
        c = Signal(range(self.c_pre + 1))
        c_last = Signal()  # c == c_pre - 1
        walking = Signal()
        # single-port weight RAM: a free-running clock phase, reads (issues) on phase 1 only,
        # each write-back lands an odd number of cycles after its read, on phase 0
        single = p.weight_ram == "spram"
        if single:
            clk_phase = Signal()
            m.d.sync += clk_phase.eq(~clk_phase)
            issue = walking & clk_phase
        else:
            issue = walking
        last = issue & c_last
        load = buf_valid & (~walking | last)
        buf_write = Signal()
        # edges from an issue to the update's input: the memory's latency, data register,
        # rotation; the write-back passes wb_regs registers (after the rotation muxes); a
        # single-port bank needs an odd number of edges from a read to the write of its result
        L = WeightBank.LATENCY
        to_update = L + 2
        wb_regs = 1
        if single and (to_update + StochasticUpdateLanes.LATENCY + wb_regs) % 2 == 0:
            wb_regs += 1
        drain_cycles = StochasticUpdateLanes.LATENCY + to_update + 1 + wb_regs
        drain = Signal(range(drain_cycles + 1))

        m.d.comb += [self.fb_rd.addr.eq(self.neurons.payload.j), self.fb_rd.en.eq(1)]
        with m.FSM(name="front") as front:
            with m.State("IDLE"):
                m.d.comb += self.neurons.ready.eq(1)
                with m.If(self.neurons.valid):
                    m.d.sync += [f_j.eq(self.neurons.payload.j),
                                 f_flag.eq(self.neurons.payload.flag),
                                 f_psi.eq(self.neurons.payload.elem)]
                    m.next = "FETCH"
            with m.State("FETCH"):
                # the feedback row of f_j is on fb_rd.data this cycle: into a register (timing:
                # nothing but the feedback select between the block RAM and a flip-flop)
                m.d.sync += f_row.eq(self.fb_rd.data)
                m.next = "SIGNAL"
            with m.State("SIGNAL"):
                m.d.comb += [lsig.i.valid.eq(1), lsig.i.payload.fb.eq(f_row),
                             lsig.i.payload.psi.eq(f_psi)]
                m.next = "MOD"
            with m.State("MOD"):
                with m.If(lsig.o.valid):
                    m.d.sync += f_m.eq(lsig.o.payload.m)
                    m.next = "HOLD"
            with m.State("HOLD"):
                with m.If(~buf_valid | load):
                    m.d.comb += buf_write.eq(1)
                    m.d.sync += [buf_j.eq(f_j), buf_flag.eq(f_flag), buf_m.eq(f_m)]
                    m.next = "IDLE"
        with m.If(buf_write):
            m.d.sync += buf_valid.eq(1)
        with m.Elif(load):
            m.d.sync += buf_valid.eq(0)

        # per bank the address of the lane it serves (bank b holds lane l with
        # (l + j) mod lanes == b), kept in registers
        bank_addr = [Signal(aw + 1, name=f"bank_addr{b}") for b in range(n)]
        buf_base = buf_j >> lb if n > 1 else buf_j
        with m.If(load):
            m.d.sync += [j.eq(buf_j), flag.eq(buf_flag), mod.eq(buf_m), c.eq(0), walking.eq(1),
                         c_last.eq(int(self.c_pre == 1))]
            with m.Switch(buf_j[:lb] if n > 1 else 0):
                for r in range(n):
                    with m.Case(r):
                        m.d.sync += [bank_addr[b].eq(buf_base + ((b - r) % n) * G)
                                     for b in range(n)]
        with m.Elif(issue):
            m.d.sync += [c.eq(c + 1), c_last.eq(c + 2 == self.c_pre)]
            m.d.sync += [bank_addr[b].eq(bank_addr[b] + n * G) for b in range(n)]
            with m.If(last):
                m.d.sync += [walking.eq(0), drain.eq(drain_cycles)]
        with m.Elif(drain != 0):
            m.d.sync += drain.eq(drain - 1)

        # issue: bank addresses (also those of the write-back)
        rot = j[:lb] if n > 1 else 0
        lane_en = Signal(n)
        for l in range(n):
            m.d.comb += lane_en[l].eq(issue & flag & (c * n + l < p.n_pre))
        for b in range(n):
            m.d.comb += [self.w_rd[b].addr.eq(bank_addr[b]), self.w_rd[b].en.eq(1)]

        # the issue's valid, tag, lane enables and modulator, delayed: stage[k] holds them in
        # cycle t + k, the tag's enables rotated from lanes to banks on the way into t + 2; the
        # weights are on w_rd in t + L (L = WeightBank.LATENCY), registered, then rotated from
        # banks to lanes into the update's input with the trace word (read in t + L - 1) and
        # the generators' draws, taken in t + L + 1 (in issue order, so the same draws as at
        # the issue, without 32-bit delay registers)
        stage = {k: (Signal(name=f"v{k}"), Signal(tag, name=f"t{k}"),
                     Signal(n, name=f"e{k}"),
                     Signal(signed(p.l_bits), name=f"m{k}")) for k in range(1, L + 2)}
        v1, t1, e1, m1 = stage[1]
        m.d.sync += [v1.eq(issue), t1.rot.eq(rot), t1.en.eq(lane_en), e1.eq(lane_en),
                     m1.eq(mod)]
        m.d.sync += [t1.addr[b].eq(bank_addr[b]) for b in range(n)]
        for k in range(2, L + 2):
            (v, t, e, mk), (pv, pt, pe, pm) = stage[k], stage[k - 1]
            m.d.sync += [v.eq(pv), t.addr.eq(pt.addr), t.rot.eq(pt.rot), e.eq(pe), mk.eq(pm)]
            if k == 2:
                with m.Switch(pt.rot):
                    for rr in range(n):
                        with m.Case(rr):
                            m.d.sync += [t.en[b].eq(pt.en[(b - rr) % n]) for b in range(n)]
            else:
                m.d.sync += t.en.eq(pt.en)
        tr_c = c
        for k in range(L - 1):
            delayed = Signal.like(c, name=f"tr_c{k + 1}")
            m.d.sync += delayed.eq(tr_c)
            tr_c = delayed
        m.d.comb += [self.tr_rd.addr.eq(tr_c), self.tr_rd.en.eq(1)]
        a_in = Signal(grad_trace_word(p, n))
        bank = [Signal(signed(p.w_bits), name=f"bank_{b}") for b in range(n)]
        m.d.sync += [a_in.eq(self.tr_rd.data)]
        m.d.sync += [bank[b].eq(self.w_rd[b].data) for b in range(n)]
        v_u, t_u, e_u, m_u = stage[L + 1]
        m.d.sync += [syn_i.valid.eq(v_u), syn_i.payload.tag.eq(t_u), syn_i.payload.a.eq(a_in)]
        for l in range(n):
            m.d.comb += rngs[l].advance.eq(e_u[l])
            m.d.sync += syn_i.payload.r[l].eq(rngs[l].value)
        m.d.sync += [syn_i.payload.x[l].eq(m_u) for l in range(n)]
        for l in range(n):
            with m.Switch(t_u.rot):
                for r in range(n):
                    with m.Case(r):
                        m.d.sync += syn_i.payload.w[l].eq(bank[(l + r) % n])

        # write back: weights rotated from lanes to banks into registers, then wb_regs - 1 more
        out = syn_o.payload
        wb = [[[Signal.like(self.w_wr[b].addr, name=f"wb{s}_addr{b}"),
                Signal.like(self.w_wr[b].data, name=f"wb{s}_data{b}"),
                Signal(name=f"wb{s}_en{b}")] for b in range(n)] for s in range(wb_regs)]
        for b in range(n):
            with m.Switch(out.tag.rot):
                for r in range(n):
                    with m.Case(r):
                        m.d.sync += wb[0][b][1].eq(out.w[(b - r) % n])
            m.d.sync += [wb[0][b][0].eq(out.tag.addr[b]),
                         wb[0][b][2].eq(syn_o.valid & out.tag.en[b])]
            for s in range(1, wb_regs):
                m.d.sync += [d.eq(q) for d, q in zip(wb[s][b], wb[s - 1][b])]
            m.d.comb += [self.w_wr[b].addr.eq(wb[-1][b][0]), self.w_wr[b].data.eq(wb[-1][b][1]),
                         self.w_wr[b].en.eq(wb[-1][b][2])]
        m.d.comb += self.busy.eq(~front.ongoing("IDLE") | buf_valid | walking | (drain != 0))
        return m
