"""Virtual-board wrapper: the same ``hdl.top.Top`` plus a batched byte bridge for Python.

Python (the cocotb coroutine in ``sim/bridge_cocotb.py``) must stay off the per-cycle path:
it wakes up every ``poll`` cycles and exchanges up to ``W`` bytes per direction with this
wrapper through wide registers, and the wrapper does every handshake in hardware.

Host -> device: Python writes ``h2d_data`` (W bytes, first byte in bits 0..7) and
``h2d_len``, then toggles ``h2d_req``. When the staging register is empty the wrapper copies
the chunk into it and sets ``h2d_ack = h2d_req`` (so Python may write the next chunk while
this one is sent). The staging register feeds the device:

* ``mode = 0`` (byte bridge): one byte per ``cpb`` cycles into ``Top.aux_i``, bypassing the
  UART bit level. Like a real line, a byte that arrives while the receive FIFO is full is
  lost (counted in ``h2d_drops``). With ``cpb = 10 * divisor`` the byte timing is exactly
  that of the UART at the configured baud rate; smaller ``cpb`` values run the link faster
  than any UART could (useful to keep simulations short).
* ``mode = 1`` (serial): bytes go through a UART transmitter in this wrapper into
  ``Top.rx`` and come back from ``Top.tx`` through a UART receiver: the real serial path
  bit by bit (``10 * divisor`` cycles per byte).

Device -> host: bytes from ``Top.aux_o`` (one per ``cpb`` cycles) or the wrapper's UART
receiver are shifted into a fill register; whenever the previous batch was collected
(``d2h_ack == d2h_seq``) and bytes are waiting, they are presented in ``d2h_data``/
``d2h_len`` (the last byte in the top bits) and ``d2h_seq`` toggles.

Statistics (cleared by toggling ``stats_clear``): cycles, bytes per direction, dropped
bytes, cycles in which the host->device line was busy, cycle of the first and the last
host->device byte and of the last device->host byte.
"""

from amaranth.hdl import Cat, ClockDomain, ClockSignal, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hdl.top import Top
from hdl.uart import AsyncSerialRX, AsyncSerialTX

__all__ = ["BridgeTop", "STAT_NAMES"]

STAT_NAMES = ("cycles", "h2d_bytes", "d2h_bytes", "h2d_drops", "h2d_busy", "h2d_first",
              "h2d_last", "d2h_last")
STAT_BITS = 48


def _members(top, width):
    members = {
        "clk":         In(1),
        "mode":        In(1),
        "cpb":         In(16, init=10 * top.divisor),
        "h2d_data":    In(8 * width),
        "h2d_len":     In(range(width + 1)),
        "h2d_req":     In(1),
        "h2d_ack":     Out(1),
        "h2d_pending": Out(range(width + 1)),
        "d2h_data":    Out(8 * width),
        "d2h_len":     Out(range(width + 1)),
        "d2h_seq":     Out(1),
        "d2h_ack":     In(1),
        "stats_clear": In(1),
        "busy":        Out(1),
        "error":       Out(1),
        "link":        Out(1),
    }
    for name in STAT_NAMES:
        members[name] = Out(STAT_BITS)
    return members


class BridgeTop(wiring.Component):
    """``Top`` behind a batched byte bridge (the Verilog top level of the virtual board).

    Parameters
    ----------
    top : hdl.top.Top
    width : int
        Bytes per Python access (W).

    The top level holds nothing but ports (only they are visible through VPI, see
    ``sim/board.py``); the logic is in :class:`BridgeLogic`.
    """

    def __init__(self, top: Top, width: int = 256):
        self.top = top
        self.width = width
        super().__init__(_members(top, width))

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync", reset_less=True)
        m.d.comb += ClockSignal("sync").eq(self.clk)
        m.submodules.logic = logic = BridgeLogic(self.top, self.width)
        for name, member in self.signature.members.items():
            if name == "clk":
                continue
            if member.flow == In:
                m.d.comb += getattr(logic, name).eq(getattr(self, name))
            else:
                m.d.comb += getattr(self, name).eq(getattr(logic, name))
        return m


class BridgeLogic(wiring.Component):
    """The bridge itself (see the module docstring)."""

    def __init__(self, top: Top, width: int = 256):
        self.top = top
        self.width = width
        members = _members(top, width)
        del members["clk"]
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        W = self.width
        # Verilator re-evaluates every combinational path from a primary input whenever any
        # input changes, and the clock is an input: so there is no reset input (registers
        # start from their initial values) and every other input is registered first.
        ins = {}
        for name in ("mode", "cpb", "h2d_data", "h2d_len", "h2d_req", "d2h_ack", "stats_clear"):
            port = getattr(self, name)
            ins[name] = reg = Signal.like(port, name=f"{name}_q")
            m.d.sync += reg.eq(port)
        m.submodules.top = top = self.top
        m.submodules.utx = utx = AsyncSerialTX(divisor=top.divisor)
        m.submodules.urx = urx = AsyncSerialRX(divisor=top.divisor)
        serial = ins["mode"]
        m.d.comb += [
            top.aux_en.eq(~serial),
            top.rx.eq(Mux(serial, utx.o, 1)),
            urx.i.eq(Mux(serial, top.tx, 1)),
            self.busy.eq(top.busy), self.error.eq(top.error), self.link.eq(top.link),
        ]

        # -- statistics ---------------------------------------------------------------------
        st = {name: getattr(self, name) for name in STAT_NAMES}
        clear_seen = Signal()
        first_seen = Signal()
        clearing = ins["stats_clear"] != clear_seen
        m.d.sync += clear_seen.eq(ins["stats_clear"])
        h2d_byte = Signal()      # a byte leaves staging this cycle
        h2d_line = Signal()      # the host->device line is busy this cycle
        d2h_byte = Signal()
        drop = Signal()
        with m.If(clearing):
            m.d.sync += [s.eq(0) for s in st.values()]
            m.d.sync += first_seen.eq(0)
        with m.Else():
            m.d.sync += st["cycles"].eq(st["cycles"] + 1)
            with m.If(h2d_byte):
                m.d.sync += [st["h2d_bytes"].eq(st["h2d_bytes"] + 1),
                             st["h2d_last"].eq(st["cycles"])]
                with m.If(~first_seen):
                    m.d.sync += [first_seen.eq(1), st["h2d_first"].eq(st["cycles"])]
            with m.If(h2d_line):
                m.d.sync += st["h2d_busy"].eq(st["h2d_busy"] + 1)
            with m.If(d2h_byte):
                m.d.sync += [st["d2h_bytes"].eq(st["d2h_bytes"] + 1),
                             st["d2h_last"].eq(st["cycles"])]
            with m.If(drop):
                m.d.sync += st["h2d_drops"].eq(st["h2d_drops"] + 1)

        # -- host -> device -----------------------------------------------------------------
        stage = Signal(8 * W)
        stage_n = Signal(range(W + 1))
        m.d.comb += self.h2d_pending.eq(stage_n)
        with m.If((ins["h2d_req"] != self.h2d_ack) & (stage_n == 0)):
            m.d.sync += [stage.eq(ins["h2d_data"]), stage_n.eq(ins["h2d_len"]),
                         self.h2d_ack.eq(ins["h2d_req"])]

        gap = Signal(16)          # cycles left in the current byte slot
        with m.If(gap != 0):
            m.d.sync += gap.eq(gap - 1)
        m.d.comb += h2d_line.eq((gap != 0) | utx.busy)
        take = Signal()
        with m.If(serial):
            m.d.comb += [utx.i.valid.eq(stage_n != 0), utx.i.payload.eq(stage[:8]),
                         take.eq(utx.i.valid & utx.i.ready)]
        with m.Else():
            m.d.comb += [top.aux_i.payload.eq(stage[:8]),
                         top.aux_i.valid.eq((stage_n != 0) & (gap == 0)),
                         take.eq(top.aux_i.valid),
                         drop.eq(top.aux_i.valid & ~top.aux_i.ready)]
            with m.If(take):
                m.d.sync += gap.eq(Mux(ins["cpb"] != 0, ins["cpb"] - 1, 0))
        with m.If(take):
            m.d.sync += [stage.eq(stage >> 8), stage_n.eq(stage_n - 1)]
        m.d.comb += h2d_byte.eq(take)

        # -- device -> host -----------------------------------------------------------------
        fill = Signal(8 * W)
        fill_n = Signal(range(W + 1))
        byte_in = Signal(8)
        byte_valid = Signal()
        room = fill_n != W
        ogap = Signal(16)
        with m.If(ogap != 0):
            m.d.sync += ogap.eq(ogap - 1)
        with m.If(serial):
            # the UART receiver cannot be stopped: a full fill register would lose bytes,
            # Python collects far more often than W bytes can arrive.
            m.d.comb += [byte_in.eq(urx.o.payload), byte_valid.eq(urx.o.valid),
                         urx.o.ready.eq(1)]
        with m.Else():
            m.d.comb += [byte_in.eq(top.aux_o.payload),
                         top.aux_o.ready.eq(room & (ogap == 0)),
                         byte_valid.eq(top.aux_o.valid & room & (ogap == 0))]
            with m.If(byte_valid):
                m.d.sync += ogap.eq(Mux(ins["cpb"] != 0, ins["cpb"] - 1, 0))
        m.d.comb += d2h_byte.eq(byte_valid)

        present = (self.d2h_seq == ins["d2h_ack"]) & (fill_n != 0)
        with m.If(present):
            m.d.sync += [self.d2h_data.eq(fill), self.d2h_len.eq(fill_n),
                         self.d2h_seq.eq(~self.d2h_seq)]
            with m.If(byte_valid):
                m.d.sync += [fill.eq(Cat(fill[8:], byte_in)), fill_n.eq(1)]
            with m.Else():
                m.d.sync += fill_n.eq(0)
        with m.Elif(byte_valid):
            m.d.sync += [fill.eq(Cat(fill[8:], byte_in)), fill_n.eq(fill_n + 1)]
        return m
