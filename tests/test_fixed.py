"""The vectorised fixed-point model against a literal, loop-by-loop reading of SPEC.md."""

import numpy as np
import pytest

from golden.fixed import (FEEDBACK_RANDOM, FEEDBACK_SYMMETRIC, FixedCore, FixedHyper,
                          FixedParams, init_weights, sat)
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
        for row in raster:
            events = [i for i in range(p.n_in) if row[i]]
            for j in range(p.n_hid):
                acc = sum(self.w[j][i] for i in events)
                if p.recurrent:
                    acc += sum(self.w[j][p.n_in + q] for q in range(p.n_hid) if s[q])
                v[j] = _sat(dec(v[j], h.alpha_q) + acc - h.theta * s[j], p.v_bits)
            s = [int(x >= h.theta) for x in v]
            active = [(j, h.b_th - abs(v[j] - h.theta)) for j in range(p.n_hid)
                      if abs(v[j] - h.theta) < h.b_th]
            for i in range(p.n_in):
                a_in[i] = _usat(dec(a_in[i], h.lam_q) + (p.trace_one if row[i] else 0),
                                p.tr_bits)
            for k in range(p.n_out):
                y[k] = _sat(dec(y[k], h.kappa_q) + sum(self.w_out[k][j]
                                                       for j in range(p.n_hid) if s[j]),
                            p.y_bits)
                score[k] = _sat(score[k] + y[k], p.score_bits)
            if learn:
                err = [_sat(y[k] - (h.target if k == label else 0), p.y_bits)
                       for k in range(p.n_out)]
                traces = a_in + (a_hid if p.recurrent else [])
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
