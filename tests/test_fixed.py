"""The vectorised fixed-point model against a literal, loop-by-loop reading of SPEC.md."""

import numpy as np
import pytest

from golden.fixed import (FEEDBACK_RANDOM, FEEDBACK_SYMMETRIC, RULE_OTPE, FixedCore,
                          FixedHyper, FixedParams, init_weights, sat)
from golden.rng import lane_seed, xorshift32_step


def _sat(x, bits):
    return max(-(1 << (bits - 1)), min((1 << (bits - 1)) - 1, x))


def _usat(x, bits):
    return max(0, min((1 << bits) - 1, x))


class ScalarCore:
    """SPEC.md section 5 written with Python ints and explicit loops, one synapse at a time."""

    def __init__(self, p: FixedParams, h: FixedHyper, w, w_out, b):
        self.p, self.h = p, h
        self.w = [[int(x) for x in row] for row in w]
        self.w_out = [[int(x) for x in row] for row in w_out]
        self.b = [[int(x) for x in row] for row in b]
        self.rng = [lane_seed(h.seed, n) for n in range(p.lanes + p.n_out)]

    def draw(self, gen, bits):
        self.rng[gen] = xorshift32_step(self.rng[gen])
        return self.rng[gen] & ((1 << bits) - 1)

    def run(self, raster, label, learn):
        p, h = self.p, self.h
        dec = lambda x, q: (x * q) >> p.decay_frac  # noqa: E731
        v = [0] * p.n_hid
        s = [0] * p.n_hid
        a_in = [0] * p.n_in
        a_hid = [0] * p.n_hid
        y = [0] * p.n_out
        score = [0] * p.n_out
        z_in, z_hid, gsum, c = [0] * p.n_in, [0] * p.n_hid, [0] * p.n_hid, 0
        otpe = h.rule == RULE_OTPE
        for row in raster:
            events = [i for i in range(p.n_in) if row[i]]
            if p.otpe:
                c = dec(c, h.lam_q) + (1 << p.c_frac)
                recip = (1 << (p.c_frac + p.recip_frac)) // c
            for j in range(p.n_hid):
                acc = sum(self.w[j][i] for i in events)
                if p.recurrent:
                    acc += sum(self.w[j][p.n_in + q] for q in range(p.n_hid) if s[q])
                v[j] = _sat(dec(v[j], h.alpha_q) + acc - h.theta * s[j], p.v_bits)
            s = [int(x >= h.theta) for x in v]
            active = [(j, h.b_th - abs(v[j] - h.theta)) for j in range(p.n_hid)
                      if abs(v[j] - h.theta) < h.b_th]
            if p.otpe:
                psi0 = dict(active)
                gbar = []
                for j in range(p.n_hid):
                    gsum[j] = _usat(dec(gsum[j], h.lam_q) + psi0.get(j, 0), p.gsum_bits)
                    gbar.append(_usat((gsum[j] * recip) >> p.recip_frac, p.psi_bits))
                if otpe:
                    active = [(j, gbar[j]) for j in range(p.n_hid) if gbar[j] > 0]
            for i in range(p.n_in):
                a_in[i] = _usat(dec(a_in[i], h.lam_q) + (p.trace_one if row[i] else 0),
                                p.tr_bits)
                if p.otpe:
                    z_in[i] = _usat(dec(z_in[i], h.lam_q) + a_in[i], p.z_bits)
            for k in range(p.n_out):
                y[k] = _sat(dec(y[k], h.kappa_q) + sum(self.w_out[k][j]
                                                       for j in range(p.n_hid) if s[j]),
                            p.y_bits)
                score[k] = _sat(score[k] + y[k], p.score_bits)
            if learn:
                err = [_sat(y[k] - (h.target if k == label else 0), p.y_bits)
                       for k in range(p.n_out)]
                traces = ((z_in + (z_hid if p.recurrent else [])) if otpe
                          else (a_in + (a_hid if p.recurrent else [])))
                for j, psi in active:
                    fb = ([self.w_out[k][j] for k in range(p.n_out)]
                          if h.feedback == FEEDBACK_SYMMETRIC else self.b[j])
                    L = _sat(sum(fb[k] * err[k] for k in range(p.n_out)) >> h.l_shift, p.l_bits)
                    m = _sat((L * psi) >> h.psi_shift, p.l_bits)
                    for i in range(p.n_pre):
                        r = self.draw(i % p.lanes, h.g_shift)
                        self.w[j][i] = _sat(self.w[j][i] - ((m * traces[i] + r) >> h.g_shift),
                                            p.w_bits)
            for j in range(p.n_hid):
                a_hid[j] = _usat(dec(a_hid[j], h.lam_q) + p.trace_one * s[j], p.tr_bits)
                if p.otpe:
                    z_hid[j] = _usat(dec(z_hid[j], h.lam_q) + a_hid[j], p.z_bits)
            if learn:
                for j in range(p.n_hid):
                    for k in range(p.n_out):
                        r = self.draw(p.lanes + k, h.go_shift)
                        self.w_out[k][j] = _sat(
                            self.w_out[k][j] - ((err[k] * a_hid[j] + r) >> h.go_shift), p.w_bits)
        return int(np.argmax(score))


CASES = [
    dict(p=dict(n_in=7, n_hid=8, n_out=3), h=dict()),
    dict(p=dict(n_in=9, n_hid=8, n_out=4, lanes=2, recurrent=True), h=dict(feedback=1)),
    dict(p=dict(n_in=10, n_hid=12, n_out=3, lanes=4), h=dict(b_th=200, g_shift=3, go_shift=2)),
    dict(p=dict(n_in=5, n_hid=6, n_out=2, recurrent=True, w_bits=4, v_bits=8, tr_bits=6,
                tr_frac=3, y_bits=8, l_bits=8), h=dict(theta=20, b_th=15, target=60, g_shift=0,
                                                       go_shift=1, l_shift=0, psi_shift=0)),
    # approximate OTPE (rule 1)
    dict(p=dict(n_in=7, n_hid=8, n_out=3), h=dict(rule=1)),
    dict(p=dict(n_in=9, n_hid=8, n_out=4, lanes=2, recurrent=True),
         h=dict(rule=1, feedback=1, lam_q=200)),
    dict(p=dict(n_in=10, n_hid=12, n_out=3, lanes=4, c_frac=3, recip_frac=5),
         h=dict(rule=1, b_th=200, g_shift=6, go_shift=2, lam_q=255)),
    dict(p=dict(n_in=5, n_hid=6, n_out=2, recurrent=True, w_bits=4, v_bits=8, tr_bits=6,
                tr_frac=3, y_bits=8, l_bits=8, z_bits=7, gsum_bits=8, psi_bits=6, c_frac=0,
                recip_frac=4),
         h=dict(rule=1, theta=20, b_th=15, target=30, g_shift=0, go_shift=3, l_shift=0,
                psi_shift=0, lam_q=230)),
    # built without OTPE: rule 0 exactly as before
    dict(p=dict(n_in=9, n_hid=8, n_out=4, lanes=2, recurrent=True, otpe=False),
         h=dict(feedback=1)),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_vectorised_equals_scalar_reading_of_spec(case):
    p = FixedParams(**CASES[case]["p"])
    rng = np.random.default_rng(case)
    base = dict(theta=min(64, (1 << (p.v_bits - 1)) - 1), target=min(64, (1 << (p.y_bits - 1)) - 1),
                seed=int(rng.integers(0, 2**32)))
    h = FixedHyper(**{**base, **CASES[case]["h"]})
    w, w_out, b = init_weights(p, case, w_scale=2.0, out_scale=2.0, theta=h.theta)
    w, w_out, b = (sat(x, p.w_bits) for x in (w, w_out, b))
    core = FixedCore(p, h)
    core.load_weights(w, w_out, b)
    ref = ScalarCore(p, h, w, w_out, b)
    w0, w_out0 = w.copy(), w_out.copy()
    for n in range(4):
        raster = (rng.random((12, p.n_in)) < 0.3).astype(np.uint8)
        label, learn = int(rng.integers(p.n_out)), n != 2
        assert core.run_sample(raster, label, learn) == ref.run(raster, label, learn)
        assert core.w.tolist() == ref.w
        assert core.w_out.tolist() == ref.w_out
    assert core.rng_states() == ref.rng
    # the comparison means something only if both learning paths did change weights
    assert core.counters.active > 0 and core.counters.spikes > 0
    assert (core.w != w0).any() and (core.w_out != w_out0).any()
    assert core.counters.steps == 48 and core.counters.samples == 4


def test_saturation_never_wraps():
    p = FixedParams(n_in=4, n_hid=4, n_out=2, w_bits=8)
    h = FixedHyper(theta=10, b_th=255, g_shift=0, go_shift=0, l_shift=0, psi_shift=0)
    core = FixedCore(p, h)
    core.load_weights(np.full((4, 4), 127), np.full((2, 4), -128), np.zeros((4, 2)))
    raster = np.ones((20, 4), dtype=np.uint8)
    core.run_sample(raster, 0, True)
    for arr, bits in ((core.w, 8), (core.w_out, 8), (core.y, 16), (core.v, 16)):
        assert arr.min() >= -(1 << (bits - 1)) and arr.max() < (1 << (bits - 1))
    assert core.a_in.max() <= (1 << p.tr_bits) - 1
    assert (core.w_out == -128).any() or (core.w_out == 127).any()


def test_dense_learning_is_deterministic_per_seed():
    p = FixedParams(n_in=20, n_hid=16, n_out=4)
    raster = (np.random.default_rng(0).random((15, 20)) < 0.2).astype(np.uint8)
    results = []
    for seed in (5, 5, 6):
        core = FixedCore(p, FixedHyper(seed=seed, b_th=60, g_shift=8, go_shift=8))
        core.load_weights(*init_weights(p, 1, 1.0, 1.0))
        core.run_sample(raster, 1, True)
        results.append(core.w.copy())
    assert (results[0] == results[1]).all()
    assert (results[0] != results[2]).any()


@pytest.mark.parametrize("field, value", [("alpha_q", 256), ("theta", 0), ("b_th", 256),
                                          ("g_shift", 32), ("feedback", 2), ("seed", -1)])
def test_bad_registers_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        FixedCore(FixedParams(), FixedHyper(**{field: value}))


def test_bad_inputs_rejected_and_state_kept():
    core = FixedCore(FixedParams(n_in=4, n_hid=4, n_out=2))
    with pytest.raises(ValueError, match="shape"):
        core.load_weights(w=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="10 signed bits"):
        core.load_weights(w=np.full((4, 4), 512))
    assert (core.w == 0).all()
    with pytest.raises(ValueError, match="label"):
        core.start_sample(2, True)
    core.start_sample(0, True)
    with pytest.raises(ValueError, match="event indices"):
        core.step([4])
    with pytest.raises(ValueError, match="distinct"):
        core.step([1, 1])
    with pytest.raises(ValueError, match="multiple of lanes"):
        FixedParams(n_hid=10, lanes=4)


def test_random_feedback_uses_b_matrix():
    p = FixedParams(n_in=6, n_hid=8, n_out=3)
    raster = (np.random.default_rng(3).random((10, 6)) < 0.5).astype(np.uint8)
    out = {}
    for fb in (FEEDBACK_SYMMETRIC, FEEDBACK_RANDOM):
        core = FixedCore(p, FixedHyper(feedback=fb, b_th=200, g_shift=4))
        w, w_out, b = init_weights(p, 2, 2.0, 2.0)
        core.load_weights(w, w_out, -w_out.T)
        core.run_sample(raster, 0, True)
        out[fb] = core.w - w
    assert (np.sign(out[0]) == -np.sign(out[1]))[out[0] != 0].mean() > 0.9


def test_memory_does_not_grow_with_sequence_length():
    p = FixedParams(n_in=10, n_hid=8, n_out=3, recurrent=True)
    rng = np.random.default_rng(0)
    sizes = []
    for steps in (50, 5000):
        core = FixedCore(p, FixedHyper(b_th=40))
        core.load_weights(*init_weights(p, 0))
        core.run_sample((rng.random((steps, p.n_in)) < 0.1).astype(np.uint8), 0, True)
        assert core.counters.steps == steps
        sizes.append(core.memory_bits())
    assert sizes[0] == sizes[1]
    assert sizes[0]["w"] == p.n_hid * p.n_pre * p.w_bits


# -- approximate OTPE (rule 1) edge cases ------------------------------------------------------

@pytest.mark.parametrize("c_frac, recip_frac", [(8, 16), (0, 4), (3, 5), (12, 20)])
def test_otpe_normalizer_sequence_and_reciprocal(c_frac, recip_frac):
    """c[t] = decay(c, lam) + one from 0, for every reachable c: it stays below 2**c_bits and
    recip is the exact integer quotient (checked against repeated subtraction bounds)."""
    p = FixedParams(n_in=2, n_hid=2, n_out=2, c_frac=c_frac, recip_frac=recip_frac)
    num = 1 << (c_frac + recip_frac)
    for lam_q in (0, 1, 128, 243, 255):
        core = FixedCore(p, FixedHyper(lam_q=lam_q, rule=1))
        core.start_sample(0, False)
        seen = []
        while core.c not in seen:
            seen.append(core.c)
            core.step([])
            c, q = core.c, core.recip
            assert (1 << c_frac) <= c <= 1 << (c_frac + p.decay_frac) < 1 << p.c_bits
            assert q * c <= num < (q + 1) * c  # floor division, no rounding shortcut
            assert 0 <= q <= 1 << recip_frac < 1 << p.recip_bits
        # the first step gives c = 1.0 exactly, recip = 1.0
        assert seen[1] == 1 << c_frac
        if lam_q == 0:
            assert len(seen) == 2
    core.start_sample(0, False)
    assert core.c == 0 and (core.gsum == 0).all() and (core.z_in == 0).all()


def test_otpe_state_saturates_never_wraps():
    p = FixedParams(n_in=3, n_hid=4, n_out=2, z_bits=13, gsum_bits=9, tr_bits=12)
    h = FixedHyper(lam_q=255, theta=10, b_th=255, rule=1)
    core = FixedCore(p, h)
    core.load_weights(np.full((4, 3), 4), np.zeros((2, 4)), np.zeros((4, 2)))
    seen_z = seen_g = 0
    core.start_sample(0, True)
    for _ in range(300):
        trace = core.step([0, 1, 2])
        assert 0 <= core.z_in.min() and core.z_in.max() <= (1 << 13) - 1
        assert 0 <= core.gsum.min() and core.gsum.max() <= (1 << 9) - 1
        assert core.z_hid.max() <= (1 << 13) - 1
        assert trace.psi.max(initial=0) <= (1 << p.psi_bits) - 1
        seen_z |= core.z_in.max() == (1 << 13) - 1
        seen_g |= core.gsum.max() == (1 << 9) - 1
    assert seen_z and seen_g


def test_otpe_rule0_is_ottt_and_rule_validated():
    """Built with OTPE, rule 0 gives exactly the weights, counters and generators of a core
    built without it; rule 1 differs, walks more neurons, and needs ``otpe``."""
    raster = (np.random.default_rng(4).random((30, 10)) < 0.2).astype(np.uint8)
    out = []
    for otpe, rule in ((False, 0), (True, 0), (True, 1)):
        p = FixedParams(n_in=10, n_hid=16, n_out=3, recurrent=True, otpe=otpe)
        core = FixedCore(p, FixedHyper(rule=rule, b_th=60, g_shift=10, go_shift=10))
        core.load_weights(*init_weights(p, 3, 1.5, 1.0))
        for label in (0, 1, 2):
            core.run_sample(raster, label, True)
        out.append((core.w.copy(), core.w_out.copy(), core.counters.as_dict(), core.rng_states()))
    assert (out[0][0] == out[1][0]).all() and (out[0][1] == out[1][1]).all()
    assert out[0][2:] == out[1][2:]
    assert (out[2][0] != out[1][0]).any()
    assert out[2][2]["active"] > out[1][2]["active"]
    with pytest.raises(ValueError, match="rule"):
        FixedCore(FixedParams(otpe=False), FixedHyper(rule=1))
    with pytest.raises(ValueError, match="rule"):
        FixedCore(FixedParams(), FixedHyper(rule=2))
    with pytest.raises(ValueError, match="z_bits"):
        FixedParams(z_bits=8)


def test_otpe_memory_bits():
    bits = FixedCore(FixedParams(n_in=10, n_hid=8, n_out=3, recurrent=True)).memory_bits()
    plain = FixedCore(FixedParams(n_in=10, n_hid=8, n_out=3, recurrent=True,
                                  otpe=False)).memory_bits()
    p = FixedParams()
    assert bits["z_in"] == 10 * p.z_bits and bits["z_hid"] == 8 * p.z_bits
    assert bits["gsum"] == 8 * p.gsum_bits and bits["c_recip"] == p.c_bits + p.recip_bits
    assert bits["total"] - plain["total"] == (18 * p.z_bits + 8 * p.gsum_bits + p.c_bits
                                              + p.recip_bits)


def test_otpe_fixed_point_close_to_float_on_t_randman():
    """Rule 1 against float ``otpe_approx`` (``golden.quantize``), same data, order and initial
    weights, at the report's OTPE learning rate: within a few points, well above chance."""
    from golden.data import make_randman
    from golden.quantize import OTPE_HYPER
    from golden.report import hardware_rule_accuracy
    X, y = make_randman(n_samples_per_class=50, seed=0)
    res = hardware_rule_accuracy((X[:300], y[:300], X[300:], y[300:]), OTPE_HYPER)
    assert res["float"] > 0.35 and res["fixed"] > 0.35
    assert abs(res["fixed_minus_float"]) < 0.06
