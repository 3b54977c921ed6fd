"""The byte link of a design: UART (or the virtual board's side door) and the byte FIFOs.

Shared by :class:`hdl.top.Top` (bytes to the gateware protocol engine) and
:class:`hdl.soc.SoC` (bytes to the firmware's memory-mapped registers).
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out, connect

from golden.fixed import FixedParams

from .skid import SkidBuffer
from .uart import AsyncSerial, divisor_for

__all__ = ["ByteLink", "LinkedDesign", "stretch"]


def stretch(m: Module, event, hold: int) -> Signal:
    """``event`` registered, then held high for ``hold`` cycles after it falls (an LED).

    The time is counted in ticks of a free-running prescaler (a power of two cycles, at
    most ``hold / 8``), so the hold time is exact to one tick (1/8 or better) and no long
    counter is loaded and decremented in one cycle (a slow LUT chain on iCE40).
    """
    hold = max(1, hold)
    shift = (hold // 8).bit_length() - 1 if hold >= 16 else 0
    ticks = -(-hold // (1 << shift))
    seen, tick = Signal(), Signal()
    timer = Signal(range(ticks + 1))
    m.d.sync += seen.eq(event)
    if shift:
        prescaler = Signal(shift)
        m.d.sync += [prescaler.eq(prescaler + 1), tick.eq(prescaler.all())]
    else:
        m.d.comb += tick.eq(1)
    with m.If(seen):
        m.d.sync += timer.eq(ticks)
    with m.Elif(tick & (timer != 0)):
        m.d.sync += timer.eq(timer - 1)
    return timer != 0


class ByteLink(wiring.Component):
    """UART + receive FIFO + transmit FIFO, with the virtual board's side door.

    Parameters
    ----------
    divisor : int
        UART bit period in clock cycles (:func:`hdl.uart.divisor_for`).
    rx_fifo_depth, tx_fifo_depth : int
        Bytes the FIFOs hold (block RAM when large).
    led_hold : int
        Cycles the ``activity`` output stays high after a byte moved.

    Interface attributes
    --------------------
    rx : input, tx : output
        The serial lines (idle high).
    aux_en : input; aux_i : stream in; aux_o : stream out
        Side door (``sim/bridge.py``): when ``aux_en`` is high, bytes come from ``aux_i`` and
        go to ``aux_o`` instead of the UART. A byte offered on ``aux_i`` while the receive
        FIFO is full is lost and flagged, as on the serial line.
    received : stream out
        Bytes from the receive FIFO.
    transmit : stream in
        Bytes into the transmit FIFO (then a register slice, then the line).
    overflow, frame_error : outputs
        One-cycle pulses: a received byte was lost (FIFO full); a stop bit was low.
    activity : output
        Bytes moved in either direction recently (an LED).
    """

    rx:          In(1, init=1)
    tx:          Out(1, init=1)
    aux_en:      In(1)
    aux_i:       In(stream.Signature(8))
    aux_o:       Out(stream.Signature(8))
    received:    Out(stream.Signature(8))
    transmit:    In(stream.Signature(8))
    overflow:    Out(1)
    frame_error: Out(1)
    activity:    Out(1)

    def __init__(self, divisor: int, *, rx_fifo_depth: int, tx_fifo_depth: int,
                 led_hold: int):
        self.divisor = divisor
        self.rx_fifo_depth = rx_fifo_depth
        self.tx_fifo_depth = tx_fifo_depth
        self.led_hold = led_hold
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart = uart = AsyncSerial(divisor=self.divisor)
        m.submodules.rx_fifo = rx_fifo = fifo.SyncFIFOBuffered(width=8, depth=self.rx_fifo_depth)
        m.submodules.tx_fifo = tx_fifo = fifo.SyncFIFOBuffered(width=8, depth=self.tx_fifo_depth)
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
        wiring.connect(m, rx_fifo.r_stream, wiring.flipped(self.received))
        m.d.comb += [self.overflow.eq(uart.err.overflow | aux_lost),
                     self.frame_error.eq(uart.err.frame)]

        # transmit: TX FIFO (then a register slice) to the UART or the side door
        connect(m, wiring.flipped(self.transmit), tx_fifo.w_stream)
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

        m.d.comb += self.activity.eq(
            stretch(m, (w.valid & w.ready) | (r.valid & r.ready), self.led_hold))
        return m


class LinkedDesign(wiring.Component):
    """Base of the designs behind the pins (:class:`hdl.top.Top`, :class:`hdl.soc.SoC`):
    the serial lines, the status LEDs, the virtual board's side door and the link setup.

    Parameters
    ----------
    params : FixedParams
        The network (reported by IDENTIFY).
    clk_freq : int
        ``sync`` clock frequency in Hz.
    baud : int
        UART bit rate (the divisor is ``round(clk_freq / baud)``, >= 4, within 2.5 %).
    max_payload : int
        Largest frame payload accepted.
    rx_fifo_depth, tx_fifo_depth : int
        Byte FIFOs of the :class:`ByteLink`.
    timeout_cycles : int or None
        Inter-byte timeout inside a frame (default 50 ms of ``clk_freq``).

    Interface attributes
    --------------------
    rx : input, tx : output
        The UART lines (idle high).
    busy, error, link : outputs
        LEDs: computing (stretched to be visible); a NAK was sent or a receive error
        happened since the last RESET; bytes moving on the link (stretched).
    aux_en : input; aux_i : stream in; aux_o : stream out
        Side door of the virtual board, see :class:`ByteLink`. Leave low on boards.
    """

    rx:     In(1, init=1)
    tx:     Out(1, init=1)
    busy:   Out(1)
    error:  Out(1)
    link:   Out(1)
    aux_en: In(1)
    aux_i:  In(stream.Signature(8))
    aux_o:  Out(stream.Signature(8))

    def __init__(self, params: FixedParams, clk_freq: int, baud: int, *, max_payload: int,
                 rx_fifo_depth: int, tx_fifo_depth: int, timeout_cycles: int | None):
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
        self.led_hold = self.clk_freq // 20     # LEDs: ~50 ms
        super().__init__()

    def byte_link(self, m: Module) -> ByteLink:
        """Add this design's :class:`ByteLink` to ``m``, wired to the pins and the side
        door; also drives the ``link`` LED."""
        m.submodules.link = link = ByteLink(self.divisor, rx_fifo_depth=self.rx_fifo_depth,
                                            tx_fifo_depth=self.tx_fifo_depth,
                                            led_hold=self.led_hold)
        m.d.comb += [link.rx.eq(self.rx), self.tx.eq(link.tx), link.aux_en.eq(self.aux_en),
                     self.link.eq(link.activity)]
        connect(m, wiring.flipped(self.aux_i), link.aux_i)
        connect(m, link.aux_o, wiring.flipped(self.aux_o))
        return link
