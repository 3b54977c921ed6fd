"""cocotb bench: ``hdl.lif.LifLanes`` vs. the neuron update of ``golden.fixed.FixedCore``."""

import cocotb
import numpy as np

from golden.fixed import sat
from hdl.interface import hyper_layout
from hdl.lif import LifLanes
from sim.tb_blocks import PipelineBench, config, pack_value, random_hyper, start_clock


def lif_model(p, h):
    vf = getattr(p, "v_frac", 0)

    def model(vec):
        out = {"v": [], "s": 0, "psi": [], "tag": vec["tag"]}
        for lane in range(p.lanes):
            s_prev = (vec["s"] >> lane) & 1
            # golden/fixed.py FixedCore.step, step 2, one neuron
            theta = h["theta"] << vf
            v = int(sat(((vec["v"][lane] * h["alpha_q"]) >> p.decay_frac)
                        + ((vec["acc"][lane] - h["theta"] * s_prev) << vf), p.v_bits))
            dist = abs(v - theta) >> vf
            out["v"].append(v)
            out["s"] |= int(v >= theta) << lane
            out["psi"].append(h["b_th"] - dist if dist < h["b_th"] else 0)
        return out
    return model


@cocotb.test()
async def lif_random(dut):
    cfg, p = config()
    rng = np.random.default_rng(cfg.get("seed", 0))
    await start_clock(dut)
    comp = LifLanes(p, tag_shape=8)
    vmax, amax = 1 << (p.v_bits - 1), 1 << (p.acc_bits - 1)
    for chunk in range(cfg.get("chunks", 6)):
        h = random_hyper(p, rng)
        if chunk == 0:
            h.update(theta=1, b_th=255)           # everything active, tiny threshold
        dut.hyper.value = pack_value(hyper_layout(p), h)
        bench = PipelineBench(dut, comp, lif_model(p, h), rng)
        # near-threshold values are the interesting ones: mix them with the extremes
        vectors = []
        for t in range(cfg.get("vectors", 80)):
            v = [int(rng.choice([rng.integers(-vmax, vmax), h["theta"] + rng.integers(-300, 300),
                                 vmax - 1, -vmax])) for _ in range(p.lanes)]
            v = [min(max(x, -vmax), vmax - 1) for x in v]
            acc = [int(rng.choice([rng.integers(-amax, amax), rng.integers(-50, 50),
                                   amax - 1, -amax])) for _ in range(p.lanes)]
            vectors.append({"v": v, "acc": acc, "s": int(rng.integers(0, 1 << p.lanes)),
                            "tag": t & 255})
        await bench.run(vectors)
        dut._log.info(f"chunk {chunk}: {bench.checked} vectors ok ({h})")
