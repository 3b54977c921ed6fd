"""The counter bank (hdl/counters.py) against saturating Python sums (golden.fixed.Counters'
rule), with random increments, clears and read-backs."""

import gc
import random
import warnings

import pytest
from amaranth.hdl import UnusedElaboratable
from amaranth.sim import Simulator

from hdl.counters import CounterBank


def run_bank(increments, bits, cycles, seed, full=0.0):
    """Random bursts of increments (each field its maximum with probability ``full``, else
    random), a clear now and then (sometimes in a burst), then a wait for ``busy`` low and a
    read of every counter, compared with the model. Returns the number of reads compared and
    the longest wait for ``busy`` to fall."""
    dut = CounterBank(increments, bits=bits)
    rng = random.Random(seed)
    names = list(increments)
    top = (1 << bits) - 1
    stats = {"reads": 0, "wait": 0}

    async def tb(ctx):
        model = dict.fromkeys(names, 0)
        cycle = 0
        while cycle < cycles:
            for _ in range(rng.randrange(1, 60)):        # a burst
                incs = {k: (v if rng.random() < full else rng.choice([0, 0, rng.randint(0, v)]))
                        for k, v in increments.items()}
                clear = rng.random() < 0.02
                for k in names:
                    ctx.set(getattr(dut.inc, k), incs[k])
                ctx.set(dut.clear, clear)
                if clear:
                    model = dict.fromkeys(names, 0)
                for k in names:
                    model[k] = min(top, model[k] + incs[k])
                await ctx.tick()
                cycle += 1
            for k in names:
                ctx.set(getattr(dut.inc, k), 0)
            ctx.set(dut.clear, 0)
            wait = 0
            await ctx.tick()
            while ctx.get(dut.busy):
                wait += 1
                assert wait < 4 * len(names), "busy does not fall"
                await ctx.tick()
            stats["wait"] = max(stats["wait"], wait)
            order = list(range(len(names)))
            rng.shuffle(order)
            for c in order:
                ctx.set(dut.read.addr, c)
                await ctx.tick()
                assert not ctx.get(dut.busy)
                got = ctx.get(dut.read.data)
                assert got == model[names[c]], (cycle, names[c], got, model[names[c]])
                stats["reads"] += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return stats


INCREMENTS = {"samples": 1, "steps": 1, "syn_ops": 128, "active": 8, "weight_updates": 520,
              "readout_updates": 1280, "cyc_busy": 1}


@pytest.mark.parametrize("seed", range(3))
def test_counter_bank_random(seed):
    stats = run_bank(INCREMENTS, bits=32, cycles=3000, seed=seed)
    assert stats["reads"] > 300


def test_counter_bank_saturates():
    # 12-bit counters with every increment at its maximum most cycles: most counters reach
    # 4095 between clears, and the pending sums are at their largest
    stats = run_bank(INCREMENTS, bits=12, cycles=3000, seed=7, full=0.9)
    assert stats["reads"] > 300


def test_counter_bank_pending_bound():
    # every counter at its largest increment every cycle for a long run, wide counters:
    # the pending sums must not overflow between two visits of the flusher
    increments = {f"c{k}": 1 + 37 * k for k in range(14)}
    dut = CounterBank(increments, bits=32)
    cycles = 500

    async def tb(ctx):
        for k, v in increments.items():
            ctx.set(getattr(dut.inc, k), v)
        await ctx.tick().repeat(cycles)
        for k in increments:
            ctx.set(getattr(dut.inc, k), 0)
        while True:
            await ctx.tick()
            if not ctx.get(dut.busy):
                break
        for c, v in enumerate(increments.values()):
            ctx.set(dut.read.addr, c)
            await ctx.tick()
            assert ctx.get(dut.read.data) == v * cycles

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()


def test_counter_bank_arguments():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(ValueError, match="three"):
            CounterBank({"a": 1, "b": 1})
        with pytest.raises(ValueError, match="at least 1"):
            CounterBank({"a": 1, "b": 0, "c": 1})
        gc.collect()
