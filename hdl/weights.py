"""One bank of the weight memory ``W`` (SPEC.md section 6): block RAM in chunks, or SPRAM.

A bank of the SHD configuration holds 22,400 words of 10 bits; on an ECP5 one
``memory.Memory`` of that size becomes block RAMs cascaded in depth, and the select between
them after the read cost the routed critical path (a DP16KD's output across the chip into a
LUT and a register, 14.2 ns). Here a bank is built from ``chunk``-word memories, each with
its own read-data register next to its block RAMs; the chunk is selected two cycles later,
from registers (with one register, the placer put it next to the users, and a block RAM's
output across the chip to it was the routed critical path at 6c886c2, 13.8 ns). The ports'
inputs (address, data, enables) are registered too, per chunk:
the users multiplex several sources onto them, and that multiplexer's select (the core's
state) to a block RAM's address pins was the next routed critical path (14.1 ns, 12.65 ns
of routing). Reads and writes are both delayed by that register, so their order is
unchanged. Every bank
kind has the same read latency, so the users' pipelines do not depend on the memory.
"""

from amaranth.hdl import Module, Shape, Signal
from amaranth.lib import memory, wiring
from amaranth.utils import ceil_log2

from .spram import SinglePortRAM, ram_ports

__all__ = ["WeightBank"]


class WeightBank(wiring.Component):
    """``depth`` words of ``shape`` with a read latency of :attr:`LATENCY` cycles.

    A cycle with ``rd.en`` reads ``rd.addr``: the word is on ``rd.data`` from ``LATENCY``
    cycles later until the next read's word replaces it. A cycle with ``wr.en`` writes
    ``wr.data`` at ``wr.addr`` (the memory is written a cycle later, and a read issued in the
    next cycle sees the word). The rules below are stated in the cycles the ports are driven. Block RAM (``kind == "bram"``): the users never read a word in
    the cycle it is written (the read data would be undefined; synthesis is told so with
    ``no_rw_check``). Single-port RAM (``kind == "spram"``, :class:`hdl.spram.SinglePortRAM`):
    the users never read and write in the same cycle, and a read issued in the cycle after a
    write returns an undefined word.

    Parameters
    ----------
    shape : shape of a word
    depth : int
    kind : "bram" or "spram"
    chunk : int
        Words per memory (a power of two; 0: one memory). ``bram`` only.

    Interface attributes
    --------------------
    rd : memory.ReadPort.Signature (``LATENCY`` cycles)
    wr : memory.WritePort.Signature (one enable bit)
    """

    #: cycles from a read's address to its word on ``rd.data`` (input register, memory
    #: read, two chunk data registers)
    LATENCY = 4

    def __init__(self, shape, depth: int, kind: str = "bram", chunk: int = 0):
        if kind not in ("bram", "spram"):
            raise ValueError(f"kind must be 'bram' or 'spram', not {kind!r}")
        if chunk < 0 or chunk & (chunk - 1):
            raise ValueError(f"chunk must be 0 or a power of two, not {chunk!r}")
        if chunk and kind != "bram":
            raise ValueError("chunk applies to kind 'bram' only")
        self.shape, self.depth, self.kind = Shape.cast(shape), depth, kind
        self.chunk = chunk if 0 < chunk < depth else depth
        super().__init__(ram_ports(shape, depth))

    def elaborate(self, platform):
        m = Module()
        rd, wr = self.rd, self.wr
        if self.kind == "spram":
            m.submodules.ram = ram = SinglePortRAM(self.shape, self.depth)
            en1, en2 = Signal(), Signal()
            data = Signal(self.shape)
            m.d.sync += [ram.rd.addr.eq(rd.addr), ram.rd.en.eq(rd.en), en1.eq(ram.rd.en),
                         en2.eq(en1), ram.wr.addr.eq(wr.addr), ram.wr.data.eq(wr.data),
                         ram.wr.en.eq(wr.en)]
            with m.If(en1):
                m.d.sync += data.eq(ram.rd.data)
            with m.If(en2):
                m.d.sync += rd.data.eq(data)
            return m

        # chunk c holds words c*chunk .. (c+1)*chunk - 1. Each chunk has its own input
        # registers (loaded only for its own words, so synthesis keeps them apart and places
        # each next to its block RAMs), the memory's read register, and two data registers
        # in the fabric: the first next to the block RAMs, whose read register has no
        # output flip-flop (5.8 ns clock-to-output on ECP5), the second wherever the
        # placer likes on the way to the users; the chunk is selected from the second.
        n_chunks = -(-self.depth // self.chunk)
        low = ceil_log2(self.chunk)
        chunk_of = (lambda addr: addr[low:]) if n_chunks > 1 else (lambda addr: 0)
        # the chunk of the word on rd.data: the last chunk whose data register was loaded
        selected = Signal(range(n_chunks), name="rd_chunk")
        held = []
        for c in range(n_chunks):
            depth = min(self.chunk, self.depth - c * self.chunk)
            aw = ceil_log2(depth)
            mem = memory.Memory(shape=self.shape, depth=depth, init=[],
                                attrs={"no_rw_check": 1})
            m.submodules[f"chunk{c}"] = mem
            rd_hit, wr_hit = rd.en & (chunk_of(rd.addr) == c), wr.en & (chunk_of(wr.addr) == c)
            rd_addr = Signal(aw, name=f"chunk{c}_rd_addr")
            rd_en, rd_en1 = Signal(name=f"chunk{c}_rd_en"), Signal(name=f"chunk{c}_rd_en1")
            rd_en2 = Signal(name=f"chunk{c}_rd_en2")
            m.d.sync += [rd_en.eq(rd_hit), rd_en1.eq(rd_en), rd_en2.eq(rd_en1)]
            with m.If(rd_hit):
                m.d.sync += rd_addr.eq(rd.addr[:aw])
            wport = mem.write_port()
            wr_en = Signal(name=f"chunk{c}_wr_en")
            m.d.sync += wr_en.eq(wr_hit)
            with m.If(wr_hit):
                m.d.sync += [wport.addr.eq(wr.addr[:aw]), wport.data.eq(wr.data)]
            m.d.comb += wport.en.eq(wr_en)
            # an asynchronous read and a data register: synthesis makes them a synchronous
            # block RAM read (no read-during-write logic: no_rw_check)
            port = mem.read_port(domain="comb")
            data1 = Signal(self.shape, name=f"chunk{c}_data1")
            data2 = Signal(self.shape, name=f"chunk{c}_data2")
            data3 = Signal(self.shape, name=f"chunk{c}_data3")
            m.d.comb += port.addr.eq(rd_addr)
            with m.If(rd_en):
                m.d.sync += data1.eq(port.data)
            with m.If(rd_en1):
                m.d.sync += data2.eq(data1)
            with m.If(rd_en2):
                m.d.sync += [data3.eq(data2), selected.eq(c)]
            held.append(data3)
        with m.Switch(selected):
            for c in range(n_chunks):
                with m.Case(c):
                    m.d.comb += rd.data.eq(held[c])
        return m
