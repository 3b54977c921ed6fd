"""Per-block bench: trace datapath (``hdl.trace.TraceLanes``) vs. golden formulas."""

import dataclasses
import json

from golden.fixed import FixedParams
from hdl.trace import TraceLanes
from sim.runner import run_cocotb
from sim.tb_blocks import PipelineHarness


def test_trace_lanes():
    p = FixedParams(n_in=8, n_hid=8, n_out=2, lanes=4)
    cfg = {"params": dataclasses.asdict(p), "seed": 12, "lanes": 4}
    run_cocotb(PipelineHarness(TraceLanes(p, 4, tag_shape=8)), name="trace_lanes4", test_module="sim.tb_trace",
               extra_env={"TB_CONFIG": json.dumps(cfg)})
