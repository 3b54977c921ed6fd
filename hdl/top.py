"""The design behind the pins: UART + FIFOs + protocol engine + learning core + status LEDs.

The same :class:`Top` is used by the bitstreams (``boards/`` wraps it with the PLL, the I/O
buffers and the LEDs) and by the virtual board (``sim/board.py``), which may feed bytes
through the ``aux_*`` side door instead of the serial line (see ``sim/bridge.py``).
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out, connect

from golden.fixed import FixedParams
from host import protocol as wire

from .protocol import ProtocolEngine
from .skid import SkidBuffer
from .uart import AsyncSerial, divisor_for

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
        m.submodules.uart = uart = AsyncSerial(divisor=self.divisor)
        m.submodules.rx_fifo = rx_fifo = fifo.SyncFIFOBuffered(width=8, depth=self.rx_fifo_depth)
        m.submodules.tx_fifo = tx_fifo = fifo.SyncFIFOBuffered(width=8, depth=self.tx_fifo_depth)
        m.submodules.engine = eng = ProtocolEngine(
            p, max_payload=self.max_payload, timeout_cycles=self.timeout_cycles,
            identify=self.identify)
        m.submodules.core = core = self.core

        m.d.comb += [uart.rx.eq(self.rx), self.tx.eq(uart.tx)]

        # receive: UART or side door into the RX FIFO
        w = rx_fifo.w_stream
        m.d.comb += [
            w.valid.eq(Mux(self.aux_en, self.aux_i.valid, uart.rx_o.valid)),
            w.payload.eq(Mux(self.aux_en, self.aux_i.payload, uart.rx_o.payload)),
            uart.rx_o.ready.eq(~self.aux_en & w.ready),
            self.aux_i.ready.eq(self.aux_en & w.ready),
        ]
        aux_lost = self.aux_en & self.aux_i.valid & ~w.ready
        connect(m, rx_fifo.r_stream, eng.i)

        # transmit: TX FIFO (then a register slice) to the UART or the side door
        connect(m, eng.o, tx_fifo.w_stream)
        m.submodules.tx_slice = tx_slice = SkidBuffer(8)
        connect(m, tx_fifo.r_stream, tx_slice.i)
        r = tx_slice.o
        m.d.comb += [
            uart.tx_i.valid.eq(~self.aux_en & r.valid),
            uart.tx_i.payload.eq(r.payload),
            self.aux_o.valid.eq(self.aux_en & r.valid),
            self.aux_o.payload.eq(r.payload),
            r.ready.eq(Mux(self.aux_en, self.aux_o.ready, uart.tx_i.ready)),
        ]

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
            eng.rx_overflow.eq(uart.err.overflow | aux_lost),
            eng.rx_frame_error.eq(uart.err.frame),
        ]

        # LEDs: stretch short events (registered first) to ~50 ms
        hold = max(1, self.clk_freq // 20)
        for led, event in ((self.busy, core.busy),
                           (self.link, (w.valid & w.ready) | (r.valid & r.ready))):
            timer = Signal(range(hold + 1))
            seen = Signal()
            m.d.sync += seen.eq(event)
            with m.If(seen):
                m.d.sync += timer.eq(hold)
            with m.Elif(timer != 0):
                m.d.sync += timer.eq(timer - 1)
            m.d.comb += led.eq(timer != 0)
        m.d.comb += self.error.eq(eng.error)
        return m
