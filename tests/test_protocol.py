"""Protocol gateware in Amaranth's simulator: CRC, deframer, framer and the whole Top
(command processor) with the behavioural stand-in core (tests/standin_core.py).

Every rejected frame is checked for its NAK code *and* for having changed nothing: weights
read back unchanged, counters show no step run, and the next good frame works.
"""

import os
import struct
import sys

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

sys.path.insert(0, os.path.dirname(__file__))

from golden.fixed import FixedHyper, FixedParams  # noqa: E402
from hdl.protocol import Deframer, Framer, crc16_update  # noqa: E402
from hdl.top import Top  # noqa: E402
from host import protocol as wire  # noqa: E402
from host.protocol import Cmd, Mem, Nak, crc16, encode_frame  # noqa: E402
from standin_core import StandInCore, standin_prediction  # noqa: E402

P = FixedParams(n_in=20, n_hid=16, n_out=4)   # w_bits = 10: two bytes per weight
MP = 64                                        # small frame buffer banks
TIMEOUT = 300


def run(dut, tb, *, deadline=None):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    if os.environ.get("WAVES", "0") not in ("", "0"):
        with sim.write_vcd("test_protocol.vcd"):
            sim.run()
    else:
        sim.run()


# -- CRC --------------------------------------------------------------------------------------
@pytest.mark.parametrize("nbytes", [1, 4, 5])
def test_crc_network(nbytes):
    rng = np.random.default_rng(nbytes)
    m = Module()
    crc_in = Signal(16)
    data = [Signal(8, name=f"d{k}") for k in range(nbytes)]
    out = Signal(16)
    m.d.comb += out.eq(crc16_update(crc_in, data))

    async def tb(ctx):
        for _ in range(50):
            c = int(rng.integers(0, 1 << 16))
            bs = bytes(int(x) for x in rng.integers(0, 256, nbytes))
            ctx.set(crc_in, c)
            for sig, b in zip(data, bs):
                ctx.set(sig, b)
            assert ctx.get(out) == crc16(bs, c)

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
    assert crc16(b"123456789") == 0x29B1


# -- deframer ---------------------------------------------------------------------------------
def deframe_model(data: bytes, max_payload: int, ends_idle=True):
    """Python twin of the gateware deframer (window hunt; a matched frame is consumed whole)."""
    out, win, i = [], [], 0
    while i < len(data):
        win = (win + [data[i]])[-7:]
        i += 1
        if (len(win) == 7 and win[0] == 0xA5 and win[1] == 0x5A
                and crc16(bytes(win[2:6])) & 0xFF == win[6]):
            length, t, s = win[2] | win[3] << 8, win[4], win[5]
            hcrc = crc16(bytes(win[2:6]))
            win = []
            if length > max_payload:
                out.append((Nak.TOO_LONG, t, s, length, None))
                continue
            body = data[i:i + length + 2]
            i += length + 2
            if len(body) < length + 2:
                out.append((Nak.TIMEOUT, t, s, length, None))
                continue
            ok = crc16(body, hcrc) == 0
            out.append((0 if ok else Nak.BAD_CRC, t, s, length, bytes(body[:length])))
    return out


def test_deframer_random_stream():
    rng = np.random.default_rng(7)
    stream, expect_frames = bytearray(), 0
    for k in range(40):
        kind = rng.choice(["good", "good", "garbage", "badcrc", "toolong"])
        if kind == "garbage":
            stream += bytes(int(x) for x in rng.integers(0, 256, rng.integers(1, 30)))
            stream += b"\xA5" if rng.random() < 0.3 else b""
            continue
        payload = bytes(int(x) for x in rng.integers(0, 256, rng.integers(0, 48)))
        f = bytearray(encode_frame(int(rng.integers(0, 256)), k, payload))
        if kind == "badcrc":
            f[7 + int(rng.integers(0, len(payload) + 2))] ^= 1 << int(rng.integers(0, 8))
        if kind == "toolong":
            f = bytearray(encode_frame(1, k, bytes(100)))
        stream += f
        expect_frames += 1
    stream += encode_frame(0x42, 99, b"tail") + b"\xA5\x5A\x03"   # truncated header: ignored
    trunc = encode_frame(0x43, 100, bytes(range(30)))[:20]           # truncated frame: TIMEOUT
    stream += trunc
    expected = deframe_model(bytes(stream), 48)
    assert len([e for e in expected if e[0] == 0]) >= 10

    dut = Deframer(max_payload=64, timeout_cycles=TIMEOUT)
    # (the model uses 48: frames of 100 must be TOO_LONG, both agree for 48 < L <= 64 not used)
    mem = {}
    got = []

    async def tb(ctx):
        pos = 0
        hold = 0
        idle = 0
        while idle < 3 * TIMEOUT:
            valid = pos < len(stream) and rng.random() < 0.8
            ctx.set(dut.i.valid, valid)
            if valid:
                ctx.set(dut.i.payload, stream[pos])
            if ctx.get(dut.wr_en):
                mem[ctx.get(dut.wr_addr)] = ctx.get(dut.wr_data)
            release = False
            if ctx.get(dut.frame.valid):
                if hold == 0:
                    hold = int(rng.integers(1, 40))
                hold -= 1
                if hold == 0:
                    d = ctx.get(dut.frame.payload)
                    base = d["bank"] * 64
                    payload = (bytes(mem.get(base + k, 0) for k in range(d["length"]))
                               if d["status"] == 0 or d["status"] == Nak.BAD_CRC else None)
                    got.append((d["status"], d["type"], d["seq"], d["length"], payload))
                    release = True
            ctx.set(dut.frame.ready, release)
            accepted = valid and ctx.get(dut.i.ready)
            await ctx.tick()
            if accepted:
                pos += 1
            idle = idle + 1 if pos >= len(stream) and not ctx.get(dut.frame.valid) else 0

    run(dut, tb)
    norm = [(s, t, q, L, p if s == 0 else None) for s, t, q, L, p in got]
    exp = [(s, t, q, L, p if s == 0 else None) for s, t, q, L, p in expected]
    assert norm == exp


# -- framer -----------------------------------------------------------------------------------
def test_framer_matches_encoder():
    rng = np.random.default_rng(3)
    replies = [(int(rng.integers(0, 256)), int(rng.integers(0, 256)),
                bytes(int(x) for x in rng.integers(0, 256, rng.integers(0, 40))))
               for _ in range(12)]
    dut = Framer()
    out = bytearray()

    async def tb(ctx):
        for t, s, payload in replies:
            ctx.set(dut.start.valid, 1)
            ctx.set(dut.start.payload, {"type": t, "seq": s, "length": len(payload)})
            k = 0
            while True:
                ctx.set(dut.i.valid, k < len(payload) and rng.random() < 0.7)
                if k < len(payload):
                    ctx.set(dut.i.payload, payload[k])
                ctx.set(dut.o.ready, rng.random() < 0.7)
                took = ctx.get(dut.i.valid) and ctx.get(dut.i.ready)
                if ctx.get(dut.o.valid) and ctx.get(dut.o.ready):
                    out.append(ctx.get(dut.o.payload))
                done = ctx.get(dut.start.ready)
                await ctx.tick()
                k += took
                if done:
                    break
            ctx.set(dut.start.valid, 0)

    run(dut, tb)
    assert bytes(out) == b"".join(encode_frame(t, s, p) for t, s, p in replies)


# -- the whole Top through the side door ------------------------------------------------------
def make_top(params=P, **kw):
    return Top(params, 4_000_000, 1_000_000, core=StandInCore, max_payload=MP,
               rx_fifo_depth=64, timeout_cycles=TIMEOUT, **kw)


def exchange(script, *, uart=False, settle=2000, max_cycles=400_000, params=P):
    """Send ``script`` (list of bytes chunks or ints = idle cycles) and return the replies.

    ``uart=True`` drives the real serial pins (divisor 4) instead of the side door.
    """
    dut = make_top(params)
    out = bytearray()
    if uart:
        from hdl.uart import AsyncSerialRX, AsyncSerialTX
        m = Module()
        m.submodules.top = dut
        m.submodules.htx = htx = AsyncSerialTX(divisor=4)
        m.submodules.hrx = hrx = AsyncSerialRX(divisor=4)
        m.d.comb += [dut.rx.eq(htx.o), hrx.i.eq(dut.tx), hrx.o.ready.eq(1)]
        src, sink = htx.i, hrx.o
        top = m
    else:
        src, sink = dut.aux_i, dut.aux_o
        top = dut

    async def tb(ctx):
        if not uart:
            ctx.set(dut.aux_en, 1)
            ctx.set(sink.ready, 1)
        quiet = 0
        for item in script:
            if isinstance(item, int):
                for _ in range(item):
                    if ctx.get(sink.valid):
                        out.append(ctx.get(sink.payload))
                    await ctx.tick()
                continue
            data = bytearray(item)
            while data:
                ctx.set(src.valid, 1)
                ctx.set(src.payload, data[0])
                ready = ctx.get(src.ready)
                if ctx.get(sink.valid):
                    out.append(ctx.get(sink.payload))
                await ctx.tick()
                if ready:
                    del data[0]
            ctx.set(src.valid, 0)
        for _ in range(max_cycles):
            if ctx.get(sink.valid):
                out.append(ctx.get(sink.payload))
                quiet = 0
            else:
                quiet += 1
                if quiet > settle:
                    break
            await ctx.tick()

    run(top, tb)
    parser = wire.FrameParser()
    frames = parser.feed(bytes(out))
    assert parser.crc_errors == 0 and not parser.buf
    return frames


class Seq:
    """Builds request frames with consecutive sequence numbers."""

    def __init__(self, start=0):
        self.seq = start

    def __call__(self, cmd, payload=b"", seq=None):
        if seq is None and cmd in (Cmd.IDENTIFY, Cmd.READ_STATUS):
            seq = 0xEE           # out of band: any number, the device's count is unchanged
        if seq is None:
            seq = self.seq
            self.seq = (self.seq + 1) & 0xFF
        return encode_frame(cmd, seq, payload)

    def reset(self):
        return self(Cmd.RESET, b"\x00")


def weights_header(mem, r0, nr, c0, nc):
    return bytes([mem]) + struct.pack("<HHHH", r0, nr, c0, nc)


def weights_payload(mem, r0, c0, block):
    block = np.asarray(block)
    return weights_header(mem, r0, block.shape[0], c0, block.shape[1]) + \
        block.astype("<i2").tobytes()


def ack(frame, cmd):
    assert frame.type == cmd | wire.ACK_BIT, f"expected ACK of {Cmd(cmd).name}, got {frame}"
    return frame.payload


def nak(frame, code, cmd=None):
    assert frame.is_nak, f"expected NAK {Nak(code).name}, got {frame}"
    got, req, detail = frame.nak
    assert got == code, f"expected NAK {Nak(code).name}, got {Nak(got).name}"
    if cmd is not None:
        assert req == cmd
    return detail


def counters(frame):
    return dict(zip(wire.COUNTER_NAMES, np.frombuffer(ack(frame, Cmd.READ_COUNTERS), "<u4")))


def test_identify_status_and_reset():
    s = Seq(5)
    replies = exchange([s(Cmd.IDENTIFY), s.reset(), s(Cmd.READ_STATUS),
                        s(Cmd.READ_COUNTERS, b"\x00")])
    info = wire.parse_identify(ack(replies[0], Cmd.IDENTIFY))
    assert info["version"] == wire.PROTOCOL_VERSION
    # the parameters IDENTIFY carries (not out_lanes, weight_ram: gateware structure only)
    assert info["params"] == {k: (bool(getattr(P, k)) if k == "recurrent" else getattr(P, k))
                              for k, _ in wire.PARAM_FIELDS}
    assert info["max_payload"] == MP and info["timeout_cycles"] == TIMEOUT
    assert info["index_bytes"] == 1 and info["weight_bytes"] == 2
    ack(replies[1], Cmd.RESET)
    st = wire.unpack_fields(wire.STATUS_FIELDS, ack(replies[2], Cmd.READ_STATUS))
    assert st["expected_seq"] == 6 and st["flags"] == 0 and st["acks"] == 2
    c = counters(replies[3])
    assert c["active"] == 1          # the stand-in counts reseeds: one after power-up


def test_weights_roundtrip_and_rejected_writes():
    rng = np.random.default_rng(1)
    w = rng.integers(-512, 512, size=(16, 20))
    s = Seq()
    top_rows = weights_payload(Mem.W, 0, 0, w[:2])              # 2 x 20 = 40 weights
    script = [s.reset()]
    for r0 in range(0, 16, 1):
        script.append(s(Cmd.WRITE_WEIGHTS, weights_payload(Mem.W, r0, 0, w[r0:r0 + 1])))
    script += [
        s(Cmd.READ_WEIGHTS, weights_header(Mem.W, 0, 2, 0, 20)),
        # weight 3 out of the 10-bit range: nothing written
        s(Cmd.WRITE_WEIGHTS, weights_payload(Mem.W, 0, 0,
                                             np.where(np.arange(20) == 3, 600, 7)[None])),
        # one byte short
        s(Cmd.WRITE_WEIGHTS, top_rows[:len(top_rows) // 2 - 1]),
        # rows out of range, columns out of range, read-only memory, bad memory
        s(Cmd.WRITE_WEIGHTS, weights_payload(Mem.W, 15, 0, np.zeros((2, 1)))),
        s(Cmd.WRITE_WEIGHTS, weights_payload(Mem.W, 0, 19, np.zeros((1, 2)))),
        s(Cmd.WRITE_WEIGHTS, weights_payload(Mem.V, 0, 0, np.zeros((1, 1)))),
        s(Cmd.READ_WEIGHTS, weights_header(7, 0, 1, 0, 1)),
        s(Cmd.READ_WEIGHTS, weights_header(8, 0, 1, 0, 1)),       # must not alias W
        s(Cmd.READ_WEIGHTS, weights_header(Mem.W_OUT, 0, 5, 0, 1)),
        s(Cmd.READ_WEIGHTS, weights_header(Mem.W, 0, 2, 0, 20)),
        s(Cmd.WRITE_WEIGHTS, weights_payload(Mem.W_OUT, 1, 2, [[-512, 511], [0, -1]])),
        s(Cmd.READ_WEIGHTS, weights_header(Mem.W_OUT, 0, 4, 0, 4)),
        s(Cmd.READ_WEIGHTS, weights_header(Mem.W, 3, 0, 0, 5)),   # empty block
    ]
    r = exchange(script)
    assert len(r) == len(script)
    for k in range(1, 17):
        ack(r[k], Cmd.WRITE_WEIGHTS)
    first = np.frombuffer(ack(r[17], Cmd.READ_WEIGHTS), "<i2").reshape(2, 20)
    assert np.array_equal(first, w[:2])
    assert nak(r[18], Nak.WEIGHT_RANGE, Cmd.WRITE_WEIGHTS) == 3
    nak(r[19], Nak.BAD_LENGTH)
    for k in (20, 21, 22, 23, 24, 25):
        nak(r[k], Nak.INDEX_RANGE)
    again = np.frombuffer(ack(r[26], Cmd.READ_WEIGHTS), "<i2").reshape(2, 20)
    assert np.array_equal(again, w[:2]), "a rejected write changed the weights"
    ack(r[27], Cmd.WRITE_WEIGHTS)
    wo = np.frombuffer(ack(r[28], Cmd.READ_WEIGHTS), "<i2").reshape(4, 4)
    assert wo[1, 2] == -512 and wo[1, 3] == 511 and wo[2, 2] == 0 and wo[2, 3] == -1
    assert ack(r[29], Cmd.READ_WEIGHTS) == b""


def test_read_longer_than_a_reply_is_rejected():
    # 128 x 256 weights of two bytes: 65,536 bytes, one more than a reply can carry.
    big = FixedParams(n_in=256, n_hid=128, n_out=4)
    s = Seq()
    r = exchange([s.reset(), s(Cmd.READ_WEIGHTS, weights_header(Mem.W, 0, 128, 0, 256)),
                  s(Cmd.READ_WEIGHTS, weights_header(Mem.W, 127, 1, 252, 4))], params=big)
    assert len(r) == 3
    ack(r[0], Cmd.RESET)
    nak(r[1], Nak.BAD_LENGTH, Cmd.READ_WEIGHTS)
    assert len(ack(r[2], Cmd.READ_WEIGHTS)) == 8


def sample(flags, label, steps, n_in=P.n_in):
    return bytes([flags, label]) + wire.encode_steps(steps, n_in)


BEGIN, END, LEARN = wire.SAMPLE_BEGIN, wire.SAMPLE_END, wire.SAMPLE_LEARN


def test_sample_rejections_run_nothing():
    s = Seq()
    good = [[1, 5], [], [], [0, 2, 19], [], [7]]
    bad_payloads = [
        (bytes([BEGIN | END, 1, 2, 5, 5]), Nak.UNSORTED, 4),         # duplicate
        (bytes([BEGIN | END, 1, 2, 6, 5]), Nak.UNSORTED, 4),         # unsorted
        (bytes([BEGIN | END, 1, 1, 3, 1, 20]), Nak.INDEX_RANGE, 5),  # index 20 >= n_in
        (bytes([BEGIN | END, 1, 21]) + bytes(range(21)), Nak.TOO_MANY_EVENTS, 2),
        (bytes([BEGIN | END, 1, 0xC0, 22]) + bytes(range(22)), Nak.TOO_MANY_EVENTS, 3),
        (bytes([BEGIN | END, 1, 3, 1, 2]), Nak.BAD_LENGTH, 5),       # truncated step
        (bytes([BEGIN | END, 1, 0xC0]), Nak.BAD_LENGTH, 3),          # truncated count
        (bytes([BEGIN | END, 4, 0x80]), Nak.INDEX_RANGE, 1),         # label >= n_out
        (bytes([END, 1, 0x80]), Nak.STATE, 0),                       # no open sample
        (bytes([0x08 | BEGIN, 1]), Nak.PARAM_RANGE, 0),              # unknown flag
        (bytes([BEGIN]), Nak.BAD_LENGTH, 0),                         # no label
    ]
    script = [s.reset(), s(Cmd.READ_COUNTERS, b"\x00")]
    for payload, _, _ in bad_payloads:
        script.append(s(Cmd.SAMPLE, payload))
    script += [s(Cmd.READ_COUNTERS, b"\x00"), s(Cmd.READ_STATUS),
               s(Cmd.SAMPLE, sample(BEGIN | END | LEARN, 2, good)),
               s(Cmd.READ_COUNTERS, b"\x00"), s(Cmd.READ_RESULT)]
    r = exchange(script)
    before = counters(r[1])
    for k, (_, code, detail) in enumerate(bad_payloads):
        assert nak(r[2 + k], code, Cmd.SAMPLE) == detail, Nak(code).name
    n = 2 + len(bad_payloads)
    assert counters(r[n]) == before, "a rejected SAMPLE ran something"
    st = wire.unpack_fields(wire.STATUS_FIELDS, ack(r[n + 1], Cmd.READ_STATUS))
    assert st["naks"] == len(bad_payloads) and st["last_nak_code"] == Nak.BAD_LENGTH
    assert st["flags"] & wire.STATUS_NAKED
    pred = ack(r[n + 2], Cmd.SAMPLE)
    assert pred == bytes([standin_prediction(good, 2, P.n_out)])
    after = counters(r[n + 3])
    assert after["samples"] == before["samples"] + 1
    assert after["steps"] == before["steps"] + len(good)
    assert after["input_events"] == before["input_events"] + 6
    res = ack(r[n + 4], Cmd.READ_RESULT)
    assert res[0] == 1 and res[1] == pred[0]
    total = sum(sum(e) for e in good)
    assert list(np.frombuffer(res[2:], "<i4")) == [total - k for k in range(P.n_out)]


def test_bitmap_steps():
    """Dense steps go as bitmaps (0xFF + 3 bytes for 20 inputs); bits beyond n_in are
    rejected; a reserved opcode is BAD_STEP."""
    rng = np.random.default_rng(9)
    steps = [np.flatnonzero(rng.random(P.n_in) < 0.6) for _ in range(6)] + [[], [4]]
    enc = wire.encode_steps(steps, P.n_in)
    assert enc.count(wire.STEP_BITMAP) == 6
    s = Seq()
    r = exchange([s.reset(), s(Cmd.READ_COUNTERS, b"\x01"),
                  s(Cmd.SAMPLE, bytes([BEGIN | END, 1]) + enc),
                  s(Cmd.SAMPLE, bytes([BEGIN | END, 1, 0xFF, 0, 0, 0x10])),   # input 20
                  s(Cmd.SAMPLE, bytes([BEGIN | END, 1, 0xFF, 1, 2])),         # truncated
                  s(Cmd.SAMPLE, bytes([BEGIN | END, 1, 0xE7])),
                  s(Cmd.READ_COUNTERS, b"\x00")])
    assert ack(r[2], Cmd.SAMPLE) == bytes([standin_prediction(steps, 1, P.n_out)])
    assert nak(r[3], Nak.INDEX_RANGE) == 5
    assert nak(r[4], Nak.BAD_LENGTH) == 5
    assert nak(r[5], Nak.BAD_STEP) == 2
    c = counters(r[6])
    assert c["steps"] == len(steps) and c["input_events"] == sum(len(e) for e in steps)


def test_multi_frame_sample_and_busy():
    rng = np.random.default_rng(5)
    steps = [np.flatnonzero(rng.random(P.n_in) < 0.3) for _ in range(150)]
    chunks = wire.split_steps(steps, P.n_in, MP - 2)
    assert len(chunks) >= 3
    s = Seq()
    script = [s.reset(), s(Cmd.READ_COUNTERS, b"\x01")]
    for k, chunk in enumerate(chunks):
        flags = (BEGIN if k == 0 else 0) | (END if k == len(chunks) - 1 else 0)
        script.append(s(Cmd.SAMPLE, bytes([flags, 3]) + chunk))
        if k == 1:   # while the sample is open: no CONFIGURE, no WRITE_WEIGHTS
            script.append(s(Cmd.CONFIGURE, wire.pack_hyper(FixedHyper())))
            script.append(s(Cmd.WRITE_WEIGHTS, weights_payload(Mem.W, 0, 0, [[1]])))
            script.append(s(Cmd.READ_STATUS))
    script.append(s(Cmd.READ_COUNTERS, b"\x00"))
    r = exchange(script)
    replies = iter(r[2:])
    for k in range(len(chunks)):
        f = next(replies)
        if k == len(chunks) - 1:
            assert ack(f, Cmd.SAMPLE) == bytes([standin_prediction(steps, 3, P.n_out)])
        else:
            assert ack(f, Cmd.SAMPLE) == b""
        if k == 1:
            nak(next(replies), Nak.BUSY, Cmd.CONFIGURE)
            nak(next(replies), Nak.BUSY, Cmd.WRITE_WEIGHTS)
            st = wire.unpack_fields(wire.STATUS_FIELDS, ack(next(replies), Cmd.READ_STATUS))
            assert st["flags"] & wire.STATUS_IN_SAMPLE
    c = counters(next(replies))
    assert c["samples"] == 1 and c["steps"] == len(steps)
    assert c["input_events"] == sum(len(e) for e in steps)


def test_configure_validation():
    s = Seq()
    h = FixedHyper(seed=0xDEADBEEF, theta=300)
    bad = [dict(alpha_q=256), dict(theta=0), dict(theta=1 << 15), dict(b_th=256),
           dict(target=1 << 15), dict(g_shift=32), dict(feedback=2)]
    fields = [name for name, _ in wire.HYPER_FIELDS]
    script = [s.reset()]
    for b in bad:
        values = {**h.as_dict(), **b}
        script.append(s(Cmd.CONFIGURE, wire.pack_fields(
            wire.HYPER_FIELDS, {**values, "dense": 0})))
    script += [s(Cmd.CONFIGURE, wire.pack_fields(wire.HYPER_FIELDS, {**h.as_dict(),
                                                                     "dense": 2})),
               s(Cmd.CONFIGURE, wire.pack_hyper(h)[:-1]),
               s(Cmd.READ_COUNTERS, b"\x00"),
               s(Cmd.CONFIGURE, wire.pack_hyper(h, dense=True)),
               s(Cmd.READ_COUNTERS, b"\x00"),
               s(Cmd.READ_WEIGHTS, weights_header(Mem.Y, 0, 1, 0, 2))]
    r = exchange(script)
    for k, b in enumerate(bad):
        assert nak(r[1 + k], Nak.PARAM_RANGE, Cmd.CONFIGURE) == fields.index(next(iter(b)))
    n = 1 + len(bad)
    assert nak(r[n], Nak.PARAM_RANGE) == fields.index("dense")
    nak(r[n + 1], Nak.BAD_LENGTH)
    c0 = counters(r[n + 2])
    assert c0["weight_updates"] == FixedHyper().seed      # registers unchanged
    ack(r[n + 3], Cmd.CONFIGURE)
    c1 = counters(r[n + 4])
    assert c1["weight_updates"] == 0xDEADBEEF and c1["readout_updates"] == 1
    assert c1["active"] == c0["active"] + 1                 # one reseed pulse
    y = np.frombuffer(ack(r[n + 5], Cmd.READ_WEIGHTS), "<i4")
    assert list(y) == [300, 301]                            # stand-in: Y[k] = theta + k


def test_transport_errors_and_recovery():
    s = Seq()
    good = s(Cmd.READ_COUNTERS, b"\x00", seq=1)
    bad_crc = bytearray(good)
    bad_crc[-1] ^= 0x40
    truncated = encode_frame(Cmd.READ_COUNTERS, 1, b"\x00")[:8]
    script = [
        s(Cmd.RESET, b"\x00", seq=0),                       # expected = 1
        bytes(bad_crc),                                     # BAD_CRC, seq not advanced
        good,                                               # seq 1 works
        encode_frame(Cmd.READ_COUNTERS, 5, b"\x00"),        # SEQUENCE (expects 2)
        encode_frame(Cmd.WRITE_WEIGHTS, 2, bytes(MP + 1)),  # TOO_LONG
        b"\x00\xA5\x5A\x13garbage\xA5" * 3,                 # garbage: no reply
        encode_frame(0x55, 2),                              # UNKNOWN_TYPE, advances
        truncated, 3 * TIMEOUT,                             # TIMEOUT
        encode_frame(Cmd.READ_STATUS, 200),                 # out of band: any seq
        encode_frame(Cmd.IDENTIFY, 201),
        encode_frame(Cmd.READ_COUNTERS, 3, b"\x00"),        # expected 3: fine
    ]
    r = exchange(script)
    assert [f.seq for f in r] == [0, 1, 1, 5, 2, 2, 1, 200, 201, 3]
    ack(r[0], Cmd.RESET)
    nak(r[1], Nak.BAD_CRC)
    ack(r[2], Cmd.READ_COUNTERS)
    assert nak(r[3], Nak.SEQUENCE) == 2
    nak(r[4], Nak.TOO_LONG)
    nak(r[5], Nak.UNKNOWN_TYPE, 0x55)
    nak(r[6], Nak.TIMEOUT)
    st = wire.unpack_fields(wire.STATUS_FIELDS, ack(r[7], Cmd.READ_STATUS))
    assert st["expected_seq"] == 3 and st["crc_errors"] == 1 and st["timeouts"] == 1
    assert st["last_nak_code"] == Nak.TIMEOUT
    ack(r[8], Cmd.IDENTIFY)
    ack(r[9], Cmd.READ_COUNTERS)


def test_random_garbage_then_good_frame():
    rng = np.random.default_rng(11)
    junk = bytes(int(x) for x in rng.integers(0, 256, 600))
    s = Seq()
    r = exchange([junk, TIMEOUT + 20, s.reset(), s(Cmd.READ_STATUS)])
    # random bytes almost never form a header (2^-24 per position): nothing but the good
    # frames is answered, possibly preceded by a NAK of an accidental header
    assert [f.type for f in r[-2:]] == [Cmd.RESET | 0x80, Cmd.READ_STATUS | 0x80]


def test_pipelined_frames_in_order():
    """Frames sent back to back (the host's window) are all answered, in order."""
    rng = np.random.default_rng(2)
    s = Seq()
    script, expect = [s.reset()], []
    for k in range(12):
        steps = [np.flatnonzero(rng.random(P.n_in) < 0.2) for _ in range(8)]
        label = int(rng.integers(0, P.n_out))
        script.append(s(Cmd.SAMPLE, sample(BEGIN | END, label, steps)))
        expect.append(standin_prediction(steps, label, P.n_out))
    r = exchange([b"".join(script)])
    assert [f.payload[0] for f in r[1:]] == expect


def test_uart_pins():
    """The same exchange through the real UART pins (divisor 4) instead of the side door."""
    s = Seq()
    r = exchange([s(Cmd.IDENTIFY), s.reset(), s(Cmd.SAMPLE, sample(BEGIN | END, 1, [[3, 4]]))],
                 uart=True, settle=2000)
    assert wire.parse_identify(ack(r[0], Cmd.IDENTIFY))["baud"] == 1_000_000
    ack(r[1], Cmd.RESET)
    assert ack(r[2], Cmd.SAMPLE) == bytes([standin_prediction([[3, 4]], 1, P.n_out)])
