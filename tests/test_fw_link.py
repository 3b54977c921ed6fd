"""The firmware's host link (fw/link.c with the real fw/snn.c) on the native board
(fw/native_board.py: the firmware as a host process behind a TCP socket, no simulator).

Mirrors tests/test_host.py, tests/test_board.py and tests/test_link.py: IDENTIFY, CONFIGURE
range checks, weight transfers, SAMPLE validation with offsets, transport errors
(garbage, bad CRC, TOO_LONG, sequence numbers, timeouts, closed connections, receive FIFO
overflow), READ_STATUS, pipelining through host.device.Device; learning compared bit for bit
with golden.fixed.FixedCore. Three builds: SMALL (recurrent, OTPE, 2-byte weights), WIDE
(2-byte event indices, 1-byte weights, no OTPE) and the default 50/128/10.
"""

import os
import signal
import struct
import sys
import time
from dataclasses import replace

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

from fw.native_board import NativeBoard, identify_rx_depth  # noqa: E402
from golden.fixed import COUNTERS, FixedCore, FixedHyper, FixedParams, init_weights  # noqa
from host import protocol as wire  # noqa: E402
from host.device import Device, LinkError, ParamOutOfRange, ShapeMismatch  # noqa: E402
from host.protocol import Cmd, Mem, Nak  # noqa: E402
from vboard_util import Raw  # noqa: E402

SMALL = FixedParams(n_in=13, n_hid=8, n_out=3, recurrent=True)
WIDE = FixedParams(n_in=300, n_hid=4, n_out=2, w_bits=8, otpe=False)
DEFAULT = FixedParams()
HYPER = FixedHyper(seed=12345, theta=96, b_th=40, target=96, g_shift=14, go_shift=12)
CLK, BAUD, MAX_PAYLOAD, FIFO = 48_000_000, 3_000_000, 512, 2048
TIMEOUT_CYCLES = CLK // 20                       # 50 ms
WINDOW = identify_rx_depth(FIFO, MAX_PAYLOAD)    # IDENTIFY's rx_fifo_depth


@pytest.fixture(scope="module")
def small_board():
    with NativeBoard(SMALL) as nb:
        yield nb


@pytest.fixture(scope="module")
def wide_board():
    with NativeBoard(WIDE) as nb:
        yield nb


@pytest.fixture(scope="module")
def default_board():
    with NativeBoard(DEFAULT) as nb:
        yield nb


# -- helpers --------------------------------------------------------------------------------
def weights_for(p, seed):
    """Weights that make a small net spike and learn."""
    rng = np.random.default_rng(seed)
    hi = min(60, (1 << (p.w_bits - 1)) - 1)
    return (rng.integers(-20, hi, size=(p.n_hid, p.n_pre)),
            rng.integers(-40, 40, size=(p.n_out, p.n_hid)),
            rng.integers(-40, 40, size=(p.n_hid, p.n_out)))


def rasters(p, n, steps, rate, seed):
    rng = np.random.default_rng(seed)
    return ((rng.random((n, steps, p.n_in)) < rate).astype(np.uint8),
            rng.integers(0, p.n_out, n))


def golden(p, weights, hyper=HYPER):
    core = FixedCore(p, hyper)
    core.load_weights(*weights)
    return core


def setup(url, p, weights, hyper=HYPER):
    """Registers, weights and cleared counters on the board (the connection is closed)."""
    with Device.open(url, params=p, timeout=10) as d:
        d.configure(hyper)
        d.load_weights(*weights)
        d.read_counters(clear=True)


def status(raw, seq=0x5A):
    r = raw.call(Cmd.READ_STATUS, seq=seq)
    assert r.type == Cmd.READ_STATUS | wire.ACK_BIT and r.seq == seq
    return wire.unpack_fields(wire.STATUS_FIELDS, r.payload)


def nak(r):
    assert r.is_nak, r
    return r.nak


def ack(r, cmd):
    assert r.type == cmd | wire.ACK_BIT, r
    return r.payload


def w_head(mem, r0, nr, c0, nc):
    return bytes([mem]) + struct.pack("<HHHH", r0, nr, c0, nc)


def dump(url, p):
    with Device.open(url, params=p, timeout=10) as d:
        return d.dump_weights(), d.read_counters()


def assert_same_as(url, p, gold):
    got, counters = dump(url, p)
    for name in ("w", "w_out", "b"):
        assert np.array_equal(got[name], getattr(gold, name)), name
    assert {k: counters[k] for k in COUNTERS} == gold.counters.as_dict()


def header_positions(data: bytes) -> list:
    """Offsets where the 7-byte window holds a valid header."""
    return [i for i in range(len(data) - 6)
            if data[i] == 0xA5 and data[i + 1] == 0x5A
            and wire.crc16(data[i + 2:i + 6]) & 0xFF == data[i + 6]]


def sample_verdict(payload, p, in_sample):
    """Reference of the SAMPLE checks (PROTOCOL.md section 6): (code, detail) or None."""
    n_in, iw, nb, d, n = p.n_in, wire.index_bytes(p.n_in), (p.n_in + 7) // 8, payload, len(payload)
    flags, label = d[0], d[1]
    if flags & 0xF8:
        return Nak.PARAM_RANGE, 0
    if flags & 1 and label >= p.n_out:
        return Nak.INDEX_RANGE, 1
    if not flags & 1 and not in_sample:
        return Nak.STATE, 0
    pos = 2
    while pos < n:
        at, h = pos, d[pos]
        pos += 1
        if 0x80 <= h < 0xC0:
            continue
        if h == wire.STEP_BITMAP:
            for k in range(nb):
                if pos >= n:
                    return Nak.BAD_LENGTH, n
                if k == nb - 1 and d[pos] >> (n_in - 8 * k):
                    return Nak.INDEX_RANGE, pos
                pos += 1
            continue
        if h >= 0xE0:
            return Nak.BAD_STEP, at
        if h >= 0xC0:
            if pos >= n:
                return Nak.BAD_LENGTH, n
            at, c = pos, ((h & 0x1F) << 8) | d[pos]
            pos += 1
        else:
            c = h
        if c > n_in:
            return Nak.TOO_MANY_EVENTS, at
        prev = -1
        for _ in range(c):
            if pos + iw > n:
                return Nak.BAD_LENGTH, n
            idx = int.from_bytes(d[pos:pos + iw], "little")
            pos += iw
            if idx >= n_in:
                return Nak.INDEX_RANGE, pos - 1
            if idx <= prev:
                return Nak.UNSORTED, pos - 1
            prev = idx
    return None


def random_sample_payload(rng, p):
    """Mostly invalid SAMPLE payloads: every kind of step, and every kind of mistake."""
    iw, nb = wire.index_bytes(p.n_in), (p.n_in + 7) // 8
    flags = int(rng.choice([3, 7, 3, 1, 5, 2, 0, 6, 0x0B, 0x13]))
    label = int(rng.choice([0, 1, p.n_out - 1, p.n_out, 200]))
    body = bytearray()
    for _ in range(int(rng.integers(0, 8))):
        kind = rng.random()
        if kind < 0.2:
            body.append(0x80 | int(rng.integers(0, 64)))
            continue
        if kind < 0.32:
            bits = rng.random(8 * nb) < 0.4
            if rng.random() < 0.7:
                bits[p.n_in:] = False
            body.append(wire.STEP_BITMAP)
            body += np.packbits(bits, bitorder="little").tobytes()
            continue
        if kind < 0.35:
            body.append(int(rng.integers(0xE0, 0xFF)))          # reserved opcode
            continue
        c = int(rng.choice([0, 1, 2, 3, 5, p.n_in, p.n_in + 1, 0x7F, 0x1FFF]))
        idx = sorted(rng.choice(p.n_in, size=min(c, p.n_in, 40), replace=False).tolist())
        if c > p.n_in:
            idx += [int(x) for x in rng.integers(0, p.n_in, size=min(c - p.n_in, 5))]
        if rng.random() < 0.15 and len(idx) > 1:
            idx[0], idx[1] = idx[1], idx[0]                      # unsorted
        if rng.random() < 0.1 and idx:
            idx[-1] = int(rng.integers(p.n_in, 1 << (8 * iw)))  # out of range
        if rng.random() < 0.1 and len(idx) > 1:
            idx[1] = idx[0]                                     # duplicate
        if c >= 0x80 or rng.random() < 0.2:
            body += bytes([0xC0 | (c >> 8), c & 0xFF])
        else:
            body.append(c)
        for i in idx:
            body += int(i).to_bytes(iw, "little")
    if rng.random() < 0.15 and body:
        body = body[:int(rng.integers(0, len(body)))]          # truncated
    return bytes([flags, label]) + bytes(body)


# -- IDENTIFY, status, process --------------------------------------------------------------
@pytest.mark.parametrize("which", ["small", "wide", "default"])
def test_identify_block(request, which):
    nb = request.getfixturevalue(f"{which}_board")
    raw = Raw(nb.url)
    r = raw.call(Cmd.IDENTIFY, seq=0x42)
    assert r.type == Cmd.IDENTIFY | wire.ACK_BIT and r.seq == 0x42
    assert r.payload == wire.identify_block(nb.params, max_payload=MAX_PAYLOAD,
                                            rx_fifo_depth=WINDOW, clk_freq=CLK, baud=BAUD,
                                            timeout_cycles=TIMEOUT_CYCLES)
    raw.close()
    with Device.open(nb.url, params=nb.params, timeout=10) as dev:      # checks the params
        assert dev.window_bytes == FIFO - (MAX_PAYLOAD + 9) - 32
        assert dev.info["weight_bytes"] == (1 if nb.params.w_bits <= 8 else 2)
        assert dev.info["index_bytes"] == (2 if nb.params.n_in > 256 else 1)


def test_status_block_exact():
    """READ_STATUS field by field through a known history (a fresh board)."""
    w = weights_for(SMALL, 3)
    with NativeBoard(SMALL) as nb:
        raw = Raw(nb.url)
        assert raw.call(Cmd.READ_STATUS, seq=0x33).payload == bytes(wire.STATUS_BYTES)
        ack(raw.call(Cmd.RESET, b"\x00", seq=9), Cmd.RESET)              # expected 10
        raw.seq = 10
        for k, block in enumerate(w):
            head = w_head(k, 0, block.shape[0], 0, block.shape[1])
            ack(raw.call(Cmd.WRITE_WEIGHTS, head + block.astype("<i2").tobytes()),
                Cmd.WRITE_WEIGHTS)
        ack(raw.call(Cmd.CONFIGURE, wire.pack_hyper(HYPER)), Cmd.CONFIGURE)   # expected 14
        assert nak(raw.call(Cmd.READ_COUNTERS, b"\x00", seq=20)) == (Nak.SEQUENCE,
                                                                       Cmd.READ_COUNTERS, 14)
        bad = bytearray(raw.frame(Cmd.READ_COUNTERS, b"\x00", seq=14))
        bad[-1] ^= 0x40
        raw.send(bytes(bad))
        assert nak(raw.replies(1)[0]) == (Nak.BAD_CRC, Cmd.READ_COUNTERS, 0)
        gold = golden(SMALL, w)
        gold.start_sample(2, True)
        ack(raw.call(Cmd.SAMPLE, bytes([wire.SAMPLE_BEGIN | wire.SAMPLE_LEARN, 2])), Cmd.SAMPLE)
        st = raw.call(Cmd.READ_STATUS, seq=0x34).payload
        assert st == struct.pack("<6B2I2H", 0x21, Nak.BAD_CRC, Cmd.READ_COUNTERS, 14, 15, 0,
                                 7, 2, 1, 0)
        steps = [[1, 5, 12], [], [0, 2], [3]] * 5
        for ev in steps:
            gold.step(ev)
        pred = gold.end_sample()
        r = raw.call(Cmd.SAMPLE, bytes([wire.SAMPLE_END, 0]) + wire.encode_steps(steps, 13))
        assert ack(r, Cmd.SAMPLE) == bytes([pred])
        st = raw.call(Cmd.READ_STATUS, seq=0x35).payload
        assert st == struct.pack("<6B2I2H", 0x24, Nak.BAD_CRC, Cmd.READ_COUNTERS, 14, 16, pred,
                                 9, 2, 1, 0)
        ack(raw.call(Cmd.RESET, b"\x00", seq=0xFF), Cmd.RESET)           # expected 0 (wraps)
        st = raw.call(Cmd.READ_STATUS, seq=0x36).payload
        assert st == struct.pack("<6B2I2H", 0x04, 0, 0, 0, 0, pred, 11, 2, 1, 0)
        raw.close()
        assert_same_as(nb.url, SMALL, gold)


def test_process_stops_cleanly_and_one_client_at_a_time(small_board):
    for sig in (signal.SIGTERM, signal.SIGINT):
        nb = NativeBoard(SMALL).start()
        try:
            with Device.open(nb.url, params=SMALL, timeout=10) as dev:
                dev.configure(HYPER)
            nb.proc.send_signal(sig)
            assert nb.proc.wait(10) == 0
        finally:
            nb.stop()
    a = Device.open(small_board.url, params=SMALL, timeout=5)
    b = Device.open(small_board.url, params=SMALL, timeout=5)     # replaces a
    with pytest.raises(LinkError):
        a.read_counters()
    a.close()
    assert b.identify()["params"]["n_hid"] == SMALL.n_hid
    b.close()


# -- CONFIGURE ------------------------------------------------------------------------------
def bad_hyper_values(p):
    """Per CONFIGURE field number: values just (and far) out of range."""
    one, shift = 1 << p.decay_frac, 1 << p.shift_bits
    return {0: [one, 0xFFFF], 1: [one], 2: [one], 3: [0, 1 << (p.v_bits - 1), 0xFFFFFFFF],
            4: [1 << p.psi_bits, 0xFFFF], 5: [1 << (p.y_bits - 1), 0x80000000],
            6: [shift, 0xFF], 7: [shift], 8: [shift], 9: [shift], 10: [2, 0xFF],
            12: [2 if p.otpe else 1, 0xFF], 13: [2, 0x80]}


def max_hyper_values(p):
    one, shift = (1 << p.decay_frac) - 1, (1 << p.shift_bits) - 1
    return dict(alpha_q=one, lam_q=one, kappa_q=one, theta=(1 << (p.v_bits - 1)) - 1,
                b_th=(1 << p.psi_bits) - 1, target=(1 << (p.y_bits - 1)) - 1, l_shift=shift,
                psi_shift=shift, g_shift=shift, go_shift=shift, feedback=1, seed=0xFFFFFFFF,
                rule=1 if p.otpe else 0, dense=1)


@pytest.mark.parametrize("which", ["small", "wide"])
def test_configure_range_checks_change_nothing(request, which):
    """Every field out of range: NAK PARAM_RANGE with the field number (the first bad one);
    the registers and the generators are untouched (the learning that follows equals the
    golden model's without those frames); the largest legal values are accepted."""
    nb = request.getfixturevalue(f"{which}_board")
    p = nb.params
    w = weights_for(p, 4)
    setup(nb.url, p, w)
    gold = golden(p, w)
    X, y = rasters(p, 2, 25, 0.15, seed=5)
    fields = [name for name, _ in wire.HYPER_FIELDS]
    with Device.open(nb.url, params=p, timeout=10) as dev:
        assert dev.run_sample(X[0], int(y[0]), True) == gold.run_sample(X[0], int(y[0]), True)
        values = {**HYPER.as_dict(), "dense": 0}
        for field, bads in bad_hyper_values(p).items():
            for bad in bads:
                payload = wire.pack_fields(wire.HYPER_FIELDS, {**values, fields[field]: bad})
                with pytest.raises(ParamOutOfRange) as exc:
                    dev.send_configure_raw(payload)
                assert exc.value.detail == field, (fields[field], bad)
        payload = wire.pack_fields(wire.HYPER_FIELDS, {**values, "target": 1 << 20,
                                                       "g_shift": 99, "theta": 0})
        with pytest.raises(ParamOutOfRange) as exc:
            dev.send_configure_raw(payload)                # several bad: the first one
        assert exc.value.detail == 3
        assert dev.run_sample(X[1], int(y[1]), True) == gold.run_sample(X[1], int(y[1]), True)
        assert dev.read_status()["last_nak"] == "PARAM_RANGE"
        dev.send_configure_raw(wire.pack_fields(wire.HYPER_FIELDS, max_hyper_values(p)))
        dev.configure(FixedHyper())                        # the golden defaults fit
        final = replace(HYPER, rule=1, g_shift=17) if p.otpe else HYPER
        dev.configure(final)                               # every register loaded again
        gold.configure(final)
        X, y = rasters(p, 2, 25, 0.15, seed=6)
        assert list(dev.run_epoch(X, y, learn=True)) == \
            [gold.run_sample(x, int(lab), True) for x, lab in zip(X, y)]
    assert_same_as(nb.url, p, gold)


# -- weights --------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["small", "wide"])
def test_weights_roundtrip_and_range_errors(request, which):
    nb = request.getfixturevalue(f"{which}_board")
    p = nb.params
    wb = wire.weight_bytes(p.w_bits)
    dtype = "<i2" if wb == 2 else "i1"
    lo, hi = -(1 << (p.w_bits - 1)), (1 << (p.w_bits - 1)) - 1
    rng = np.random.default_rng(6)
    with Device.open(nb.url, params=p, timeout=10) as dev:
        mems = {}
        for mem in (Mem.W, Mem.W_OUT, Mem.B):
            shape = dev.mem_shape(mem)
            values = rng.integers(lo, hi + 1, size=shape)
            values.flat[:2] = lo, hi
            dev.write_weights(mem, values)
            assert np.array_equal(dev.read_weights(mem), values)
            mems[mem] = values
        block = rng.integers(lo, hi + 1, size=(2, 3))
        dev.write_weights(Mem.W, block, row0=1, col0=p.n_pre - 3)
        mems[Mem.W][1:3, -3:] = block
        assert np.array_equal(dev.read_weights(Mem.W, slice(1, 3), slice(p.n_pre - 3, None)),
                              block)
        for mem in (Mem.V, Mem.SCORE, Mem.Y):
            assert dev.read_weights(mem).shape == dev.mem_shape(mem)
        rows, cols = dev.mem_shape(Mem.W)
        n = rows * cols
    raw = Raw(nb.url, seq=30)
    raw.reset()
    cases = [
        (Cmd.WRITE_WEIGHTS, w_head(Mem.V, 0, 1, 0, 1) + bytes(wb), (Nak.INDEX_RANGE, 0)),
        (Cmd.WRITE_WEIGHTS, w_head(7, 0, 1, 0, 1) + bytes(wb), (Nak.INDEX_RANGE, 0)),
        (Cmd.WRITE_WEIGHTS, w_head(Mem.W, rows - 1, 2, 0, 1) + bytes(2 * wb),
         (Nak.INDEX_RANGE, 0)),
        (Cmd.WRITE_WEIGHTS, w_head(Mem.W, rows + 1, 0, 0, 0), (Nak.INDEX_RANGE, 0)),
        (Cmd.WRITE_WEIGHTS, w_head(Mem.B, 0, 1, p.n_out - 1, 2) + bytes(2 * wb),
         (Nak.INDEX_RANGE, 0)),
        (Cmd.WRITE_WEIGHTS, w_head(Mem.W_OUT, 0, 1, 0, 2) + bytes(wb), (Nak.BAD_LENGTH, 0)),
        (Cmd.WRITE_WEIGHTS, w_head(Mem.W_OUT, 0, 1, 0, 2) + bytes(3 * wb), (Nak.BAD_LENGTH, 0)),
        (Cmd.READ_WEIGHTS, w_head(6, 0, 1, 0, 1), (Nak.INDEX_RANGE, 0)),
        (Cmd.READ_WEIGHTS, w_head(Mem.Y, 0, 1, p.n_out, 1), (Nak.INDEX_RANGE, 0)),
        (Cmd.READ_WEIGHTS, w_head(Mem.V, 1, 1, 0, 1), (Nak.INDEX_RANGE, 0)),
        (Cmd.READ_WEIGHTS, w_head(Mem.W, 0, 1, 0, cols + 1), (Nak.INDEX_RANGE, 0)),
    ]
    for cmd, payload, verdict in cases:
        code, req, detail = nak(raw.call(cmd, payload))
        assert (code, detail) == verdict and req == cmd, (payload.hex(), Nak(code).name)
    if wb == 2:
        # a bad weight anywhere (its number k): nothing of the frame is written
        for k in (0, 5, n - 1):
            block = np.zeros(n, dtype=np.int64)
            block[k] = hi + 1 if k % 2 else lo - 1
            r = raw.call(Cmd.WRITE_WEIGHTS, w_head(Mem.W, 0, rows, 0, cols)
                         + block.astype("<i2").tobytes())
            assert nak(r) == (Nak.WEIGHT_RANGE, Cmd.WRITE_WEIGHTS, k)
        # sign extension from 16 bits: 0x0200 is +512, 0xFDFF is -513
        for data, k in ((b"\x00\x02\x00\x00", 0), (b"\x00\x00\xFF\xFD", 1)):
            r = raw.call(Cmd.WRITE_WEIGHTS, w_head(Mem.W_OUT, 0, 1, 0, 2) + data)
            assert nak(r) == (Nak.WEIGHT_RANGE, Cmd.WRITE_WEIGHTS, k)
    # empty blocks: ACK, nothing to read or write
    assert ack(raw.call(Cmd.WRITE_WEIGHTS, w_head(Mem.W, rows, 0, 0, 5)), Cmd.WRITE_WEIGHTS) == b""
    assert ack(raw.call(Cmd.READ_WEIGHTS, w_head(Mem.B, 0, 3, 0, 0)), Cmd.READ_WEIGHTS) == b""
    r = raw.call(Cmd.READ_WEIGHTS, w_head(Mem.W_OUT, 1, 1, 2, 2))
    assert ack(r, Cmd.READ_WEIGHTS) == mems[Mem.W_OUT][1, 2:4].astype(dtype).tobytes()
    raw.close()
    with Device.open(nb.url, params=p, timeout=10) as dev:
        for mem, values in mems.items():
            assert np.array_equal(dev.read_weights(mem), values), mem
        with pytest.raises(ShapeMismatch):
            dev.write_weights(Mem.W, np.full((1, 1), hi + 1))


# -- learning, bit exact --------------------------------------------------------------------
@pytest.mark.parametrize("rule,feedback", [(0, 0), (1, 1)])
def test_learning_bit_exact_small(small_board, rule, feedback):
    """Pipelined online learning: predictions, scores, V, y, weights and the 8 model
    counters equal golden.fixed.FixedCore's (OTTT with symmetric feedback, approximate OTPE
    with the random feedback matrix B)."""
    hyper = replace(HYPER, rule=rule, feedback=feedback, g_shift=17 if rule else 14)
    w = weights_for(SMALL, 2 + rule)
    setup(small_board.url, SMALL, w, hyper)
    gold = golden(SMALL, w, hyper)
    with Device.open(small_board.url, params=SMALL, timeout=10) as dev:
        X, y = rasters(SMALL, 24, 40, 0.15, seed=1 + rule)
        preds = dev.run_epoch(X, y, learn=True)
        assert list(preds) == [gold.run_sample(x, int(lab), True) for x, lab in zip(X, y)]
        Xt, yt = rasters(SMALL, 6, 40, 0.15, seed=7)
        preds, scores = dev.run_epoch(Xt, yt, learn=False, scores=True)
        for x, lab, pred, score in zip(Xt, yt, preds, scores):
            assert pred == gold.run_sample(x, int(lab), False)
            assert np.array_equal(score, gold.score)
        xl, yl = rasters(SMALL, 1, 600, 0.4, seed=3)           # several frames
        assert len(dev.sample_frames(xl[0], int(yl[0]), True)) > 2
        assert dev.run_sample(xl[0], int(yl[0]), True) == gold.run_sample(xl[0], int(yl[0]),
                                                                          True)
        pred, score = dev.read_result()
        assert pred == int(np.argmax(gold.score)) and np.array_equal(score, gold.score)
        assert np.array_equal(dev.read_weights(Mem.V)[0], gold.v)
        assert np.array_equal(dev.read_weights(Mem.Y)[0], gold.y)
        assert np.array_equal(dev.read_weights(Mem.SCORE)[0], gold.score)
        assert dev.stats["recoveries"] == 0
    assert_same_as(small_board.url, SMALL, gold)
    assert gold.counters.spikes > 0 and gold.counters.weight_updates > 0


def test_learning_bit_exact_wide(wide_board):
    """Two-byte event indices, one-byte weights, a build without OTPE."""
    w = weights_for(WIDE, 8)
    setup(wide_board.url, WIDE, w)
    gold = golden(WIDE, w)
    with Device.open(wide_board.url, params=WIDE, timeout=10) as dev:
        X, y = rasters(WIDE, 6, 30, 0.03, seed=2)              # index lists (2 bytes each)
        X[2, ::3] = (np.random.default_rng(0).random((10, WIDE.n_in)) < 0.5)  # bitmaps
        preds = dev.run_epoch(X, y, learn=True)
        assert list(preds) == [gold.run_sample(x, int(lab), True) for x, lab in zip(X, y)]
        assert np.array_equal(dev.read_result()[1], gold.score)
        with pytest.raises(ValueError):
            dev.configure(HYPER, rule=1)                       # caught on the host ...
        payload = bytearray(wire.pack_hyper(HYPER))
        payload[25] = 1
        with pytest.raises(ParamOutOfRange) as exc:            # ... and by the device
            dev.send_configure_raw(bytes(payload))
        assert exc.value.detail == 12
    assert_same_as(wide_board.url, WIDE, gold)
    assert gold.counters.spikes > 0 and gold.counters.weight_updates > 0


def test_default_params_bit_exact(default_board):
    """50/128/10: dense rasters (bitmap steps, several frames per sample) and sparse ones,
    pipelined, with learning; no receive FIFO overflow at the host's full window."""
    w = init_weights(DEFAULT, 3, w_scale=1.0)
    hyper = FixedHyper(seed=99)
    setup(default_board.url, DEFAULT, w, hyper)
    gold = golden(DEFAULT, w, hyper)
    X, y = rasters(DEFAULT, 6, 120, 0.5, seed=4)
    Xs, ys = rasters(DEFAULT, 6, 120, 0.04, seed=5)
    with Device.open(default_board.url, params=DEFAULT, timeout=10) as dev:
        assert len(dev.sample_frames(X[0], int(y[0]), True)) >= 2
        preds = dev.run_epoch(np.concatenate([X, Xs]), np.concatenate([y, ys]), learn=True)
        assert list(preds) == [gold.run_sample(x, int(lab), True)
                               for x, lab in zip(np.concatenate([X, Xs]), np.concatenate([y, ys]))]
        assert np.array_equal(dev.read_weights(Mem.V)[0], gold.v)
        assert np.array_equal(dev.read_weights(Mem.SCORE)[0], gold.score)
        st = dev.read_status()
        assert not st["rx_overflow"] and st["naks"] == 0 and dev.stats["recoveries"] == 0
    assert_same_as(default_board.url, DEFAULT, gold)
    assert gold.counters.weight_updates > 0 and gold.counters.readout_updates > 0


def test_counters_clear_and_reset_flags(small_board):
    """READ_COUNTERS clears after reading (flag bit 0); RESET clears the counters (bit 0)
    and restarts the generators from the seed (bit 1), like FixedCore.configure."""
    w = weights_for(SMALL, 16)
    setup(small_board.url, SMALL, w)
    gold = golden(SMALL, w)
    X, y = rasters(SMALL, 3, 40, 0.2, seed=17)
    with Device.open(small_board.url, params=SMALL, timeout=10) as dev:
        assert dev.run_sample(X[0], int(y[0]), True) == gold.run_sample(X[0], int(y[0]), True)
        first = dev.read_counters(clear=True)
        assert {k: first[k] for k in COUNTERS} == gold.counters.as_dict()
        assert first["weight_updates"] > 0
        assert set(dev.read_counters().values()) == {0}
        dev.run_sample(X[1], int(y[1]), False)
        assert dev.read_counters()["samples"] == 1
        dev.reset(clear_counters=True)
        assert set(dev.read_counters().values()) == {0}
        dev.reset(reseed=True)
        gold.run_sample(X[1], int(y[1]), False)
        unseeded = golden(SMALL, (gold.w, gold.w_out, gold.b))
        unseeded.rng_hid, unseeded.rng_out = gold.rng_hid, gold.rng_out
        gold.configure(HYPER)                              # reseeds
        assert dev.run_sample(X[2], int(y[2]), True) == gold.run_sample(X[2], int(y[2]), True)
        unseeded.run_sample(X[2], int(y[2]), True)
        assert not np.array_equal(unseeded.w, gold.w)      # the reseed mattered
        assert np.array_equal(dev.read_weights(Mem.W), gold.w)
        assert np.array_equal(dev.read_weights(Mem.W_OUT), gold.w_out)


def test_other_link_parameters():
    """max_payload 64, a 256-byte FIFO, 1 Mbaud at 12 MHz: IDENTIFY says so, the driver
    splits samples and weights into small frames, the results stay bit exact."""
    clk, mp = 12_000_000, 64
    w = weights_for(SMALL, 18)
    with NativeBoard(SMALL, clk_freq=clk, baud=1_000_000, max_payload=mp,
                     rx_fifo_depth=256) as nb:
        raw = Raw(nb.url)
        assert raw.call(Cmd.IDENTIFY, seq=1).payload == wire.identify_block(
            SMALL, max_payload=mp, rx_fifo_depth=256 - mp - 9, clk_freq=clk, baud=1_000_000,
            timeout_cycles=clk // 20)
        raw.reset()
        r = raw.call(Cmd.SAMPLE, bytes([3, 0]) + b"\x80" * (mp - 1))
        assert nak(r) == (Nak.TOO_LONG, Cmd.SAMPLE, 0)
        raw.close()
        setup(nb.url, SMALL, w)
        gold = golden(SMALL, w)
        X, y = rasters(SMALL, 8, 60, 0.3, seed=19)
        with Device.open(nb.url, params=SMALL, timeout=10) as dev:
            assert len(dev.sample_frames(X[0], int(y[0]), True)) >= 3
            preds = dev.run_epoch(X, y, learn=True)
            assert list(preds) == [gold.run_sample(x, int(lab), True) for x, lab in zip(X, y)]
            assert not dev.read_status()["rx_overflow"] and dev.stats["recoveries"] == 0
        assert_same_as(nb.url, SMALL, gold)


# -- SAMPLE validation ----------------------------------------------------------------------
@pytest.mark.parametrize("which,n", [("small", 300), ("wide", 150)])
def test_sample_validation_matches_reference(request, which, n):
    """Random (mostly invalid) SAMPLE payloads: every NAK code and offset equals the
    reference; a rejected frame runs nothing; the valid ones agree with the golden model."""
    nb = request.getfixturevalue(f"{which}_board")
    p = nb.params
    w = weights_for(p, 9)
    setup(nb.url, p, w)
    gold = golden(p, w)
    rng = np.random.default_rng(42)
    raw = Raw(nb.url, seq=100)
    raw.reset()
    in_sample, seen = False, {"ok": 0}
    for _ in range(n):
        payload = random_sample_payload(rng, p)
        verdict = sample_verdict(payload, p, in_sample)
        r = raw.call(Cmd.SAMPLE, payload)
        if verdict is not None:
            code, req, detail = nak(r)
            assert (code, detail) == verdict and req == Cmd.SAMPLE, (payload.hex(), verdict)
            seen[Nak(code).name] = seen.get(Nak(code).name, 0) + 1
            continue
        seen["ok"] += 1
        flags, label = payload[0], payload[1]
        if flags & wire.SAMPLE_BEGIN:
            gold.start_sample(label, bool(flags & wire.SAMPLE_LEARN))
        for events in wire.decode_steps(payload[2:], p.n_in):
            gold.step(events)
        in_sample = True
        if flags & wire.SAMPLE_END:
            assert ack(r, Cmd.SAMPLE) == bytes([gold.end_sample()])
            in_sample = False
        else:
            assert ack(r, Cmd.SAMPLE) == b""
    raw.close()
    for code in ("UNSORTED", "INDEX_RANGE", "TOO_MANY_EVENTS", "BAD_LENGTH", "STATE",
                 "PARAM_RANGE", "BAD_STEP"):
        assert seen.get(code, 0) > 0, f"no {code} case generated: {seen}"
    assert seen["ok"] >= 10, seen
    assert_same_as(nb.url, p, gold)


def test_sample_naks_with_offsets(small_board):
    """One frame per SAMPLE error, with the exact offset (n_in = 13: bitmaps of 2 bytes,
    bits 13..15 of the second byte invalid); none of them runs a step."""
    with Device.open(small_board.url, params=SMALL, timeout=10) as dev:
        before = dev.read_counters()["steps"]
    raw = Raw(small_board.url, seq=3)
    raw.reset()
    B, E = wire.SAMPLE_BEGIN, wire.SAMPLE_END
    cases = [
        (bytes([B]), Nak.BAD_LENGTH, 0),                       # no label byte
        (bytes([0x08, 0]), Nak.PARAM_RANGE, 0),                # unknown flag bit
        (bytes([B | E, 3]), Nak.INDEX_RANGE, 1),               # label >= n_out
        (bytes([E, 0, 1, 4]), Nak.STATE, 0),                   # no sample open
        (bytes([B, 0, 0x85, 0xE0]), Nak.BAD_STEP, 3),
        (bytes([B, 0, 0xFE, 0x00]), Nak.BAD_STEP, 2),
        (bytes([B, 0, 2, 4]), Nak.BAD_LENGTH, 4),              # second index missing
        (bytes([B, 0, 0xC0]), Nak.BAD_LENGTH, 3),              # count byte missing
        (bytes([B, 0, 0xFF, 0x01]), Nak.BAD_LENGTH, 4),        # bitmap byte missing
        (bytes([B, 0, 0xFF, 0x01, 0x20]), Nak.INDEX_RANGE, 4),  # bit 13
        (bytes([B, 0, 0xFF, 0xFF, 0x1F, 1, 13]), Nak.INDEX_RANGE, 6),
        (bytes([B, 0, 3, 1, 2, 0xFF]), Nak.INDEX_RANGE, 5),
        (bytes([B, 0, 14] + list(range(14))), Nak.TOO_MANY_EVENTS, 2),
        (bytes([B, 0, 0x80, 0xC0, 14] + list(range(14))), Nak.TOO_MANY_EVENTS, 4),
        (bytes([B, 0, 0xDF, 0xFF]), Nak.TOO_MANY_EVENTS, 3),
        (bytes([B, 0, 3, 1, 5, 5]), Nak.UNSORTED, 5),
        (bytes([B, 0, 1, 7, 2, 6, 2]), Nak.UNSORTED, 6),
        (bytes([B, 0, 0xC0, 2, 9, 8]), Nak.UNSORTED, 5),
        (bytes([B | E, 0, 0xBF, 1, 4, 0xE5]), Nak.BAD_STEP, 5),   # after valid steps
    ]
    for payload, code, detail in cases:
        if len(payload) >= 2:                              # the reference agrees
            assert sample_verdict(payload, SMALL, False) == (code, detail)
        assert nak(raw.call(Cmd.SAMPLE, payload)) == (code, Cmd.SAMPLE, detail), payload.hex()
    assert not status(raw)["flags"] & wire.STATUS_IN_SAMPLE
    # the largest legal counts and an empty bitmap are fine
    ok = bytes([B, 2, 13] + list(range(13)) + [0xC0, 0, 0xFF, 0, 0, 0x00, 0xC0, 13]
               + list(range(13)) + [0xFF, 0xFF, 0x1F])
    ack(raw.call(Cmd.SAMPLE, ok), Cmd.SAMPLE)
    assert ack(raw.call(Cmd.SAMPLE, bytes([E, 0])), Cmd.SAMPLE) != b""
    raw.close()
    with Device.open(small_board.url, params=SMALL, timeout=10) as dev:
        assert dev.read_counters()["steps"] == before + 6


def test_busy_state_and_reset(small_board):
    """CONFIGURE and WRITE_WEIGHTS are BUSY while a sample is open (before any length check);
    READ_* work; RESET aborts the sample; a continuation is then STATE."""
    raw = Raw(small_board.url, seq=40)
    raw.reset()
    ack(raw.call(Cmd.SAMPLE, bytes([wire.SAMPLE_BEGIN, 0, 1, 3])), Cmd.SAMPLE)
    assert nak(raw.call(Cmd.CONFIGURE, wire.pack_hyper(HYPER)))[0] == Nak.BUSY
    assert nak(raw.call(Cmd.CONFIGURE, b"\x00"))[0] == Nak.BUSY
    assert nak(raw.call(Cmd.WRITE_WEIGHTS, w_head(0, 0, 1, 0, 1) + b"\x00\x00"))[0] == Nak.BUSY
    assert nak(raw.call(Cmd.WRITE_WEIGHTS, b""))[0] == Nak.BUSY
    assert len(ack(raw.call(Cmd.READ_WEIGHTS, w_head(Mem.V, 0, 1, 0, SMALL.n_hid)),
                   Cmd.READ_WEIGHTS)) == 4 * SMALL.n_hid
    valid, _ = ack(raw.call(Cmd.READ_RESULT), Cmd.READ_RESULT)[:2]
    assert valid == 0                                          # a sample is open
    assert status(raw)["flags"] & wire.STATUS_IN_SAMPLE
    ack(raw.call(Cmd.SAMPLE, bytes([0, 0, 0x80])), Cmd.SAMPLE)  # continuation
    raw.reset()
    assert nak(raw.call(Cmd.SAMPLE, bytes([wire.SAMPLE_END, 0])))[0] == Nak.STATE
    ack(raw.call(Cmd.CONFIGURE, wire.pack_hyper(HYPER)), Cmd.CONFIGURE)
    raw.close()


# -- transport ------------------------------------------------------------------------------
def test_lengths_types_and_sequence_numbers(small_board):
    raw = Raw(small_board.url, seq=0)
    raw.reset()                                                # expected 1
    bad_lengths = [(Cmd.IDENTIFY, b"\x00"), (Cmd.RESET, b""), (Cmd.RESET, b"\x00\x00"),
                   (Cmd.CONFIGURE, bytes(26)), (Cmd.CONFIGURE, bytes(28)),
                   (Cmd.WRITE_WEIGHTS, bytes(8)), (Cmd.READ_WEIGHTS, bytes(8)),
                   (Cmd.READ_WEIGHTS, bytes(10)), (Cmd.SAMPLE, b"\x01"),
                   (Cmd.READ_RESULT, b"\x00"), (Cmd.READ_COUNTERS, b""),
                   (Cmd.READ_COUNTERS, b"\x00\x00"), (Cmd.READ_STATUS, b"\x00")]
    expected = 1
    for cmd, payload in bad_lengths:
        oob = cmd in wire.OUT_OF_BAND
        r = raw.call(cmd, payload, seq=0x70 if oob else None)
        assert nak(r) == (Nak.BAD_LENGTH, cmd, 0), cmd
        expected += 0 if oob else 1
    for t in (0x00, 0x0A, 0x81, 0xFF):
        assert nak(raw.call(t)) == (Nak.UNKNOWN_TYPE, t, 0)
        expected += 1
    assert status(raw)["expected_seq"] == expected == raw.seq
    # out of sequence: NAK SEQUENCE (detail: the expected number), not executed
    b0 = ack(raw.call(Cmd.READ_WEIGHTS, w_head(Mem.B, 0, 1, 0, 1)), Cmd.READ_WEIGHTS)
    expected += 1
    other = bytes([b0[0] ^ 1, b0[1]])
    r = raw.call(Cmd.WRITE_WEIGHTS, w_head(Mem.B, 0, 1, 0, 1) + other, seq=expected + 3)
    assert nak(r) == (Nak.SEQUENCE, Cmd.WRITE_WEIGHTS, expected) and r.seq == expected + 3
    assert nak(raw.call(0x33, seq=expected - 1)) == (Nak.SEQUENCE, 0x33, expected)
    assert ack(raw.call(Cmd.READ_WEIGHTS, w_head(Mem.B, 0, 1, 0, 1)), Cmd.READ_WEIGHTS) == b0
    # a content NAK advances, a transport NAK does not; out of band frames never do
    assert nak(raw.call(Cmd.READ_WEIGHTS, w_head(9, 0, 1, 0, 1)))[0] == Nak.INDEX_RANGE
    f = bytearray(raw.frame(Cmd.READ_COUNTERS, b"\x00"))
    f[7] ^= 1
    raw.send(bytes(f))
    assert nak(raw.replies(1)[0])[0] == Nak.BAD_CRC
    raw.seq = (raw.seq - 1) & 0xFF
    ack(raw.call(Cmd.IDENTIFY, seq=(raw.seq + 9) & 0xFF), Cmd.IDENTIFY)
    st = status(raw, seq=(raw.seq + 20) & 0xFF)
    assert st["expected_seq"] == raw.seq and st["last_nak_code"] == Nak.BAD_CRC
    ack(raw.call(Cmd.READ_COUNTERS, b"\x00"), Cmd.READ_COUNTERS)
    # RESET resynchronises to its own number, whatever it is; the numbers wrap
    ack(raw.call(Cmd.RESET, b"\x00", seq=0xFE), Cmd.RESET)
    raw.seq = 0xFF
    ack(raw.call(Cmd.READ_COUNTERS, b"\x00"), Cmd.READ_COUNTERS)
    ack(raw.call(Cmd.READ_COUNTERS, b"\x00"), Cmd.READ_COUNTERS)
    assert raw.seq == 1 and status(raw)["expected_seq"] == 1
    raw.close()


def test_garbage_between_frames_resync(small_board):
    raw = Raw(small_board.url, seq=60)
    raw.reset()
    st0 = status(raw)
    rng = np.random.default_rng(11)
    stream, starts, expect = b"", [], []
    tails = [b"", b"\xA5", b"\xA5\x5A", b"\xA5\x5A\x01", b"\xA5\x5A\x01\x00\x09", b"\x5A\xA5"]
    for k in range(40):
        garbage = bytes(int(x) for x in rng.integers(0, 256, int(rng.integers(0, 60))))
        stream += garbage + tails[k % len(tails)]
        if k % 4 == 3:
            f = raw.frame(Cmd.READ_STATUS, seq=0x90 + k)
            expect.append((Cmd.READ_STATUS, 0x90 + k))
        else:
            f = raw.frame(Cmd.READ_WEIGHTS, w_head(Mem.W_OUT, k % SMALL.n_out, 1, 0, 2))
            expect.append((Cmd.READ_WEIGHTS, (raw.seq - 1) & 0xFF))
        starts.append(len(stream))
        stream += f
    stream += bytes(int(x) for x in rng.integers(0, 256, 500))
    assert header_positions(stream) == starts        # no header but the frames' own
    raw.send(stream)
    replies = raw.replies(len(expect))
    assert [(r.type & 0x7F, r.seq) for r in replies] == expect
    assert all(r.type & wire.ACK_BIT and r.type != wire.NAK_TYPE for r in replies)
    assert raw.quiet(0.15)
    st = status(raw)
    assert (st["crc_errors"], st["naks"]) == (st0["crc_errors"], st0["naks"])
    assert st["expected_seq"] == raw.seq
    raw.close()


def test_bad_crc_header_errors_and_too_long(small_board):
    raw = Raw(small_board.url, seq=80)
    raw.reset()
    seq = raw.seq
    crc0 = status(raw)["crc_errors"]
    b0 = ack(raw.call(Cmd.READ_WEIGHTS, w_head(Mem.B, 0, 1, 0, 1)), Cmd.READ_WEIGHTS)
    seq = raw.seq
    write = w_head(Mem.B, 0, 1, 0, 1) + bytes([b0[0] ^ 4, b0[1]])
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(4):                                  # payload or CRC bit errors: BAD_CRC
        f = bytearray(raw.frame(Cmd.WRITE_WEIGHTS, write, seq=seq))
        pos = 7 + int(rng.integers(0, len(f) - 7))
        f[pos] ^= 1 << int(rng.integers(0, 8))
        frames.append(bytes(f))
    f = bytearray(raw.frame(Cmd.WRITE_WEIGHTS, write, seq=seq))
    f[4] ^= 0x10                                        # header bit error: garbage, no reply
    frames.append(bytes(f))
    frames.append(raw.frame(Cmd.READ_WEIGHTS, w_head(Mem.B, 0, 1, 0, 1)))
    raw.send(b"".join(frames))
    r = raw.replies(5)
    for f in r[:4]:
        assert nak(f) == (Nak.BAD_CRC, Cmd.WRITE_WEIGHTS, 0) and f.seq == seq
    assert ack(r[4], Cmd.READ_WEIGHTS) == b0 and r[4].seq == seq
    assert raw.quiet(0.1)
    # LEN > max_payload: TOO_LONG at once; what follows the header is hunted through (here
    # a whole frame, which is found and answered)
    head = struct.pack("<HBB", MAX_PAYLOAD + 1, Cmd.SAMPLE, 0x44)
    raw.send(b"\xA5\x5A" + head + bytes([wire.crc16(head) & 0xFF])
             + raw.frame(Cmd.READ_STATUS, seq=0x45))
    too_long, st = raw.replies(2)
    assert nak(too_long) == (Nak.TOO_LONG, Cmd.SAMPLE, 0) and too_long.seq == 0x44
    st = wire.unpack_fields(wire.STATUS_FIELDS, ack(st, Cmd.READ_STATUS))
    assert st["crc_errors"] == crc0 + 4 and st["expected_seq"] == raw.seq == seq + 1
    assert (st["last_nak_code"], st["last_nak_type"], st["last_nak_seq"]) == \
        (Nak.TOO_LONG, Cmd.SAMPLE, 0x44)
    # exactly max_payload is fine
    r = raw.call(Cmd.SAMPLE, bytes([wire.SAMPLE_BEGIN | wire.SAMPLE_END, 1])
                 + b"\x80" * (MAX_PAYLOAD - 2))
    assert len(ack(r, Cmd.SAMPLE)) == 1
    raw.close()


def test_pipelined_raw_frames(small_board):
    """Requests sent back to back without waiting (within the window): one reply each, in
    order, the same as one by one."""
    w = weights_for(SMALL, 12)
    setup(small_board.url, SMALL, w)
    gold = golden(SMALL, w)
    raw = Raw(small_board.url, seq=200)
    raw.reset()
    X, y = rasters(SMALL, 8, 30, 0.2, seed=13)
    frames, expect = [], []
    for x, label in zip(X, y):
        steps = wire.raster_steps(x)
        payload = bytes([7, int(label)]) + wire.encode_steps(steps, SMALL.n_in)
        frames.append(raw.frame(Cmd.SAMPLE, payload))
        expect.append(bytes([gold.run_sample(x, int(label), True)]))
        frames.append(raw.frame(Cmd.READ_WEIGHTS, w_head(Mem.SCORE, 0, 1, 0, SMALL.n_out)))
        expect.append(gold.score.astype("<i4").tobytes())
    data = b"".join(frames)
    assert len(data) - len(frames[0]) - len(frames[1]) <= WINDOW - 32
    raw.send(data)
    replies = raw.replies(len(frames))
    assert [r.seq for r in replies] == [(200 + 1 + k) & 0xFF for k in range(len(frames))]
    assert [r.payload for r in replies] == expect
    raw.close()
    assert_same_as(small_board.url, SMALL, gold)


def test_timeouts_and_closed_connections_keep_state(small_board):
    """A truncated frame is answered NAK TIMEOUT after timeout_cycles (not executed, SEQ not
    advanced); a connection closed in the middle of a frame and of a sample: the next
    connection finds the sample open and everything else as it was."""
    w = weights_for(SMALL, 14)
    setup(small_board.url, SMALL, w)
    gold = golden(SMALL, w)
    raw = Raw(small_board.url, seq=10)
    raw.reset()
    seq = raw.seq
    t0 = status(raw)["timeouts"]
    f = raw.frame(Cmd.WRITE_WEIGHTS, w_head(Mem.B, 0, 1, 0, 2) + b"\x01\x00\x02\x00", seq=seq)
    raw.send(f[:12])
    t = time.monotonic()
    (r,) = raw.replies(1)
    assert nak(r) == (Nak.TIMEOUT, Cmd.WRITE_WEIGHTS, 0) and r.seq == seq
    assert time.monotonic() - t >= 0.045
    raw.send(b"\xA5\x5A\x04")                          # half a header, then silence
    time.sleep(0.12)
    assert ack(raw.call(Cmd.READ_WEIGHTS, w_head(Mem.B, 0, 1, 0, 2)), Cmd.READ_WEIGHTS) == \
        w[2][0, :2].astype("<i2").tobytes()
    # a sample in three frames: the first runs, the second is cut by the port closing
    x = rasters(SMALL, 1, 90, 0.3, seed=15)[0][0]
    steps = wire.raster_steps(x)
    parts = [steps[:30], steps[30:60], steps[60:]]
    payloads = [bytes([wire.SAMPLE_BEGIN | wire.SAMPLE_LEARN, 1]) + wire.encode_steps(parts[0], 13),
                bytes([0, 1]) + wire.encode_steps(parts[1], 13),
                bytes([wire.SAMPLE_END, 1]) + wire.encode_steps(parts[2], 13)]
    ack(raw.call(Cmd.SAMPLE, payloads[0]), Cmd.SAMPLE)
    cut = raw.seq
    f = raw.frame(Cmd.SAMPLE, payloads[1])
    raw.send(f[:len(f) // 2])
    raw.close()
    time.sleep(0.15)
    raw = Raw(small_board.url, seq=0)
    st = status(raw)
    assert st["timeouts"] == t0 + 2 and st["flags"] & wire.STATUS_IN_SAMPLE
    assert (st["last_nak_code"], st["last_nak_type"], st["last_nak_seq"]) == \
        (Nak.TIMEOUT, Cmd.SAMPLE, cut)
    raw.seq = st["expected_seq"]
    assert raw.seq == cut
    ack(raw.call(Cmd.SAMPLE, payloads[1]), Cmd.SAMPLE)
    pred = ack(raw.call(Cmd.SAMPLE, payloads[2]), Cmd.SAMPLE)
    raw.close()
    assert pred == bytes([gold.run_sample(x, 1, True)])
    assert_same_as(small_board.url, SMALL, gold)


def test_rx_fifo_overflow_and_window(default_board):
    """While a long frame executes (32640 steps), what the host's window allows with
    IDENTIFY's rx_fifo_depth (the next frame, of up to max_payload bytes, plus rx_fifo_depth
    - 32 more) fits in the receive FIFO: every frame is answered; with the FIFO's whole depth
    as the window it would not fit: bytes are lost and the sticky RX overflow flag is set
    (until RESET)."""
    rows, cols = DEFAULT.n_hid, DEFAULT.n_pre
    per = (MAX_PAYLOAD - 9) // (2 * cols)                      # rows per max-size write

    def run(window):
        raw = Raw(default_board.url, seq=0)
        raw.reset()
        naks0 = status(raw)["naks"]
        frames = [raw.frame(Cmd.SAMPLE, bytes([wire.SAMPLE_BEGIN | wire.SAMPLE_END, 0])
                            + b"\xBF" * (MAX_PAYLOAD - 2))]
        r0 = 0
        while len(frames) < 2 or sum(map(len, frames[2:])) + 18 + 2 * cols * per <= window:
            frames.append(raw.frame(Cmd.WRITE_WEIGHTS, w_head(Mem.W, r0, per, 0, cols)
                                    + bytes(2 * cols * per)))
            r0 = (r0 + per) % (rows - per)
        while sum(map(len, frames[2:])) + 10 <= window:
            frames.append(raw.frame(Cmd.READ_COUNTERS, b"\x00"))
        assert len(frames[1]) > MAX_PAYLOAD and sum(map(len, frames[2:])) > window - 10
        raw.send(b"".join(frames))
        replies = []
        while True:                                        # until quiet (timeouts included)
            data = raw.read(0.3)
            if not data:
                break
            replies += raw.parser.feed(data)
        st = status(raw, seq=0x77)
        raw.reset()
        assert not status(raw, seq=0x78)["flags"] & wire.STATUS_RX_OVERFLOW
        raw.close()
        return st, st["naks"] - naks0, replies, len(frames)

    st, naks, replies, n = run(WINDOW - 32)
    assert not st["flags"] & wire.STATUS_RX_OVERFLOW and naks == 0
    assert len(replies) == n and all(not r.is_nak for r in replies)
    st, naks, replies, n = run(FIFO - 32)
    assert st["flags"] & wire.STATUS_RX_OVERFLOW and naks > 0 and len(replies) < n
