"""A register slice for ``lib.stream`` interfaces (timing isolation between two components)."""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer"]


class SkidBuffer(wiring.Component):
    """Two-entry skid buffer: every signal it presents comes from a flip-flop.

    ``i.ready`` is low only while the skid register holds a word; ``o.valid`` and
    ``o.payload`` are registers. A word taken on ``i`` is offered on ``o`` the next cycle;
    one transfer per cycle in both directions (no bubbles). A word taken while ``o`` stalls
    waits in the skid register and moves to ``o`` when ``o`` is taken.

    Parameters
    ----------
    shape : shape-like
        Payload shape.

    Interface attributes
    --------------------
    i : stream.Signature(shape), in
    o : stream.Signature(shape), out
    """

    def __init__(self, shape):
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        skid_valid = Signal()
        skid = Signal.like(self.i.payload)
        m.d.comb += self.i.ready.eq(~skid_valid)
        with m.If(~self.o.valid | self.o.ready):          # the output register is free
            with m.If(skid_valid):
                m.d.sync += [self.o.payload.eq(skid), self.o.valid.eq(1), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid)]
        with m.Elif(self.i.valid & ~skid_valid):
            m.d.sync += [skid.eq(self.i.payload), skid_valid.eq(1)]
        return m
