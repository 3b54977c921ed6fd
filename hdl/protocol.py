"""Framed host protocol in gateware: CRC-16, deframer, framer and command processor.

The wire format (``host/protocol.py``, ``host/PROTOCOL.md``) is::

    A5 5A | LEN_LO LEN_HI | TYPE | SEQ | HCHK | PAYLOAD | CRC_HI CRC_LO

Data path (one byte per cycle at most)::

    rx bytes -> Deframer -> 2-bank frame buffer -> CommandProcessor -> Framer -> tx bytes
                                                     |  ^
                                   tokens/mem_cmd/hyper  |  result/mem_rsp/counters
                                                     v  |
                                                  LearningCore

* :class:`Deframer` hunts for a header in a 7-byte sliding window (sync bytes and header
  check), so garbage never costs more than the bytes it occupies. It stores the payload in
  the free bank of the frame buffer, checks the CRC and posts one descriptor per frame
  (including frames with a bad CRC, an oversize length or a timeout, so that every frame gets
  its reply in order). While the processor works on one bank the next frame is received into
  the other one: frames pipeline.
* :class:`CommandProcessor` handles descriptors in order. A frame's payload is validated
  completely (a first pass over the buffer) before anything is executed (a second pass), so a
  rejected frame changes nothing.
* :class:`Framer` wraps every reply in a frame with header check and CRC.
"""

from functools import reduce
from operator import or_, xor

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out, connect, flipped
from amaranth.utils import bits_for

from golden.fixed import FixedHyper, FixedParams
from host import protocol as wire
from host.protocol import Cmd, Nak

from .interface import (ALL_COUNTERS, Memory, TokenKind, counters_signature, hyper_layout,
                        mem_cmd_layout, result_layout, token_layout)
from .skid import SkidBuffer

__all__ = ["crc16_update", "Deframer", "Framer", "BufferReader", "CommandProcessor",
           "ProtocolEngine", "frame_desc_layout", "reply_layout"]


# -- CRC-16/CCITT-FALSE as XOR networks -----------------------------------------------------
def _crc_network(nbytes: int):
    """For each of the 16 output bits: the set of input bits it is the XOR of.

    Inputs 0..15 are the CRC register, 16 + 8*k + b is bit b of data byte k (MSB first per
    byte, as the CRC is defined).
    """
    crc = [frozenset([i]) for i in range(16)]
    for k in range(nbytes):
        for b in range(7, -1, -1):
            fb = crc[15] ^ frozenset([16 + 8 * k + b])
            new = [frozenset()] + crc[:15]
            for tap in (0, 5, 12):
                new[tap] = new[tap] ^ fb
            crc = new
    return crc


def crc16_update(crc, data_bytes):
    """Expression: CRC register ``crc`` (16 bit) after the bytes ``data_bytes`` (list)."""
    inputs = [crc[i] for i in range(16)] + [d[b] for d in data_bytes for b in range(8)]
    out = []
    for terms in _crc_network(len(data_bytes)):
        out.append(reduce(xor, [inputs[t] for t in sorted(terms)]) if terms else Const(0, 1))
    return Cat(*out)


def Cmd_ack(t):
    """Reply type of an ACK to request type ``t``."""
    return t | wire.ACK_BIT


def signed32():
    return signed(32)


# -- layouts --------------------------------------------------------------------------------
def frame_desc_layout() -> data.StructLayout:
    return data.StructLayout({
        "status": unsigned(4),   # 0 = good frame, else a transport Nak code
        "type": unsigned(8),
        "seq": unsigned(8),
        "length": unsigned(16),
        "bank": unsigned(1),
    })


def reply_layout() -> data.StructLayout:
    return data.StructLayout({"type": unsigned(8), "seq": unsigned(8), "length": unsigned(16)})


class Deframer(wiring.Component):
    """Byte stream -> validated frames in a two-bank buffer.

    Parameters
    ----------
    max_payload : int
        Bank size in bytes (power of two). Longer frames are answered with ``TOO_LONG``.
    timeout_cycles : int
        A frame whose next byte does not arrive within this many cycles is abandoned and
        answered with ``TIMEOUT`` (also clears a half-received header).

    Interface attributes
    --------------------
    i : stream.Signature(8), input
        Received bytes.
    wr_addr, wr_data, wr_en : output
        Write port of the frame buffer (``bank * max_payload + offset``).
    frame : stream.Signature(frame_desc_layout()), output
        One descriptor per frame, in order. The consumer asserts ``ready`` when it is done
        with the bank: that transfer frees the bank.
    """

    def __init__(self, *, max_payload: int, timeout_cycles: int):
        if max_payload < 32 or max_payload & (max_payload - 1) or max_payload > 32768:
            raise ValueError(f"max_payload must be a power of two in [32, 32768], "
                             f"not {max_payload!r}")
        if timeout_cycles < 16:
            raise ValueError(f"timeout_cycles must be at least 16, not {timeout_cycles!r}")
        self.max_payload = max_payload
        self.timeout_cycles = timeout_cycles
        self.addr_bits = bits_for(max_payload - 1) + 1
        super().__init__({
            "i":       In(stream.Signature(8)),
            "wr_addr": Out(self.addr_bits),
            "wr_data": Out(8),
            "wr_en":   Out(1),
            "frame":   Out(stream.Signature(frame_desc_layout())),
        })

    def elaborate(self, platform):
        m = Module()
        mp = self.max_payload

        win = Signal(7 * 8)
        b = [win[8 * k:8 * k + 8] for k in range(7)]
        # header check over two cycles: HDR_CRC registers the CRC and the sync bytes' match
        hdr_crc = Signal(16)
        sync_ok = Signal()
        match = sync_ok & (hdr_crc[:8] == b[6])
        hdr_len = Cat(b[2], b[3])

        length = Signal(16)
        ftype = Signal(8)
        seq = Signal(8)
        crc = Signal(16)
        remaining = Signal(17)
        ptr = Signal(range(mp + 1))
        idle = Signal(range(self.timeout_cycles + 1))
        status = Signal(4)
        # comparisons registered one byte ahead (timing)
        too_long = Signal()      # hdr_len > max_payload
        len_m1 = Signal(16)      # length - 1
        stored = Signal()        # ptr == length: the payload is in the buffer
        last = Signal()          # remaining == 1: the byte offered is the frame's last
        idle_max = Signal()      # idle == timeout_cycles

        def count_idle():
            m.d.sync += [idle.eq(idle + 1), idle_max.eq(idle == self.timeout_cycles - 1)]

        def clear_idle():
            m.d.sync += [idle.eq(0), idle_max.eq(0)]

        full = Signal(2)
        wbank = Signal()
        rbank = Signal()
        descs = [Signal(frame_desc_layout(), name=f"desc{k}") for k in range(2)]
        post = Signal()          # completing a frame this cycle (into bank wbank)
        post_status = Signal(4)
        # the descriptor is written the cycle after (timing): the next frame's header takes
        # longer than that to arrive
        posted = Signal()
        posted_status = Signal(4)
        m.d.sync += [posted.eq(post), posted_status.eq(post_status)]

        # consumer side
        m.d.comb += [
            self.frame.valid.eq(full.bit_select(rbank, 1)),
            self.frame.payload.eq(Mux(rbank, descs[1], descs[0])),
            self.frame.payload.bank.eq(rbank),
        ]
        release = self.frame.valid & self.frame.ready
        with m.If(release):
            m.d.sync += rbank.eq(~rbank)
        with m.If(posted):
            m.d.sync += wbank.eq(~wbank)
        for k in range(2):
            with m.If(posted & (wbank == k)):
                m.d.sync += [
                    full[k].eq(1),
                    descs[k].status.eq(posted_status),
                    descs[k].type.eq(ftype),
                    descs[k].seq.eq(seq),
                    descs[k].length.eq(length),
                ]
            with m.Elif(release & (rbank == k)):
                m.d.sync += full[k].eq(0)

        bank_free = ~full.bit_select(wbank, 1)
        next_crc = crc16_update(crc, [self.i.payload])
        m.d.comb += [
            self.wr_addr.eq(Cat(ptr[:self.addr_bits - 1], wbank)),
            self.wr_data.eq(self.i.payload),
        ]

        with m.FSM():
            with m.State("HUNT"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += win.eq(Cat(win[8:], self.i.payload))
                    clear_idle()
                    m.next = "HDR_CRC"
                with m.Elif(idle_max):
                    m.d.sync += win.eq(0)
                    clear_idle()
                with m.Else():
                    count_idle()
            with m.State("HDR_CRC"):
                m.d.sync += [hdr_crc.eq(crc16_update(Const(0xFFFF, 16), b[2:6])),
                             sync_ok.eq((b[0] == 0xA5) & (b[1] == 0x5A)),
                             too_long.eq(hdr_len > mp), len_m1.eq(hdr_len - 1)]
                m.next = "CHECK"
            with m.State("CHECK"):
                # RECV's counters are set whether the header matches or not (timing: they are
                # used in RECV only)
                m.d.sync += [remaining.eq(hdr_len + 2), ptr.eq(0), stored.eq(hdr_len == 0),
                             last.eq(0)]
                with m.If(match):
                    m.d.sync += [
                        length.eq(hdr_len), ftype.eq(b[4]), seq.eq(b[5]), crc.eq(hdr_crc),
                        win.eq(0),
                    ]
                    clear_idle()
                    with m.If(too_long):
                        m.d.sync += status.eq(Nak.TOO_LONG)
                        m.next = "POST"
                    with m.Else():
                        m.next = "RECV"
                with m.Else():
                    m.next = "HUNT"
            with m.State("RECV"):
                m.d.comb += self.i.ready.eq(bank_free)
                with m.If(self.i.valid & bank_free):
                    m.d.sync += [crc.eq(next_crc), remaining.eq(remaining - 1),
                                 last.eq(remaining == 2)]
                    clear_idle()
                    with m.If(~stored):
                        m.d.comb += self.wr_en.eq(1)
                        m.d.sync += [ptr.eq(ptr + 1), stored.eq(ptr == len_m1)]
                    with m.If(last):
                        m.next = "CRC"            # decide on the registered CRC (timing)
                with m.Elif(bank_free):
                    with m.If(idle_max):
                        m.d.comb += [post_status.eq(Nak.TIMEOUT), post.eq(1)]
                        m.next = "HUNT"
                    with m.Else():
                        count_idle()
            with m.State("CRC"):
                m.d.comb += [post_status.eq(Mux(crc != 0, Nak.BAD_CRC, 0)), post.eq(1)]
                m.next = "HUNT"
            with m.State("POST"):
                with m.If(bank_free):
                    m.d.comb += [post_status.eq(status), post.eq(1)]
                    m.next = "HUNT"
        return m


class Framer(wiring.Component):
    """Wraps reply payloads into frames.

    Interface attributes
    --------------------
    start : stream.Signature(reply_layout()), input
        Header of the reply. Keep it valid while the payload is sent; it is accepted (ready)
        once the whole frame, CRC included, has gone out.
    i : stream.Signature(8), input
        ``start.payload.length`` payload bytes.
    o : stream.Signature(8), output
        Frame bytes.
    """

    start: In(stream.Signature(reply_layout()))
    i:     In(stream.Signature(8))
    o:     Out(stream.Signature(8))

    def elaborate(self, platform):
        m = Module()
        hdr = self.start.payload
        crc = Signal(16)
        idx = Signal(3)
        left = Signal(16)
        crc_byte = Signal(8)     # header byte for the CRC, registered
        crc_en = Signal()
        hbytes = Array([Const(0xA5, 8), Const(0x5A, 8), hdr.length[:8], hdr.length[8:],
                        hdr.type, hdr.seq, crc[:8], Const(0, 8)])

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start.valid):
                    m.d.sync += [idx.eq(0), crc.eq(0xFFFF), left.eq(hdr.length)]
                    m.next = "HEADER"
            with m.State("HEADER"):
                # the CRC takes each header field byte the cycle after it went out (timing);
                # HCHK waits for the last one
                m.d.sync += crc_en.eq(0)
                with m.If(crc_en):
                    m.d.sync += crc.eq(crc16_update(crc, [crc_byte]))
                hold = (idx == 6) & crc_en
                m.d.comb += [self.o.valid.eq(~hold), self.o.payload.eq(hbytes[idx])]
                with m.If(self.o.ready & ~hold):
                    m.d.sync += idx.eq(idx + 1)
                    with m.If((idx >= 2) & (idx < 6)):
                        m.d.sync += [crc_byte.eq(hbytes[idx]), crc_en.eq(1)]
                    with m.If(idx == 6):
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(left == 0):
                    m.d.sync += idx.eq(0)
                    m.next = "CRC"
                with m.Else():
                    m.d.comb += [self.o.valid.eq(self.i.valid), self.o.payload.eq(self.i.payload),
                                 self.i.ready.eq(self.o.ready)]
                    with m.If(self.i.valid & self.o.ready):
                        m.d.sync += [crc.eq(crc16_update(crc, [self.i.payload])),
                                     left.eq(left - 1)]
            with m.State("CRC"):
                m.d.comb += [self.o.valid.eq(1),
                             self.o.payload.eq(Mux(idx[0], crc[:8], crc[8:]))]
                with m.If(self.o.ready):
                    m.d.sync += idx.eq(idx + 1)
                    with m.If(idx[0]):
                        m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += self.start.ready.eq(1)
                m.next = "IDLE"
        return m


class BufferReader(wiring.Component):
    """Streams a frame's bytes from ``offset`` to ``length`` out of bank ``bank``.

    ``start`` (one cycle) registers ``offset``; the reader restarts the cycle after (``done`` is
    low in that cycle; ``o.valid``, a flip-flop, is not masked: start when every byte has been
    taken, or ignore ``o`` in that cycle) and offers the first byte two cycles later (block
    RAM read, then an output register). A skid register behind the output register keeps
    ``o.ready`` away from the RAM's enable and address. ``bank`` and ``length`` must stay
    stable while it runs. ``pos`` is the payload offset of the byte offered on
    ``o``; ``done`` is high once every byte has been taken.
    """

    def __init__(self, addr_bits: int):
        self.addr_bits = addr_bits
        super().__init__({
            "start":   In(1),
            "offset":  In(addr_bits - 1),
            "bank":    In(1),
            "length":  In(16),
            "o":       Out(stream.Signature(8)),
            "pos":     Out(16),
            "done":    Out(1),
            "rd_addr": Out(addr_bits),
            "rd_en":   Out(1),
            "rd_data": In(8),
        })

    def elaborate(self, platform):
        m = Module()
        offset = Signal(self.addr_bits - 1)
        pending = Signal()       # restart in this cycle (registered start)
        addr = Signal(self.addr_bits)
        remaining = Signal(16)
        more = Signal()          # remaining != 0
        ram_valid = Signal()     # rd_data holds a byte
        out_valid = Signal()     # o.payload holds a byte
        skid_valid = Signal()
        skid = Signal(8)
        advance_ram = ~ram_valid | ~skid_valid     # the RAM's byte moves on (registers only)
        m.d.comb += [
            self.rd_en.eq(advance_ram),
            self.rd_addr.eq(addr),
            self.o.valid.eq(out_valid),
            self.done.eq(~more & ~ram_valid & ~out_valid & ~skid_valid & ~pending),
        ]
        m.d.sync += pending.eq(self.start)
        with m.If(self.start):
            m.d.sync += offset.eq(self.offset)
        with m.If(pending):
            m.d.sync += [addr.eq(Cat(offset, self.bank)), remaining.eq(self.length - offset),
                         more.eq(self.length != offset), self.pos.eq(offset),
                         ram_valid.eq(0), out_valid.eq(0), skid_valid.eq(0)]
        with m.Else():
            with m.If(self.o.valid & self.o.ready):
                m.d.sync += self.pos.eq(self.pos + 1)
            with m.If(~out_valid | self.o.ready):          # the output register is free
                with m.If(skid_valid):
                    m.d.sync += [self.o.payload.eq(skid), out_valid.eq(1), skid_valid.eq(0)]
                with m.Else():
                    m.d.sync += [self.o.payload.eq(self.rd_data), out_valid.eq(ram_valid)]
            with m.Elif(ram_valid & ~skid_valid):
                m.d.sync += [skid.eq(self.rd_data), skid_valid.eq(1)]
            with m.If(advance_ram):
                with m.If(more):
                    m.d.sync += [addr.eq(addr + 1), remaining.eq(remaining - 1),
                                 more.eq(remaining != 1), ram_valid.eq(1)]
                with m.Else():
                    m.d.sync += ram_valid.eq(0)
        return m


def _pack(fields):
    """Cat of (value, nbytes) pairs, little endian, zero-extended."""
    parts = []
    for value, n in fields:
        v = value if not isinstance(value, int) else Const(value, 8 * n)
        parts.append(v.as_unsigned()[:8 * n] if len(v) >= 8 * n else v.as_unsigned())
        if len(v) < 8 * n:
            parts.append(Const(0, 8 * n - len(v)))
    return Cat(*parts)



def _core_side_members(params) -> dict:
    """Signature members towards the learning core and status, shared by the command
    processor and the whole protocol engine."""
    return {
        "tokens":         Out(stream.Signature(token_layout())),
        "result":         In(stream.Signature(result_layout(params))),
        "mem_cmd":        Out(stream.Signature(mem_cmd_layout())),
        "mem_rsp":        In(stream.Signature(signed32())),
        "hyper":          Out(hyper_layout(params)),
        "reseed":         Out(1),
        "counters":       Out(counters_signature()),
        "clear_counters": Out(1),
        "core_busy":      In(1),
        "rx_overflow":    In(1),
        "rx_frame_error": In(1),
        "error":          Out(1),
        "in_sample":      Out(1),
    }

class CommandProcessor(wiring.Component):
    """Executes frames from the buffer in order and produces one reply per frame.

    Parameters
    ----------
    params : FixedParams
    max_payload : int
        Bank size of the frame buffer.
    identify : bytes
        The IDENTIFY reply payload (``host.protocol.identify_block``).

    Interface attributes
    --------------------
    frame : stream.Signature(frame_desc_layout()), input
        From the deframer; ``ready`` releases the bank when the frame is done.
    rd_* : output/input
        Read port of the frame buffer (through a :class:`BufferReader` inside).
    reply : stream.Signature(reply_layout()), output; reply_data : stream.Signature(8), output
        To the :class:`Framer`.
    tokens, result, mem_cmd, mem_rsp, hyper, reseed, counters, clear_counters, core_busy
        To/from the learning core (same names and directions as ``LearningCore``, flipped).
    rx_overflow, rx_frame_error : Signal(), input
        Pulses from the receive path (sticky in the status block).
    error : Signal(), output
        A NAK was sent or a receive error happened since the last RESET.
    in_sample : Signal(), output
        A sample is open (SAMPLE with BEGIN seen, END not yet).
    """

    def __init__(self, params: FixedParams, *, max_payload: int, identify: bytes):
        self.p = params
        self.max_payload = max_payload
        self.identify = identify
        self.addr_bits = bits_for(max_payload - 1) + 1
        super().__init__({
            "frame":          In(stream.Signature(frame_desc_layout())),
            "rd_addr":        Out(self.addr_bits),
            "rd_en":          Out(1),
            "rd_data":        In(8),
            "reply":          Out(stream.Signature(reply_layout())),
            "reply_data":     Out(stream.Signature(8)),
            **_core_side_members(params),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.p
        iw = wire.index_bytes(p.n_in)
        wb = wire.weight_bytes(p.w_bits)

        m.submodules.reader = rd = BufferReader(self.addr_bits)
        m.d.comb += [self.rd_addr.eq(rd.rd_addr), self.rd_en.eq(rd.rd_en),
                     rd.rd_data.eq(self.rd_data)]
        byte = rd.o.payload
        pos = rd.pos             # payload offset of ``byte`` (bytes taken so far)

        # -- hyper registers (reset to the FixedHyper defaults) and pulses ----------------
        defaults = FixedHyper()
        hyper_init = {name: getattr(defaults, name) for name, *_ in wire.HYPER_FIELDS
                      if name != "dense"}
        hyper_init["dense"] = 0
        hyper = Signal(hyper_layout(p), init=hyper_init)
        m.d.comb += self.hyper.eq(hyper)
        cfg_positions = [(fi, name, b) for fi, (name, n) in enumerate(wire.HYPER_FIELDS)
                         for b in range(n)]
        cfg_widths = dict(wire.HYPER_FIELDS)
        cfg_keep = [max(0, min(8, len(getattr(hyper, name)) - 8 * b))
                    for _, name, b in cfg_positions]       # register bits fed by each byte
        # the check of byte k, looked up in a table when k is set (timing): bits that must be
        # zero, field number, theta byte, theta's last byte, k == HYPER_BYTES
        cfg_check_layout = data.StructLayout({"excess": 8, "field": 4, "theta": 1,
                                              "theta_last": 1, "end": 1})

        def cfg_check(kk):
            if kk >= len(cfg_positions):
                return cfg_check_layout.const({"end": 1})
            fi, name, b = cfg_positions[kk]
            return cfg_check_layout.const({
                "excess": (0xFF << cfg_keep[kk]) & 0xFF, "field": fi, "theta": name == "theta",
                "theta_last": name == "theta" and b == cfg_widths["theta"] - 1})
        cfg_check_next = Array(cfg_check(kk + 1) for kk in range(wire.HYPER_BYTES))
        cfg_chk = Signal(cfg_check_layout)
        k_hot = Signal(wire.HYPER_BYTES + 1)     # one-hot k (GATHER, CFG_WRITE)
        cfg_bad = Signal()
        cfg_field = Signal(4)
        theta_nz = Signal()
        reseed = Signal(init=1)   # reload the generators once after reset
        clear = Signal()
        m.d.sync += [reseed.eq(0), clear.eq(0)]
        m.d.comb += [self.reseed.eq(reseed), self.clear_counters.eq(clear)]

        # -- link state ---------------------------------------------------------------------
        desc = Signal(frame_desc_layout())
        m.d.comb += [rd.bank.eq(desc.bank), rd.length.eq(desc.length)]
        # checks of the next frame's descriptor, registered with it (CHECK decides on them)
        is_cmd = {c: Signal(name=f"is_{c.name.lower()}") for c in Cmd}   # one-hot type
        oob = Signal()          # IDENTIFY, READ_STATUS, RESET: outside the sequence
        seq_bad = Signal()
        len_is = {v: Signal(name=f"len_is_{v}")
                  for v in (0, 1, wire.HYPER_BYTES, wire.WEIGHT_HEADER_BYTES)}
        len_ge = {v: Signal(name=f"len_ge_{v}") for v in (2, wire.WEIGHT_HEADER_BYTES)}
        # the frame's target, registered by CHECK (DISPATCH branches on it alone): at most one
        # bit set, none is a NAK
        go = Signal(data.StructLayout({"gather": 1, "cfg": 1, "identify": 1, "status": 1}))
        expected = Signal(8)
        in_sample = Signal()
        result_valid = Signal()
        prediction = Signal(8)
        last_nak = Signal(8)
        last_nak_type = Signal(8)
        last_nak_seq = Signal(8)
        acks = Signal(32)
        naks = Signal(32)
        crc_errors = Signal(16)
        timeouts = Signal(16)
        rx_overflow = Signal()
        rx_frame_error = Signal()
        naked = Signal()
        m.d.comb += [self.in_sample.eq(in_sample),
                     self.error.eq(naked | rx_overflow | rx_frame_error)]
        with m.If(self.rx_overflow):
            m.d.sync += rx_overflow.eq(1)
        with m.If(self.rx_frame_error):
            m.d.sync += rx_frame_error.eq(1)

        # core quiet: not busy and no token offered for a few cycles. core_busy is taken
        # through a register (timing); quiet also checks that register, so busy in any of the
        # last 8 cycles (tokens or memory commands: 7) holds it off
        busy_q = Signal()
        m.d.sync += busy_q.eq(self.core_busy)
        quiet_cnt = Signal(3)
        quiet = (quiet_cnt == 7) & ~busy_q
        with m.If(busy_q | self.tokens.valid | self.mem_cmd.valid):
            m.d.sync += quiet_cnt.eq(0)
        with m.Elif(quiet_cnt != 7):
            m.d.sync += quiet_cnt.eq(quiet_cnt + 1)

        # -- reply machinery -----------------------------------------------------------------
        # Reply bytes come from a byte-indexed source (no wide shift register): a 4-byte
        # register for short replies, the IDENTIFY ROM, the status fields, the counters port
        # (the core is quiet while they are sent, so they do not move).
        assert len(self.identify) == wire.IDENTIFY_BYTES
        SRC_SMALL, SRC_ROM, SRC_STATUS, SRC_COUNTERS = range(4)
        rsrc = Signal(2)
        ridx = Signal(6)
        rn = Signal(range(64 + 1))
        rn_zero = Signal()       # rn == 0, registered with rn (timing)
        small = Signal(32)
        # the reply byte at ridx through three register stages (the counter RAM's read, each
        # source's word, then the source's byte): valid (src_ok) three cycles after ridx changed
        # (taking a byte and SEND_PREP restart it)
        src_q = Signal(8)
        src_ok0 = Signal()
        src_ok1 = Signal()
        src_ok = Signal()
        then_mem = Signal()
        clear_after = Signal()
        rp_valid = Signal()
        rp_nak = Signal()
        rp_len = Signal(16)
        reply_len = Signal(16)   # a memory transfer's reply length
        m.d.comb += [self.reply.valid.eq(rp_valid),
                     self.reply.payload.type.eq(Mux(rp_nak, wire.NAK_TYPE, Cmd_ack(desc.type))),
                     self.reply.payload.seq.eq(desc.seq),
                     self.reply.payload.length.eq(rp_len)]
        with m.If(self.reply.valid & self.reply.ready):
            m.d.sync += rp_valid.eq(0)

        # rp_nak and rp_len (and the source, send) are written by each state that may start
        # the reply, at its top, whatever it decides (timing: no decision in their enables).
        # No reply is pending in those states (one reply per frame, and it is the last thing
        # a frame does).
        def rp_key(length):
            return length if isinstance(length, int) else id(length)

        shaped = set()      # lengths covered by the current state's reply_shape (a check)

        def reply_shape(length, nak_reply=0, other=None, when=None):
            """The reply of this state: ``length``, or ``other`` when ``when`` is high."""
            m.d.sync += [rp_nak.eq(nak_reply),
                         rp_len.eq(length if when is None else Mux(when, other, length))]
            shaped.clear()
            shaped.update(rp_key(n) for n in (length, other) if n is not None)

        def start_reply(length):
            assert rp_key(length) in shaped, "reply_shape() missing in this state"
            m.d.sync += rp_valid.eq(1)

        # NAK reason and the source of its detail field (few sources, many call sites)
        nak_code = Signal(4)
        DET_ZERO, DET_POS, DET_EXPECTED, DET_WIDX, DET_CFG, DET_ONE = range(6)
        nak_det = Signal(3)

        nak_pos = Signal(16)

        def nak(code, detail=DET_ZERO, at=pos, written=False):
            """To NAK with ``code`` (``written``: the state writes it, and ``detail``, whatever
            it decides: timing)."""
            if not written:
                m.d.sync += [nak_code.eq(code), nak_det.eq(detail)]
            if detail == DET_POS:   # the offending byte's offset (``at``), latched
                m.d.sync += nak_pos.eq(at)
            m.next = "NAK"

        def ack(length=0, then=None):
            start_reply(length)
            m.next = then or ("FINISH" if isinstance(length, int) and length == 0
                              else "SEND_PREP")

        def send(src, n, value=None, then_memory=False):
            m.d.sync += [rsrc.eq(src), ridx.eq(0), rn.eq(n), rn_zero.eq(n == 0),
                         then_mem.eq(then_memory)]
            if value is not None:
                m.d.sync += small.eq(value)

        # -- payload fields ------------------------------------------------------------------
        FLD = wire.WEIGHT_HEADER_BYTES        # request headers; CONFIGURE streams separately
        fld = Signal(8 * FLD)
        fb = [fld[8 * k:8 * k + 8] for k in range(FLD)]
        k = Signal(range(wire.HYPER_BYTES + 1))
        gather_n = Signal(range(FLD + 1))
        gathered = Signal()      # k == gather_n

        # memory transfer registers
        mem = Signal(8)          # the whole request byte: 8 and up must not alias 0..
        is_write, is_result = is_cmd[Cmd.WRITE_WEIGHTS], is_cmd[Cmd.READ_RESULT]
        # block header (READ_RESULT writes its own values into fld)
        row0, nrows = Cat(fb[1], fb[2]), Cat(fb[3], fb[4])
        col0, ncols = Cat(fb[5], fb[6]), Cat(fb[7], fb[8])
        # the current item (with precomputed flags, timing: rows_left == 1, cols_left == 1,
        # both) and the next one, computed from it in the cycle after it changed, so that
        # advancing is a plain load (an item stays for at least two cycles)
        item_layout = data.StructLayout({"row": 12, "col": 12, "rows_left": 13,
                                         "cols_left": 13, "row_last": 1, "col_last": 1,
                                         "last": 1})
        item = Signal(item_layout)
        item_n = Signal(item_layout)
        row, col, last_item = item.row, item.col, item.last
        chk_mem = Signal()       # checks registered one state ahead of their use (timing)
        chk_range = Signal()
        chk_len = Signal()
        chk_big = Signal()
        width = Signal(3)
        word = Signal(32)
        bi = Signal(3)
        bi_last = Signal()       # bi + 1 == width in MR_PUSH, registered (timing)
        widx = Signal(16)
        fits = Signal()          # the weight in ``word`` fits in w_bits
        exec_pass = Signal()
        # nrows * ncols by shift-and-add (no multiplier on the critical path)
        n_items = Signal(32)
        n_bytes = Signal(34)      # the transfer's data bytes, registered as MEM_MUL ends
        mul_a = Signal(32)        # (range-checked operands are <= 4096 each)
        mul_b = Signal(16)
        nrows_is_1 = Signal()     # precomputed (timing)
        ncols_is_1 = Signal()
        empty = Signal()

        shapes = {int(mm): wire.mem_shape(p, mm) for mm in wire.Mem}
        mem_rows = Array(Const(shapes[i][0] if i < 6 else 0, 13) for i in range(8))
        mem_cols = Array(Const(shapes[i][1] if i < 6 else 0, 13) for i in range(8))

        # sample registers
        s_flags = Signal(8)
        s_label = Signal(8)
        op = Signal(8)           # step opcode
        byte_pos = Signal(16)    # offset of the last byte of ``op``, ``cnt`` or ``idx``
        idx_big = Signal()       # idx >= n_in
        idx_dup = Signal()       # idx <= prev (not after the previous index)
        cnt = Signal(14)
        run = Signal(6)
        idx = Signal(8 * iw)
        prev = Signal(8 * iw)
        prev_valid = Signal()
        ib = Signal(range(max(iw, 1) + 1))
        bm_bytes = (p.n_in + 7) // 8
        bm_valid = p.n_in - 8 * (bm_bytes - 1)            # valid bits in the last byte
        bm_last_mask = (0xFF << bm_valid) & 0xFF
        bm = Signal(8)
        bm_b = Signal(3)
        bm_k = Signal(range(bm_bytes + 1))
        bm_last = Signal()       # bm_k == bm_bytes - 1, registered with bm_k (timing)

        def set_bm_k(value):
            m.d.sync += [bm_k.eq(value), bm_last.eq(value == bm_bytes - 1)]

        new_row = item.col_last
        m.d.sync += [
            item_n.row.eq(Mux(new_row, item.row + 1, item.row)),
            item_n.col.eq(Mux(new_row, col0, item.col + 1)),
            item_n.rows_left.eq(Mux(new_row, item.rows_left - 1, item.rows_left)),
            item_n.cols_left.eq(Mux(new_row, ncols, item.cols_left - 1)),
            item_n.row_last.eq(Mux(new_row, item.rows_left == 2, item.row_last)),
            item_n.col_last.eq(Mux(new_row, ncols_is_1, item.cols_left == 2)),
            item_n.last.eq(Mux(new_row, (item.rows_left == 2) & ncols_is_1,
                               item.row_last & (item.cols_left == 2))),
        ]

        def first_item():
            m.d.sync += [item.row.eq(row0), item.col.eq(col0), item.rows_left.eq(nrows),
                         item.cols_left.eq(ncols), item.row_last.eq(nrows_is_1),
                         item.col_last.eq(ncols_is_1), item.last.eq(nrows_is_1 & ncols_is_1),
                         widx.eq(0)]

        def advance_item():
            m.d.sync += [item.eq(item_n), widx.eq(widx + 1)]

        def restart_reader(offset):
            m.d.comb += [rd.start.eq(1), rd.offset.eq(offset)]

        def offer_mem_cmd(write, data=0):
            """Offer the current item's memory command to the core (this cycle)."""
            cmd = self.mem_cmd.payload
            m.d.comb += [self.mem_cmd.valid.eq(1), cmd.write.eq(write), cmd.mem.eq(mem[:3]),
                         cmd.row.eq(row), cmd.col.eq(col), cmd.data.eq(data)]

        token = self.tokens.payload

        flags = Cat(in_sample, busy_q, result_valid, rx_overflow, rx_frame_error, naked,
                    Const(0, 2))
        status_value = _pack([(flags, 1), (last_nak, 1), (last_nak_type, 1), (last_nak_seq, 1),
                              (expected, 1), (prediction, 1), (acks, 4), (naks, 4),
                              (crc_errors, 2), (timeouts, 2)])
        # stage 1: each source's 32-bit word ridx[2:]; stage 2: the source, then the byte
        def words(value, nbytes):
            n = (nbytes + 3) // 4
            return Array(value.as_unsigned()[32 * i:32 * i + 32] for i in range(n))

        # the counters' word in two steps like the others': the counter RAM's read, a register
        m.d.comb += self.counters.addr.eq(ridx[2:])

        identify = int.from_bytes(self.identify, "little")
        rom_word = Signal(32)
        status_word = Signal(32)
        counter_word = Signal(32)
        m.d.sync += [
            rom_word.eq(words(Const(identify, 8 * len(self.identify)),
                              len(self.identify))[ridx[2:]]),
            status_word.eq(words(status_value, wire.STATUS_BYTES)[ridx[2:]]),
            counter_word.eq(self.counters.data),
        ]
        src_words = {SRC_SMALL: small, SRC_ROM: rom_word, SRC_STATUS: status_word,
                     SRC_COUNTERS: counter_word}
        src_word = Array(src_words[i] for i in range(len(src_words)))[rsrc]
        src_byte = src_word.word_select(ridx[:2], 8)
        m.d.sync += [src_q.eq(src_byte), src_ok0.eq(1), src_ok1.eq(src_ok0), src_ok.eq(src_ok1)]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.frame.valid):
                    f = self.frame.payload
                    f_oob = reduce(or_, [f.type == c for c in wire.OUT_OF_BAND])
                    m.d.sync += [desc.eq(f), oob.eq(f_oob),
                                 seq_bad.eq(~f_oob & (f.seq != expected))]
                    m.d.sync += [is_cmd[c].eq(f.type == c) for c in Cmd]
                    m.d.sync += [len_is[v].eq(f.length == v) for v in len_is]
                    m.d.sync += [len_ge[v].eq(f.length >= v) for v in len_ge]
                    restart_reader(0)
                    m.next = "CHECK"

            # one cycle: the target from the flags registered in IDLE (a good frame in
            # sequence whose length suits its type; CONFIGURE and WRITE_WEIGHTS not in a sample)
            with m.State("CHECK"):
                len_ok = {Cmd.IDENTIFY: len_is[0], Cmd.READ_STATUS: len_is[0],
                          Cmd.RESET: len_is[1],
                          Cmd.CONFIGURE: ~in_sample & len_is[wire.HYPER_BYTES],
                          Cmd.WRITE_WEIGHTS: ~in_sample & len_ge[wire.WEIGHT_HEADER_BYTES],
                          Cmd.READ_WEIGHTS: len_is[wire.WEIGHT_HEADER_BYTES],
                          Cmd.SAMPLE: len_ge[2], Cmd.READ_RESULT: len_is[0],
                          Cmd.READ_COUNTERS: len_is[1]}
                ok = {c: is_cmd[c] & len_ok[c] for c in Cmd}
                accept = (desc.status == 0) & ~seq_bad
                m.d.sync += [
                    go.gather.eq(accept & reduce(or_, [
                        ok[c] for c in (Cmd.RESET, Cmd.WRITE_WEIGHTS, Cmd.READ_WEIGHTS,
                                        Cmd.SAMPLE, Cmd.READ_RESULT, Cmd.READ_COUNTERS)])),
                    go.cfg.eq(accept & ok[Cmd.CONFIGURE]),
                    go.identify.eq(accept & ok[Cmd.IDENTIFY]),
                    go.status.eq(accept & ok[Cmd.READ_STATUS]),
                ]
                m.next = "DISPATCH"

            with m.State("DISPATCH"):
                reply_shape(wire.STATUS_BYTES, other=len(self.identify),
                            when=is_cmd[Cmd.IDENTIFY])
                send(Mux(is_cmd[Cmd.IDENTIFY], SRC_ROM, SRC_STATUS),
                     Mux(is_cmd[Cmd.IDENTIFY], len(self.identify), wire.STATUS_BYTES))
                # per-command set-up from the type alone (not behind the checks: timing)
                gather = {Cmd.RESET: 1, Cmd.WRITE_WEIGHTS: wire.WEIGHT_HEADER_BYTES,
                          Cmd.READ_WEIGHTS: wire.WEIGHT_HEADER_BYTES, Cmd.SAMPLE: 2,
                          Cmd.READ_RESULT: 0, Cmd.READ_COUNTERS: 1}
                m.d.sync += [k.eq(0), k_hot.eq(1), s_flags.eq(0), cfg_bad.eq(0),
                             cfg_field.eq(0), theta_nz.eq(0), cfg_chk.eq(cfg_check(0)),
                             gather_n.eq(reduce(or_, [Mux(is_cmd[c], n, 0)
                                                      for c, n in gather.items()])),
                             gathered.eq(is_cmd[Cmd.READ_RESULT])]
                # the reason of a rejection (go all zero), written whatever is decided (timing:
                # no decision in the enables; NAK alone reads it)
                busy = in_sample & (is_cmd[Cmd.CONFIGURE] | is_cmd[Cmd.WRITE_WEIGHTS])
                m.d.sync += [
                    nak_code.eq(Mux(desc.status != 0, desc.status,
                                    Mux(seq_bad, Nak.SEQUENCE,
                                        Mux(~reduce(or_, is_cmd.values()), Nak.UNKNOWN_TYPE,
                                            Mux(busy, Nak.BUSY, Nak.BAD_LENGTH))))),
                    nak_det.eq(Mux((desc.status == 0) & seq_bad, DET_EXPECTED, DET_ZERO)),
                ]
                with m.If(desc.status == Nak.BAD_CRC):
                    m.d.sync += crc_errors.eq(crc_errors + 1)
                with m.If(desc.status == Nak.TIMEOUT):
                    m.d.sync += timeouts.eq(timeouts + 1)
                with m.If((desc.status == 0) & ~seq_bad & ~oob):
                    m.d.sync += expected.eq(desc.seq + 1)

                with m.If(go.gather):
                    m.next = "GATHER"
                with m.Elif(go.cfg):
                    m.next = "CFG_GATHER"
                with m.Elif(go.identify):
                    ack(len(self.identify))
                with m.Elif(go.status):
                    ack(wire.STATUS_BYTES)
                with m.Else():
                    nak(nak_code, written=True)

            with m.State("GATHER"):
                m.d.comb += rd.o.ready.eq(~gathered)
                with m.If(gathered):
                    m.next = "DECODE"
                with m.Elif(rd.o.valid):
                    m.d.sync += [k.eq(k + 1), k_hot.eq(k_hot << 1),
                                 gathered.eq(k == gather_n - 1)]
                    for kk in range(FLD):       # byte k into field byte k (one-hot: timing)
                        with m.If(k_hot[kk]):
                            m.d.sync += fb[kk].eq(byte)

            with m.State("DECODE"):
                reply_shape(4 * len(ALL_COUNTERS), other=0, when=is_cmd[Cmd.RESET])
                send(SRC_COUNTERS, 4 * len(ALL_COUNTERS))
                with m.If(is_cmd[Cmd.RESET]):
                    m.d.sync += [
                        in_sample.eq(0), naked.eq(0), rx_overflow.eq(0),
                        rx_frame_error.eq(0), last_nak.eq(0), last_nak_type.eq(0),
                        last_nak_seq.eq(0), expected.eq(desc.seq + 1),
                        clear.eq(fb[0][0]), reseed.eq(fb[0][1]),
                    ]
                    ack(0)

                with m.Elif(is_cmd[Cmd.WRITE_WEIGHTS] | is_cmd[Cmd.READ_WEIGHTS]
                            | is_cmd[Cmd.READ_RESULT]):
                    with m.If(is_cmd[Cmd.READ_RESULT]):
                        m.d.sync += [mem.eq(Memory.SCORE),
                                     fld.eq(Cat(Const(Memory.SCORE, 8), Const(0, 16),
                                                Const(1, 16), Const(0, 16),
                                                Const(p.n_out, 16)))]
                    with m.Else():
                        m.d.sync += mem.eq(fb[0])
                    m.d.sync += [n_items.eq(0), mul_a.eq(0), mul_b.eq(0)]
                    m.next = "MEM_MUL_START"

                with m.Elif(is_cmd[Cmd.SAMPLE]):
                    m.d.sync += [s_flags.eq(fb[0]), s_label.eq(fb[1]),
                                 exec_pass.eq(0)]
                    with m.If(fb[0][3:] != 0):
                        nak(Nak.PARAM_RANGE)
                    with m.Elif(fb[0][0] & (fb[1] >= p.n_out)):
                        nak(Nak.INDEX_RANGE, DET_ONE)
                    with m.Elif(~fb[0][0] & ~in_sample):
                        nak(Nak.STATE)
                    with m.Else():
                        m.next = "S_HDR"

                with m.Elif(is_cmd[Cmd.READ_COUNTERS]):
                    with m.If(quiet):
                        m.d.sync += clear_after.eq(fb[0][0])
                        ack(4 * len(ALL_COUNTERS))

            # CONFIGURE: a first pass checks each byte against its field's width (and
            # theta >= 1); only when all 27 bytes are valid does a second pass load them.
            with m.State("CFG_GATHER"):
                m.d.comb += rd.o.ready.eq(1)
                with m.If(cfg_chk.end):
                    m.next = "CFG_DECIDE"
                with m.Elif(rd.o.valid):
                    m.d.sync += [k.eq(k + 1), cfg_chk.eq(cfg_check_next[k])]
                    theta_now = theta_nz | (byte != 0)
                    bad = ((byte & cfg_chk.excess) != 0) | (cfg_chk.theta_last & ~theta_now)
                    with m.If(cfg_chk.theta):
                        m.d.sync += theta_nz.eq(theta_now)
                    with m.If(bad & ~cfg_bad):
                        m.d.sync += [cfg_bad.eq(1), cfg_field.eq(cfg_chk.field)]

            with m.State("CFG_DECIDE"):
                with m.If(cfg_bad):
                    nak(Nak.PARAM_RANGE, DET_CFG)
                with m.Elif(quiet):
                    m.d.sync += k_hot.eq(1)
                    restart_reader(0)
                    m.next = "CFG_WRITE"

            # second pass over the validated bytes: straight into the registers
            with m.State("CFG_WRITE"):
                m.d.comb += rd.o.ready.eq(1)
                with m.If(k_hot[-1]):
                    m.next = "CONFIG_RESEED"
                with m.Elif(rd.o.valid):
                    m.d.sync += k_hot.eq(k_hot << 1)
                    for kk, (_, name, b) in enumerate(cfg_positions):
                        keep = cfg_keep[kk]
                        if keep:
                            with m.If(k_hot[kk]):
                                field = getattr(hyper, name)
                                m.d.sync += field[8 * b:8 * b + keep].eq(byte[:keep])

            with m.State("CONFIG_RESEED"):
                reply_shape(0)
                m.d.sync += reseed.eq(1)
                ack(0)

            # -- memory transfers -------------------------------------------------------
            with m.State("MEM_MUL_START"):
                m.d.sync += [
                    mul_a.eq(ncols), mul_b.eq(nrows),
                    chk_mem.eq(Mux(is_write, mem < 3, mem < 6)),
                    chk_range.eq((row0 + nrows <= mem_rows[mem[:3]])
                                 & (col0 + ncols <= mem_cols[mem[:3]])),
                    nrows_is_1.eq(nrows == 1), ncols_is_1.eq(ncols == 1),
                    empty.eq((nrows == 0) | (ncols == 0)),
                ]
                m.next = "MEM_MUL"

            with m.State("MEM_MUL"):
                with m.If(mul_b == 0):
                    m.d.sync += n_bytes.eq(Mux(mem < 3, n_items << (wb - 1), n_items << 2))
                    m.next = "MEM_LEN"
                with m.Else():
                    with m.If(mul_b[0]):
                        m.d.sync += n_items.eq(n_items + mul_a)
                    m.d.sync += [mul_a.eq(mul_a << 1), mul_b.eq(mul_b >> 1)]

            with m.State("MEM_LEN"):
                m.d.sync += [
                    reply_len.eq(n_bytes + Mux(is_result, 2, 0)),
                    chk_big.eq(Mux(is_result, n_bytes > wire.MAX_REPLY - 2,
                                   n_bytes > wire.MAX_REPLY)),
                    chk_len.eq(desc.length == wire.WEIGHT_HEADER_BYTES + n_bytes),  # writes: mem < 3
                    width.eq(Mux(mem < 3, wb, 4)), exec_pass.eq(0), bi.eq(0),
                ]
                first_item()
                m.next = "MEM_CHECK"

            with m.State("MEM_CHECK"):
                reply_shape(reply_len, other=0, when=empty & ~is_result)
                send(SRC_SMALL, 2, Cat(result_valid, Const(0, 7), prediction), then_memory=True)
                bad_range = ~chk_mem | ~chk_range
                m.d.sync += [nak_code.eq(Mux(bad_range, Nak.INDEX_RANGE, Nak.BAD_LENGTH)),
                             nak_det.eq(DET_ZERO)]
                with m.If(bad_range):
                    nak(Nak.INDEX_RANGE, written=True)
                with m.Elif(is_write):
                    with m.If(~chk_len):
                        nak(Nak.BAD_LENGTH, written=True)
                    with m.Elif(empty):
                        ack(0)
                    with m.Else():
                        m.next = "W_BYTE"
                with m.Elif(chk_big):
                    nak(Nak.BAD_LENGTH, written=True)
                with m.Elif(quiet):
                    with m.If(is_result):
                        ack(reply_len, "SEND_PREP")
                    with m.Elif(empty):
                        ack(0)
                    with m.Else():
                        start_reply(reply_len)
                        m.next = "MR_ISSUE"

            with m.State("W_BYTE"):
                m.d.comb += rd.o.ready.eq(1)
                with m.If(rd.o.valid):
                    m.d.sync += word.word_select(bi[:2], 8).eq(byte)
                    with m.If(bi == wb - 1):
                        m.d.sync += bi.eq(0)
                        m.next = "W_FIT"
                    with m.Else():
                        m.d.sync += bi.eq(bi + 1)

            value = word[:8 * wb]
            # the range check, registered for W_CHECK (timing); the pass picks the next state
            # (timing: W_CHECK checks a weight in the first pass, W_ISSUE writes it in the second)
            with m.State("W_FIT"):
                top = value[p.w_bits - 1:]
                m.d.sync += fits.eq((top == 0) | (top == (1 << len(top)) - 1))
                with m.If(exec_pass):
                    m.next = "W_ISSUE"
                with m.Else():
                    m.next = "W_CHECK"

            with m.State("W_CHECK"):
                with m.If(~fits):
                    nak(Nak.WEIGHT_RANGE, DET_WIDX)
                with m.Elif(last_item):
                    m.d.sync += exec_pass.eq(1)
                    first_item()
                    restart_reader(wire.WEIGHT_HEADER_BYTES)
                    m.next = "W_BYTE"
                with m.Else():
                    advance_item()
                    m.next = "W_BYTE"

            with m.State("W_ISSUE"):
                reply_shape(0)
                offer_mem_cmd(1, value.as_signed())
                with m.If(self.mem_cmd.ready):
                    with m.If(last_item):
                        ack(0)
                    with m.Else():
                        advance_item()
                        m.next = "W_BYTE"

            with m.State("MR_ISSUE"):
                offer_mem_cmd(0)
                with m.If(self.mem_cmd.ready):
                    m.next = "MR_WAIT"

            with m.State("MR_WAIT"):
                m.d.comb += self.mem_rsp.ready.eq(1)
                with m.If(self.mem_rsp.valid):
                    m.d.sync += [word.eq(self.mem_rsp.payload), bi.eq(0),
                                 bi_last.eq(width == 1)]
                    m.next = "MR_PUSH"

            with m.State("MR_PUSH"):
                m.d.comb += [self.reply_data.valid.eq(1), self.reply_data.payload.eq(word[:8])]
                with m.If(self.reply_data.ready):
                    m.d.sync += [word.eq(word >> 8), bi.eq(bi + 1), bi_last.eq(bi + 2 == width)]
                    with m.If(bi_last):
                        with m.If(last_item):
                            m.next = "FINISH"
                        with m.Else():
                            advance_item()
                            m.next = "MR_ISSUE"

            # -- samples ----------------------------------------------------------------
            begin, end, learn = s_flags[0], s_flags[1], s_flags[2]

            with m.State("S_HDR"):
                reply_shape(0)
                m.d.comb += rd.o.ready.eq(1)
                with m.If(rd.done):
                    with m.If(~exec_pass):
                        m.d.sync += exec_pass.eq(1)
                        restart_reader(2)
                        with m.If(begin):
                            m.next = "S_START"
                    with m.Elif(end):
                        m.next = "S_END"
                    with m.Else():
                        ack(0)
                with m.Elif(rd.o.valid):
                    m.d.sync += [prev_valid.eq(0), ib.eq(0), idx.eq(0), op.eq(byte),
                                 byte_pos.eq(pos)]
                    m.next = "S_OP"

            # the step opcode in a register (timing)
            with m.State("S_OP"):
                with m.If(~op[7]):
                    m.d.sync += cnt.eq(op[:7])
                    m.next = "S_CNT"
                with m.Elif(~op[6]):
                    m.d.sync += run.eq(op[:6])
                    m.next = "S_RUN"
                with m.Elif(~op[5]):
                    m.d.sync += cnt.eq(Cat(Const(0, 8), op[:5]))
                    m.next = "S_EXT"
                with m.Elif(op == wire.STEP_BITMAP):
                    set_bm_k(0)
                    m.next = "S_BM_BYTE"
                with m.Else():
                    nak(Nak.BAD_STEP, DET_POS, at=byte_pos)

            with m.State("S_EXT"):
                m.d.comb += rd.o.ready.eq(1)
                with m.If(rd.done):
                    nak(Nak.BAD_LENGTH, DET_POS)
                with m.Elif(rd.o.valid):
                    m.d.sync += [cnt.eq(Cat(byte, cnt[8:])), byte_pos.eq(pos)]
                    m.next = "S_CNT"

            # the event count of a step in a register (its last byte at byte_pos)
            with m.State("S_CNT"):
                with m.If(cnt > p.n_in):
                    nak(Nak.TOO_MANY_EVENTS, DET_POS, at=byte_pos)
                with m.Elif(cnt == 0):
                    m.next = "S_STEP"
                with m.Else():
                    m.next = "S_IDX"

            with m.State("S_IDX"):
                m.d.comb += rd.o.ready.eq(1)
                full_idx = Signal(8 * iw)
                if iw == 1:
                    m.d.comb += full_idx.eq(byte)
                else:
                    m.d.comb += full_idx.eq(Mux(ib == 0, byte, Cat(idx[:8], byte)))
                with m.If(rd.done):
                    nak(Nak.BAD_LENGTH, DET_POS)
                with m.Elif(rd.o.valid):
                    m.d.sync += idx.eq(full_idx)
                    with m.If(ib != iw - 1):
                        m.d.sync += ib.eq(ib + 1)
                    with m.Else():
                        m.d.sync += [ib.eq(0), byte_pos.eq(pos)]
                        m.next = "S_IDX_CMP"

            # the index complete in a register (its last byte at byte_pos): range and order
            # compared, then decided on
            with m.State("S_IDX_CMP"):
                m.d.sync += [idx_big.eq(idx >= p.n_in), idx_dup.eq(prev_valid & (idx <= prev))]
                m.next = "S_IDX_CHECK"

            with m.State("S_IDX_CHECK"):
                with m.If(idx_big):
                    nak(Nak.INDEX_RANGE, DET_POS, at=byte_pos)
                with m.Elif(idx_dup):
                    nak(Nak.UNSORTED, DET_POS, at=byte_pos)
                with m.Else():
                    m.d.sync += [prev.eq(idx), prev_valid.eq(1)]
                    with m.If(exec_pass):
                        m.next = "S_EVENT"
                    with m.Else():
                        m.d.sync += cnt.eq(cnt - 1)
                        with m.If(cnt == 1):
                            m.next = "S_STEP"
                        with m.Else():
                            m.next = "S_IDX"

            # bitmap step: ceil(n_in / 8) bytes, bit b of byte k is input 8k + b
            with m.State("S_BM_BYTE"):
                m.d.comb += rd.o.ready.eq(1)
                with m.If(rd.done):
                    nak(Nak.BAD_LENGTH, DET_POS)
                with m.Elif(rd.o.valid):
                    m.d.sync += [bm.eq(byte), bm_b.eq(0)]
                    with m.If(bm_last & ((byte & bm_last_mask) != 0)):
                        nak(Nak.INDEX_RANGE, DET_POS)
                    with m.Elif(exec_pass):
                        m.next = "S_BM_BITS"
                    with m.Elif(bm_last):
                        m.next = "S_STEP"
                    with m.Else():
                        set_bm_k(bm_k + 1)

            with m.State("S_BM_BITS"):
                with m.If(bm == 0):
                    with m.If(bm_last):
                        m.next = "S_STEP"
                    with m.Else():
                        set_bm_k(bm_k + 1)
                        m.next = "S_BM_BYTE"
                with m.Elif(~bm[0]):
                    m.d.sync += [bm.eq(bm >> 1), bm_b.eq(bm_b + 1)]
                with m.Else():
                    m.d.comb += [self.tokens.valid.eq(1), token.kind.eq(TokenKind.EVENT),
                                 token.value.eq(Cat(bm_b, bm_k))]
                    with m.If(self.tokens.ready):
                        m.d.sync += [bm.eq(bm >> 1), bm_b.eq(bm_b + 1)]

            with m.State("S_EVENT"):
                m.d.comb += [self.tokens.valid.eq(1), token.kind.eq(TokenKind.EVENT),
                             token.value.eq(idx)]
                with m.If(self.tokens.ready):
                    m.d.sync += cnt.eq(cnt - 1)
                    with m.If(cnt == 1):
                        m.next = "S_STEP"
                    with m.Else():
                        m.next = "S_IDX"

            with m.State("S_STEP"):
                with m.If(~exec_pass):
                    m.next = "S_HDR"
                with m.Else():
                    m.d.comb += [self.tokens.valid.eq(1), token.kind.eq(TokenKind.STEP)]
                    with m.If(self.tokens.ready):
                        m.next = "S_HDR"

            with m.State("S_RUN"):
                with m.If(~exec_pass):
                    m.next = "S_HDR"
                with m.Else():
                    m.d.comb += [self.tokens.valid.eq(1), token.kind.eq(TokenKind.STEP)]
                    with m.If(self.tokens.ready):
                        m.d.sync += run.eq(run - 1)
                        with m.If(run == 0):
                            m.next = "S_HDR"

            with m.State("S_START"):
                m.d.comb += [self.tokens.valid.eq(1), token.kind.eq(TokenKind.START),
                             token.value.eq(s_label), token.learn.eq(learn)]
                with m.If(self.tokens.ready):
                    m.d.sync += [in_sample.eq(1), result_valid.eq(0)]
                    m.next = "S_HDR"

            with m.State("S_END"):
                m.d.comb += [self.tokens.valid.eq(1), token.kind.eq(TokenKind.END)]
                with m.If(self.tokens.ready):
                    m.next = "S_RESULT"

            with m.State("S_RESULT"):
                m.d.comb += self.result.ready.eq(1)
                with m.If(self.result.valid):
                    m.d.sync += [prediction.eq(self.result.payload.prediction),
                                 result_valid.eq(1), in_sample.eq(0)]
                    m.next = "S_REPLY"

            with m.State("S_REPLY"):
                reply_shape(1)
                send(SRC_SMALL, 1, prediction)
                ack(1)

            # -- replies ----------------------------------------------------------------
            with m.State("NAK"):
                reply_shape(4, nak_reply=1)
                start_reply(4)
                detail = Array([Const(0, 16), nak_pos, expected, widx, cfg_field,
                                Const(1, 16)])[nak_det]
                send(SRC_SMALL, 4, Cat(nak_code, Const(0, 4), desc.type, detail))
                m.d.sync += [
                    naks.eq(naks + 1), naked.eq(1), last_nak.eq(nak_code),
                    last_nak_type.eq(desc.type), last_nak_seq.eq(desc.seq),
                ]
                m.next = "SEND_PREP"

            # the source is set (send): restart its pipeline
            with m.State("SEND_PREP"):
                m.d.sync += [src_ok0.eq(0), src_ok1.eq(0), src_ok.eq(0)]
                m.next = "SEND"

            with m.State("SEND"):
                with m.If(rn_zero):
                    with m.If(then_mem):
                        m.d.sync += bi.eq(0)
                        m.next = "MR_ISSUE"
                    with m.Else():
                        m.next = "FINISH"
                with m.Else():
                    m.d.comb += [self.reply_data.valid.eq(src_ok),
                                 self.reply_data.payload.eq(src_q)]
                    with m.If(src_ok & self.reply_data.ready):
                        m.d.sync += [ridx.eq(ridx + 1), rn.eq(rn - 1), rn_zero.eq(rn == 1),
                                     src_ok0.eq(0), src_ok1.eq(0), src_ok.eq(0)]

            with m.State("FINISH"):
                with m.If(~rp_valid):
                    m.d.comb += self.frame.ready.eq(1)
                    m.d.sync += [clear.eq(clear_after), clear_after.eq(0)]
                    with m.If(~rp_nak):
                        m.d.sync += acks.eq(acks + 1)
                    m.next = "IDLE"
        return m


class ProtocolEngine(wiring.Component):
    """Deframer + frame buffer + command processor + framer.

    Interface attributes
    --------------------
    i : stream.Signature(8), input (bytes from the host)
    o : stream.Signature(8), output (bytes to the host)
    tokens ... core_busy : to/from the learning core (see :class:`CommandProcessor`)
    rx_overflow, rx_frame_error : input pulses; error, in_sample : status outputs
    """

    def __init__(self, params: FixedParams, *, max_payload: int, timeout_cycles: int,
                 identify: bytes):
        self.p = params
        self.max_payload = max_payload
        self.timeout_cycles = timeout_cycles
        self.identify = identify
        super().__init__({
            "i":              In(stream.Signature(8)),
            "o":              Out(stream.Signature(8)),
            **_core_side_members(params),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.deframer = dfr = Deframer(max_payload=self.max_payload,
                                               timeout_cycles=self.timeout_cycles)
        m.submodules.proc = proc = CommandProcessor(self.p, max_payload=self.max_payload,
                                                    identify=self.identify)
        m.submodules.framer = fr = Framer()
        # register slices: received bytes in, reply bytes into the framer (its CRC), frame
        # bytes out
        m.submodules.in_slice = in_slice = SkidBuffer(8)
        m.submodules.reply_slice = reply_slice = SkidBuffer(8)
        m.submodules.out_slice = out_slice = SkidBuffer(8)
        m.submodules.buf = buf = memory.Memory(shape=8, depth=2 * self.max_payload, init=[])
        wp = buf.write_port()
        rp = buf.read_port()
        m.d.comb += [
            wp.addr.eq(dfr.wr_addr), wp.data.eq(dfr.wr_data), wp.en.eq(dfr.wr_en),
            rp.addr.eq(proc.rd_addr), rp.en.eq(proc.rd_en), proc.rd_data.eq(rp.data),
        ]
        connect(m, flipped(self.i), in_slice.i)
        connect(m, in_slice.o, dfr.i)
        connect(m, dfr.frame, proc.frame)
        connect(m, proc.reply, fr.start)
        connect(m, proc.reply_data, reply_slice.i)
        connect(m, reply_slice.o, fr.i)
        connect(m, fr.o, out_slice.i)
        connect(m, out_slice.o, flipped(self.o))
        for name in ("tokens", "mem_cmd", "counters"):
            connect(m, getattr(proc, name), flipped(getattr(self, name)))
        for name in ("result", "mem_rsp"):
            connect(m, flipped(getattr(self, name)), getattr(proc, name))
        m.d.comb += [
            self.hyper.eq(proc.hyper), self.reseed.eq(proc.reseed),
            self.clear_counters.eq(proc.clear_counters),
            proc.core_busy.eq(self.core_busy), proc.rx_overflow.eq(self.rx_overflow),
            proc.rx_frame_error.eq(self.rx_frame_error),
            self.error.eq(proc.error), self.in_sample.eq(proc.in_sample),
        ]
        return m
