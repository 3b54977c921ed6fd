"""Build helpers of the firmware: compile-time defines, the build cache every firmware
build goes through (:func:`cached_build`), and for the model ``fw/snn.c`` a native shared
library (gcc, for tests) with a ctypes wrapper mirroring :class:`golden.fixed.FixedCore`.

``build_native_lib`` caches the library in ``build/fw/native-<hash>/`` by a hash of the
sources and the flags.
"""

import ctypes
import dataclasses
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from golden.fixed import COUNTERS, Counters, FixedHyper, FixedParams

FW = Path(__file__).resolve().parent
BUILD = FW.parent / "build" / "fw"
NATIVE_CC = os.environ.get("CC", "gcc")
NATIVE_CFLAGS = ("-std=c99", "-O2", "-ffreestanding", "-Wall", "-Wextra", "-Werror", "-fPIC",
                 "-shared")

#: the order of ``snn_counters`` (fw/snn.h, host/PROTOCOL.md section 7)
COUNTER_NAMES = (*COUNTERS, "cyc_accumulate", "cyc_neuron", "cyc_readout", "cyc_gradient",
                 "cyc_trace", "cyc_busy")
#: memories of snn_read / snn_write (fw/snn.h)
MEM_W, MEM_W_OUT, MEM_B, MEM_V, MEM_SCORE, MEM_Y = range(6)
#: snn_hyper_t fields in protocol order (field number = index)
HYPER_FIELDS = ("alpha_q", "lam_q", "kappa_q", "theta", "b_th", "target", "l_shift",
                "psi_shift", "g_shift", "go_shift", "feedback", "seed", "rule", "dense")

# Test-only helpers compiled into the native library (not part of the firmware): a bulk
# read through snn_read, and a fake cycle counter for SNN_NOW (with ``fake_clock``) that
# advances by snn_test_tick at every read.
_SHIM = """\
#include "snn.h"
volatile uint32_t snn_test_clock;
uint32_t snn_test_tick = 1;
void snn_test_read_block(int mem, int rows, int cols, int32_t *out)
{
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            *out++ = snn_read(mem, r, c);
}
"""
_CLOCK_H = """\
#include <stdint.h>
extern volatile uint32_t snn_test_clock;
extern uint32_t snn_test_tick;
#define SNN_NOW() (snn_test_clock += snn_test_tick)
"""

__all__ = ["param_defines", "link_defines", "cached_build", "build_native_lib", "NativeCore", "COUNTER_NAMES", "HYPER_FIELDS",
           "HyperStruct"]


def param_defines(params: FixedParams) -> list[str]:
    """``-DSNN_<FIELD>=<value>`` for every comparable field of ``params`` (bools as 0/1)."""
    return [f"-DSNN_{f.name.upper()}={int(getattr(params, f.name))}"
            for f in dataclasses.fields(params) if f.compare]


def link_defines(*, clk_freq: int, baud: int, max_payload: int, rx_fifo_depth: int,
                 timeout_cycles: int) -> list[str]:
    """The ``-DFW_*`` flags of the link setup (``fw/hal.h``)."""
    return [f"-DFW_CLK_FREQ={clk_freq}u", f"-DFW_BAUD={baud}u",
            f"-DFW_MAX_PAYLOAD={max_payload}", f"-DFW_RX_FIFO_DEPTH={rx_fifo_depth}",
            f"-DFW_TIMEOUT_CYCLES={timeout_cycles}u"]


def cached_build(prefix: str, key, inputs, filename: str, make) -> Path:
    """The file ``build/fw/<prefix>-<hash>/<filename>``, made once per ``key`` (a repr-able
    description of the build: compiler, flags) and contents of the ``inputs`` (source
    paths). ``make(tmp, out)`` writes it to the path ``tmp`` (``out`` is the directory, for
    intermediate files); the result is renamed into place under a lock, so parallel test
    workers build it once and never see half a file."""
    digest = hashlib.sha1(repr(key).encode())
    for path in inputs:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    out = BUILD / f"{prefix}-{digest.hexdigest()[:16]}"
    target = out / filename
    if target.exists():
        return target
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            tmp = out / f"{filename}.{os.getpid()}.tmp"
            make(tmp, out)
            tmp.replace(target)
    return target


def build_native_lib(params: FixedParams, *, fake_clock: bool = False) -> Path:
    """Compile ``fw/snn.c`` (plus the test helpers) natively into a shared library; cached
    by a hash of the sources and flags. Returns its path. ``fake_clock``: SNN_NOW() is the
    test clock (else undefined: the CYC_* counters stay 0)."""
    flags = [*NATIVE_CFLAGS, *param_defines(params)]

    def make(tmp, out):
        shim = out / "snn_test_shim.c"
        shim.write_text(_SHIM)
        extra = []
        if fake_clock:
            (out / "snn_test_clock.h").write_text(_CLOCK_H)
            extra = ["-include", str(out / "snn_test_clock.h")]
        cmd = [NATIVE_CC, *flags, *extra, f"-I{FW}", str(FW / "snn.c"), str(shim), "-o",
               str(tmp)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"native build of fw/snn.c failed:\n{' '.join(cmd)}\n"
                               f"{proc.stderr}")

    return cached_build("native", (NATIVE_CC, flags, fake_clock, _SHIM, _CLOCK_H),
                        [FW / "snn.c", FW / "snn.h"], "libsnn.so", make)


class HyperStruct(ctypes.Structure):
    """``snn_hyper_t``."""
    _fields_ = [(name, ctypes.c_int32 if name in ("theta", "target") else ctypes.c_uint32)
                for name in HYPER_FIELDS]

    @classmethod
    def from_values(cls, **values) -> "HyperStruct":
        """Fields wrapped to their C types (so out-of-range Python ints can be checked)."""
        h = cls()
        for name in HYPER_FIELDS:
            v = int(values.get(name, 0))
            bits = 1 << 32
            v %= bits
            if name in ("theta", "target") and v >= bits // 2:
                v -= bits
            setattr(h, name, v)
        return h


class NativeCore:
    """``fw/snn.c`` compiled natively, with the methods of :class:`golden.fixed.FixedCore`.

    Each instance loads its own copy of the library, so instances are independent.
    """

    def __init__(self, params: FixedParams = FixedParams(), hyper: FixedHyper | None = None,
                 *, fake_clock: bool = False):
        self.p = params
        path = build_native_lib(params, fake_clock=fake_clock)
        tmpdir = tempfile.mkdtemp(prefix="snn-")
        try:   # a private copy: dlopen of the same path would share the static state
            private = Path(tmpdir) / "libsnn.so"
            shutil.copyfile(path, private)
            self.lib = ctypes.CDLL(str(private))
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
        lib = self.lib
        lib.snn_check_hyper.argtypes = [ctypes.POINTER(HyperStruct)]
        lib.snn_check_hyper.restype = ctypes.c_int
        lib.snn_configure.argtypes = [ctypes.POINTER(HyperStruct)]
        lib.snn_start.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.snn_step.argtypes = [ctypes.POINTER(ctypes.c_uint16), ctypes.c_int]
        lib.snn_end.restype = ctypes.c_int
        lib.snn_read.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.snn_read.restype = ctypes.c_int32
        lib.snn_write.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int32]
        lib.snn_test_read_block.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                            ctypes.POINTER(ctypes.c_int32)]
        self._counters = (ctypes.c_uint32 * len(COUNTER_NAMES)).in_dll(lib, "snn_counters")
        #: the fake cycle counter (fake_clock) and its increment per SNN_NOW()
        self.clock = ctypes.c_uint32.in_dll(lib, "snn_test_clock")
        self.tick = ctypes.c_uint32.in_dll(lib, "snn_test_tick")
        lib.snn_init()
        self.h = FixedHyper()
        if hyper is not None:
            self.configure(hyper)

    # -- registers -----------------------------------------------------------------------------
    def check_hyper(self, **values) -> int:
        """``snn_check_hyper`` of the given fields (missing ones 0): -1 or the bad field."""
        return self.lib.snn_check_hyper(ctypes.byref(HyperStruct.from_values(**values)))

    def configure(self, hyper: FixedHyper, dense: int = 0):
        values = {**hyper.as_dict(), "dense": dense}
        bad = self.check_hyper(**values)
        if bad >= 0:
            raise ValueError(f"snn_check_hyper: field {HYPER_FIELDS[bad]} out of range")
        self.lib.snn_configure(ctypes.byref(HyperStruct.from_values(**values)))
        self.h = hyper

    def reseed(self):
        self.lib.snn_reseed()

    # -- memories ------------------------------------------------------------------------------
    def _shape(self, mem):
        p = self.p
        return {MEM_W: (p.n_hid, p.n_pre), MEM_W_OUT: (p.n_out, p.n_hid),
                MEM_B: (p.n_hid, p.n_out), MEM_V: (1, p.n_hid), MEM_SCORE: (1, p.n_out),
                MEM_Y: (1, p.n_out)}[mem]

    def read(self, mem: int) -> np.ndarray:
        """A whole memory as int64 (V, SCORE, Y flattened)."""
        rows, cols = self._shape(mem)
        buf = (ctypes.c_int32 * (rows * cols))()
        self.lib.snn_test_read_block(mem, rows, cols, buf)
        out = np.frombuffer(buf, dtype=np.int32).astype(np.int64).reshape(rows, cols)
        return out[0] if mem >= MEM_V else out

    def load_weights(self, w=None, w_out=None, b=None):
        lo, hi = -(1 << (self.p.w_bits - 1)), (1 << (self.p.w_bits - 1)) - 1
        for mem, value in ((MEM_W, w), (MEM_W_OUT, w_out), (MEM_B, b)):
            if value is None:
                continue
            value = np.asarray(value)
            if value.shape != self._shape(mem):
                raise ValueError(f"memory {mem} must have shape {self._shape(mem)}")
            if value.min() < lo or value.max() > hi:
                raise ValueError(f"values must fit in {self.p.w_bits} signed bits")
            write = self.lib.snn_write
            for (r, c), x in np.ndenumerate(value):
                write(mem, r, c, int(x))

    w = property(lambda self: self.read(MEM_W))
    w_out = property(lambda self: self.read(MEM_W_OUT))
    b = property(lambda self: self.read(MEM_B))
    v = property(lambda self: self.read(MEM_V))
    score = property(lambda self: self.read(MEM_SCORE))
    y = property(lambda self: self.read(MEM_Y))

    # -- samples -------------------------------------------------------------------------------
    def start_sample(self, label: int, learn: bool):
        if not 0 <= label < self.p.n_out:
            raise ValueError(f"label must be in [0, {self.p.n_out - 1}]")
        self.lib.snn_start(int(label), int(bool(learn)))

    def step(self, events):
        events = np.asarray(events, dtype=np.int64).ravel()
        if events.size and (events.min() < 0 or events.max() >= self.p.n_in
                            or (np.diff(events) <= 0).any()):
            raise ValueError("events must be sorted, distinct and below n_in")
        buf = (ctypes.c_uint16 * max(events.size, 1))(*events.tolist())
        self.lib.snn_step(buf, int(events.size))

    def end_sample(self) -> int:
        return self.lib.snn_end()

    def run_sample(self, raster, label: int, learn: bool) -> int:
        self.start_sample(label, learn)
        for row in np.asarray(raster):
            self.step(np.flatnonzero(row))
        return self.end_sample()

    # -- counters ------------------------------------------------------------------------------
    def raw_counters(self) -> list[int]:
        """All 14 counters (snn_counters), protocol order."""
        return list(self._counters)

    @property
    def counters(self) -> Counters:
        """The 8 model counters as :class:`golden.fixed.Counters`."""
        return Counters(**dict(zip(COUNTERS, self.raw_counters())))

    def clear_counters(self):
        self.lib.snn_clear_counters()
