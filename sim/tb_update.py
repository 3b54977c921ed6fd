"""cocotb bench: ``hdl.update.StochasticUpdateLanes`` vs. the stochastic-rounding update of
``golden.fixed.FixedCore._gradient`` (hidden weights) and ``_readout_update`` (``W_out``)."""

import cocotb
from cocotb.triggers import ClockCycles
import numpy as np
from amaranth.hdl import Shape

from golden.fixed import sat
from hdl.update import StochasticUpdateLanes
from sim.tb_blocks import PipelineBench, config, edge_value, start_clock


def update_model(p, lanes, shift):
    """``w' = sat_w(w - ((x * a + (r & (2**shift - 1))) >> shift))`` per lane."""
    def model(vec):
        w = [int(sat(vec["w"][l] - ((vec["x"][l] * vec["a"][l]
                                     + (vec["r"][l] & ((1 << shift) - 1))) >> shift), p.w_bits))
             for l in range(lanes)]
        return {"w": w, "tag": vec["tag"]}
    return model


@cocotb.test()
async def update_random(dut):
    """Random vectors with random valid gaps, a new shift per chunk (0 and the maximum in
    the first two: every product lands on the weight / only the rounding survives); either
    factor shared by all lanes (as the hidden and the readout update use it) or per lane."""
    cfg, p = config()
    lanes, x_shape, a_shape = cfg["lanes"], cfg["x_shape"], cfg["a_shape"]
    x_shape = Shape(x_shape[0], x_shape[1])
    a_shape = Shape(a_shape[0], a_shape[1])
    rng = np.random.default_rng(cfg.get("seed", 0))
    await start_clock(dut)
    comp = StochasticUpdateLanes(p, lanes, x_shape, a_shape, tag_shape=8)
    for chunk in range(cfg.get("chunks", 6)):
        shift = [0, p.max_shift][chunk] if chunk < 2 else int(rng.integers(0, p.max_shift + 1))
        dut.shift.value = shift
        await ClockCycles(dut.clk, StochasticUpdateLanes.SHIFT_DELAY)
        bench = PipelineBench(dut, comp, update_model(p, lanes, shift), rng)
        vectors = []
        for t in range(cfg.get("vectors", 80)):
            x = [edge_value(rng, x_shape) for _ in range(lanes)]
            a = [edge_value(rng, a_shape) for _ in range(lanes)]
            if t % 3 == 1:
                x = [x[0]] * lanes
            elif t % 3 == 2:
                a = [a[0]] * lanes
            vectors.append({"w": [edge_value(rng, Shape(p.w_bits, True)) for _ in range(lanes)],
                            "x": x, "a": a,
                            "r": [int(rng.integers(0, 1 << 32)) for _ in range(lanes)],
                            "tag": t & 255})
        await bench.run(vectors)
        dut._log.info(f"chunk {chunk} (shift {shift}): {bench.checked} vectors ok")
