"""Approximate OTPE state (SPEC.md rule 1): normalizer, averaged surrogate, ``z`` traces.

* :class:`Normalizer`: the global ``c = decay(c, lam_q) + 2**c_frac`` and its reciprocal
  ``recip = 2**(c_frac + recip_frac) // c`` by serial restoring division, once per step.
* :class:`SurrogateAverageLanes`: ``gsum = usat_gsum(decay(gsum, lam_q) + psi)`` and
  ``gbar = usat_psi((gsum * recip) >> recip_frac)``, ``lanes`` neurons per cycle.
* :class:`ZTraceLanes`: ``z = usat_z(decay(z, lam_q) + a)`` (``a`` the new trace), ``lanes``
  sources per cycle.
"""

from amaranth.hdl import Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.fixed import FixedParams
from .arith import usat
from .interface import hyper_layout
from .trace import trace_word

__all__ = ["z_word", "gsum_word", "gbar_word", "Normalizer", "SurrogateAverageLanes", "ZTraceLanes"]


def z_word(p: FixedParams, lanes: int) -> data.ArrayLayout:
    return data.ArrayLayout(unsigned(p.z_bits), lanes)


def gsum_word(p: FixedParams) -> data.ArrayLayout:
    return data.ArrayLayout(unsigned(p.gsum_bits), p.lanes)


def gbar_word(p: FixedParams) -> data.ArrayLayout:
    """``gbar`` of ``lanes`` neurons: the format of ``psi`` (``lif.psi_word``)."""
    return data.ArrayLayout(unsigned(p.psi_bits), p.lanes)


class Normalizer(wiring.Component):
    """Normalizer ``c`` (unsigned ``c_bits``, ``c_frac`` fractional bits) and ``recip``.

    ``start`` (one cycle, registered): ``c * lam_q`` is registered on the second edge after
    it (the multiplier has a cycle of its own), ``c`` is updated on the third, then
    ``recip_frac + 1`` cycles of restoring division produce ``recip`` (MSB first; ``busy``
    from the cycle after ``start`` until it is final).
    ``clear`` (registered): ``c = 0`` from the second edge after it (start of a sample).
    The dividend ``2**(c_frac + recip_frac)`` is a constant; ``c >= 2**c_frac`` keeps the
    quotient within ``recip_frac + 1`` bits and the first partial remainder
    ``2**(c_frac + recip_frac) >> (recip_frac + 1)`` below ``c``.

    Interface attributes
    --------------------
    start, clear : Signal(1), in
    hyper : hyper_layout, in
        Uses ``lam_q``.
    busy : Signal(1), out
    recip : unsigned(recip_bits), out
        Valid when ``busy`` is low.
    """

    def __init__(self, p: FixedParams):
        self.p = p
        super().__init__({
            "start": In(1), "clear": In(1), "busy": Out(1),
            "hyper": In(hyper_layout(p)),
            "recip": Out(unsigned(p.recip_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.p
        qb = p.recip_bits
        num = 1 << (p.c_frac + p.recip_frac)
        low = Const(num & ((1 << qb) - 1), qb)    # dividend bits brought down, MSB first

        c = Signal(unsigned(p.c_bits))
        prod = Signal(unsigned(p.c_bits + p.decay_frac))
        decaying = Signal()                       # prod holds c * lam_q
        rem = Signal(unsigned(p.c_bits))
        dividing = Signal()
        k = Signal(range(qb))                     # quotient bit produced this cycle
        trial = Signal(unsigned(p.c_bits + 1))
        fits = Signal()
        m.d.comb += [trial.eq((rem << 1) | low.bit_select(k, 1)), fits.eq(trial >= c)]
        start, clear = Signal(), Signal()
        m.d.sync += [start.eq(self.start), clear.eq(self.clear)]
        with m.If(clear):
            m.d.sync += [c.eq(0), decaying.eq(0)]
        with m.Elif(start):
            m.d.sync += [prod.eq(c * self.hyper.lam_q), decaying.eq(1)]
        with m.Elif(decaying):
            m.d.sync += [c.eq((prod >> p.decay_frac) + (1 << p.c_frac)), decaying.eq(0),
                         rem.eq(num >> qb), k.eq(qb - 1), dividing.eq(1)]
        with m.Elif(dividing):
            m.d.sync += [rem.eq(Mux(fits, trial - c, trial)),
                         self.recip.eq((self.recip << 1) | fits), k.eq(k - 1)]
            with m.If(k == 0):
                m.d.sync += dividing.eq(0)
        m.d.comb += self.busy.eq(start | decaying | dividing)
        return m


class SurrogateAverageLanes(wiring.Component):
    """Leaky surrogate sums and averaged surrogate of ``lanes`` neurons (latency ``LATENCY``).

    Interface attributes
    --------------------
    i : stream (always ready), in
        ``psi`` (0 for inactive neurons), ``gsum`` (stored sums), ``tag``.
    o : stream (always ready), out
        ``gsum`` (new sums), ``gbar`` (unsigned ``psi_bits``), ``tag``.
    recip : unsigned(recip_bits), in
        Held stable during a pass. Each lane takes it through a register of its own (timing:
        no chip-wide fanout into the multipliers), so a new value applies one cycle later.
    hyper : hyper_layout, in
        Uses ``lam_q``.
    """

    LATENCY = 4

    def __init__(self, p: FixedParams, tag_shape=unsigned(1)):
        self.p, self.tag_shape = p, tag_shape
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "psi": gbar_word(p), "gsum": gsum_word(p), "tag": tag_shape}),
                always_ready=True)),
            "o": Out(stream.Signature(data.StructLayout({
                "gsum": gsum_word(p), "gbar": gbar_word(p), "tag": tag_shape}),
                always_ready=True)),
            "recip": In(unsigned(p.recip_bits)),
            "hyper": In(hyper_layout(p)),
        })

    def elaborate(self, platform):
        m = Module()
        p, n = self.p, self.p.lanes
        valid = [Signal(name=f"valid{k}") for k in range(self.LATENCY - 1)]
        tag = [Signal(self.tag_shape, name=f"tag{k}") for k in range(self.LATENCY - 1)]
        m.d.sync += [valid[0].eq(self.i.valid), tag[0].eq(self.i.payload.tag)]
        for k in range(1, self.LATENCY - 1):
            m.d.sync += [valid[k].eq(valid[k - 1]), tag[k].eq(tag[k - 1])]
        m.d.sync += [self.o.valid.eq(valid[-1]), self.o.payload.tag.eq(tag[-1])]
        for l in range(n):
            # 1: leak product; 2: add psi, saturate; 3: times recip; 4: shift, saturate
            prod = Signal(unsigned(p.gsum_bits + p.decay_frac), name=f"prod{l}")
            psi1 = Signal(unsigned(p.psi_bits), name=f"psi1_{l}")
            gsum2 = Signal(unsigned(p.gsum_bits), name=f"gsum2_{l}")
            gsum3 = Signal(unsigned(p.gsum_bits), name=f"gsum3_{l}")
            avg = Signal(unsigned(p.gsum_bits + p.recip_bits), name=f"avg{l}")
            recip = Signal(unsigned(p.recip_bits), name=f"recip{l}")
            m.d.sync += [
                recip.eq(self.recip),
                prod.eq(self.i.payload.gsum[l] * self.hyper.lam_q),
                psi1.eq(self.i.payload.psi[l]),
                gsum2.eq(usat((prod >> p.decay_frac) + psi1, p.gsum_bits)),
                avg.eq(gsum2 * recip), gsum3.eq(gsum2),
                self.o.payload.gsum[l].eq(gsum3),
                self.o.payload.gbar[l].eq(usat(avg >> p.recip_frac, p.psi_bits)),
            ]
        return m


class ZTraceLanes(wiring.Component):
    """``z = usat_z(decay(z, lam_q) + a)`` for ``lanes`` sources (latency ``LATENCY``).

    Interface attributes
    --------------------
    i : stream (always ready), in
        ``z`` (stored word), ``a`` (the trace word after this step's update), ``tag``.
    o : stream (always ready), out
        ``z`` (new word), ``tag``.
    hyper : hyper_layout, in
        Uses ``lam_q``.
    """

    LATENCY = 3

    def __init__(self, p: FixedParams, lanes: int, tag_shape=unsigned(1)):
        self.p, self.lanes, self.tag_shape = p, lanes, tag_shape
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "z": z_word(p, lanes), "a": trace_word(p, lanes), "tag": tag_shape}),
                always_ready=True)),
            "o": Out(stream.Signature(data.StructLayout({
                "z": z_word(p, lanes), "tag": tag_shape}), always_ready=True)),
            "hyper": In(hyper_layout(p)),
        })

    def elaborate(self, platform):
        m = Module()
        p, n = self.p, self.lanes
        v1, v2 = Signal(), Signal()
        t1, t2 = Signal(self.tag_shape), Signal(self.tag_shape)
        m.d.sync += [v1.eq(self.i.valid), t1.eq(self.i.payload.tag), v2.eq(v1), t2.eq(t1),
                     self.o.valid.eq(v2), self.o.payload.tag.eq(t2)]
        for l in range(n):
            # 1: leak product; 2: add the trace; 3: saturate
            prod = Signal(unsigned(p.z_bits + p.decay_frac), name=f"prod{l}")
            a1 = Signal(unsigned(p.tr_bits), name=f"a1_{l}")
            acc = Signal(unsigned(p.z_bits + 1), name=f"acc{l}")
            m.d.sync += [
                prod.eq(self.i.payload.z[l] * self.hyper.lam_q), a1.eq(self.i.payload.a[l]),
                acc.eq((prod >> p.decay_frac) + a1),
                self.o.payload.z[l].eq(usat(acc, p.z_bits)),
            ]
        return m
