"""Whole-core tests: RTL ``LearningCore`` vs. ``golden.fixed.FixedCore``, bit for bit.

Each test builds its own Verilator model (``build/cocotb/core_<name>``) and runs
``sim.tb_core``: the same token stream goes to the RTL and the golden model; predictions,
``y``, ``score``, counters and finally all weights must be equal.
"""

import dataclasses
import json

import pytest

from golden.fixed import FixedHyper, FixedParams
from hdl.core import LearningCore
from sim.runner import run_cocotb
from sim.tb_util import verilator_make_fix

SMALL = dict(n_in=12, n_hid=16, n_out=4)
#: learning rates high enough that most updates are non-zero (exercises rounding paths)
FAST = dict(l_shift=4, psi_shift=2, g_shift=8, go_shift=9, b_th=24)


def run_core(name, params, **cfg):
    verilator_make_fix()
    p = FixedParams(**params)
    # every parameter and register explicitly: the cocotb process must not depend on defaults
    cfg = {**cfg, "params": dataclasses.asdict(p),
           "hyper": FixedHyper(**cfg.get("hyper", {})).as_dict()}
    run_cocotb(LearningCore(p), name=f"core_{name}",
               test_module="sim.tb_core", extra_env={"TB_CONFIG": json.dumps(cfg)})


def test_core_lanes1_steps():
    """Feed-forward, lanes = 1, V, y and all weights checked after every step."""
    run_core("lanes1_steps", SMALL, samples=3, T=10, seed=1, hyper=FAST,
             check_steps=True, check_step_weights=True)


def test_core_recurrent_random_feedback_dense():
    """Recurrent, random feedback, lanes = 1; the stream again in dense mode."""
    run_core("rec_fb1", dict(SMALL, recurrent=True), samples=4, T=14, seed=2,
             hyper=dict(FAST, feedback=1, seed=0xDEADBEEF), dense_too=True)


@pytest.mark.parametrize("lanes", [2, 4])
def test_core_lanes(lanes):
    """lanes > 1, recurrent (n_pre not a multiple of lanes), event and dense mode."""
    run_core(f"lanes{lanes}", dict(SMALL, n_in=13, recurrent=True, lanes=lanes), samples=4,
             T=12, seed=3 + lanes, hyper=dict(FAST, seed=77 + lanes), dense_too=True,
             check_steps=True)


def test_core_saturation():
    """Huge learning rates and extreme weights: every stored quantity saturates."""
    run_core("saturation", dict(SMALL, recurrent=True, lanes=2), samples=3, T=10, seed=5,
             rate=0.5, w_scale=4.0, out_scale=4.0,
             hyper=dict(l_shift=0, psi_shift=0, g_shift=0, go_shift=0, b_th=255, theta=3,
                        target=16000, alpha_q=255, kappa_q=255, lam_q=255))


def test_core_all_active_and_silent():
    """All neurons active every step (large b_th); then a silent sample (no events)."""
    run_core("all_active", SMALL, samples=3, T=8, seed=6, rate=0.3, learn=[True, True, True],
             hyper=dict(FAST, b_th=255, theta=40), dense_too=True)
    run_core("silent", dict(SMALL, lanes=2), samples=2, T=8, seed=7, rate=0.0,
             hyper=FAST, dense_too=True)


def test_core_default_size():
    """Default size (50/128/10), T-Randman input, one learning and one inference sample."""
    run_core("default", {}, samples=2, T=50, seed=8, data="randman", learn=[True, False],
             hyper=dict(g_shift=10, go_shift=10))
