"""Walkers over neuron group lists (event-driven) or over all neurons (dense mode).

The neuron phase appends every group ``g`` (neurons ``g*lanes .. g*lanes+lanes-1``) that has
at least one spike (or active neuron) to a group list, together with its word (spike bits or
``psi`` values). :class:`GroupWalker` turns such a list into a stream of neuron indices, one
per cycle, ascending. In dense mode it walks every group of the per-neuron word memory instead
and emits every neuron, flagged by whether its element is non-zero.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from golden.fixed import FixedParams
from .arith import bits_for
from .lif import group_entry
from .skid import SkidBuffer

__all__ = ["GroupWalker"]


class GroupWalker(wiring.Component):
    """Stream the neurons of a group list (sparse) or of all groups (dense).

    Interface attributes
    --------------------
    start : Signal(1), in
        Start a walk over ``count`` list entries (or all ``n_hid / lanes`` groups if ``dense``).
    dense : Signal(1), in
        Sampled at ``start`` (into a flip-flop that selects the walk's mode).
    count : in
        Number of valid list entries.
    list_rd : read port, out
        Group list memory (entries ``g, word``).
    dense_rd : read port, out
        Per-group word memory (dense mode).
    o : stream, out
        ``j`` (neuron), ``flag`` (element non-zero), ``elem`` (the element); from a register
        slice (``ready`` goes no further than its flip-flops).
    busy : Signal(1), out
        A walk is running or its last neuron has not been taken yet.
    """

    def __init__(self, p: FixedParams, elem_shape):
        self.p, self.elem_shape = p, elem_shape
        n, G = p.lanes, p.n_hid // p.lanes
        word = data.ArrayLayout(elem_shape, n)
        self.word = word
        super().__init__({
            "start": In(1), "dense": In(1), "count": In(bits_for(G)), "busy": Out(1),
            "list_rd": Out(memory.ReadPort.Signature(addr_width=ceil_log2(G),
                                                     shape=group_entry(p, word))),
            "dense_rd": Out(memory.ReadPort.Signature(addr_width=ceil_log2(G), shape=word)),
            "o": Out(stream.Signature(data.StructLayout({
                "j": unsigned(bits_for(p.n_hid)), "flag": unsigned(1), "elem": elem_shape}))),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.p
        n, G = p.lanes, p.n_hid // p.lanes
        lb = ceil_log2(n)

        running = Signal()
        dense = Signal()
        e = Signal(range(G + 1))
        total = Mux(dense, G, self.count)
        fetch = running & (e < total)

        d_valid = Signal()
        d_e = Signal.like(e)
        x_visit = Signal(n)
        x_word = Signal(self.word)
        x_g = Signal(bits_for(G))
        x_bit = Signal(range(max(n, 2)))  # lowest set bit of x_visit, registered with it
        x_low = Signal(n)                 # ... and as a one-hot mask

        def lowest(mask, name):
            bit = Signal(range(max(n, 2)), name=name)
            for b in reversed(range(n)):
                with m.If(mask[b]):
                    m.d.comb += bit.eq(b)
            return bit

        # the neurons leave through a register slice: the consumer's ready stops there
        m.submodules.out = out = SkidBuffer(self.o.payload.shape())
        wiring.connect(m, out.o, wiring.flipped(self.o))
        src = out.i

        def lowest_hot(mask):
            """The lowest set bit of ``mask`` as a one-hot mask (logic, no carry chain)."""
            return Cat(mask[b] & ~mask[:b].any() if b else mask[0] for b in range(n))

        def at_most_one(mask):
            """No two bits of ``mask`` set (a tree of any/several flags, no carry chain)."""
            def flags(bits):
                if len(bits) == 1:
                    return bits[0], Const(0)
                half = len(bits) // 2
                (a0, m0), (a1, m1) = flags(bits[:half]), flags(bits[half:])
                return a0 | a1, m0 | m1 | (a0 & a1)
            return ~flags([mask[b] for b in range(n)])[1]

        # registered with x_visit: x_any (x_visit != 0; a list entry is never empty) and
        # x_last (at most one neuron left in x_visit)
        rest, x_any, x_last = Signal(n), Signal(), Signal()
        m.d.comb += rest.eq(x_visit & ~x_low)
        fire = src.valid & src.ready
        x_free = ~x_any | (fire & x_last)
        x_take = d_valid & x_free
        en = ~d_valid | x_take

        for port in (self.list_rd, self.dense_rd):
            m.d.comb += [port.addr.eq(e), port.en.eq(en)]
        with m.If(en):
            m.d.sync += [d_valid.eq(fetch), d_e.eq(e)]
            with m.If(fetch):
                m.d.sync += e.eq(e + 1)

        d_g = Mux(dense, d_e, self.list_rd.data.g)
        d_word = Signal(self.word)
        m.d.comb += d_word.eq(Mux(dense, self.dense_rd.data.as_value(),
                                  self.list_rd.data.word.as_value()))
        list_mask = self.list_rd.data.mask   # dense: every neuron
        all_lanes = (1 << n) - 1

        with m.If(fire):
            m.d.sync += [x_visit.eq(rest), x_bit.eq(lowest(rest, "rest_bit")),
                         x_low.eq(lowest_hot(rest)), x_any.eq(~x_last),
                         x_last.eq(at_most_one(rest))]
        with m.If(x_take):
            m.d.sync += [x_visit.eq(Mux(dense, all_lanes, list_mask)),
                         x_bit.eq(Mux(dense, 0, lowest(list_mask, "list_bit"))),
                         x_low.eq(Mux(dense, 1, lowest_hot(list_mask))),
                         x_last.eq(Mux(dense, n == 1, at_most_one(list_mask))),
                         x_word.eq(d_word), x_g.eq(d_g), x_any.eq(1)]

        elem = x_word[x_bit]
        m.d.comb += [
            src.valid.eq(x_any),
            src.payload.j.eq(Cat(x_bit[:lb], x_g) if n > 1 else x_g),
            src.payload.elem.eq(elem),
            src.payload.flag.eq(Value.cast(elem) != 0),
        ]

        walking = running & (fetch | d_valid | x_any)
        with m.If(self.start):
            m.d.sync += [running.eq(1), dense.eq(self.dense), e.eq(0), d_valid.eq(0),
                         x_visit.eq(0), x_any.eq(0)]
        with m.Elif(~walking):
            m.d.sync += running.eq(0)
        m.d.comb += self.busy.eq(walking | out.o.valid)
        return m
