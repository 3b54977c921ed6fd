"""The stream register slice (hdl/skid.py) and the cocotb token driver (sim/tb_util.py)."""

import random

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from hdl.interface import token_layout
from hdl.skid import SkidBuffer
from sim.runner import run_cocotb


def run_skid(p_valid, p_ready, words=200, seed=0):
    """Random valid on ``i`` and ready on ``o``; returns (words received, cycles)."""
    dut = SkidBuffer(16)
    rng = random.Random(seed)
    got, cycles = [], [0]

    async def tb(ctx):
        sent = 0
        while len(got) < words:
            offer = sent < words and rng.random() < p_valid
            ctx.set(dut.i.valid, offer)
            ctx.set(dut.i.payload, sent)
            ctx.set(dut.o.ready, rng.random() < p_ready)
            # i.ready and o.valid are flip-flops: settled before the edge
            i_fire = offer and ctx.get(dut.i.ready)
            o_fire = ctx.get(dut.o.valid) and ctx.get(dut.o.ready)
            o_word = ctx.get(dut.o.payload)
            await ctx.tick()
            cycles[0] += 1
            sent += i_fire
            if o_fire:
                got.append(o_word)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return got, cycles[0]


def test_skid_order_and_backpressure():
    """Random stalls on both sides: every word once, in order."""
    for seed, (pv, pr) in enumerate([(0.5, 0.5), (0.9, 0.3), (0.3, 0.9), (1.0, 0.6)]):
        got, _ = run_skid(pv, pr, seed=seed)
        assert got == list(range(200)), (pv, pr)


def test_skid_full_throughput():
    """Always valid, always ready: one word per cycle after one cycle of latency."""
    got, cycles = run_skid(1.0, 1.0)
    assert got == list(range(200))
    assert cycles == 201


class StallingSink(wiring.Component):
    """Takes tokens with a pseudo-random ``ready`` that also toggles while ``busy`` is high;
    counts them and sums their values."""

    tokens: In(stream.Signature(token_layout()))
    busy: Out(1)
    count: Out(16)
    total: Out(32)

    def elaborate(self, platform):
        m = Module()
        lfsr = Signal(16, init=0xACE1)
        m.d.sync += lfsr.eq((lfsr << 1) | (lfsr[15] ^ lfsr[13] ^ lfsr[12] ^ lfsr[10]))
        m.d.comb += [self.tokens.ready.eq(lfsr[0] & lfsr[4]), self.busy.eq(lfsr[7])]
        with m.If(self.tokens.valid & self.tokens.ready):
            m.d.sync += [self.count.eq(self.count + 1),
                         self.total.eq(self.total + self.tokens.payload.value)]
        return m


def test_driver_takes_each_token_once():
    """``CoreDriver.put`` used to sleep until ``busy`` fell when ``ready`` was low and then
    offer the token again, so a token taken while busy was taken twice."""
    run_cocotb(StallingSink(), name="skid_driver", test_module="sim.tb_stream")
