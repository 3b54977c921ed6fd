"""Presynaptic traces: ``a = usat_tr(decay(a, lam_q) + one * spike)`` (SPEC.md steps 3, 7).

Input traces ``a_in`` and hidden traces ``a_hid`` live in one trace memory indexed by
presynaptic source ``i`` (inputs first, then hidden neurons), ``lanes`` traces per word, so
that the gradient walk reads the traces of ``lanes`` consecutive sources per cycle.
"""

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.fixed import FixedParams
from .arith import usat
from .interface import hyper_layout

__all__ = ["trace_word", "grad_trace_word", "TraceLanes"]


def trace_word(p: FixedParams, lanes: int) -> data.ArrayLayout:
    return data.ArrayLayout(unsigned(p.tr_bits), lanes)


def grad_trace_word(p: FixedParams, lanes: int) -> data.ArrayLayout:
    """Traces as the gradient walk reads them: ``a``, or ``z`` in OTPE rule 1."""
    return data.ArrayLayout(unsigned(p.grad_tr_bits), lanes)


class TraceLanes(wiring.Component):
    """Pipelined trace update of ``lanes`` traces per cycle (latency ``LATENCY``).

    Interface attributes
    --------------------
    i : stream (always ready), in
        ``a`` (trace word), ``spike`` (one bit per lane), ``tag`` (passed through).
    o : stream (always ready), out
        ``a`` (updated trace word), ``tag``.
    hyper : hyper_layout, in
        Uses ``lam_q``.
    """

    LATENCY = 3

    def __init__(self, p: FixedParams, lanes: int, tag_shape=unsigned(1)):
        self.p, self.lanes, self.tag_shape = p, lanes, tag_shape
        word = trace_word(p, lanes)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "a": word, "spike": unsigned(lanes), "tag": tag_shape}), always_ready=True)),
            "o": Out(stream.Signature(data.StructLayout({
                "a": word, "tag": tag_shape}), always_ready=True)),
            "hyper": In(hyper_layout(p)),
        })

    def elaborate(self, platform):
        m = Module()
        p, n = self.p, self.lanes
        one = p.trace_one

        # stage 1: product a * lam
        v1 = Signal()
        t1 = Signal(self.tag_shape)
        prod = [Signal(unsigned(p.tr_bits + p.decay_frac), name=f"prod{l}") for l in range(n)]
        sp1 = Signal(n)
        m.d.sync += [v1.eq(self.i.valid), t1.eq(self.i.payload.tag), sp1.eq(self.i.payload.spike)]
        for l in range(n):
            m.d.sync += prod[l].eq(self.i.payload.a[l] * self.hyper.lam_q)

        # stage 2: shift and add a spike
        v2 = Signal()
        t2 = Signal(self.tag_shape)
        acc = [Signal(unsigned(p.tr_bits + 1), name=f"acc{l}") for l in range(n)]
        m.d.sync += [v2.eq(v1), t2.eq(t1)]
        for l in range(n):
            m.d.sync += acc[l].eq((prod[l] >> p.decay_frac) + sp1[l] * one)

        # stage 3: saturate
        m.d.sync += [self.o.valid.eq(v2), self.o.payload.tag.eq(t2)]
        for l in range(n):
            m.d.sync += self.o.payload.a[l].eq(usat(acc[l], p.tr_bits))
        return m
