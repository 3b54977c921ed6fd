"""Per-block benches: gradient datapaths vs. golden formulas (``FixedCore._gradient``)."""

import dataclasses
import json

from golden.fixed import FixedParams
from hdl.gradient import LearningSignal, SynapseLanes
from sim.runner import run_cocotb
from sim.tb_blocks import PipelineHarness


def _run(name, comp, p, block):
    cfg = {"params": dataclasses.asdict(p), "seed": 13, "block": block}
    run_cocotb(PipelineHarness(comp), name=name, test_module="sim.tb_gradient",
               extra_env={"TB_CONFIG": json.dumps(cfg)})


def test_synapse_lanes():
    p = FixedParams(n_in=8, n_hid=8, n_out=3, lanes=2)
    _run("gradient_synapse", SynapseLanes(p, 2, tag_shape=8), p, "synapse")


def test_learning_signal():
    p = FixedParams(n_in=8, n_hid=8, n_out=5)
    _run("gradient_signal", LearningSignal(p), p, "signal")
