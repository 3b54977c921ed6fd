"""Whole-core tests: RTL ``LearningCore`` vs. ``golden.fixed.FixedCore``, bit for bit."""

import json

import pytest

from golden.fixed import FixedParams
from hdl.core import LearningCore
from sim.runner import run_cocotb
from sim.tb_util import verilator_make_fix

SMALL = dict(n_in=12, n_hid=16, n_out=4)


def run_core(name, params, **cfg):
    verilator_make_fix()
    cfg = {"params": params, **cfg}
    run_cocotb(LearningCore(FixedParams(**params)), name=f"core_{name}",
               test_module="sim.tb_core", extra_env={"TB_CONFIG": json.dumps(cfg)})


def test_core_lanes1_steps():
    """Feed-forward, lanes = 1, V and y checked after every step."""
    run_core("lanes1_steps", SMALL, samples=3, T=10, seed=1, check_steps=True, check_step_weights=True)
