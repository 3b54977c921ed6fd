"""Stochastic-rounding weight update (SPEC.md steps 6 and 8), ``lanes`` weights per cycle.

``w' = sat_w(w - ((x * a + (r mod 2**shift)) >> shift))`` for every lane. The hidden update
(:class:`hdl.gradient.GradientWalk`: ``x = m_j``, ``a`` = presynaptic traces ``a_i``, shift
``g_shift``) and the readout update (:class:`hdl.readout.ReadoutUpdatePhase`: ``x = err_k``,
``a = a_hid[j]``, shift ``go_shift``) are both this datapath: one instance each, or one
shared instance in the core when ``out_lanes == lanes`` (:func:`shares_update`).
"""

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.fixed import FixedParams
from .arith import sat

__all__ = ["StochasticUpdateLanes", "update_signatures", "shares_update"]

#: Width of a generator draw (``hdl.rng.Xorshift32``).
DRAW_BITS = 32


def update_signatures(p: FixedParams, lanes: int, x_shape, a_shape, tag_shape):
    """Signatures of the input and the output stream of :class:`StochasticUpdateLanes`."""
    wl = data.ArrayLayout(signed(p.w_bits), lanes)
    return (stream.Signature(data.StructLayout({
                "w": wl, "x": data.ArrayLayout(x_shape, lanes),
                "a": data.ArrayLayout(a_shape, lanes),
                "r": data.ArrayLayout(unsigned(DRAW_BITS), lanes), "tag": tag_shape}),
                always_ready=True),
            stream.Signature(data.StructLayout({"w": wl, "tag": tag_shape}),
                             always_ready=True))


def shares_update(p: FixedParams) -> bool:
    """Whether the hidden and the readout update share one datapath (``out_lanes == lanes``:
    the core owns it; they run in different phases)."""
    return p.out_lanes == p.lanes


class StochasticUpdateLanes(wiring.Component):
    """Pipelined stochastic-rounding update of ``lanes`` weights, ``LATENCY`` cycles deep.

    Stages: product and masked draw; sum; right shift by the low ``SHIFT_SPLIT`` bits of
    ``shift``; right shift by the rest; difference; saturation. One input vector per cycle,
    no stalls.

    Parameters
    ----------
    p : FixedParams
    lanes : int
    x_shape, a_shape : shapes of the two factors (``a`` is a trace, usually unsigned)
    tag_shape : passed through with the weights

    Interface attributes
    --------------------
    i : stream (always ready), in
        ``w`` (weights), ``x``, ``a`` (factors), ``r`` (generator draws, 32 bit; only the low
        ``shift`` bits are used), ``tag``.
    o : stream (always ready), out
        ``w`` (updated weights), ``tag``.
    shift : unsigned(shift_bits), in
        The learning-rate shift (``g_shift`` or ``go_shift``), held stable. It passes two
        registers (a local copy, then the draw mask and the per-stage shift amounts): a new
        value applies to the vectors entering ``SHIFT_DELAY`` cycles after it changes.
    """

    LATENCY = 6
    SHIFT_DELAY = 2
    #: shift amount bits applied by the first shift stage (a 4:1 mux per bit)
    SHIFT_SPLIT = 2

    def __init__(self, p: FixedParams, lanes: int, x_shape, a_shape, tag_shape=unsigned(1)):
        self.p, self.lanes, self.tag_shape = p, lanes, tag_shape
        self.x_shape, self.a_shape = x_shape, a_shape
        i_sig, o_sig = update_signatures(p, lanes, x_shape, a_shape, tag_shape)
        super().__init__({"i": In(i_sig), "o": Out(o_sig), "shift": In(unsigned(p.shift_bits))})

    def elaborate(self, platform):
        m = Module()
        p, n = self.p, self.lanes
        depth = self.LATENCY - 1
        valid = [Signal(name=f"valid{s}") for s in range(depth)]
        tag = [Signal(self.tag_shape, name=f"tag{s}") for s in range(depth)]
        m.d.sync += [valid[0].eq(self.i.valid), tag[0].eq(self.i.payload.tag)]
        for s in range(1, depth):
            m.d.sync += [valid[s].eq(valid[s - 1]), tag[s].eq(tag[s - 1])]
        m.d.sync += [self.o.valid.eq(valid[-1]), self.o.payload.tag.eq(tag[-1])]

        # the shift, registered (the hyperparameter register has a large fanout), then the
        # draw mask (``2**shift - 1`` as a thermometer: no carry chain) and one copy of
        # the amount per shift stage
        split = min(self.SHIFT_SPLIT, p.shift_bits)
        sh = Signal(unsigned(p.shift_bits))
        mask = Signal(DRAW_BITS)
        sh_lo = Signal(unsigned(split))
        sh_hi = Signal(unsigned(p.shift_bits - split))
        m.d.sync += [sh.eq(self.shift), sh_lo.eq(sh[:split]), sh_hi.eq(sh[split:])]
        m.d.sync += [mask[b].eq(sh > b) for b in range(DRAW_BITS)]
        for l in range(n):
            i = self.i.payload
            w = [Signal(signed(p.w_bits), name=f"w{s}_{l}") for s in range(4)]
            prod = Signal.like(i.x[l] * i.a[l], name=f"prod{l}")
            r1 = Signal(unsigned(DRAW_BITS), name=f"r{l}")
            total = Signal.like(prod + r1, name=f"sum{l}")
            part = Signal.like(total, name=f"part{l}")
            delta = Signal.like(total, name=f"delta{l}")
            diff = Signal.like(w[3] - delta, name=f"diff{l}")
            m.d.sync += [
                # 1: product, the low `shift` bits of the draw
                prod.eq(i.x[l] * i.a[l]), r1.eq(i.r[l] & mask), w[0].eq(i.w[l]),
                # 2: rounding offset added
                total.eq(prod + r1), w[1].eq(w[0]),
                # 3, 4: variable shift, low bits then high bits of the amount
                part.eq(total >> sh_lo), w[2].eq(w[1]),
                delta.eq(part >> (sh_hi << split)), w[3].eq(w[2]),
                # 5, 6: difference, saturation
                diff.eq(w[3] - delta),
                self.o.payload.w[l].eq(sat(diff, p.w_bits)),
            ]
        return m
