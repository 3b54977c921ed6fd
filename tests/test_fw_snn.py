"""The firmware model fw/snn.c (compiled natively with gcc) against golden.fixed.FixedCore.

Every comparison is exact: after each time step V, Y, SCORE and all of W, W_OUT, B; after
each sample the prediction and the 8 model counters. Parameter sets cover the default
network, small recurrent ones, lanes 1/2/3/4, OTPE on/off with rules 0 and 1, both feedback
modes, narrow widths that saturate, wide widths that take the 64-bit paths, and random
widths; hyper registers include extremes (shift 0, shift max, huge theta, zero decays).
test_extremes drives every working type of fw/snn.c to its limits, just inside and just
outside the widths where it is 32 bits. Also: snn_check_hyper against FixedHyper.validate,
the cycle counters (fake clock), counter saturation, and a clean rv32 build.
"""

import dataclasses
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from fw.build import COUNTER_NAMES, HYPER_FIELDS, MEM_W, MEM_W_OUT, NativeCore, param_defines
from golden.fixed import (COUNTERS, FEEDBACK_RANDOM, RULE_OTPE, FixedCore, FixedHyper,
                          FixedParams, init_weights)

U32 = 0xFFFF_FFFF


# -- helpers --------------------------------------------------------------------------------
def full_range_weights(p: FixedParams, rng):
    lo, hi = -(1 << (p.w_bits - 1)), (1 << (p.w_bits - 1))
    return (rng.integers(lo, hi, size=(p.n_hid, p.n_pre)),
            rng.integers(lo, hi, size=(p.n_out, p.n_hid)),
            rng.integers(lo, hi, size=(p.n_hid, p.n_out)))


def random_hyper(p: FixedParams, rng, **fixed) -> FixedHyper:
    """Registers in their valid ranges, often at the extremes."""
    def pick(lo, hi, typical):
        u = rng.random()
        if u < 0.1:
            return lo
        if u < 0.2:
            return hi
        return int(min(hi, max(lo, typical)))

    q_max = (1 << p.decay_frac) - 1
    v_max, y_max, s_max = (1 << (p.v_bits - 1)) - 1, (1 << (p.y_bits - 1)) - 1, p.max_shift
    b_max = (1 << p.psi_bits) - 1
    values = dict(
        alpha_q=pick(0, q_max, rng.integers(q_max // 2, q_max + 1)),
        lam_q=pick(0, q_max, rng.integers(q_max // 2, q_max + 1)),
        kappa_q=pick(0, q_max, rng.integers(0, q_max + 1)),
        # theta near the weights' scale, or within the band b_th of 0 (then many neurons
        # are active)
        theta=pick(1, v_max, 2 ** rng.uniform(*rng.choice([(p.w_bits - 2, p.w_bits + 2),
                                                          (0, p.psi_bits)]))),
        b_th=pick(0, b_max, rng.integers(b_max // 4, b_max + 1)),
        target=pick(0, y_max, 2 ** rng.uniform(0, p.y_bits - 1)),
        l_shift=pick(0, s_max, rng.integers(0, min(s_max, 12) + 1)),
        psi_shift=pick(0, s_max, rng.integers(0, min(s_max, 8) + 1)),
        g_shift=pick(0, s_max, rng.integers(0, min(s_max, 24) + 1)),
        go_shift=pick(0, s_max, rng.integers(0, min(s_max, 16) + 1)),
        feedback=int(rng.integers(0, 2)),
        seed=int(rng.integers(0, 1 << 32)),
        rule=int(rng.integers(0, 2)) if p.otpe else 0)
    values.update(fixed)
    return FixedHyper(**values).validate(p)


def low32(x):
    """Two's-complement low 32 bits, as snn_read returns SCORE."""
    x = np.asarray(x, dtype=np.int64) & U32
    return np.where(x >= 1 << 31, x - (1 << 32), x)


def assert_same_state(g: FixedCore, n: NativeCore, where):
    for name in ("v", "y", "w", "w_out", "b"):
        a, c = getattr(g, name), getattr(n, name)
        if not np.array_equal(a, c):
            bad = np.argwhere(a != c)[:5].tolist()
            raise AssertionError(f"{where}: {name} differs at {bad}")
    assert np.array_equal(low32(g.score), n.score), f"{where}: score differs"


def compare_run(p: FixedParams, hypers, weights, rng, steps=(8, 40), density=None,
                learn=None):
    """Run the same samples through both models (one per hyper in ``hypers``, configured
    before it), comparing after every step and every sample. Returns the golden core."""
    g, n = FixedCore(p, hypers[0]), NativeCore(p, hypers[0])
    g.load_weights(*weights)
    n.load_weights(*weights)
    assert_same_state(g, n, "after load")
    for s, h in enumerate(hypers):
        if s:
            g.configure(h)
            n.configure(h)
        label = int(rng.integers(p.n_out))
        lrn = bool(rng.integers(0, 4)) if learn is None else learn
        dens = rng.choice([0.0, 0.05, 0.2, 0.5, 1.0]) if density is None else density
        g.start_sample(label, lrn)
        n.start_sample(label, lrn)
        for t in range(int(rng.integers(*steps))):
            events = np.flatnonzero(rng.random(p.n_in) < dens)
            g.step(events)
            n.step(events)
            assert_same_state(g, n, f"sample {s} step {t} (learn={lrn}, hyper={h})")
        assert g.end_sample() == n.end_sample(), f"sample {s}: prediction"
        assert g.counters == n.counters, f"sample {s}: counters"
        assert n.raw_counters()[8:] == [0] * 6   # no SNN_NOW natively: CYC_* stay 0
    return g


# -- named parameter sets --------------------------------------------------------------------
NARROW = dict(w_bits=6, v_bits=10, tr_bits=8, tr_frac=5, y_bits=8, l_bits=8, psi_bits=5,
              decay_frac=6, score_bits=12, z_bits=10, gsum_bits=8, c_frac=4, recip_frac=8)
WIDE = dict(w_bits=16, v_bits=32, tr_bits=24, tr_frac=12, y_bits=32, l_bits=32, psi_bits=16,
            decay_frac=16, score_bits=48, shift_bits=6, z_bits=32, gsum_bits=32, c_frac=16,
            recip_frac=24)

# exactly at the 32-bit limits of the working types: l_bits + z_bits = 32 (gradient),
# y_bits + tr_bits = 32 (readout), w_bits + y_bits - 2 + log2(n_out) = 30 (L_j), v + decay = 32
EDGE32 = dict(n_in=16, n_hid=8, n_out=4, lanes=2, recurrent=True, w_bits=14, v_bits=24,
              tr_bits=16, tr_frac=8, y_bits=16, l_bits=16, psi_bits=8, score_bits=31,
              z_bits=16, gsum_bits=16)

CASES = {
    # name: (params, hyper, weights "init"/"full", samples); hyper: changes to FixedHyper(),
    # None (random registers per sample) or ("random", fixed registers)
    "default_ottt": (FixedParams(), {}, "init", 3),
    "default_otpe": (FixedParams(), dict(rule=RULE_OTPE, psi_shift=0, g_shift=27,
                                          go_shift=17), "init", 2),
    "default_fast": (FixedParams(), dict(g_shift=9, go_shift=6, feedback=FEEDBACK_RANDOM),
                     "init", 2),
    "small_rec_l2_otpe": (FixedParams(n_in=13, n_hid=8, n_out=3, recurrent=True, lanes=2),
                          None, "full", 10),
    "small_rec_l4_nootpe": (FixedParams(n_in=13, n_hid=8, n_out=3, recurrent=True, lanes=4,
                                        otpe=False), None, "full", 10),
    "small_l2_ff": (FixedParams(n_in=13, n_hid=8, n_out=3, lanes=2), None, "init", 10),
    "lanes3_rec": (FixedParams(n_in=7, n_hid=9, n_out=4, recurrent=True, lanes=3), None,
                   "full", 10),
    "lanes_over_npre": (FixedParams(n_in=1, n_hid=4, n_out=2, lanes=4), None, "full", 10),
    "narrow_rec": (FixedParams(n_in=13, n_hid=8, n_out=3, recurrent=True, lanes=2, **NARROW),
                   None, "full", 10),
    "narrow_g0": (FixedParams(n_in=20, n_hid=16, n_out=4, lanes=4, **NARROW),
                  ("random", dict(g_shift=0, go_shift=0, l_shift=0, psi_shift=0, theta=20,
                                  b_th=31, target=100)), "full", 6),
    "narrow_big_theta": (FixedParams(n_in=20, n_hid=16, n_out=4, lanes=2, **NARROW),
                         ("random", dict(theta=511, b_th=31, target=127, alpha_q=63,
                                         lam_q=63, kappa_q=63)), "full", 6),
    "wide_rec": (FixedParams(n_in=13, n_hid=8, n_out=3, recurrent=True, lanes=2, **WIDE),
                 None, "full", 10),
    "wide_shift_max": (FixedParams(n_in=9, n_hid=4, n_out=3, **WIDE),
                       ("random", dict(theta=3000, b_th=65535, l_shift=63, psi_shift=40,
                                       g_shift=63, go_shift=33, target=1 << 30,
                                       alpha_q=65535, lam_q=65535, kappa_q=65535,
                                       rule=RULE_OTPE)), "full", 6),
    "edge32": (FixedParams(**EDGE32), ("random", dict(l_shift=0, psi_shift=0, lam_q=255,
                                                      theta=100, b_th=255, alpha_q=250)),
               "full", 12),
    # OTPE state saturating: z (z_bits 13 vs a up to 2^12), gsum (12 bits), gbar (c_frac 0:
    # c stays 1.0 at lam_q 255, so gbar = gsum)
    "otpe_sat": (FixedParams(n_in=20, n_hid=16, n_out=4, lanes=2, c_frac=0, gsum_bits=12,
                             z_bits=13), ("random", dict(rule=RULE_OTPE, lam_q=255)), "full", 10),
    # gsum_bits = psi_bits: gsum saturates while gbar = gsum / c is still small
    "gsum_sat": (FixedParams(n_in=20, n_hid=16, n_out=4, lanes=4, gsum_bits=8),
                 ("random", dict(rule=RULE_OTPE, lam_q=250)), "full", 10),
    "shift_bits6": (FixedParams(n_in=16, n_hid=16, n_out=4, lanes=4, shift_bits=6), None,
                    "full", 10),
}


@pytest.mark.parametrize("name", list(CASES))
def test_against_golden(name):
    p, changes, wkind, samples = CASES[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    if changes is None or isinstance(changes, tuple):
        fixed = changes[1] if changes else {}
        hypers = [random_hyper(p, rng, **fixed) for _ in range(samples)]
    else:
        h = dataclasses.replace(FixedHyper(), **changes).validate(p)
        hypers = [h] * samples
    weights = init_weights(p, seed=int(rng.integers(1 << 16)), theta=hypers[0].theta) \
        if wkind == "init" else full_range_weights(p, rng)
    steps = (30, 51) if p.n_hid >= 128 else (5, 40)
    g = compare_run(p, hypers, weights, rng, steps=steps)
    c = g.counters
    assert c.samples == samples and c.spikes > 0 and c.active > 0


# Just outside the 32-bit bound of one working type each (so they use 64 bits) and exactly
# at the bound (EDGE32), driven to extreme values: all decays maximal, shifts 0, weights at
# the limits, bursts of dense input.
EXTREME = {
    "gradient_l17_z16": dict(l_bits=17, z_bits=16, w_bits=16, y_bits=16, tr_frac=11),
    "readout_w_gt_y": dict(w_bits=16, y_bits=15, tr_bits=17, tr_frac=16, z_bits=17,
                           l_bits=16),
    "v25": dict(v_bits=25, w_bits=16),
    "y25": dict(y_bits=25, w_bits=16),
    "a24_d9": dict(tr_bits=24, tr_frac=20, z_bits=24, decay_frac=9),
    "lsum_31": dict(w_bits=16, y_bits=16),
    "c16_d9": dict(c_frac=16, decay_frac=9, recip_frac=15),
    "z25": dict(tr_bits=24, tr_frac=20, z_bits=25),
    "gsum24_d10": dict(psi_bits=16, gsum_bits=24, decay_frac=10),
    "gbar_g17_r16": dict(psi_bits=16, gsum_bits=17, c_frac=0, recip_frac=16),
    "score32_y31": dict(y_bits=31, score_bits=32, w_bits=16),
    "edge32": {k: v for k, v in EDGE32.items() if k not in ("n_in", "n_hid", "n_out")},
}


LONG = ("c16_d9", "gsum24_d10", "score32_y31")   # slow to reach their extremes


@pytest.mark.parametrize("name", list(EXTREME))
def test_extremes(name):
    p = FixedParams(**{"n_in": 32, "n_hid": 16, "n_out": 2, **EXTREME[name]})
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    q_max, v_max = (1 << p.decay_frac) - 1, (1 << (p.v_bits - 1)) - 1
    hi, lo = (1 << (p.w_bits - 1)) - 1, -(1 << (p.w_bits - 1))
    shapes = [(p.n_hid, p.n_pre), (p.n_out, p.n_hid), (p.n_hid, p.n_out)]
    weight_sets = [[np.full(s, x) for s, x in zip(shapes, xs)]
                   for xs in [(hi, hi, hi), (lo, lo, lo), (hi, lo, lo)]]
    weight_sets.append(full_range_weights(p, rng))
    # moderate shifts: products land inside the weight range instead of saturating
    g_mid = min(p.max_shift, p.l_bits + p.grad_tr_bits - p.w_bits + 1)
    go_mid = min(p.max_shift, p.y_bits + p.tr_bits - p.w_bits + 1)
    steps = 300 if name in LONG else 40
    for weights in weight_sets:
        hypers = [FixedHyper(alpha_q=q_max, lam_q=q_max, kappa_q=kappa, theta=theta,
                             b_th=(1 << p.psi_bits) - 1, target=(1 << (p.y_bits - 1)) - 1,
                             l_shift=ls, psi_shift=ps, g_shift=g, go_shift=go,
                             feedback=fb, rule=rule, seed=int(rng.integers(1 << 32)))
                  for kappa, theta, ls, ps, g, go, fb, rule in [
                      (q_max, v_max, 0, 0, 0, 0, 1, 1), (0, 1, 0, 0, 0, 0, 1, 0),
                      (q_max, v_max, 0, 0, 0, p.max_shift, 1, 0),
                      (q_max, v_max, 2, 2, g_mid, go_mid, 0, 1),
                      (q_max, v_max, 2, 2, g_mid - 4, go_mid - 4, 1, 1),
                      # m = L * gbar >> psi_bits: gbar's exact value reaches the weights
                      (q_max, v_max, 0, min(p.psi_bits, p.max_shift), g_mid, go_mid, 1, 1)]]
        g_core, n_core = FixedCore(p, hypers[0]), NativeCore(p, hypers[0])
        for core in (g_core, n_core):
            core.load_weights(*weights)
        for s, h in enumerate(hypers):
            for core in (g_core, n_core):
                core.configure(h)
                core.start_sample(s % p.n_out, True)
            for t in range(steps):
                events = np.arange(p.n_in) if (t // 8) % 3 < 2 else []
                g_core.step(events)
                n_core.step(events)
                assert_same_state(g_core, n_core, f"{name} sample {s} step {t}")
            assert g_core.end_sample() == n_core.end_sample()
        assert g_core.counters == n_core.counters


def test_saturation_and_activity_happen():
    """The narrow cases really saturate weights and V, and walk active neurons."""
    p = FixedParams(n_in=13, n_hid=8, n_out=3, recurrent=True, lanes=2, **NARROW)
    rng = np.random.default_rng(5)
    h = FixedHyper(alpha_q=60, lam_q=60, kappa_q=60, theta=40, b_th=31, target=100,
                   l_shift=0, psi_shift=0, g_shift=2, go_shift=2).validate(p)
    g = compare_run(p, [h] * 3, full_range_weights(p, rng), rng, steps=(20, 21), density=0.5,
                    learn=True)
    w_max = (1 << (p.w_bits - 1)) - 1
    assert (np.abs(g.w) >= w_max).mean() > 0.2
    assert g.counters.active > 0 and g.counters.spikes > 0


@pytest.mark.parametrize("seed", range(24))
def test_random_params(seed):
    """Random widths and sizes (every legal range) and random registers."""
    rng = np.random.default_rng(1000 + seed)
    tr_bits = int(rng.integers(2, 25))
    psi_bits = int(rng.integers(1, 17))
    lanes = int(rng.choice([1, 2, 3, 4]))
    p = FixedParams(
        n_in=int(rng.integers(1, 30)), n_hid=lanes * int(rng.integers(1, 6)),
        n_out=int(rng.integers(1, 7)), recurrent=bool(rng.integers(0, 2)), lanes=lanes,
        w_bits=int(rng.integers(2, 17)), v_bits=int(rng.integers(4, 33)), tr_bits=tr_bits,
        tr_frac=int(rng.integers(0, tr_bits)), y_bits=int(rng.integers(4, 33)),
        l_bits=int(rng.integers(4, 33)), psi_bits=psi_bits,
        decay_frac=int(rng.integers(1, 17)), score_bits=int(rng.integers(8, 49)),
        shift_bits=int(rng.integers(1, 7)), otpe=bool(rng.integers(0, 2)),
        z_bits=int(rng.integers(tr_bits, 33)), gsum_bits=int(rng.integers(psi_bits, 33)),
        c_frac=int(rng.integers(0, 17)), recip_frac=int(rng.integers(1, 25)))
    hypers = [random_hyper(p, rng) for _ in range(4)]
    compare_run(p, hypers, full_range_weights(p, rng), rng, steps=(5, 30))


def test_reseed_dense_and_defaults():
    p = FixedParams(n_in=13, n_hid=8, n_out=3, recurrent=True, lanes=2)
    rng = np.random.default_rng(3)
    g, n = FixedCore(p), NativeCore(p)            # snn_init: FixedHyper() defaults
    h = random_hyper(p, rng, g_shift=4, go_shift=4, theta=40, b_th=60)
    weights = full_range_weights(p, rng)
    for core in (g, n):
        core.load_weights(*weights)
    g.configure(h)
    n.configure(h, dense=1)                      # dense: no effect on results
    for sample in range(3):
        g.start_sample(1, True)
        n.start_sample(1, True)
        for t in range(10):
            ev = np.flatnonzero(rng.random(p.n_in) < 0.4)
            g.step(ev)
            n.step(ev)
            assert_same_state(g, n, f"{sample}/{t}")
        assert g.end_sample() == n.end_sample()
        g.configure(h)                           # golden: configure reseeds
        n.reseed()                               # firmware: RESET bit1
    assert g.counters == n.counters
    n.clear_counters()
    assert n.raw_counters() == [0] * len(COUNTER_NAMES)


@pytest.mark.parametrize("generator", [0, 1, 2, 3])
def test_zero_lane_seed(generator):
    """A seed whose lane_seed is 0 for one generator (hidden lanes 0, 1; readout 0, 1):
    that generator starts from 1."""
    p = FixedParams(n_in=13, n_hid=8, n_out=3, recurrent=True, lanes=2)
    rng = np.random.default_rng(generator)
    seed = (0x9E37_79B9 * (generator + 1)) & U32
    h = random_hyper(p, rng, seed=seed, theta=30, b_th=60, g_shift=3, go_shift=3)
    g = compare_run(p, [h] * 3, full_range_weights(p, rng), rng, steps=(15, 16), density=0.3,
                    learn=True)
    assert g.counters.active > 0


def test_cycle_counters():
    """With a platform SNN_NOW (here a fake clock advancing 7 per read), each phase adds its
    elapsed cycles, wrap-safe across 2^32, saturating."""
    p = FixedParams(n_in=13, n_hid=8, n_out=3, recurrent=True, lanes=2)
    n = NativeCore(p, FixedHyper(), fake_clock=True)
    cyc = lambda: n.raw_counters()[8:]                       # noqa: E731
    n.tick.value, n.clock.value = 7, U32 - 20               # the clock wraps in the first step
    n.start_sample(0, False)
    n.step([1, 2])
    n.step([])
    # accumulate, neuron, readout, gradient, trace (steps 3 and 7), busy (6 reads per step)
    assert cyc() == [14, 14, 14, 0, 28, 84]
    n.start_sample(0, True)
    n.step([3])                                              # learning: 2 more laps
    assert cyc() == [21, 21, 21, 14, 42, 84 + 56]
    n.tick.value = 1 << 28                                   # 2^31 cycles per learning step
    n.step([])
    n.step([])
    assert cyc()[3] == 14 + (4 << 28) and cyc()[5] == U32   # busy saturates
    assert n.counters.steps == 5


def test_counters_saturate():
    p = FixedParams(n_in=13, n_hid=8, n_out=3, recurrent=True)
    rng = np.random.default_rng(4)
    h = random_hyper(p, rng, theta=30, b_th=60)
    g, n = FixedCore(p, h), NativeCore(p, h)
    weights = full_range_weights(p, rng)
    for core in (g, n):
        core.load_weights(*weights)
    near = [U32, U32 - 1, U32 - 3, U32 - 50, U32 - 1, U32 - 2, U32 - 100, U32 - 100]
    for name, value in zip(COUNTERS, near):
        setattr(g.counters, name, value)
    for i, value in enumerate(near):
        n._counters[i] = value
    g.start_sample(0, True)
    n.start_sample(0, True)
    for _ in range(8):
        ev = np.flatnonzero(rng.random(p.n_in) < 0.5)
        g.step(ev)
        n.step(ev)
    g.end_sample()
    n.end_sample()
    assert g.counters == n.counters
    raw = n.raw_counters()
    for name in ("samples", "steps", "input_events", "syn_ops", "readout_updates"):
        assert raw[COUNTERS.index(name)] == U32


def test_read_and_score_low_bits():
    p = FixedParams(n_in=5, n_hid=4, n_out=2, **WIDE)
    n = NativeCore(p)
    n.load_weights(w=np.arange(20).reshape(4, 5) - 7, w_out=np.arange(8).reshape(2, 4) - 3)
    read = n.lib.snn_read
    assert read(MEM_W, 3, 4) == 12 and read(MEM_W, 1, 0) == -2
    assert read(MEM_W_OUT, 1, 3) == 4 and read(MEM_W_OUT, 0, 1) == -2
    # a score beyond 32 bits reads back as its low 32 bits (as the RTL's 32-bit read port)
    h = FixedHyper(theta=1, b_th=0, kappa_q=65535, target=0).validate(p)
    g = FixedCore(p, h)
    n.configure(h)
    big = (1 << 15) - 1
    for core in (g, n):
        core.load_weights(w=np.full((4, 5), big), w_out=np.full((2, 4), big),
                          b=np.zeros((4, 2), dtype=np.int64))
        core.start_sample(0, False)
    for _ in range(300):
        g.step([0, 1, 2, 3, 4])
        n.step([0, 1, 2, 3, 4])
    assert g.score.max() >= 1 << 32
    assert np.array_equal(low32(g.score), n.score)
    assert g.end_sample() == n.end_sample()


# -- snn_check_hyper ---------------------------------------------------------------------------
def _golden_check(p, values) -> int:
    """The first field FixedHyper.validate rejects (its message names it), -1 if none."""
    try:
        FixedHyper(**{k: v for k, v in values.items() if k != "dense"}).validate(p)
    except ValueError as e:
        return HYPER_FIELDS.index(str(e).split()[0])
    return -1 if values["dense"] in (0, 1) else HYPER_FIELDS.index("dense")


@pytest.mark.parametrize("params", [FixedParams(), FixedParams(otpe=False),
                                    FixedParams(n_in=4, n_hid=4, n_out=2, **NARROW),
                                    FixedParams(n_in=4, n_hid=4, n_out=2, **WIDE),
                                    FixedParams(n_in=4, n_hid=4, n_out=2, v_bits=4, y_bits=4,
                                                psi_bits=1, decay_frac=1, shift_bits=1)],
                         ids=["default", "no_otpe", "narrow", "wide", "tiny"])
def test_check_hyper(params):
    p, rng = params, np.random.default_rng(params.v_bits * 31 + params.otpe)
    n = NativeCore(p)
    limits = {"alpha_q": (0, (1 << p.decay_frac) - 1), "theta": (1, (1 << (p.v_bits - 1)) - 1),
              "b_th": (0, (1 << p.psi_bits) - 1), "target": (0, (1 << (p.y_bits - 1)) - 1),
              "l_shift": (0, p.max_shift), "feedback": (0, 1), "seed": (0, U32),
              "rule": (0, 1 if p.otpe else 0), "dense": (0, 1)}
    for name in ("lam_q", "kappa_q"):
        limits[name] = limits["alpha_q"]
    for name in ("psi_shift", "g_shift", "go_shift"):
        limits[name] = limits["l_shift"]
    signed = ("theta", "target")

    def draw(name, bad):
        lo, hi = limits[name]
        c_lo, c_hi = (-(1 << 31), (1 << 31) - 1) if name in signed else (0, U32)
        if not bad:
            return int(rng.choice([lo, hi, rng.integers(lo, hi + 1)]))
        choices = [v for v in (lo - 1, hi + 1, c_lo, c_hi,
                               int(rng.integers(c_lo, c_hi + 1))) if c_lo <= v <= c_hi
                   and not lo <= v <= hi]
        return int(rng.choice(choices)) if choices else draw(name, False)

    # each field alone just outside its range (the rest valid, at their limits)
    for lo_hi in (0, 1):
        valid = {name: limits[name][lo_hi] for name in HYPER_FIELDS}
        assert n.check_hyper(**valid) == _golden_check(p, valid) == -1
        for i, name in enumerate(HYPER_FIELDS):
            lo, hi = limits[name]
            c_lo, c_hi = (-(1 << 31), (1 << 31) - 1) if name in signed else (0, U32)
            for v in (lo - 1, hi + 1):
                if c_lo <= v <= c_hi:
                    values = {**valid, name: v}
                    assert n.check_hyper(**values) == _golden_check(p, values) == i, values
    # random mixtures of valid and invalid fields: the first bad one is reported
    seen = set()
    for trial in range(600):
        n_bad = int(rng.choice([0, 1, 1, 2, 3]))
        bad = set(rng.choice(len(HYPER_FIELDS), size=n_bad, replace=False).tolist())
        values = {name: draw(name, i in bad) for i, name in enumerate(HYPER_FIELDS)}
        expect = _golden_check(p, values)
        assert n.check_hyper(**values) == expect, values
        seen.add(expect)
    # every field that can be out of range was caught as the first bad one at least once
    can_fail = {i for i, name in enumerate(HYPER_FIELDS)
                if limits[name] != ((-(1 << 31), (1 << 31) - 1) if name in signed
                                    else (0, U32))}
    assert can_fail | {-1} <= seen


# -- the rv32 build ----------------------------------------------------------------------------
@pytest.mark.parametrize("params", [FixedParams(),
                                    FixedParams(n_in=13, n_hid=8, n_out=3, recurrent=True,
                                                lanes=2, **NARROW),
                                    FixedParams(n_in=13, n_hid=8, n_out=3, recurrent=True,
                                                lanes=4, otpe=False, **WIDE)],
                         ids=["default", "narrow", "wide"])
def test_rv32_build(params, tmp_path):
    """Compiles cleanly (-Wall -Wextra -Werror) for RV32IM-Zmmul, freestanding, and calls no
    libc (only compiler-rt's division helpers)."""
    pytest.importorskip("ziglang")
    obj = tmp_path / "snn.o"
    cmd = [sys.executable, "-m", "ziglang", "cc", "-target", "riscv32-freestanding-none",
           "-mcpu=generic_rv32+zmmul", "-Os", "-ffreestanding", "-Wall", "-Wextra",
           "-Werror", "-c", "fw/snn.c", *param_defines(params),
           "-DSNN_NOW()=(*(volatile unsigned int *)0x40000010u)", "-o", str(obj)]
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          cwd=Path(__file__).parents[1])
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    data = obj.read_bytes()
    for name in (b"memset", b"memcpy", b"memmove", b"malloc", b"printf"):
        assert name not in data


def test_native_missing_define_is_an_error(tmp_path):
    if shutil.which("gcc") is None:
        pytest.skip("no gcc")
    defines = [d for d in param_defines(FixedParams()) if not d.startswith("-DSNN_LANES=")]
    src = Path(__file__).parents[1] / "fw" / "snn.c"
    proc = subprocess.run(["gcc", "-std=c99", "-c", str(src), *defines, "-o",
                           str(tmp_path / "x.o")], capture_output=True, text=True)
    assert proc.returncode != 0 and "SNN_<FIELD>" in proc.stderr


def test_param_defines():
    names = [d.split("=")[0] for d in param_defines(FixedParams())]
    assert names == ["-DSNN_" + n for n in (
        "N_IN", "N_HID", "N_OUT", "RECURRENT", "LANES", "W_BITS", "V_BITS", "TR_BITS",
        "TR_FRAC", "Y_BITS", "L_BITS", "PSI_BITS", "DECAY_FRAC", "SCORE_BITS", "SHIFT_BITS",
        "OTPE", "Z_BITS", "GSUM_BITS", "C_FRAC", "RECIP_FRAC")]
    assert "-DSNN_RECURRENT=1" in param_defines(FixedParams(recurrent=True))
    assert "-DSNN_OTPE=0" in param_defines(FixedParams(otpe=False))
