"""A stand-in for ``hdl.top.Top`` used to test the board flow without the learning core.

It has the same constructor and the same plain ports as ``Top`` (UART ``rx``/``tx`` and
status LEDs) but only loops the UART line back: every byte the host sends comes back. Not part
of any bitstream the build makes unless ``--standin`` is given.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from golden.fixed import FixedParams

__all__ = ["StandInTop"]


class StandInTop(wiring.Component):
    """UART loopback with an activity LED.

    Parameters
    ----------
    params : FixedParams
        Ignored (kept for the ``Top`` constructor signature).
    clk_freq : int
        ``sync`` clock frequency in Hz (sets the activity LED's hold time).
    baud : int
        Ignored.

    Interface attributes
    --------------------
    rx : Signal(), input
        UART receive line (idle high, already synchronised by the board top).
    tx : Signal(), output
        UART transmit line: ``rx`` delayed by one cycle.
    busy : Signal(), output
        High for ~50 ms after any activity on ``rx``.
    error : Signal(), output
        Always low.
    """

    rx:    In(1, init=1)
    tx:    Out(1, init=1)
    busy:  Out(1)
    error: Out(1)

    def __init__(self, params: FixedParams, clk_freq: int, baud: int):
        self.params = params
        self.clk_freq = int(clk_freq)
        self.baud = int(baud)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.tx.eq(self.rx)
        # ~50 ms hold from a free-running prescaler and a 3-bit counter: long counters with
        # a load and an enable tend to get per-bit control sets from Yosys, which splits
        # the iCE40 carry chain.
        pre_bits = max(1, (self.clk_freq // 160).bit_length())
        prescaler = Signal(pre_bits)
        tick = Signal()
        m.d.sync += Cat(prescaler, tick).eq(prescaler + 1)
        hold = Signal(3)
        with m.If(~self.rx):
            m.d.sync += hold.eq(7)
        with m.Elif(tick & (hold != 0)):
            m.d.sync += hold.eq(hold - 1)
        m.d.comb += self.busy.eq(hold != 0)
        return m
