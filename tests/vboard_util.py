"""Shared helpers of the virtual-board tests (test_link, test_host, test_board).

All three use the same small build of the real ``LearningCore`` (cached in build/vboard), so
the Verilator build happens once per source change, whichever test gets there first.
"""

import socket
import time

import numpy as np
import serial

from golden.fixed import FixedCore, FixedHyper, FixedParams
from host import protocol as wire

#: the test build: small, real core, 10-bit weights (two bytes on the wire)
P = FixedParams(n_in=20, n_hid=16, n_out=4)
HYPER = FixedHyper(seed=12345, theta=96, b_th=40, target=96, g_shift=14, go_shift=12)


def make_board(params=P, **kw):
    from sim.board import VirtualBoard
    kw.setdefault("fast", True)
    return VirtualBoard(params, **kw)


def sample_weights(seed=0):
    """Weights that make the small net spike and learn (so updates are exercised)."""
    rng = np.random.default_rng(seed)
    w = rng.integers(-20, 60, size=(P.n_hid, P.n_pre))
    w_out = rng.integers(-40, 40, size=(P.n_out, P.n_hid))
    b = rng.integers(-40, 40, size=(P.n_hid, P.n_out))
    return w, w_out, b


def rasters(n, steps=30, rate=0.15, seed=0):
    rng = np.random.default_rng(seed)
    X = (rng.random((n, steps, P.n_in)) < rate).astype(np.uint8)
    y = rng.integers(0, P.n_out, n)
    return X, y


def golden_core(weights, hyper=HYPER):
    core = FixedCore(P, hyper)
    core.load_weights(*weights)
    return core


class Raw:
    """A raw connection to the board: frames in, replies out (no driver logic)."""

    def __init__(self, url, seq=0):
        self.port = serial.serial_for_url(url, timeout=0.05)
        self.parser = wire.FrameParser()
        self.seq = seq

    def frame(self, cmd, payload=b"", seq=None):
        if seq is None:
            seq = self.seq
            self.seq = (self.seq + 1) & 0xFF
        return wire.encode_frame(cmd, seq, payload)

    def send(self, data: bytes):
        self.port.write(data)
        self.port.flush()

    def replies(self, n, timeout=10.0):
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            data = self.read(0.05)
            if data:
                out += self.parser.feed(data)
        assert len(out) >= n, f"expected {n} replies, got {out}"
        return out

    def read(self, timeout):
        """What arrives within ``timeout`` (returns as soon as something came)."""
        self.port.timeout = timeout
        data = self.port.read(1)
        if data:
            self.port.timeout = 0
            data += self.port.read(65536)
        return data

    def quiet(self, wait=0.3):
        """Nothing more arrives within ``wait`` seconds."""
        time.sleep(wait)
        data = self.read(0)
        return not self.parser.feed(data) if data else True

    def call(self, cmd, payload=b"", seq=None):
        self.send(self.frame(cmd, payload, seq))
        return self.replies(1)[0]

    def reset(self):
        r = self.call(wire.Cmd.RESET, b"\x00")
        assert r.type == wire.Cmd.RESET | wire.ACK_BIT, r
        return r

    def close(self):
        self.port.close()


def silent_server():
    """A TCP server that accepts and never answers (for NotAnswering)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s, f"socket://127.0.0.1:{s.getsockname()[1]}"
