"""Single-port RAMs on iCE40UP5K ``SB_SPRAM256KA`` (16k x 16 bit), or their models.

:class:`SinglePortRAM` holds a weight bank; :class:`WordRAM` is the soft core's data memory.
SinglePortRAM is used for the weight banks ``W`` when ``FixedParams.weight_ram == "spram"``.
The RAM has one address per cycle, so its users never read and write in the same cycle (the
gradient walk reads on one clock phase and writes back on the other,
:class:`hdl.gradient.GradientWalk`).
"""

from amaranth.hdl import Array, Cat, ClockSignal, Instance, Module, Mux, Shape, Signal, Value
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

__all__ = ["SinglePortRAM", "WordRAM", "SPRAM_DEPTH", "SPRAM_WIDTH", "ram_ports"]

SPRAM_DEPTH = 16384
SPRAM_WIDTH = 16


def ram_ports(shape, depth: int) -> dict:
    """Signature members ``rd`` and ``wr`` of a RAM of ``depth`` words of ``shape``."""
    aw = ceil_log2(depth)
    return {"rd": Out(memory.ReadPort.Signature(addr_width=aw, shape=shape)),
            "wr": Out(memory.WritePort.Signature(addr_width=aw, shape=shape))}


class SinglePortRAM(wiring.Component):
    """The read and write port of a ``memory.Memory`` on one single-port RAM.

    A cycle with ``wr.en`` writes ``wr.data`` at ``wr.addr``; ``rd.data`` is undefined in the
    next cycle (the model returns the inverted written word). Otherwise a cycle with ``rd.en``
    reads ``rd.addr``: the word is on ``rd.data`` from the next cycle until the next read or
    write. On an iCE40 platform this is one ``SB_SPRAM256KA`` (words sign- or zero-extended
    to 16 bits), elsewhere (simulation) a ``memory.Memory`` with the same timing.

    Parameters
    ----------
    shape : shape of a word (at most 16 bits)
    depth : int (at most 16384)

    Interface attributes
    --------------------
    rd : memory.ReadPort.Signature
    wr : memory.WritePort.Signature (one enable bit)
    """

    def __init__(self, shape, depth: int):
        self.shape, self.depth = Shape.cast(shape), depth
        if self.shape.width > SPRAM_WIDTH or depth > SPRAM_DEPTH:
            raise ValueError(f"a single-port RAM holds at most {SPRAM_DEPTH} words of "
                             f"{SPRAM_WIDTH} bits, not {depth} of {self.shape.width}")
        super().__init__(ram_ports(shape, depth))

    def elaborate(self, platform):
        m = Module()
        rd, wr = self.rd, self.wr
        width = self.shape.width
        if getattr(platform, "family", None) == "iCE40":
            addr, din, dout = Signal(14), Signal(SPRAM_WIDTH), Signal(SPRAM_WIDTH)
            m.d.comb += [addr.eq(Mux(wr.en, wr.addr, rd.addr)),
                         din.eq(Value.cast(wr.data).as_unsigned()), rd.data.eq(dout[:width])]
            m.submodules.spram = Instance(
                "SB_SPRAM256KA",
                i_ADDRESS=addr, i_DATAIN=din,
                i_MASKWREN=0b1111, i_WREN=wr.en, i_CHIPSELECT=wr.en | rd.en,
                i_CLOCK=ClockSignal(), i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1,
                o_DATAOUT=dout)
        else:
            m.submodules.mem = mem = memory.Memory(shape=self.shape, depth=self.depth,
                                                   init=[])
            port = mem.read_port(domain="comb")
            wport = mem.write_port()
            m.d.comb += [port.addr.eq(rd.addr), wport.addr.eq(wr.addr),
                         wport.data.eq(wr.data), wport.en.eq(wr.en)]
            with m.If(wr.en):
                m.d.sync += rd.data.eq(~Value.cast(wr.data))
            with m.Elif(rd.en):
                m.d.sync += rd.data.eq(port.data)
        return m


class WordRAM(wiring.Component):
    """A 32-bit RAM with byte enables on iCE40UP5K ``SB_SPRAM256KA`` pairs, or its model.

    One access per cycle: ``en`` with ``wstrb == 0`` reads ``addr`` (the word is on ``rdata``
    from the next cycle until the next access); ``en`` with byte enables ``wstrb`` writes
    those bytes of ``wdata``. Each 16k-word bank is two SPRAMs side by side (their nibble
    write masks give the byte enables); ``depth`` above 16k words uses several banks.

    Parameters
    ----------
    depth : int
        Words (a multiple of 16384 on iCE40; any power of two in simulation).

    Interface attributes
    --------------------
    en : In(1); addr : In(word address); wdata : In(32); wstrb : In(4); rdata : Out(32)
    """

    def __init__(self, depth: int):
        if depth <= 0 or depth & (depth - 1):
            raise ValueError(f"depth must be a power of two, not {depth!r}")
        self.depth = depth
        super().__init__({"en": In(1), "addr": In(ceil_log2(depth)), "wdata": In(32),
                          "wstrb": In(4), "rdata": Out(32)})

    def elaborate(self, platform):
        m = Module()
        if getattr(platform, "family", None) == "iCE40":
            if self.depth % SPRAM_DEPTH:
                raise ValueError(f"an SPRAM word RAM holds a multiple of {SPRAM_DEPTH} words")
            banks = self.depth // SPRAM_DEPTH
            bank = self.addr[ceil_log2(SPRAM_DEPTH):]
            bank_q = Signal.like(bank) if banks > 1 else None
            outs = []
            for b in range(banks):
                dout = Signal(32)
                select = self.en & (bank == b) if banks > 1 else self.en
                for half in range(2):
                    strobes = self.wstrb[2 * half:2 * half + 2]
                    m.submodules[f"spram{b}_{half}"] = Instance(
                        "SB_SPRAM256KA",
                        i_ADDRESS=self.addr[:ceil_log2(SPRAM_DEPTH)],
                        i_DATAIN=self.wdata[16 * half:16 * half + 16],
                        i_MASKWREN=Cat(strobes[0], strobes[0], strobes[1], strobes[1]),
                        i_WREN=strobes.any(), i_CHIPSELECT=select,
                        i_CLOCK=ClockSignal(), i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1,
                        o_DATAOUT=dout[16 * half:16 * half + 16])
                outs.append(dout)
            if banks > 1:
                with m.If(self.en):
                    m.d.sync += bank_q.eq(bank)
                m.d.comb += self.rdata.eq(Array(outs)[bank_q])
            else:
                m.d.comb += self.rdata.eq(outs[0])
        else:
            m.submodules.mem = mem = memory.Memory(shape=32, depth=self.depth, init=[])
            rd = mem.read_port()
            wr = mem.write_port(granularity=8)
            m.d.comb += [rd.addr.eq(self.addr), rd.en.eq(self.en & (self.wstrb == 0)),
                         wr.addr.eq(self.addr), wr.data.eq(self.wdata),
                         wr.en.eq(Mux(self.en, self.wstrb, 0)), self.rdata.eq(rd.data)]
        return m
