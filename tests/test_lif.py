"""Per-block bench: LIF neuron datapath (``hdl.lif.LifLanes``) vs. golden formulas."""

import dataclasses
import json

import pytest

from golden.fixed import FixedParams
from hdl.lif import LifLanes
from sim.runner import run_cocotb
from sim.tb_blocks import PipelineHarness


@pytest.mark.parametrize("lanes", [2])
def test_lif_lanes(lanes):
    p = FixedParams(n_in=8, n_hid=8, n_out=2, lanes=lanes)
    cfg = {"params": dataclasses.asdict(p), "seed": 11}
    run_cocotb(PipelineHarness(LifLanes(p, tag_shape=8)), name=f"lif_lanes{lanes}", test_module="sim.tb_lif",
               extra_env={"TB_CONFIG": json.dumps(cfg)})
