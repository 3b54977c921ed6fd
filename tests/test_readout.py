"""Per-block bench: readout state (``Readout``); the readout update is ``tests/test_update.py``."""

import dataclasses
import json

from golden.fixed import FixedParams
from hdl.readout import Readout
from sim.runner import run_cocotb


def _run(name, comp, p, block):
    cfg = {"params": dataclasses.asdict(p), "seed": 15, "block": block}
    run_cocotb(comp, name=name, test_module="sim.tb_readout",
               extra_env={"TB_CONFIG": json.dumps(cfg)})


def test_readout_state():
    p = FixedParams(n_in=8, n_hid=20, n_out=5)
    _run("readout_state", Readout(p), p, "readout")


def test_readout_state_out_lanes():
    """Finish two classes per cycle of five (a padded last chunk)."""
    p = FixedParams(n_in=8, n_hid=20, n_out=5, out_lanes=2)
    _run("readout_state_ol2", Readout(p), p, "readout")
