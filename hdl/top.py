"""The design behind the pins: UART + FIFOs + protocol engine + learning core + status LEDs.

The same :class:`Top` is used by the bitstreams (``boards/`` wraps it with the PLL, the I/O
buffers and the LEDs) and by the virtual board (``sim/board.py``), which may feed bytes
through the ``aux_*`` side door instead of the serial line (see ``sim/bridge.py``).
"""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import connect

from golden.fixed import FixedParams
from host import protocol as wire

from .bytelink import LinkedDesign, stretch
from .protocol import ProtocolEngine

__all__ = ["Top"]


class Top(LinkedDesign):
    """Host link + learning core (the dataflow design).

    Parameters: those of :class:`hdl.bytelink.LinkedDesign`, and

    core : component, callable or None
        The learning core; by default ``hdl.core.LearningCore(params)``. A callable is called
        with ``params``. (Tests pass a stand-in.)

    ``max_payload`` is the frame buffer bank size (a power of two; two banks are used).
    Interface attributes: those of :class:`hdl.bytelink.LinkedDesign`.
    """

    def __init__(self, params: FixedParams, clk_freq: int, baud: int, *, core=None,
                 max_payload: int = 512, rx_fifo_depth: int = 512, tx_fifo_depth: int = 64,
                 timeout_cycles: int | None = None):
        super().__init__(params, clk_freq, baud, max_payload=max_payload,
                         rx_fifo_depth=rx_fifo_depth, tx_fifo_depth=tx_fifo_depth,
                         timeout_cycles=timeout_cycles)
        if core is None:
            from .core import LearningCore
            core = LearningCore(params)
        elif callable(core) and not isinstance(core, wiring.Component):
            core = core(params)
        self.core = core
        self.identify = wire.identify_block(
            params, max_payload=max_payload, rx_fifo_depth=rx_fifo_depth,
            clk_freq=self.clk_freq, baud=self.baud, timeout_cycles=self.timeout_cycles)

    def elaborate(self, platform):
        m = Module()
        p = self.params
        link = self.byte_link(m)
        m.submodules.engine = eng = ProtocolEngine(
            p, max_payload=self.max_payload, timeout_cycles=self.timeout_cycles,
            identify=self.identify)
        m.submodules.core = core = self.core

        connect(m, link.received, eng.i)
        connect(m, eng.o, link.transmit)

        # core
        connect(m, eng.tokens, core.tokens)
        connect(m, core.result, eng.result)
        connect(m, eng.mem_cmd, core.mem_cmd)
        connect(m, core.mem_rsp, eng.mem_rsp)
        connect(m, eng.counters, core.counters)
        m.d.comb += [
            core.hyper.eq(eng.hyper),
            core.reseed.eq(eng.reseed),
            core.clear_counters.eq(eng.clear_counters),
            eng.core_busy.eq(core.busy),
            eng.rx_overflow.eq(link.overflow),
            eng.rx_frame_error.eq(link.frame_error),
            self.busy.eq(stretch(m, core.busy, self.led_hold)),
            self.error.eq(eng.error),
        ]
        return m
