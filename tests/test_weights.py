"""The weight bank (hdl/weights.py) against a dictionary, with random reads and writes."""

import gc
import random
import warnings

import pytest
from amaranth.hdl import UnusedElaboratable, signed
from amaranth.sim import Simulator

from golden.fixed import FixedParams
from hdl.weights import WeightBank

BITS = 10


def run_bank(kind, depth, chunk, cycles=600, seed=0):
    """Random writes and reads (reads with ``en`` low now and then, to check the hold) under
    the bank's rule for its kind; every read word is compared LATENCY cycles later and while
    it is held. Returns the number of words compared."""
    dut = WeightBank(signed(BITS), depth, kind=kind, chunk=chunk)
    rng = random.Random(seed)
    model = {}
    checked = [0]

    async def tb(ctx):
        # (cycle the word is due, address, expected word); a later read replaces it
        pending, held, last_write = [], None, False
        for cycle in range(cycles):
            write = rng.random() < 0.4
            w_addr, w_data = rng.randrange(depth), rng.randrange(-(1 << BITS - 1), 1 << BITS - 1)
            read_en = rng.random() < 0.8
            r_addr = rng.randrange(depth)
            if kind == "bram":
                read_en = read_en and not (write and r_addr == w_addr)
            else:  # single port: a read or a write per cycle
                read_en = read_en and not write
            ctx.set(dut.wr.en, write)
            ctx.set(dut.wr.addr, w_addr)
            ctx.set(dut.wr.data, w_data)
            ctx.set(dut.rd.en, read_en)
            ctx.set(dut.rd.addr, r_addr)
            if pending and pending[0][0] == cycle:
                _, addr, word = pending.pop(0)
                held = (addr, word)
            if held is not None and held[1] is not None:
                assert ctx.get(dut.rd.data) == held[1], (cycle, held[0])
                checked[0] += 1
            if read_en:
                # undefined (None, not compared): a word never written; in single-port RAM
                # a read right after a write
                word = None if kind == "spram" and last_write else model.get(r_addr)
                pending.append((cycle + WeightBank.LATENCY, r_addr, word))
            if write:
                model[w_addr] = w_data
            last_write = write
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return checked[0]


@pytest.mark.parametrize("kind,depth,chunk", [
    ("bram", 37, 0),    # one memory
    ("bram", 37, 8),    # five chunks, the last one of five words
    ("bram", 32, 16),   # two full chunks
    ("bram", 16, 16),   # chunk == depth: one memory
    ("spram", 37, 0),
])
def test_weight_bank_random(kind, depth, chunk):
    assert run_bank(kind, depth, chunk, seed=depth + chunk) > 200


def test_weight_bank_arguments():
    # a component whose constructor raises is never elaborated: silence Amaranth's warning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        for kwargs, match in [(dict(chunk=12), "power of two"),
                              (dict(kind="spram", chunk=8), "bram"),
                              (dict(kind="lutram"), "kind")]:
            with pytest.raises(ValueError, match=match):
                WeightBank(signed(BITS), 40, **kwargs)
        gc.collect()
    with pytest.raises(ValueError, match="w_chunk"):
        FixedParams(w_chunk=3)
    with pytest.raises(ValueError, match="w_chunk"):
        FixedParams(w_chunk=64, weight_ram="spram")
