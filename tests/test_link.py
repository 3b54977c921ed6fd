"""The link end to end on the virtual board (real LearningCore in Verilator, TCP bridge).

Raw frames: corrupted, truncated, random, oversize, out of range, a port closing in the
middle of a sample: each answered with its NAK code (or ignored as garbage), nothing
changed on the device, the next good frame works. Then the driver's go-back-N recovery
with injected faults, checked bit for bit against golden.fixed.FixedCore.
"""

import os
import sys
import time

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

from host import protocol as wire  # noqa: E402
from host.device import Device, LinkError  # noqa: E402
from host.protocol import Cmd, Mem, Nak  # noqa: E402
from vboard_util import HYPER, P, Raw, golden_core, make_board, rasters, sample_weights  # noqa

WEIGHTS = sample_weights(1)


@pytest.fixture(scope="module")
def board():
    with make_board() as vb:
        yield vb


def connect(board):
    return Device.open(board.url, params=P, timeout=10)


@pytest.fixture()
def loaded(board):
    """Registers and weights loaded; the connection is closed again (the board takes one
    serial client at a time, as a serial port would)."""
    with connect(board) as d:
        d.configure(HYPER)
        d.load_weights(*WEIGHTS)
        d.read_counters(clear=True)
    return board


def assert_weights_unchanged(dev_or_board):
    if isinstance(dev_or_board, Device):
        got = dev_or_board.dump_weights()
    else:
        with connect(dev_or_board) as d:
            got = d.dump_weights()
    for name, ref in zip(("w", "w_out", "b"), WEIGHTS):
        assert np.array_equal(got[name], ref), f"{name} changed"


def w_frame(raw, r0, block, mem=Mem.W):
    block = np.asarray(block)
    head = bytes([mem]) + np.array([r0, block.shape[0], 0, block.shape[1]], "<u2").tobytes()
    return raw.frame(Cmd.WRITE_WEIGHTS, head + block.astype("<i2").tobytes())


def test_corrupted_and_truncated_frames(board, loaded):
    raw = Raw(board.url)
    raw.reset()
    rng = np.random.default_rng(0)
    good_block = rng.integers(-300, 300, size=(2, P.n_pre))
    frames = []
    # payload bit errors: BAD_CRC, seq not advanced, nothing written
    for k in range(4):
        f = bytearray(w_frame(raw, 0, good_block))
        raw.seq = (raw.seq - 1) & 0xFF
        pos = 7 + int(rng.integers(0, len(f) - 7))
        f[pos] ^= 1 << int(rng.integers(0, 8))
        frames.append(bytes(f))
    # a header bit error: the frame is garbage (no reply), the next frame is found
    f = bytearray(w_frame(raw, 0, good_block))
    raw.seq = (raw.seq - 1) & 0xFF
    f[4] ^= 0x10
    frames.append(bytes(f))
    frames.append(raw.frame(Cmd.READ_COUNTERS, b"\x00"))
    raw.send(b"".join(frames))
    r = raw.replies(5)
    for f in r[:4]:
        assert f.is_nak and f.nak[0] == Nak.BAD_CRC
    assert r[4].type == Cmd.READ_COUNTERS | wire.ACK_BIT
    assert raw.quiet()
    # truncated: the rest never comes, the inter-byte timeout answers
    raw.send(w_frame(raw, 0, good_block)[:25])
    (t,) = raw.replies(1)
    assert t.is_nak and t.nak[0] == Nak.TIMEOUT
    raw.seq = (raw.seq - 1) & 0xFF          # not delivered: the number is still expected
    st = raw.call(Cmd.READ_STATUS, seq=0x77)
    status = wire.unpack_fields(wire.STATUS_FIELDS, st.payload)
    assert status["crc_errors"] >= 4 and status["timeouts"] >= 1
    assert status["expected_seq"] == raw.seq
    raw.close()
    assert_weights_unchanged(board)


def sample_verdict(payload, n_in, n_out, in_sample):
    """Python reference of the device's SAMPLE validation: (code, detail) or None."""
    if len(payload) < 2:
        return Nak.BAD_LENGTH, 0
    flags, label = payload[0], payload[1]
    if flags & 0xF8:
        return Nak.PARAM_RANGE, 0
    if flags & 1 and label >= n_out:
        return Nak.INDEX_RANGE, 1
    if not flags & 1 and not in_sample:
        return Nak.STATE, 0
    d, pos = payload, 2
    while pos < len(d):
        h = d[pos]
        if h < 0x80:
            if h > n_in:
                return Nak.TOO_MANY_EVENTS, pos
            c, pos = h, pos + 1
        elif h < 0xC0:
            pos += 1
            continue
        elif h == wire.STEP_BITMAP:
            nb = (n_in + 7) // 8
            for k in range(nb):
                pos += 1
                if pos >= len(d):
                    return Nak.BAD_LENGTH, pos
                if k == nb - 1 and d[pos] >> (n_in - 8 * k):
                    return Nak.INDEX_RANGE, pos
            pos += 1
            continue
        elif h >= 0xE0:
            return Nak.BAD_STEP, pos
        else:
            pos += 1
            if pos >= len(d):
                return Nak.BAD_LENGTH, pos
            c = ((h & 0x1F) << 8) | d[pos]
            if c > n_in:
                return Nak.TOO_MANY_EVENTS, pos
            pos += 1
        prev = -1
        for _ in range(c):
            if pos >= len(d):
                return Nak.BAD_LENGTH, pos
            if d[pos] >= n_in:
                return Nak.INDEX_RANGE, pos
            if d[pos] <= prev:
                return Nak.UNSORTED, pos
            prev = d[pos]
            pos += 1
    return None


def random_sample_payload(rng):
    flags = int(rng.choice([3, 7, 3, 1, 5, 2, 0, 6, 0x0B]))
    label = int(rng.choice([0, 1, 2, 3, 3, 4, 9]))
    body = bytearray()
    for _ in range(int(rng.integers(0, 8))):
        kind = rng.random()
        if kind < 0.2:
            body.append(0x80 | int(rng.integers(0, 64)))
            continue
        if kind < 0.3:
            bits = rng.random(24) < 0.4                          # 3 bytes for n_in = 20
            if rng.random() < 0.7:
                bits[P.n_in:] = False
            body.append(wire.STEP_BITMAP)
            body += np.packbits(bits, bitorder="little").tobytes()
            continue
        if kind < 0.33:
            body.append(int(rng.integers(0xE0, 0xFF)))          # reserved opcode
            continue
        c = int(rng.choice([0, 1, 2, 3, 5, 20, 21, 30]))
        idx = sorted(rng.choice(P.n_in, size=min(c, P.n_in), replace=False).tolist())
        idx += [int(x) for x in rng.integers(0, P.n_in, size=max(0, c - P.n_in))]
        if rng.random() < 0.15 and len(idx) > 1:
            idx[0], idx[1] = idx[1], idx[0]                      # unsorted
        if rng.random() < 0.1 and idx:
            idx[-1] = int(rng.integers(P.n_in, 256))           # out of range
        if rng.random() < 0.1 and len(idx) > 1:
            idx[1] = idx[0]                                    # duplicate
        body += bytes([0xC0, c]) if rng.random() < 0.2 else bytes([min(c, 0x7F)])
        body += bytes(idx)
    if rng.random() < 0.15 and body:
        body = body[:int(rng.integers(0, len(body)))]          # truncated
    return bytes([flags, label]) + bytes(body)


def test_random_sample_frames_match_reference_and_golden(board, loaded):
    """Random (mostly invalid) SAMPLE payloads: every NAK code and detail equals the Python
    reference; the valid ones run on the core and agree with the golden model."""
    rng = np.random.default_rng(42)
    gold = golden_core(WEIGHTS)
    raw = Raw(board.url, seq=100)
    raw.reset()
    in_sample = False
    stats = {"ok": 0}
    for _ in range(200):
        payload = random_sample_payload(rng)
        verdict = sample_verdict(payload, P.n_in, P.n_out, in_sample)
        r = raw.call(Cmd.SAMPLE, payload)
        if verdict is not None:
            assert r.is_nak, (payload.hex(), verdict, r)
            code, req, detail = r.nak
            assert (code, detail) == verdict, (payload.hex(), Nak(code).name, detail)
            stats[Nak(code).name] = stats.get(Nak(code).name, 0) + 1
            continue
        assert r.type == Cmd.SAMPLE | wire.ACK_BIT, (payload.hex(), r)
        stats["ok"] += 1
        flags, label = payload[0], payload[1]
        if flags & wire.SAMPLE_BEGIN:
            gold.start_sample(label, bool(flags & wire.SAMPLE_LEARN))
        for events in wire.decode_steps(payload[2:], P.n_in):
            gold.step(events)
        in_sample = True
        if flags & wire.SAMPLE_END:
            assert r.payload == bytes([gold.end_sample()])
            in_sample = False
        else:
            assert r.payload == b""
    raw.close()
    for code in ("UNSORTED", "INDEX_RANGE", "TOO_MANY_EVENTS", "BAD_LENGTH", "STATE",
                 "PARAM_RANGE", "BAD_STEP"):
        assert stats.get(code, 0) > 0, f"no {code} case generated: {stats}"
    assert stats["ok"] >= 15, stats
    with connect(board) as dev:
        got = dev.dump_weights()
        counters = dev.read_counters()
    assert np.array_equal(got["w"], gold.w) and np.array_equal(got["w_out"], gold.w_out)
    assert counters["steps"] == gold.counters.steps


def test_oversize_and_out_of_range(board, loaded):
    raw = Raw(board.url, seq=7)
    raw.reset()
    mp = wire.parse_identify(raw.call(Cmd.IDENTIFY, seq=1).payload)["max_payload"]
    too_long = raw.frame(Cmd.SAMPLE, bytes([3, 0]) + bytes([0x80]) * (mp - 1))
    raw.seq = (raw.seq - 1) & 0xFF
    raw.send(too_long)
    (r,) = raw.replies(1)
    assert r.is_nak and r.nak[0] == Nak.TOO_LONG
    too_many = bytes([3, 0, P.n_in + 1]) + bytes(range(P.n_in + 1))
    r = raw.call(Cmd.SAMPLE, too_many)
    assert r.nak[0] == Nak.TOO_MANY_EVENTS
    r = raw.call(Cmd.SAMPLE, bytes([3, 0, 2, 3, P.n_in]))
    assert r.nak[:3:2] == (Nak.INDEX_RANGE, 4)
    r = raw.call(Cmd.WRITE_WEIGHTS, bytes([Mem.W]) + np.array([P.n_hid, 1, 0, 1], "<u2")
                 .tobytes() + b"\x00\x00")
    assert r.nak[0] == Nak.INDEX_RANGE
    r = raw.call(Cmd.READ_WEIGHTS, bytes([Mem.W]) + np.array([0, 1, P.n_pre - 1, 2], "<u2")
                 .tobytes())
    assert r.nak[0] == Nak.INDEX_RANGE
    r = raw.call(Cmd.WRITE_WEIGHTS, bytes([Mem.W_OUT]) + np.array([0, 1, 0, 2], "<u2")
                 .tobytes() + np.array([5, 1000], "<i2").tobytes())
    assert r.nak == (Nak.WEIGHT_RANGE, Cmd.WRITE_WEIGHTS, 1)
    r = raw.call(Cmd.READ_COUNTERS, b"\x00")
    assert r.type == Cmd.READ_COUNTERS | wire.ACK_BIT
    raw.close()
    assert_weights_unchanged(board)


def test_port_closes_mid_sample(board, loaded):
    """A host that dies in the middle of a sample (and of a frame) leaves a device that the
    next connection can use at once: RESET aborts the sample, nothing else changed."""
    X, y = rasters(2, steps=400, rate=0.2, seed=3)
    with connect(board) as dev:
        frames = dev.sample_frames(X[0], int(y[0]), learn=False)
        before = dev.read_counters()
    assert len(frames) >= 3
    raw = Raw(board.url, seq=50)
    raw.reset()
    raw.send(raw.frame(Cmd.SAMPLE, frames[0]))
    assert raw.replies(1)[0].type == Cmd.SAMPLE | wire.ACK_BIT
    f = raw.frame(Cmd.SAMPLE, frames[1])
    raw.send(f[:len(f) // 2])
    raw.close()                                      # gone, mid-sample and mid-frame
    time.sleep(0.5)
    dev2 = Device.open(board.url, params=P, timeout=10)
    try:
        st = dev2.read_status()
        assert not st["in_sample"]                   # Device.open sent RESET
        assert st["timeouts"] >= 1                   # the half frame was dropped
        after = dev2.read_counters()
        assert after["samples"] == before["samples"]
        steps_run = after["steps"] - before["steps"]
        assert steps_run == len(wire.decode_steps(frames[0][2:], P.n_in))
        assert_weights_unchanged(dev2)
        # the next sample is computed exactly as on a fresh core
        gold = golden_core(WEIGHTS)
        pred = dev2.run_sample(X[1], int(y[1]), learn=True)
        assert pred == gold.run_sample(X[1], int(y[1]), True)
        got = dev2.dump_weights()
        assert np.array_equal(got["w"], gold.w) and np.array_equal(got["w_out"], gold.w_out)
    finally:
        dev2.close()


def test_garbage_flood_then_good_frame(board, loaded):
    raw = Raw(board.url, seq=9)
    raw.reset()
    rng = np.random.default_rng(5)
    raw.send(bytes(int(x) for x in rng.integers(0, 256, 3000)))
    time.sleep(0.4)                                  # let a stray header time out
    raw.read(0)
    raw.parser = wire.FrameParser()
    st = raw.call(Cmd.READ_STATUS, seq=0x55)
    assert st.type == Cmd.READ_STATUS | wire.ACK_BIT
    raw.seq = wire.unpack_fields(wire.STATUS_FIELDS, st.payload)["expected_seq"]
    r = raw.call(Cmd.READ_COUNTERS, b"\x00")
    assert r.type == Cmd.READ_COUNTERS | wire.ACK_BIT
    raw.close()
    assert_weights_unchanged(board)


# -- driver recovery with injected faults ---------------------------------------------------
class FlakyPort:
    """Wraps a pyserial port: corrupts chosen outgoing frames, drops chosen replies."""

    def __init__(self, port, corrupt=(), drop=()):
        self.port = port
        self.corrupt = set(corrupt)      # indices of written frames to damage
        self.drop = set(drop)            # indices of reply frames to swallow
        self.written = 0
        self.replies = 0
        self.parser = wire.FrameParser()
        self.pending = b""

    @property
    def timeout(self):
        return self.port.timeout

    @timeout.setter
    def timeout(self, value):
        self.port.timeout = value

    def write(self, data):
        if self.written in self.corrupt and len(data) > 9:
            data = bytearray(data)
            data[-1] ^= 0x01                                 # CRC error
            data = bytes(data)
        self.written += 1
        return self.port.write(data)

    def read(self, n):
        if not self.pending:
            data = self.port.read(n)
            out = b""
            for f in self.parser.feed(data):
                if self.replies not in self.drop:
                    out += wire.encode_frame(f.type, f.seq, f.payload)
                self.replies += 1
            self.pending = out
        data, self.pending = self.pending[:n], self.pending[n:]
        return data

    def flush(self):
        self.port.flush()

    def close(self):
        self.port.close()


def open_flaky(url, **faults):
    import serial
    port = FlakyPort(serial.serial_for_url(url, timeout=0.05), **faults)
    return Device(port, params=P, timeout=1.0)


def test_go_back_n_after_corrupted_frames(board):
    X, y = rasters(12, steps=30, rate=0.2, seed=8)
    # frames: IDENTIFY, RESET, CONFIGURE, 4 weight writes..., then samples; corrupt three
    dev = open_flaky(board.url, corrupt={12, 17, 18})
    try:
        dev.configure(HYPER)
        dev.load_weights(*WEIGHTS)
        preds = dev.run_epoch(X, y, learn=True)
        gold = golden_core(WEIGHTS)
        assert list(preds) == [gold.run_sample(x, int(lab), True) for x, lab in zip(X, y)]
        got = dev.dump_weights()
        assert np.array_equal(got["w"], gold.w) and np.array_equal(got["w_out"], gold.w_out)
        assert dev.stats["recoveries"] >= 1 and dev.stats["nak_bad_crc"] >= 1
    finally:
        dev.close()


def test_lost_replies(board):
    X, y = rasters(3, steps=20, rate=0.2, seed=9)
    dev = open_flaky(board.url, drop={3})          # the ACK of the first weight write
    try:
        dev.configure(HYPER)
        dev.load_weights(*WEIGHTS)                  # recovered: the write was executed
        assert dev.stats["recoveries"] == 1
        assert_weights_unchanged(dev)
        dev.port.drop = {dev.port.replies + 1}     # the prediction of the second sample
        dev.run_sample(X[0], int(y[0]), learn=False)
        with pytest.raises(LinkError, match="reply was lost"):
            dev.run_sample(X[1], int(y[1]), learn=False)
        assert dev.run_sample(X[2], int(y[2]), learn=False) in range(P.n_out)
    finally:
        dev.close()
