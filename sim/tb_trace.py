"""cocotb bench: ``hdl.trace.TraceLanes`` vs. the trace updates of ``golden.fixed``."""

import cocotb
import numpy as np

from golden.fixed import usat
from hdl.interface import hyper_layout
from hdl.trace import TraceLanes
from sim.tb_blocks import PipelineBench, config, pack_value, random_hyper, start_clock


def trace_model(p, lanes, h):
    def model(vec):
        # golden/fixed.py: a = usat(decay(a, lam) + trace_one * spike, tr_bits)
        a = [int(usat(((vec["a"][l] * h["lam_q"]) >> p.decay_frac)
                      + p.trace_one * ((vec["spike"] >> l) & 1), p.tr_bits))
             for l in range(lanes)]
        return {"a": a, "tag": vec["tag"]}
    return model


@cocotb.test()
async def trace_random(dut):
    cfg, p = config()
    lanes = cfg.get("lanes", p.lanes)
    rng = np.random.default_rng(cfg.get("seed", 0))
    await start_clock(dut)
    comp = TraceLanes(p, lanes, tag_shape=8)
    top = (1 << p.tr_bits) - 1
    for chunk in range(cfg.get("chunks", 4)):
        h = random_hyper(p, rng)
        if chunk == 0:
            h["lam_q"] = (1 << p.decay_frac) - 1   # slowest decay: saturation at the top
        dut.hyper.value = pack_value(hyper_layout(p), h)
        bench = PipelineBench(dut, comp, trace_model(p, lanes, h), rng)
        vectors = [{"a": [int(rng.choice([rng.integers(0, top + 1), top, 0]))
                          for _ in range(lanes)],
                    "spike": int(rng.integers(0, 1 << lanes)), "tag": t & 255}
                   for t in range(cfg.get("vectors", 80))]
        await bench.run(vectors)
        dut._log.info(f"chunk {chunk}: {bench.checked} vectors ok")
