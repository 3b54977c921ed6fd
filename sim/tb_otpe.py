"""cocotb benches: ``hdl.otpe`` units vs. the OTPE updates of ``golden.fixed``.

``normalizer``: every reachable ``c`` of several ``lam_q`` (the sequence from a clear to its
fixed point), ``recip`` compared with the golden model's exact integer division, ``busy``
for ``recip_frac + 3`` cycles after ``start``. ``surrogate_average`` and ``z_trace``: random
vectors (saturating ones included) through the pipelines, checked in order.
"""

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge

from golden.fixed import FixedCore, FixedHyper, usat
from hdl.interface import hyper_layout
from hdl.otpe import SurrogateAverageLanes, ZTraceLanes
from sim.tb_blocks import PipelineBench, config, pack_value, random_hyper, start_clock


@cocotb.test()
async def normalizer(dut):
    cfg, p = config()
    if cfg.get("block") != "normalizer":
        return
    await start_clock(dut)
    dut.start.value = 0
    dut.clear.value = 0
    for lam_q in (0, 1, 100, 243, (1 << p.decay_frac) - 1):
        h = FixedHyper(lam_q=lam_q)
        dut.hyper.value = pack_value(hyper_layout(p), {**h.as_dict(), "dense": 0})
        gold = FixedCore(p, h)
        gold.start_sample(0, False)
        dut.clear.value = 1
        await FallingEdge(dut.clk)
        dut.clear.value = 0
        seen = set()
        while gold.c not in seen:
            seen.add(gold.c)
            gold.step([])
            dut.start.value = 1
            await FallingEdge(dut.clk)
            dut.start.value = 0
            for _ in range(2 + p.recip_bits):  # the registered start, the product, a cycle per bit
                assert int(dut.busy.value) == 1
                await FallingEdge(dut.clk)
            assert int(dut.busy.value) == 0
            assert int(dut.recip.value) == gold.recip, \
                f"lam_q {lam_q} c {gold.c}: recip {int(dut.recip.value)} != {gold.recip}"
        dut._log.info(f"lam_q {lam_q}: {len(seen)} values of c ok")


def average_model(p, h, recip):
    def model(vec):
        gsum = [int(usat(((vec["gsum"][l] * h["lam_q"]) >> p.decay_frac) + vec["psi"][l],
                         p.gsum_bits)) for l in range(p.lanes)]
        gbar = [int(usat((g * recip) >> p.recip_frac, p.psi_bits)) for g in gsum]
        return {"gsum": gsum, "gbar": gbar, "tag": vec["tag"]}
    return model


def z_model(p, lanes, h):
    def model(vec):
        z = [int(usat(((vec["z"][l] * h["lam_q"]) >> p.decay_frac) + vec["a"][l], p.z_bits))
             for l in range(lanes)]
        return {"z": z, "tag": vec["tag"]}
    return model


def _edge(rng, top):
    return int(rng.choice([rng.integers(0, top + 1), top, 0]))


@cocotb.test()
async def surrogate_average(dut):
    cfg, p = config()
    if cfg.get("block") != "average":
        return
    rng = np.random.default_rng(cfg.get("seed", 0))
    await start_clock(dut)
    comp = SurrogateAverageLanes(p, tag_shape=8)
    for chunk in range(4):
        h = random_hyper(p, rng)
        if chunk == 0:
            h["lam_q"] = (1 << p.decay_frac) - 1
        recip = _edge(rng, 1 << p.recip_frac)
        dut.hyper.value = pack_value(hyper_layout(p), h)
        dut.recip.value = recip
        bench = PipelineBench(dut, comp, average_model(p, h, recip), rng)
        vectors = [{"psi": [_edge(rng, (1 << p.psi_bits) - 1) for _ in range(p.lanes)],
                    "gsum": [_edge(rng, (1 << p.gsum_bits) - 1) for _ in range(p.lanes)],
                    "tag": t & 255} for t in range(80)]
        await bench.run(vectors)
        dut._log.info(f"chunk {chunk} (recip {recip}): {bench.checked} vectors ok")


@cocotb.test()
async def z_trace(dut):
    cfg, p = config()
    if cfg.get("block") != "z":
        return
    lanes = cfg["lanes"]
    rng = np.random.default_rng(cfg.get("seed", 0))
    await start_clock(dut)
    comp = ZTraceLanes(p, lanes, tag_shape=8)
    for chunk in range(4):
        h = random_hyper(p, rng)
        if chunk == 0:
            h["lam_q"] = (1 << p.decay_frac) - 1
        dut.hyper.value = pack_value(hyper_layout(p), h)
        bench = PipelineBench(dut, comp, z_model(p, lanes, h), rng)
        vectors = [{"z": [_edge(rng, (1 << p.z_bits) - 1) for _ in range(lanes)],
                    "a": [_edge(rng, (1 << p.tr_bits) - 1) for _ in range(lanes)],
                    "tag": t & 255} for t in range(80)]
        await bench.run(vectors)
        dut._log.info(f"chunk {chunk}: {bench.checked} vectors ok")
