"""The design behind the pins: UART + FIFOs + protocol engine + learning core + status LEDs.

The same :class:`Top` is used by the bitstreams (``boards/`` wraps it with the PLL, the I/O
buffers and the LEDs) and by the virtual board (``sim/board.py``), which may feed bytes
through the ``aux_*`` side door instead of the serial line (see ``sim/bridge.py``).
"""

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect

from golden.fixed import FixedParams
from host import protocol as wire

from .bytelink import ByteLink, stretch
from .protocol import ProtocolEngine
from .uart import divisor_for

__all__ = ["Top"]


class Top(wiring.Component):
    """Host link + learning core.

    Parameters
    ----------
    params : FixedParams
        Build parameters of the core (reported by IDENTIFY).
    clk_freq : int
        ``sync`` clock frequency in Hz.
    baud : int
        UART bit rate (the divisor is ``round(clk_freq / baud)``, >= 4, within 2.5 %).
    core : component, callable or None
        The learning core; by default ``hdl.core.LearningCore(params)``. A callable is called
        with ``params``. (Tests pass a stand-in.)
    max_payload : int
        Frame buffer bank size (power of two); two banks are used.
    rx_fifo_depth, tx_fifo_depth : int
        Byte FIFOs between the UART and the protocol engine.
    timeout_cycles : int or None
        Inter-byte timeout inside a frame (default 50 ms of ``clk_freq``).

    Interface attributes
    --------------------
    rx : Signal(), input
        UART receive line (idle high; synchronised inside as well).
    tx : Signal(), output
        UART transmit line (registered, idle high).
    busy : Signal(), output
        LED: the core is computing (stretched to be visible).
    error : Signal(), output
        LED: a NAK was sent or a receive error happened since the last RESET.
    link : Signal(), output
        LED: bytes moving on the link (stretched).
    aux_en : Signal(), input
        Side door for the virtual board: when high, bytes come from ``aux_i`` and go to
        ``aux_o`` instead of the UART. Leave unconnected (low) on boards.
    aux_i : stream.Signature(8), input;  aux_o : stream.Signature(8), output
        The side-door byte streams (``aux_i`` behaves like the UART receiver: a byte offered
        while the receive FIFO is full is lost and flagged as an overflow).
    """

    rx:     In(1, init=1)
    tx:     Out(1, init=1)
    busy:   Out(1)
    error:  Out(1)
    link:   Out(1)
    aux_en: In(1)
    aux_i:  In(stream.Signature(8))
    aux_o:  Out(stream.Signature(8))

    def __init__(self, params: FixedParams, clk_freq: int, baud: int, *, core=None,
                 max_payload: int = 512, rx_fifo_depth: int = 512, tx_fifo_depth: int = 64,
                 timeout_cycles: int | None = None):
        if not isinstance(params, FixedParams):
            raise TypeError(f"params must be a FixedParams, not {params!r}")
        self.params = params
        self.clk_freq = int(clk_freq)
        self.baud = int(baud)
        self.divisor = divisor_for(self.clk_freq, self.baud)
        self.max_payload = max_payload
        self.rx_fifo_depth = rx_fifo_depth
        self.tx_fifo_depth = tx_fifo_depth
        self.timeout_cycles = (timeout_cycles if timeout_cycles is not None
                               else max(1000, self.clk_freq // 20))
        if core is None:
            from .core import LearningCore
            core = LearningCore(params)
        elif callable(core) and not isinstance(core, wiring.Component):
            core = core(params)
        self.core = core
        self.identify = wire.identify_block(
            params, max_payload=max_payload, rx_fifo_depth=rx_fifo_depth,
            clk_freq=self.clk_freq, baud=self.baud, timeout_cycles=self.timeout_cycles)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        p = self.params
        hold = self.clk_freq // 20     # LEDs: ~50 ms
        m.submodules.link = link = ByteLink(self.divisor, rx_fifo_depth=self.rx_fifo_depth,
                                            tx_fifo_depth=self.tx_fifo_depth, led_hold=hold)
        m.submodules.engine = eng = ProtocolEngine(
            p, max_payload=self.max_payload, timeout_cycles=self.timeout_cycles,
            identify=self.identify)
        m.submodules.core = core = self.core

        m.d.comb += [link.rx.eq(self.rx), self.tx.eq(link.tx), link.aux_en.eq(self.aux_en)]
        connect(m, wiring.flipped(self.aux_i), link.aux_i)
        connect(m, link.aux_o, wiring.flipped(self.aux_o))
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
            self.busy.eq(stretch(m, core.busy, hold)),
            self.link.eq(link.activity),
            self.error.eq(eng.error),
        ]
        return m
