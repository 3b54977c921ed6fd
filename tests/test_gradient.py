"""Per-block bench: the learning signal vs. golden formulas (``FixedCore._gradient``); the
synapse update is ``tests/test_update.py``."""

import dataclasses
import json

from golden.fixed import FixedParams
from hdl.gradient import LearningSignal
from sim.runner import run_cocotb
from sim.tb_blocks import PipelineHarness


def _run(name, comp, p, block):
    cfg = {"params": dataclasses.asdict(p), "seed": 13, "block": block}
    run_cocotb(PipelineHarness(comp), name=name, test_module="sim.tb_gradient",
               extra_env={"TB_CONFIG": json.dumps(cfg)})


def test_learning_signal():
    p = FixedParams(n_in=8, n_hid=8, n_out=5)
    _run("gradient_signal", LearningSignal(p), p, "signal")
