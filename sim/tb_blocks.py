"""Shared cocotb machinery for the per-block benches (``sim/tb_<block>.py``).

A block is driven with random input vectors (random valid gaps); a monitor collects its
outputs; a scoreboard compares them, in order, with a Python model that mirrors
``golden/fixed.py`` line by line. Per-cycle Python is fine here: a few hundred cycles.
"""

import json
import os
from collections import deque

from amaranth.hdl import Module, Shape
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, Timer

from golden.fixed import FixedHyper, FixedParams


def pack_value(shape, value) -> int:
    if isinstance(shape, data.StructLayout):
        return sum(pack_value(f.shape, value[name]) << f.offset for name, f in shape)
    if isinstance(shape, data.ArrayLayout):
        width = Shape.cast(shape.elem_shape).width
        return sum(pack_value(shape.elem_shape, value[i]) << (i * width)
                   for i in range(shape.length))
    width = Shape.cast(shape).width
    return int(value) & ((1 << width) - 1)


def unpack_value(shape, word: int):
    if isinstance(shape, data.StructLayout):
        return {name: unpack_value(f.shape, word >> f.offset) for name, f in shape}
    if isinstance(shape, data.ArrayLayout):
        width = Shape.cast(shape.elem_shape).width
        return [unpack_value(shape.elem_shape, word >> (i * width)) for i in range(shape.length)]
    s = Shape.cast(shape)
    word &= (1 << s.width) - 1
    if s.signed and word >> (s.width - 1):
        word -= 1 << s.width
    return word


def edge_value(rng, shape) -> int:
    """A random value of ``shape``, often one of its extremes, 0 or a small value."""
    s = Shape.cast(shape)
    if s.signed:
        lo, hi = -(1 << (s.width - 1)), (1 << (s.width - 1)) - 1
    else:
        lo, hi = 0, (1 << s.width) - 1
    return int(rng.choice([rng.integers(lo, hi + 1), lo, hi, 0,
                           rng.integers(max(lo, -3), min(hi, 4) + 1)]))


def config():
    cfg = json.loads(os.environ.get("TB_CONFIG", "{}"))
    return cfg, FixedParams(**cfg.get("params", {}))


def random_hyper(p: FixedParams, rng, **fixed) -> dict:
    """Random but valid run-time registers (``FixedHyper.validate`` accepts them)."""
    one = (1 << p.decay_frac) - 1
    h = dict(alpha_q=int(rng.integers(0, one + 1)), lam_q=int(rng.integers(0, one + 1)),
             kappa_q=int(rng.integers(0, one + 1)),
             theta=int(rng.integers(1, 1 << min(p.v_bits - 1, 10))),
             b_th=int(rng.integers(0, 1 << p.psi_bits)),
             target=int(rng.integers(0, 1 << min(p.y_bits - 1, 10))),
             l_shift=int(rng.integers(0, 12)), psi_shift=int(rng.integers(0, 8)),
             g_shift=int(rng.integers(0, p.max_shift + 1)),
             go_shift=int(rng.integers(0, p.max_shift + 1)),
             feedback=0, seed=int(rng.integers(0, 1 << 32)), rule=0)
    h.update(fixed)
    FixedHyper(**h).validate(p)
    return {**h, "dense": 0}


async def start_clock(dut):
    Clock(dut.clk, 10, unit="ns", impl="gpi").start()
    dut.rst.value = 1
    await Timer(25, unit="ns")
    await FallingEdge(dut.clk)
    dut.rst.value = 0


class PipelineBench:
    """Driver + monitor + in-order checker for an always-ready stream datapath ``i -> o``."""

    def __init__(self, dut, component, model, rng):
        self.dut, self.model, self.rng = dut, model, rng
        members = component.signature.members
        self.in_shape = members["i"].signature.members["payload"].shape
        self.out_shape = members["o"].signature.members["payload"].shape
        self.expected = deque()
        self.checked = 0

    def set_port(self, name, shape, value):
        getattr(self.dut, name).value = pack_value(shape, value)

    async def run(self, vectors, idle_prob=0.2, flush=12):
        """Present ``vectors`` (honouring ``i.ready``), check every output, then drain."""
        dut = self.dut
        pending = deque(vectors)
        presenting, last_ready = False, False
        while pending or presenting or flush:
            await FallingEdge(dut.clk)
            if int(dut.o__valid.value):
                got = unpack_value(self.out_shape, int(dut.o__payload.value))
                assert self.expected, f"unexpected output {got}"
                want = self.expected.popleft()
                assert got == want, f"output {self.checked}: got {got}, expected {want}"
                self.checked += 1
            if presenting and last_ready:
                presenting = False           # taken at the last rising edge
            if not presenting:
                if pending and self.rng.random() >= idle_prob:
                    vec = pending.popleft()
                    dut.i__payload.value = pack_value(self.in_shape, vec)
                    dut.i__valid.value = 1
                    self.expected.append(self.model(vec))
                    presenting = True
                else:
                    dut.i__valid.value = 0
                    if not pending:
                        flush -= 1
            last_ready = bool(int(dut.i__ready.value))
        assert not self.expected, f"{len(self.expected)} outputs missing"


class PipelineHarness(wiring.Component):
    """Wraps a datapath with always-ready streams so that every port is a real signal
    (``verilog.convert`` cannot export the constant ``ready`` of an always-ready stream)."""

    def __init__(self, inner):
        self.inner = inner
        sig = {}
        for name, member in inner.signature.members.items():
            if name in ("i", "o"):
                shape = member.signature.members["payload"].shape
                sig[name] = (In if name == "i" else Out)(stream.Signature(shape))
            else:
                sig[name] = member
        super().__init__(sig)

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = self.inner
        m.d.comb += [inner.i.valid.eq(self.i.valid), inner.i.payload.eq(self.i.payload),
                     self.i.ready.eq(inner.i.ready),
                     self.o.valid.eq(inner.o.valid), self.o.payload.eq(inner.o.payload)]
        for name, member in inner.signature.members.items():
            if name in ("i", "o"):
                continue
            if member.flow == In:
                m.d.comb += getattr(inner, name).eq(getattr(self, name))
            else:
                m.d.comb += getattr(self, name).eq(getattr(inner, name))
        return m
