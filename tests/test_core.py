"""Whole-core tests: RTL ``LearningCore`` vs. ``golden.fixed.FixedCore``, bit for bit.

Each test builds its own Verilator model (``build/cocotb/core_<name>``) and runs
``sim.tb_core``: the same token stream goes to the RTL and the golden model; predictions,
``y``, ``score``, counters and finally all weights must be equal.
"""

import dataclasses
import json


from golden.fixed import FixedHyper, FixedParams
from hdl.core import LearningCore
from sim.runner import run_cocotb

SMALL = dict(n_in=12, n_hid=16, n_out=4)
#: learning rates high enough that most updates are non-zero (exercises rounding paths)
FAST = dict(l_shift=4, psi_shift=2, g_shift=8, go_shift=9, b_th=24, theta=64, target=64)


def run_core(name, params, **cfg):
    p = FixedParams(**params)
    # every parameter and register explicitly: the cocotb process must not depend on defaults
    cfg = {"w_scale": 1.0, **cfg, "params": dataclasses.asdict(p),
           "hyper": FixedHyper(**cfg.get("hyper", {})).as_dict()}
    for then in cfg.get("then", []):
        FixedHyper(**{**cfg["hyper"], **then.get("hyper", {})}).validate(p)
    run_cocotb(LearningCore(p), name=f"core_{name}",
               test_module="sim.tb_core", extra_env={"TB_CONFIG": json.dumps(cfg)})


def test_core_lanes1_steps():
    """Feed-forward, lanes = 1: V, y and all weights checked after every step; then all
    neurons active every step (large b_th) and a silent sample, both also in dense mode."""
    run_core("lanes1", SMALL, samples=2, T=8, seed=1, hyper=FAST,
             check_steps=True, check_step_weights=True,
             then=[dict(samples=3, T=8, seed=6, rate=0.3, learn=[True],
                        hyper=dict(b_th=255, theta=40), dense_too=True, check_steps=False,
                        check_step_weights=False),
                   dict(samples=2, T=8, seed=7, rate=0.0, dense_too=True, check_steps=False,
                        check_step_weights=False)])


def test_core_repeated_and_out_of_range_events():
    """Repeated EVENT tokens in a step and indices >= n_in change nothing (the accumulator
    walks such a row without adding it), in event and dense mode."""
    run_core("noise", dict(SMALL, lanes=2), samples=3, T=10, seed=9, hyper=FAST,
             noise_events=True, dense_too=True)


def test_core_wide_input():
    """n_in = 300 (several groups of bitmap words in the EVENT look-up and in the neuron
    pass's event select), lanes = 4, repeated and out-of-range events, event and dense mode."""
    run_core("wide", dict(SMALL, n_in=300, lanes=4), samples=2, T=10, seed=41, hyper=FAST,
             noise_events=True, dense_too=True)


def test_core_recurrent_random_feedback_dense():
    """Recurrent, random feedback, lanes = 1; the stream again in dense mode."""
    run_core("rec_fb1", dict(SMALL, recurrent=True), samples=4, T=14, seed=2,
             hyper=dict(FAST, feedback=1, seed=0xDEADBEEF), dense_too=True)


def test_core_lanes2_saturation():
    """lanes = 2, recurrent (n_pre not a multiple of lanes), V/y checked every step, event
    and dense mode; then huge learning rates and extreme weights (everything saturates)."""
    run_core("lanes2", dict(SMALL, n_in=13, recurrent=True, lanes=2), samples=3, T=12, seed=5,
             hyper=dict(FAST, seed=79), dense_too=True, check_steps=True,
             then=[dict(samples=3, T=10, seed=5, rate=0.5, w_scale=4.0, out_scale=4.0,
                        dense_too=False, check_steps=False,
                        hyper=dict(l_shift=0, psi_shift=0, g_shift=0, go_shift=0, b_th=255,
                                   theta=3, target=16000, alpha_q=255, kappa_q=255,
                                   lam_q=255))])


def test_core_lanes4():
    """lanes = 4, recurrent, random feedback, event and dense mode."""
    run_core("lanes4", dict(SMALL, n_in=13, recurrent=True, lanes=4), samples=4, T=12, seed=7,
             hyper=dict(FAST, seed=81, feedback=1), dense_too=True)


def test_core_default_size():
    """Default size (50/128/10), T-Randman input, one learning and one inference sample."""
    run_core("default", {}, samples=2, T=50, seed=8, data="randman", learn=[True, False],
             hyper=dict(g_shift=10, go_shift=10))


#: approximate OTPE (rule 1): z is ~1/(1 - lam) times a, so a lower hidden learning rate
OTPE = dict(FAST, rule=1, g_shift=12)


def test_core_otpe_lanes1_steps():
    """Rule 1, feed-forward, lanes = 1: V, y and all weights after every step; then the same
    core switched to rule 0 (OTPE state from rule 1 cleared by START), event and dense mode;
    then rule 1 with the slowest decay (long gbar tails, saturating z)."""
    run_core("otpe_lanes1", SMALL, samples=3, T=10, seed=11, hyper=OTPE,
             check_steps=True, check_step_weights=True,
             then=[dict(samples=3, T=10, seed=12, hyper=dict(rule=0), dense_too=True,
                        check_steps=False, check_step_weights=False),
                   dict(samples=3, T=16, seed=13, rate=0.4, dense_too=True, check_steps=False,
                        check_step_weights=False,
                        hyper=dict(lam_q=255, kappa_q=255, b_th=60, g_shift=16))])


def test_core_otpe_lanes2_recurrent_random_feedback():
    """Rule 1, lanes = 2, recurrent (z_hid of the previous step), random feedback, event and
    dense mode; then rule 0 on the same build. Weight banks of 232 words in 64-word chunks
    (the last one shorter)."""
    run_core("otpe_lanes2", dict(SMALL, n_in=13, recurrent=True, lanes=2, w_chunk=64),
             samples=4, T=12,
             seed=14, hyper=dict(OTPE, feedback=1, seed=0xC0FFEE), dense_too=True,
             check_steps=True,
             then=[dict(samples=2, T=12, seed=15, hyper=dict(rule=0, feedback=0),
                        dense_too=False, check_steps=False)])


def test_core_out_lanes1():
    """Readout update serialised (out_lanes = 1, one class per cycle): all weights after
    every step; then another seed (the generator ring reloaded) with high rates, dense too."""
    run_core("out1", dict(SMALL, out_lanes=1), samples=2, T=8, seed=21, hyper=FAST,
             check_steps=True, check_step_weights=True,
             then=[dict(samples=3, T=8, seed=22, rate=0.3, dense_too=True, check_steps=False,
                        check_step_weights=False,
                        hyper=dict(b_th=255, theta=40, go_shift=4, seed=0xBADC0DE))])


def test_core_out_lanes3_otpe():
    """out_lanes = 3 of n_out = 4 (a padded last chunk), lanes = 2, recurrent, OTPE rule 1
    (z_hid next to the serial readout update), random feedback."""
    run_core("out3_otpe", dict(SMALL, n_in=13, recurrent=True, lanes=2, out_lanes=3),
             samples=3, T=10, seed=23, hyper=dict(OTPE, feedback=1, seed=77), dense_too=True,
             check_steps=True)


def test_core_spram():
    """Weights in single-port RAM (the iCE40 SPRAM model), out_lanes = 1, lanes = 1: all
    weights after every step, dense mode too; then high rates (most weights rewritten)."""
    run_core("spram", dict(SMALL, out_lanes=1, weight_ram="spram"), samples=2, T=8, seed=31,
             hyper=FAST, check_steps=True, check_step_weights=True, dense_too=True,
             then=[dict(samples=2, T=8, seed=32, rate=0.4, check_steps=False,
                        check_step_weights=False,
                        hyper=dict(b_th=255, theta=40, g_shift=3, seed=0x5EED))])


def test_core_spram_lanes2_recurrent():
    """Single-port weight banks with lanes = 2 (skewed banks), recurrent, random feedback."""
    run_core("spram_lanes2", dict(SMALL, n_in=13, recurrent=True, lanes=2, weight_ram="spram"),
             samples=3, T=10, seed=33, hyper=dict(FAST, feedback=1, seed=91), dense_too=True,
             check_steps=True)
