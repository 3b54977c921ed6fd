"""The soft-core engine: the whole device as firmware on an RV32 CPU (the iCE40 UP5K design).

The UP5K's 5,280 logic cells cannot hold the dataflow learning core (``hdl/core.py``), but
it has 128 KB of single-port RAM. Here one small CPU (:class:`hdl.rv32.RV32`) runs the
firmware in ``fw/`` (the same fixed-point model, ``fw/snn.c``, and the same host protocol,
``fw/link.c``) out of a block-RAM ROM, with its data in the SPRAMs. The pins are those of
:class:`hdl.top.Top`, so the boards, the virtual board and the host driver use either.

Memory map (byte addresses; ``addr[28:30]`` selects the region, the RAM wraps inside it,
ROM beyond the image reads 0 (an illegal instruction); the I/O registers are decoded from
``addr[2:5]`` only, for a short decode path):

==============  ==========================================================================
``0x0000_0000`` ROM: the firmware image (``.text``, ``.rodata``, ``.data`` load image), in
                banks of ``ROM_BANK`` words
``0x1000_0000`` RAM: ``ram_words`` 32-bit words (SPRAM on iCE40), stack at the top
``0x2000_0000`` I/O registers, :class:`IoReg`
==============  ==========================================================================

Every access takes two cycles (the request cycle, then ``ready`` with the data of the
synchronous memories); a write to ``TXDATA`` waits while the byte before it has not yet
entered the transmit FIFO.
"""

import enum

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import memory

from golden.fixed import FixedParams

from .bytelink import LinkedDesign, stretch
from .rv32 import RV32
from .spram import WordRAM

__all__ = ["SoC", "IoReg", "Region", "REGION_SHIFT", "STATUS_RX_OVERFLOW", "STATUS_RX_FRAMING"]

REGION_SHIFT = 28          #: ``addr >> REGION_SHIFT`` is the :class:`Region`
IO_DECODE_BITS = 5         #: I/O registers are told apart by ``addr[2:IO_DECODE_BITS]``
ROM_BANK = 2048            #: words per full ROM bank: 16 EBR of 2048 x 2 bits, no read mux
ROM_MIN_BANK = 256         #: the smallest (last) ROM bank: 2 EBR of 256 x 16 bits
STATUS_RX_OVERFLOW = 1     #: STATUS bit: a received byte was lost (sticky, write 1 to clear)
STATUS_RX_FRAMING = 2      #: STATUS bit: a stop bit was low (sticky, write 1 to clear)
LED_BUSY = 1               #: LEDS bit: the firmware is computing
LED_ERROR = 2              #: LEDS bit: an error to show (a NAK was sent)


class Region(enum.IntEnum):
    ROM = 0
    RAM = 1
    IO = 2

    @property
    def base(self) -> int:
        return self.value << REGION_SHIFT


class IoReg(enum.IntEnum):
    """I/O registers (offsets from ``Region.IO.base``; below ``2**IO_DECODE_BITS``)."""
    RXDATA = 0x00   #: read: bit 8 set if a byte was taken from the receive FIFO, bits 0-7 it
    TXDATA = 0x04   #: write: bits 0-7 to the transmit FIFO (waits while the last is not in it)
    STATUS = 0x08   #: read: ``STATUS_*`` sticky bits; write: ones clear them
    CYCLES = 0x0C   #: read: free-running clock-cycle counter
    LEDS = 0x10     #: write: ``LED_*`` bits


class SoC(LinkedDesign):
    """RV32 CPU + firmware ROM + word RAM + byte link + cycle counter.

    Parameters: those of :class:`hdl.bytelink.LinkedDesign` (``params`` is the network the
    firmware is built for: its arrays are sized at compile time; ``max_payload`` is the
    firmware's frame buffer; the receive FIFO also holds what arrives while a frame
    executes), and

    ram_words : int
        Data memory, 32-bit words: 32768 is the UP5K's four SPRAMs (128 KB).
    image : bytes or None
        The ROM contents; by default the firmware built by :func:`fw.image.build_image`.

    Interface attributes: those of :class:`hdl.bytelink.LinkedDesign`; ``error`` is also
    lit by a CPU trap.
    """

    def __init__(self, params: FixedParams, clk_freq: int, baud: int, *,
                 max_payload: int = 512, rx_fifo_depth: int = 2048, tx_fifo_depth: int = 512,
                 timeout_cycles: int | None = None, ram_words: int = 32768,
                 image: bytes | None = None):
        super().__init__(params, clk_freq, baud, max_payload=max_payload,
                         rx_fifo_depth=rx_fifo_depth, tx_fifo_depth=tx_fifo_depth,
                         timeout_cycles=timeout_cycles)
        self.ram_words = ram_words
        if image is None:
            from fw.image import build_image
            image = build_image(params, clk_freq=self.clk_freq, baud=self.baud,
                                max_payload=max_payload, rx_fifo_depth=rx_fifo_depth,
                                timeout_cycles=self.timeout_cycles, ram_bytes=4 * ram_words)
        self.image = bytes(image)
        words = -(-len(self.image) // 4)
        # ROM banks of ROM_BANK words, the last one a power of two: Yosys then maps each bank
        # on block RAMs without a read multiplexer (a deeper memory of another size gets a
        # chain of them, on the CPU's fetch path); the banks are selected like regions
        self.rom_banks = [ROM_BANK] * (words // ROM_BANK)
        if words % ROM_BANK or not self.rom_banks:
            self.rom_banks.append(max(ROM_MIN_BANK, 1 << (words % ROM_BANK - 1).bit_length()))

    def rom_init(self) -> list[int]:
        data = self.image + bytes(-len(self.image) % 4)
        return [int.from_bytes(data[i:i + 4], "little") for i in range(0, len(data), 4)]

    def elaborate(self, platform):
        m = Module()
        m.submodules.cpu = cpu = RV32(reset_addr=Region.ROM.base)
        init = self.rom_init()
        roms = []
        for n, depth in enumerate(self.rom_banks):
            words = init[n * ROM_BANK:n * ROM_BANK + depth]
            m.submodules[f"rom{n}"] = rom = memory.Memory(shape=32, depth=depth, init=words)
            roms.append(rom.read_port())
        m.submodules.ram = ram = WordRAM(self.ram_words)
        link = self.byte_link(m)

        bus = cpu.bus
        ack = Signal()                 # the cycle after the request: ready
        io_data = Signal(32)
        request = bus.valid & ~ack
        region = bus.addr[REGION_SHIFT:REGION_SHIFT + 2]
        write = bus.wstrb.any()
        io_reg = Cat(Const(0, 2), bus.addr[2:IO_DECODE_BITS])
        io = request & (region == Region.IO)
        stall = Signal()

        bank = bus.addr[2 + ROM_BANK.bit_length() - 1:REGION_SHIFT]
        for n, rd in enumerate(roms):
            m.d.comb += [rd.addr.eq(bus.addr[2:]),
                         rd.en.eq(request & (region == Region.ROM) & (bank == n))]
        m.d.comb += [ram.addr.eq(bus.addr[2:]), ram.wdata.eq(bus.wdata),
                     ram.wstrb.eq(bus.wstrb), ram.en.eq(request & (region == Region.RAM))]

        # I/O registers
        cycles = Signal(32)
        sticky = Signal(2)
        leds = Signal(2)
        m.d.sync += cycles.eq(cycles + 1)
        m.d.sync += sticky.eq(sticky | Cat(link.overflow, link.frame_error))
        # One byte register each way between the bus and the FIFOs, so that no FIFO logic
        # sits behind the bus decode: ``rx_byte`` is refilled while empty, the transmit
        # payload register drains into the FIFO while full (a TXDATA write waits meanwhile).
        rx, tx = link.received, link.transmit
        rx_byte, rx_full = Signal(8), Signal()
        tx_full = Signal()
        m.d.comb += [rx.ready.eq(~rx_full), tx.valid.eq(tx_full),
                     stall.eq(tx_full & io & write & (io_reg == IoReg.TXDATA))]
        with m.If(rx.valid & rx.ready):
            m.d.sync += [rx_byte.eq(rx.payload), rx_full.eq(1)]
        with m.If(tx.valid & tx.ready):
            m.d.sync += tx_full.eq(0)
        # reads answer from the request cycle; writes take effect a cycle later, from
        # registered copies (no bus decode in front of the registers they change)
        wr_reg, wr_data, wr_en = Signal.like(io_reg), Signal(8), Signal()
        m.d.sync += [wr_en.eq(io & write & ~stall), wr_reg.eq(io_reg), wr_data.eq(bus.wdata[:8])]
        with m.If(io & ~write):
            with m.Switch(io_reg):
                with m.Case(IoReg.RXDATA):
                    m.d.sync += io_data.eq(Cat(rx_byte, rx_full))
                    with m.If(rx_full):               # taken (else a refill may land now)
                        m.d.sync += rx_full.eq(0)
                with m.Case(IoReg.STATUS):
                    m.d.sync += io_data.eq(sticky)
                with m.Case(IoReg.CYCLES):
                    m.d.sync += io_data.eq(cycles)
        with m.If(wr_en):
            with m.Switch(wr_reg):
                with m.Case(IoReg.TXDATA):
                    m.d.sync += [tx.payload.eq(wr_data), tx_full.eq(1)]
                with m.Case(IoReg.STATUS):
                    m.d.sync += sticky.eq((sticky & ~wr_data[:2])
                                          | Cat(link.overflow, link.frame_error))
                with m.Case(IoReg.LEDS):
                    m.d.sync += leds.eq(wr_data[:2])

        # read data: an AND-OR over the sources, selected one-hot by registered flags
        sources = [rd.data for rd in roms] + [ram.rdata, io_data]
        selects = [(region == Region.ROM) & (bank == n) for n in range(len(roms))]
        selects += [region == Region.RAM, region == Region.IO]
        source_q = Signal(len(sources))
        with m.If(ack):
            m.d.sync += ack.eq(0)
        with m.Elif(request & ~stall):
            m.d.sync += [ack.eq(1), source_q.eq(Cat(selects))]
        rdata = 0
        for n, data in enumerate(sources):
            rdata |= data & source_q[n].replicate(32)
        m.d.comb += [bus.ready.eq(ack), bus.rdata.eq(rdata)]

        m.d.comb += [self.busy.eq(stretch(m, (leds & LED_BUSY).any(), self.led_hold)),
                     self.error.eq((leds & LED_ERROR).any() | cpu.trap)]
        return m
