"""Single-port weight RAM: an iCE40UP5K ``SB_SPRAM256KA`` (16k x 16 bit) or its model.

Used for the weight banks ``W`` when ``FixedParams.weight_ram == "spram"``. The RAM has one
address per cycle, so its users never read and write in the same cycle (the gradient walk
reads on one clock phase and writes back on the other, :class:`hdl.gradient.GradientWalk`).
"""

from amaranth.hdl import ClockSignal, Instance, Module, Mux, Shape, Signal, Value
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import Out
from amaranth.utils import ceil_log2

__all__ = ["SinglePortRAM", "SPRAM_DEPTH", "SPRAM_WIDTH", "ram_ports"]

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
