"""cocotb bench: ``hdl.rng.Xorshift32`` vs. ``golden.rng`` (lane seeds and output streams)."""

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge

from golden.rng import GOLDEN_GAMMA, MASK32, lane_seed, xorshift32_run
from sim.tb_blocks import config, start_clock


@cocotb.test()
async def rng_streams(dut):
    cfg, _ = config()
    lane = cfg["lane"]
    rng = np.random.default_rng(cfg.get("seed", 0))
    await start_clock(dut)
    dut.load.value = 0
    dut.advance.value = 0
    await FallingEdge(dut.clk)
    assert int(dut.state.value) == lane_seed(1, lane), "reset state must be lane_seed(1, lane)"
    # the seed whose lane seed would be 0 (must become 1), then random seeds
    seeds = [(GOLDEN_GAMMA * (lane + 1)) & MASK32, 0, MASK32] + \
        [int(s) for s in rng.integers(0, 1 << 32, size=4)]
    for seed in seeds:
        dut.seed.value = seed
        dut.load.value = 1
        dut.advance.value = int(rng.integers(0, 2))   # load wins over advance
        await FallingEdge(dut.clk)
        dut.load.value = 0
        start = lane_seed(seed, lane)
        stream = [start] + [int(x) for x in xorshift32_run(start, 400)]
        used = 0
        for _ in range(500):
            assert int(dut.state.value) == stream[used], f"seed {seed:#x}: state after {used} uses"
            assert int(dut.value.value) == stream[used + 1], f"seed {seed:#x}: output {used}"
            advance = int(rng.random() < 0.7) if used < 399 else 0
            dut.advance.value = advance
            await FallingEdge(dut.clk)
            used += advance
        dut.advance.value = 0
        dut._log.info(f"seed {seed:#010x}: {used} outputs ok")
