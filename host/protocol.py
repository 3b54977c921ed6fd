"""Wire format of the host link: frames, commands, NAK codes, payload encodings.

Pure Python (no Amaranth), shared by the gateware (``hdl/protocol.py`` imports the numbers
from here) and the host driver. ``host/PROTOCOL.md`` is the byte-level description.

Frame (both directions)::

    A5 5A | LEN_LO LEN_HI | TYPE | SEQ | HCHK | PAYLOAD (LEN bytes) | CRC_HI CRC_LO

``HCHK`` is the low byte of CRC-16/CCITT-FALSE over ``LEN_LO LEN_HI TYPE SEQ``; ``CRC`` is
CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor) over
``LEN_LO LEN_HI TYPE SEQ PAYLOAD`` (not the sync bytes, not HCHK), sent most significant byte
first, so that running the CRC over the whole frame after the sync bytes, HCHK skipped,
leaves 0.
"""

import enum
import struct
from dataclasses import dataclass

import numpy as np

PROTOCOL_VERSION = 2
MAGIC = b"SNNL"
SYNC = b"\xA5\x5A"
HEADER_BYTES = 7      # sync(2) len(2) type seq hchk
TRAILER_BYTES = 2     # crc
OVERHEAD = HEADER_BYTES + TRAILER_BYTES


class Cmd(enum.IntEnum):
    """Request types (host -> device). The ACK reply has type ``0x80 | cmd``."""
    IDENTIFY = 0x01       #: -> identify block
    RESET = 0x02          #: flags(1) -> ()
    CONFIGURE = 0x03      #: hyper block(27) -> ()
    WRITE_WEIGHTS = 0x04  #: mem row0 nrows col0 ncols (9) + values -> ()
    READ_WEIGHTS = 0x05   #: mem row0 nrows col0 ncols (9) -> values
    SAMPLE = 0x06         #: flags label + steps -> (prediction if END)
    READ_RESULT = 0x07    #: () -> valid prediction score[n_out] (int32)
    READ_COUNTERS = 0x08  #: flags(1) -> counters (14 x u32)
    READ_STATUS = 0x09    #: () -> status block


#: Commands accepted whatever their sequence number (they never advance it).
OUT_OF_BAND = (Cmd.IDENTIFY, Cmd.READ_STATUS, Cmd.RESET)

ACK_BIT = 0x80
NAK_TYPE = 0xFF


class Nak(enum.IntEnum):
    """Reason codes of a NAK reply (payload: code, request type, detail u16)."""
    BAD_CRC = 0x01          #: frame CRC mismatch (transport; nothing executed)
    TOO_LONG = 0x02         #: LEN above the device's max_payload (transport)
    TIMEOUT = 0x03          #: frame truncated: no byte for timeout_cycles (transport)
    SEQUENCE = 0x04         #: SEQ is not the expected one (detail: expected seq)
    UNKNOWN_TYPE = 0x05     #: no such command
    BAD_LENGTH = 0x06       #: payload length wrong for the command (detail: offset)
    INDEX_RANGE = 0x07      #: memory / row / column / event index / label out of range
    TOO_MANY_EVENTS = 0x08  #: more events in one step than inputs (detail: offset)
    UNSORTED = 0x09         #: event indices of a step not strictly increasing
    PARAM_RANGE = 0x0A      #: CONFIGURE field out of range (detail: field number)
    WEIGHT_RANGE = 0x0B     #: a weight does not fit in w_bits (detail: weight number)
    BUSY = 0x0C             #: not allowed while a sample is open (CONFIGURE, WRITE)
    STATE = 0x0D            #: SAMPLE continuation without an open sample
    BAD_STEP = 0x0E         #: reserved step opcode (detail: offset)


#: NAKs caused by the transport: the frame was not delivered and SEQ did not advance.
TRANSPORT_NAKS = (Nak.BAD_CRC, Nak.TOO_LONG, Nak.TIMEOUT, Nak.SEQUENCE)


class Mem(enum.IntEnum):
    """Memories of READ_WEIGHTS / WRITE_WEIGHTS (same numbers as ``hdl.interface.Memory``)."""
    W = 0
    W_OUT = 1
    B = 2
    V = 3
    SCORE = 4
    Y = 5


WRITABLE = (Mem.W, Mem.W_OUT, Mem.B)

# SAMPLE flags
SAMPLE_BEGIN = 0x01
SAMPLE_END = 0x02
SAMPLE_LEARN = 0x04

# RESET / READ_COUNTERS flags
RESET_CLEAR_COUNTERS = 0x01
RESET_RESEED = 0x02
COUNTERS_CLEAR = 0x01

# READ_STATUS flag bits
STATUS_IN_SAMPLE = 0x01
STATUS_CORE_BUSY = 0x02
STATUS_RESULT_VALID = 0x04
STATUS_RX_OVERFLOW = 0x08
STATUS_RX_FRAME_ERROR = 0x10
STATUS_NAKED = 0x20

COUNTER_NAMES = ("samples", "steps", "input_events", "syn_ops", "spikes", "active",
                 "weight_updates", "readout_updates",
                 "cyc_accumulate", "cyc_neuron", "cyc_readout", "cyc_gradient",
                 "cyc_trace", "cyc_busy")

#: CONFIGURE payload fields in order: (name, bytes). Little endian, unsigned.
HYPER_FIELDS = (("alpha_q", 2), ("lam_q", 2), ("kappa_q", 2), ("theta", 4), ("b_th", 2),
                ("target", 4), ("l_shift", 1), ("psi_shift", 1), ("g_shift", 1),
                ("go_shift", 1), ("feedback", 1), ("seed", 4), ("rule", 1), ("dense", 1))
HYPER_BYTES = sum(n for _, n in HYPER_FIELDS)

#: FixedParams fields in the IDENTIFY block, in order: (name, bytes).
PARAM_FIELDS = (("n_in", 2), ("n_hid", 2), ("n_out", 1), ("recurrent", 1), ("lanes", 1),
                ("w_bits", 1), ("v_bits", 1), ("tr_bits", 1), ("tr_frac", 1), ("y_bits", 1),
                ("l_bits", 1), ("psi_bits", 1), ("decay_frac", 1), ("score_bits", 1),
                ("shift_bits", 1), ("otpe", 1), ("z_bits", 1), ("gsum_bits", 1), ("c_frac", 1),
                ("recip_frac", 1))
#: IDENTIFY block: magic(4) version(1) params... then link fields (name, bytes).
LINK_FIELDS = (("max_payload", 2), ("rx_fifo_depth", 2), ("index_bytes", 1),
               ("weight_bytes", 1), ("n_counters", 1), ("clk_freq", 4), ("baud", 4),
               ("timeout_cycles", 4))
IDENTIFY_BYTES = 5 + sum(n for _, n in PARAM_FIELDS) + sum(n for _, n in LINK_FIELDS)

#: READ_STATUS block: (name, bytes).
STATUS_FIELDS = (("flags", 1), ("last_nak_code", 1), ("last_nak_type", 1),
                 ("last_nak_seq", 1), ("expected_seq", 1), ("prediction", 1),
                 ("acks", 4), ("naks", 4), ("crc_errors", 2), ("timeouts", 2))
STATUS_BYTES = sum(n for _, n in STATUS_FIELDS)

WEIGHT_HEADER_BYTES = 9  # mem(1) row0(2) nrows(2) col0(2) ncols(2)
MAX_REPLY = 0xFFFF


# -- CRC ------------------------------------------------------------------------------------
def _crc_table():
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_CRC_TABLE = _crc_table()


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (check value of b"123456789" is 0x29B1)."""
    table = _CRC_TABLE
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ b]
    return crc


# -- frames ---------------------------------------------------------------------------------
def encode_frame(ftype: int, seq: int, payload: bytes = b"") -> bytes:
    """One frame (either direction)."""
    if len(payload) > 0xFFFF:
        raise ValueError(f"payload must be at most 65535 bytes, not {len(payload)}")
    head = struct.pack("<HBB", len(payload), ftype & 0xFF, seq & 0xFF)
    hcrc = crc16(head)
    crc = crc16(payload, hcrc)
    return SYNC + head + bytes([hcrc & 0xFF]) + bytes(payload) + struct.pack(">H", crc)


@dataclass
class Frame:
    type: int
    seq: int
    payload: bytes

    @property
    def is_nak(self) -> bool:
        return self.type == NAK_TYPE

    @property
    def nak(self) -> tuple:
        """(code, request type, detail) of a NAK."""
        code, req, detail = struct.unpack("<BBH", self.payload[:4])
        return code, req, detail


class FrameParser:
    """Incremental frame parser with resynchronisation (same rules as the gateware).

    Feed bytes with :meth:`feed`; complete frames with a good CRC come out of it. Frames
    with a bad header check are skipped byte by byte; a bad CRC drops the frame
    (``crc_errors`` counts them).
    """

    def __init__(self, max_payload: int = MAX_REPLY):
        self.buf = bytearray()
        self.max_payload = max_payload
        self.crc_errors = 0
        self.garbage = 0

    def feed(self, data: bytes) -> list:
        self.buf += data
        out = []
        buf = self.buf
        while True:
            i = buf.find(SYNC)
            if i < 0:
                keep = 1 if buf[-1:] == SYNC[:1] else 0
                self.garbage += len(buf) - keep
                del buf[:len(buf) - keep]
                break
            if i:
                self.garbage += i
                del buf[:i]
            if len(buf) < HEADER_BYTES:
                break
            length, ftype, seq = struct.unpack_from("<HBB", buf, 2)
            hcrc = crc16(buf[2:6])
            if (hcrc & 0xFF) != buf[6] or length > self.max_payload:
                del buf[:1]
                self.garbage += 1
                continue
            total = HEADER_BYTES + length + TRAILER_BYTES
            if len(buf) < total:
                break
            payload = bytes(buf[HEADER_BYTES:HEADER_BYTES + length])
            crc = crc16(payload, hcrc)
            if struct.unpack_from(">H", buf, HEADER_BYTES + length)[0] != crc:
                self.crc_errors += 1
                del buf[:1]
                continue
            del buf[:total]
            out.append(Frame(ftype, seq, payload))
        return out


# -- payloads -------------------------------------------------------------------------------
def pack_fields(fields, values: dict) -> bytes:
    out = bytearray()
    for name, n in fields:
        out += int(values[name]).to_bytes(n, "little")
    return bytes(out)


def unpack_fields(fields, data: bytes) -> dict:
    out, pos = {}, 0
    for name, n in fields:
        out[name] = int.from_bytes(data[pos:pos + n], "little")
        pos += n
    return out


def pack_hyper(hyper, dense: bool = False) -> bytes:
    values = dict(hyper.as_dict()) if hasattr(hyper, "as_dict") else dict(hyper)
    values["dense"] = int(bool(dense))
    for name, n in HYPER_FIELDS:
        v = int(values[name])
        if not 0 <= v < (1 << (8 * n)):
            raise ValueError(f"{name} must fit in {n} unsigned bytes, not {v!r}")
    return pack_fields(HYPER_FIELDS, values)


def identify_block(params, *, max_payload, rx_fifo_depth, clk_freq, baud,
                   timeout_cycles) -> bytes:
    """The IDENTIFY reply payload for a build."""
    values = {name: int(getattr(params, name)) for name, _ in PARAM_FIELDS}
    values.update(max_payload=max_payload, rx_fifo_depth=rx_fifo_depth,
                  index_bytes=index_bytes(params.n_in), weight_bytes=weight_bytes(params.w_bits),
                  n_counters=len(COUNTER_NAMES), clk_freq=clk_freq, baud=baud,
                  timeout_cycles=timeout_cycles)
    return (MAGIC + bytes([PROTOCOL_VERSION]) + pack_fields(PARAM_FIELDS, values)
            + pack_fields(LINK_FIELDS, values))


def parse_identify(payload: bytes) -> dict:
    if len(payload) < 5 or payload[:4] != MAGIC:
        raise ValueError(f"not an identify block: {payload[:8]!r}")
    info = {"version": payload[4]}
    pos = 5
    params = unpack_fields(PARAM_FIELDS, payload[pos:])
    pos += sum(n for _, n in PARAM_FIELDS)
    params["recurrent"] = bool(params["recurrent"])
    params["otpe"] = bool(params["otpe"])
    info["params"] = params
    info.update(unpack_fields(LINK_FIELDS, payload[pos:]))
    return info


def index_bytes(n_in: int) -> int:
    """Bytes per event index on the wire."""
    return 1 if n_in <= 256 else 2


def weight_bytes(w_bits: int) -> int:
    """Bytes per weight on the wire (two's complement, little endian)."""
    return 1 if w_bits <= 8 else 2


def mem_shape(params, mem: int) -> tuple:
    """(rows, cols) of a memory as the device addresses it."""
    p = params
    n_pre = p.n_in + (p.n_hid if p.recurrent else 0)
    return {Mem.W: (p.n_hid, n_pre), Mem.W_OUT: (p.n_out, p.n_hid), Mem.B: (p.n_hid, p.n_out),
            Mem.V: (1, p.n_hid), Mem.SCORE: (1, p.n_out), Mem.Y: (1, p.n_out)}[Mem(mem)]


def mem_width(params, mem: int) -> int:
    """Bytes per element of a memory on the wire."""
    return weight_bytes(params.w_bits) if Mem(mem) in WRITABLE else 4


# -- spike steps ----------------------------------------------------------------------------
#: Step-stream opcodes (first byte of each item):
#:   0x00-0x7F  one step with c = byte events; c indices follow
#:   0x80-0xBF  (byte & 0x3F) + 1 consecutive empty steps
#:   0xC0-0xDF  one step with c = ((byte & 0x1F) << 8) | next byte events; c indices follow
#:   0xFF       one step as a bitmap: ceil(n_in / 8) bytes, bit b of byte k = input 8k + b
#:   0xE0-0xFE  reserved (NAK BAD_STEP)
MAX_RUN = 64
MAX_EXT_COUNT = 0x1FFF
STEP_BITMAP = 0xFF


def step_cost(c: int, n_in: int) -> int:
    """Bytes of one non-empty step: the shorter of the index list and the bitmap."""
    iw = index_bytes(n_in)
    listed = (1 if c < 0x80 else 2) + c * iw
    return min(listed, 1 + (n_in + 7) // 8)


def encode_steps(step_events, n_in: int) -> bytes:
    """Encode a list of per-step event index arrays (ascending, distinct) into a step stream."""
    iw = index_bytes(n_in)
    out = bytearray()
    empty = 0

    def flush():
        nonlocal empty
        while empty:
            run = min(empty, MAX_RUN)
            out.append(0x80 | (run - 1))
            empty -= run

    nb = (n_in + 7) // 8
    for ev in step_events:
        ev = np.asarray(ev, dtype=np.int64)
        c = int(ev.size)
        if c == 0:
            empty += 1
            continue
        flush()
        if 1 + nb < (1 if c < 0x80 else 2) + c * iw:
            bits = np.zeros(nb * 8, dtype=np.uint8)
            bits[ev] = 1
            out.append(STEP_BITMAP)
            out += np.packbits(bits, bitorder="little").tobytes()
            continue
        if c < 0x80:
            out.append(c)
        else:
            out += bytes([0xC0 | (c >> 8), c & 0xFF])
        if iw == 1:
            out += ev.astype(np.uint8).tobytes()
        else:
            out += ev.astype("<u2").tobytes()
    flush()
    return bytes(out)


def raster_steps(raster) -> list:
    """Per-step ascending input indices of a ``[T, n_in]`` 0/1 raster."""
    raster = np.asarray(raster)
    t, i = np.nonzero(raster)
    bounds = np.searchsorted(t, np.arange(raster.shape[0] + 1))
    return [i[bounds[k]:bounds[k + 1]] for k in range(raster.shape[0])]


def split_steps(step_events, n_in: int, max_bytes: int) -> list:
    """Split a sample's steps into step-stream chunks of at most ``max_bytes`` each."""
    chunks, cur, cur_len, empty = [], [], 0, 0
    for ev in step_events:
        c = len(ev)
        if c == 0:
            # an empty run costs one byte per MAX_RUN steps
            cost = 1 if empty % MAX_RUN == 0 else 0
            empty += 1
        else:
            cost = step_cost(c, n_in)
            empty = 0
        if cost > max_bytes:
            raise ValueError(f"a step with {c} events needs {cost} bytes, more than a frame "
                             f"can carry ({max_bytes})")
        if cur_len + cost > max_bytes:
            chunks.append(cur)
            cur, cur_len = [], 0
            if c == 0:
                cost, empty = 1, 1
        cur.append(ev)
        cur_len += cost
    chunks.append(cur)
    return [encode_steps(ch, n_in) for ch in chunks]


def decode_steps(data: bytes, n_in: int) -> list:
    """Inverse of :func:`encode_steps` (for tests); raises ``ValueError`` on bad input."""
    iw = index_bytes(n_in)
    steps, pos = [], 0
    while pos < len(data):
        h = data[pos]
        pos += 1
        if 0x80 <= h < 0xC0:
            steps += [np.zeros(0, dtype=np.int64)] * ((h & 0x3F) + 1)
            continue
        if h == STEP_BITMAP:
            nb = (n_in + 7) // 8
            if pos + nb > len(data):
                raise ValueError("truncated bitmap")
            bits = np.unpackbits(np.frombuffer(data[pos:pos + nb], np.uint8), bitorder="little")
            steps.append(np.flatnonzero(bits).astype(np.int64))
            pos += nb
            continue
        if h < 0x80:
            c = h
        elif h < 0xE0:
            if pos >= len(data):
                raise ValueError("truncated count")
            c = ((h & 0x1F) << 8) | data[pos]
            pos += 1
        else:
            raise ValueError(f"reserved step opcode 0x{h:02x}")
        if pos + c * iw > len(data):
            raise ValueError("truncated indices")
        ev = np.frombuffer(data[pos:pos + c * iw], dtype=np.uint8 if iw == 1 else "<u2")
        pos += c * iw
        steps.append(ev.astype(np.int64))
    return steps
