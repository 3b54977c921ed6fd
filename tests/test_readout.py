"""Per-block benches: readout state (``Readout``) and readout update (``ReadoutUpdateLanes``)."""

import dataclasses
import json

from golden.fixed import FixedParams
from hdl.readout import Readout, ReadoutUpdateLanes
from sim.runner import run_cocotb
from sim.tb_blocks import PipelineHarness


def _run(name, comp, p, block):
    cfg = {"params": dataclasses.asdict(p), "seed": 15, "block": block}
    run_cocotb(comp, name=name, test_module="sim.tb_readout",
               extra_env={"TB_CONFIG": json.dumps(cfg)})


def test_readout_state():
    p = FixedParams(n_in=8, n_hid=20, n_out=5)
    _run("readout_state", Readout(p), p, "readout")


def test_readout_update():
    p = FixedParams(n_in=8, n_hid=8, n_out=4)
    _run("readout_update", PipelineHarness(ReadoutUpdateLanes(p, tag_shape=8)), p, "update")
