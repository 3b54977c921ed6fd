"""cocotb bench: ``hdl.gradient.LearningSignal`` vs. the gradient walk of
``golden.fixed.FixedCore._gradient`` (one neuron at a time; the synapse update is
``sim.tb_update``)."""

import cocotb
import numpy as np
from amaranth.hdl import signed, unsigned

from golden.fixed import sat
from hdl.gradient import LearningSignal
from hdl.interface import hyper_layout
from hdl.readout import y_word
from sim.tb_blocks import (PipelineBench, config, edge_value, pack_value, random_hyper,
                           start_clock)


def signal_model(p, h, err):
    def model(vec):
        lsig = int(sat(int(np.dot(vec["fb"], err)) >> h["l_shift"], p.l_bits))
        return {"m": int(sat((lsig * vec["psi"]) >> h["psi_shift"], p.l_bits))}
    return model


@cocotb.test()
async def signal_random(dut):
    cfg, p = config()
    if cfg.get("block") != "signal":
        return
    rng = np.random.default_rng(cfg.get("seed", 0))
    await start_clock(dut)
    comp = LearningSignal(p)
    for chunk in range(cfg.get("chunks", 6)):
        h = random_hyper(p, rng)
        if chunk == 0:
            h.update(l_shift=0, psi_shift=0)       # saturate L and m
        err = [edge_value(rng, signed(p.y_bits)) for _ in range(p.n_out)]
        dut.hyper.value = pack_value(hyper_layout(p), h)
        dut.err.value = pack_value(y_word(p), err)
        bench = PipelineBench(dut, comp, signal_model(p, h, err), rng)
        vectors = [{"fb": [edge_value(rng, signed(p.w_bits)) for _ in range(p.n_out)],
                    "psi": edge_value(rng, unsigned(p.psi_bits))}
                   for _ in range(cfg.get("vectors", 30))]
        await bench.run(vectors, flush=p.n_out + 12)
        dut._log.info(f"chunk {chunk}: {bench.checked} learning signals ok")
