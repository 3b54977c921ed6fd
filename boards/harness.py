"""Timing harness: the learning core alone behind registers, to measure its own fmax.

``python -m boards.build <board> --design core`` places ``hdl.core.LearningCore`` with every
input driven from a shift register fed by the UART ``rx`` pin and every output registered
and folded by a pipelined XOR tree into ``tx``. All core I/O is registered, so the critical
path nextpnr reports is inside the core (not in the host link), and nothing can be optimised
away. The bitstream does nothing useful on a board.
"""

from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from golden.fixed import FixedParams

__all__ = ["CoreHarness"]


class CoreHarness(wiring.Component):
    """``LearningCore`` with registered, pin-fed inputs and XOR-folded outputs.

    Parameters
    ----------
    params : FixedParams
    clk_freq, baud : int
        Ignored (the ``Top`` constructor signature).

    Interface attributes
    --------------------
    rx : Signal(), input
        Serial input shifted into the register that drives every core input.
    tx : Signal(), output
        XOR of every core output (pipelined).
    busy : Signal(), output
        The core's ``busy``.
    """

    rx:   In(1, init=1)
    tx:   Out(1, init=1)
    busy: Out(1)

    def __init__(self, params: FixedParams, clk_freq: int = 0, baud: int = 0):
        self.params = params
        super().__init__()

    def elaborate(self, platform):
        from hdl.core import LearningCore

        m = Module()
        m.submodules.core = core = LearningCore(self.params)
        inputs, outputs = [], []
        for _path, member, value in core.signature.flatten(core):
            (inputs if member.flow == wiring.In else outputs).append(Value.cast(value))

        width = sum(len(v) for v in inputs)
        shreg = Signal(width)
        m.d.sync += shreg.eq(Cat(self.rx, shreg[:-1]))
        offset = 0
        for value in inputs:
            m.d.comb += value.eq(shreg[offset:offset + len(value)])
            offset += len(value)

        level = Signal(sum(len(v) for v in outputs))
        m.d.sync += level.eq(Cat(*outputs))
        while len(level) > 1:
            chunks = [level[i:i + 4] for i in range(0, len(level), 4)]
            folded = Signal(len(chunks))
            m.d.sync += folded.eq(Cat(*(c.xor() for c in chunks)))
            level = folded
        m.d.comb += [self.tx.eq(level), self.busy.eq(core.busy)]
        return m
