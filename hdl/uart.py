"""Asynchronous serial port (8n1 UART) with ``lib.stream`` interfaces.

Structured like amaranth-stdio's ``serial.py`` (separate receiver and transmitter, composed
by :class:`AsyncSerial`, the bit period as a run-time ``divisor`` port) but written for this
project: 8 data bits, no parity, one stop bit, streams instead of ``rdy``/``ack``.

Timing (``d`` = ``divisor``, clock cycles per bit):

* TX: every bit, start and stop included, lasts exactly ``d`` cycles; back-to-back bytes
  follow each other without idle time (a byte is exactly ``10 d`` cycles).
* RX: the line goes through a 2-flop synchroniser; a low level starts a frame, then every
  bit is sampled once in its middle (``d // 2`` cycles after the detected edge, then every
  ``d`` cycles). A start bit that is high again at mid-bit is a glitch and is ignored. A low
  stop bit is a framing error (the byte is dropped, ``err.frame`` pulses) and the receiver
  waits for the line to go high before hunting again. A byte that completes while the
  previous one has not been taken is lost (``err.overflow`` pulses).

``d >= 4`` is required for the receiver (``d >= 1`` for the transmitter). 3 Mbaud needs
``d = 8`` at 24 MHz and ``d = 33`` at 100 MHz (1 % error), both fine.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out, connect, flipped
from amaranth.utils import bits_for

__all__ = ["AsyncSerialRX", "AsyncSerialTX", "AsyncSerial", "divisor_for", "RX_MIN_DIVISOR"]

RX_MIN_DIVISOR = 4


def divisor_for(clk_freq: int, baud: int, *, tolerance: float = 0.025) -> int:
    """Clock cycles per bit for ``baud`` at ``clk_freq``, rounded to the nearest integer.

    Raises ``ValueError`` if the resulting rate is off by more than ``tolerance`` or the
    divisor is below :data:`RX_MIN_DIVISOR`.
    """
    if not (isinstance(clk_freq, int) and clk_freq > 0):
        raise ValueError(f"clk_freq must be a positive integer, not {clk_freq!r}")
    if not (isinstance(baud, int) and baud > 0):
        raise ValueError(f"baud must be a positive integer, not {baud!r}")
    divisor = max(1, round(clk_freq / baud))
    if divisor < RX_MIN_DIVISOR:
        raise ValueError(f"baud must be at most clk_freq / {RX_MIN_DIVISOR} "
                         f"({clk_freq // RX_MIN_DIVISOR}), not {baud!r}")
    error = abs(clk_freq / divisor - baud) / baud
    if error > tolerance:
        raise ValueError(f"baud {baud} cannot be made from {clk_freq} Hz within "
                         f"{tolerance:.1%} (divisor {divisor} gives {error:.1%} error)")
    return divisor


def _check_divisor(divisor, minimum):
    if not isinstance(divisor, int) or divisor < minimum:
        raise ValueError(f"divisor must be an integer >= {minimum}, not {divisor!r}")


class AsyncSerialRX(wiring.Component):
    """8n1 receiver.

    Parameters
    ----------
    divisor : int
        Reset value of the ``divisor`` port (clock cycles per bit, >= 4).
    divisor_bits : int or None
        Width of the ``divisor`` port (default: just wide enough for ``divisor``).

    Interface attributes
    --------------------
    divisor : Signal(divisor_bits), input
        Clock cycles per bit; may change between frames.
    i : Signal(), input
        Serial line (idle high); asynchronous, synchronised inside.
    o : stream.Signature(8), output
        Received bytes.
    err : StructLayout({frame, overflow}), output
        One-cycle pulses: ``frame`` (stop bit low), ``overflow`` (byte lost, ``o`` full).
    busy : Signal(), output
        A frame is being received.
    """

    def __init__(self, *, divisor: int, divisor_bits: int | None = None):
        _check_divisor(divisor, RX_MIN_DIVISOR)
        self._divisor = divisor
        bits = divisor_bits or bits_for(divisor)
        super().__init__({
            "divisor": In(bits, init=divisor),
            "i":       In(1, init=1),
            "o":       Out(stream.Signature(8)),
            "err":     Out(data.StructLayout({"frame": 1, "overflow": 1})),
            "busy":    Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        line = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.i, line, init=1)

        timer = Signal.like(self.divisor)
        bitno = Signal(range(10))
        shreg = Signal(8)

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += [timer.eq((self.divisor >> 1) - 1), bitno.eq(0)]
                    m.next = "BIT"
            with m.State("BIT"):
                m.d.comb += self.busy.eq(1)
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [timer.eq(self.divisor - 1), bitno.eq(bitno + 1)]
                    with m.If(bitno == 0):
                        with m.If(line):
                            m.next = "IDLE"                 # glitch, not a start bit
                    with m.Elif(bitno < 9):
                        m.d.sync += shreg.eq(Cat(shreg[1:], line))
                    with m.Else():
                        with m.If(line):
                            m.d.sync += [self.o.payload.eq(shreg), self.o.valid.eq(1)]
                            with m.If(self.o.valid & ~self.o.ready):
                                m.d.comb += self.err.overflow.eq(1)
                            m.next = "IDLE"
                        with m.Else():
                            m.d.comb += self.err.frame.eq(1)
                            m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"
        return m


class AsyncSerialTX(wiring.Component):
    """8n1 transmitter.

    Parameters
    ----------
    divisor : int
        Reset value of the ``divisor`` port (clock cycles per bit, >= 1).
    divisor_bits : int or None
        Width of the ``divisor`` port.

    Interface attributes
    --------------------
    divisor : Signal(divisor_bits), input
        Clock cycles per bit.
    i : stream.Signature(8), input
        Bytes to send; ``i.ready`` is high when a new byte can start.
    o : Signal(), output
        Serial line, registered, idle high.
    busy : Signal(), output
        A frame is on the line.
    """

    def __init__(self, *, divisor: int, divisor_bits: int | None = None):
        _check_divisor(divisor, 1)
        self._divisor = divisor
        bits = divisor_bits or bits_for(divisor)
        super().__init__({
            "divisor": In(bits, init=divisor),
            "i":       In(stream.Signature(8)),
            "o":       Out(1, init=1),
            "busy":    Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        # timer counts divisor - 2 down to -1: its sign bit ends the bit period, so the
        # load decision is a few flip-flops, not a comparison
        timer = Signal(len(self.divisor) + 1)
        done = timer[-1]
        left = Signal(range(10))           # bits still to send after the current one
        last = Signal()                    # left == 0: the stop bit is on the line
        shreg = Signal(9)                  # data bits then the stop bit, LSB first
        active = Signal()

        # A new byte may start when idle or exactly when the stop bit ends.
        can_load = ~active | (done & last)
        m.d.comb += [self.i.ready.eq(can_load), self.busy.eq(active)]

        with m.If(can_load & self.i.valid):
            m.d.sync += [
                self.o.eq(0),                               # start bit
                shreg.eq(Cat(self.i.payload, 1)),
                left.eq(9),
                last.eq(0),
                timer.eq(self.divisor - 2),
                active.eq(1),
            ]
        with m.Elif(active):
            with m.If(~done):
                m.d.sync += timer.eq(timer - 1)
            with m.Elif(~last):
                m.d.sync += [
                    self.o.eq(shreg[0]),
                    shreg.eq(shreg >> 1),
                    left.eq(left - 1),
                    last.eq(left == 1),
                    timer.eq(self.divisor - 2),
                ]
            with m.Else():
                m.d.sync += [active.eq(0), self.o.eq(1)]
        return m


class AsyncSerial(wiring.Component):
    """Receiver and transmitter sharing one ``divisor``.

    Interface attributes
    --------------------
    divisor : input;  rx : input line;  tx : output line
    rx_o : stream.Signature(8), output (received bytes)
    tx_i : stream.Signature(8), input (bytes to send)
    err : StructLayout({frame, overflow}), output pulses of the receiver
    """

    def __init__(self, *, divisor: int, divisor_bits: int | None = None):
        _check_divisor(divisor, RX_MIN_DIVISOR)
        self._divisor = divisor
        bits = divisor_bits or bits_for(divisor)
        self._bits = bits
        super().__init__({
            "divisor": In(bits, init=divisor),
            "rx":      In(1, init=1),
            "tx":      Out(1, init=1),
            "rx_o":    Out(stream.Signature(8)),
            "tx_i":    In(stream.Signature(8)),
            "err":     Out(data.StructLayout({"frame": 1, "overflow": 1})),
            "rx_busy": Out(1),
            "tx_busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = AsyncSerialRX(divisor=self._divisor, divisor_bits=self._bits)
        m.submodules.tx = tx = AsyncSerialTX(divisor=self._divisor, divisor_bits=self._bits)
        m.d.comb += [
            rx.divisor.eq(self.divisor),
            tx.divisor.eq(self.divisor),
            rx.i.eq(self.rx),
            self.tx.eq(tx.o),
            self.err.eq(rx.err),
            self.rx_busy.eq(rx.busy),
            self.tx_busy.eq(tx.busy),
        ]
        connect(m, rx.o, flipped(self.rx_o))
        connect(m, flipped(self.tx_i), tx.i)
        return m
