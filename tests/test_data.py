"""Tests of golden.data: Randman, SHD loader, sklearn digits, tonic-style events."""
import numpy as np
import pytest

from golden import data


# ----------------------------------------------------------------------------
# Randman
# ----------------------------------------------------------------------------
def naive_manifold(theta, spect, x):
    """Loop transcription of fzenke/randman's torch eval_manifold."""
    E, D, _, F = theta.shape
    out = np.zeros((len(x), E))
    for e in range(E):
        prod = np.ones(len(x))
        for d in range(D):
            tmp = np.zeros(len(x))
            for i in range(F):
                tmp += theta[e, d, 0, i] * spect[i] * np.sin(
                    2 * np.pi * (i * x[:, d] * theta[e, d, 1, i] + theta[e, d, 2, i]))
            prod *= tmp
        out[:, e] = prod
    return out


def test_randman_params_conventions():
    rng = np.random.default_rng(0)
    theta, spect = data.randman_params(4, 3, alpha=1.0, rng=rng)
    assert theta.shape == (4, 3, 3, 1000)            # F = min(ceil(1e3), 1000)
    assert np.all(theta[:, :, 0, 0] == 0) and np.all((theta >= 0) & (theta < 1))
    np.testing.assert_allclose(spect[:3], [1 / 2, 1 / 3, 1 / 4], rtol=1e-6)  # 1/((i+1)^a+1)
    theta2, spect2 = data.randman_params(2, 1, alpha=2.0, rng=rng)
    assert theta2.shape[-1] == 32                     # ceil(1e-3 ** -0.5) = 32
    np.testing.assert_allclose(spect2[:2], [1 / 2, 1 / 5], rtol=1e-6)


def test_randman_eval_matches_naive_loop():
    rng = np.random.default_rng(1)
    theta, spect = data.randman_params(5, 2, alpha=2.0, rng=rng, dtype=np.float64)
    x = rng.random((7, 2))
    y = data.randman_eval(theta, spect, x, chunk=3)
    np.testing.assert_allclose(y, naive_manifold(theta, spect, x), rtol=1e-10, atol=1e-12)
    # float32 default path agrees to float32 accuracy
    y32 = data.randman_eval(theta.astype(np.float32), spect.astype(np.float32), x)
    np.testing.assert_allclose(y32, y, rtol=2e-3, atol=2e-4)


def test_t_randman_one_spike_per_unit_and_standardisation():
    X, y = data.make_randman(n_classes=4, n_units=20, n_steps=30, n_samples_per_class=60,
                             seed=3)
    assert X.dtype == np.uint8 and X.shape == (240, 30, 20) and y.dtype == np.int64
    assert np.all(X.sum(axis=1) == 1)
    assert np.all(np.bincount(y) == 60)
    assert not np.all(y[:60] == 0)                    # shuffled across classes
    step = X.argmax(axis=1)                           # [N, units]
    for k in range(4):
        # min-max standardised per class and unit: min -> step 0, max -> step T-1
        assert np.all(step[y == k].min(axis=0) == 0)
        assert np.all(step[y == k].max(axis=0) == 29)
    # deterministic, seed-dependent
    X2, y2 = data.make_randman(n_classes=4, n_units=20, n_steps=30, n_samples_per_class=60,
                               seed=3)
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    X3, _ = data.make_randman(n_classes=4, n_units=20, n_steps=30, n_samples_per_class=60,
                              seed=4)
    assert not np.array_equal(X, X3)


def test_t_randman_matches_manifold_recomputation():
    """Rebuild class manifolds from the documented seeding and check the spike step
    is floor(y*T) of the per-class min-max standardised manifold value."""
    n_cls, U, T, n = 3, 6, 25, 40
    X, y = data.make_randman(n_classes=n_cls, n_units=U, n_steps=T, n_samples_per_class=n,
                             dim_manifold=2, seed=11, shuffle=False)
    rng = np.random.default_rng(11)
    seeds = rng.integers(0, 2**31 - 1, size=n_cls)
    for k in range(n_cls):
        crng = np.random.default_rng(int(seeds[k]))
        theta, spect = data.randman_params(U, 2, 1.0, crng)
        xs = crng.random((n, 2))
        v = data.randman_eval(theta, spect, xs).astype(np.float64)
        v = (v - v.min(0)) / (v.max(0) - v.min(0) + 1e-7)
        np.testing.assert_array_equal(X[y == k].argmax(axis=1), np.floor(v * T).astype(int))


def test_r_randman_rate_coding():
    kw = dict(n_classes=3, n_units=15, n_steps=20, n_samples_per_class=30, seed=5)
    Xt, yt = data.make_randman(encoding="time", **kw)
    Xr, yr = data.make_randman(encoding="rate", **kw)
    assert np.array_equal(yt, yr)
    # floor(yT)+1 spikes, where floor(yT) is the T-Randman spike step
    np.testing.assert_array_equal(Xr.sum(axis=1), Xt.argmax(axis=1) + 1)
    # randomly permuted in time: not a prefix "on for steps <= k" train
    prefix = np.arange(20)[None, :, None] <= Xt.argmax(axis=1)[:, None, :]
    assert (Xr != prefix).mean() > 0.2
    assert np.array_equal(Xr, data.make_randman(encoding="rate", **kw)[0])
    with pytest.raises(ValueError):
        data.make_randman(encoding="burst", **kw)


def test_randman_defaults_are_learnable_and_fast():
    """Defaults (3-dim, 10 classes, 50 units, 50 steps, alpha=1, F=1000).
    A nearest-class-mean classifier on spike times is far above chance."""
    import time
    t0 = time.perf_counter()
    X, y = data.make_randman(n_samples_per_class=100, seed=0)
    assert time.perf_counter() - t0 < 10
    assert X.shape == (1000, 50, 50)
    tt = X.argmax(axis=1).astype(float)
    means = np.stack([tt[:500][y[:500] == k].mean(0) for k in range(10)])
    pred = np.argmin(((tt[500:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert np.mean(pred == y[500:]) > 0.4


# ----------------------------------------------------------------------------
# SHD
# ----------------------------------------------------------------------------
def _write_shd(path, samples, labels):
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as f:
        ft = h5py.vlen_dtype(np.dtype("float16"))
        ut = h5py.vlen_dtype(np.dtype("uint16"))
        g = f.create_group("spikes")
        dt = g.create_dataset("times", (len(samples),), dtype=ft)
        du = g.create_dataset("units", (len(samples),), dtype=ut)
        for i, (t, u) in enumerate(samples):
            dt[i] = np.asarray(t, np.float16)
            du[i] = np.asarray(u, np.uint16)
        f.create_dataset("labels", data=np.asarray(labels, np.uint16))
        f.create_group("extra").create_dataset("speaker", data=np.zeros(len(labels), np.uint16))


def test_shd_loader_binning_and_channel_reduction(tmp_path):
    p = tmp_path / "tiny_shd.h5"
    samples = [
        ([0.0, 0.05, 0.06, 0.5, 0.99, 1.2], [0, 1, 1, 699, 3, 5]),
        ([0.25, 0.25, 0.75], [10, 11, 698]),
    ]
    _write_shd(p, samples, [7, 19])
    X, y = data.load_shd(p, n_steps=10, max_time=1.0)
    assert X.shape == (2, 10, 700) and X.dtype == np.uint8
    np.testing.assert_array_equal(y, [7, 19])
    # sample 0: t=0 ->bin0 ch0; 0.05,0.06 -> bin0 ch1 (two events, clipped to 1);
    # 0.5 -> bin5 ch699; 0.99 -> bin9 ch3; 1.2 >= max_time -> dropped
    assert X[0].sum() == 4
    assert X[0, 0, 0] == 1 and X[0, 0, 1] == 1 and X[0, 5, 699] == 1 and X[0, 9, 3] == 1
    assert X[1, 2, 10] == 1 and X[1, 2, 11] == 1 and X[1, 7, 698] == 1
    Xc, _ = data.load_shd(p, n_steps=10, max_time=1.0, clip=False)
    assert Xc[0, 0, 1] == 2 and Xc.dtype == np.int32
    # channel reduction: sum adjacent pairs, then clip
    Xr, _ = data.load_shd(p, n_steps=10, max_time=1.0, channel_factor=2)
    assert Xr.shape == (2, 10, 350)
    assert Xr[0, 0, 0] == 1 and Xr[0, 5, 349] == 1 and Xr[0, 9, 1] == 1
    assert Xr[1, 2, 5] == 1 and Xr[1, 2].sum() == 1       # ch 10+11 merged, clipped
    Xrc, _ = data.load_shd(p, n_steps=10, max_time=1.0, channel_factor=2, clip=False)
    assert Xrc[0, 0, 0] == 3 and Xrc[1, 2, 5] == 2
    # shorter window and max_samples
    Xs, ys = data.load_shd(p, n_steps=4, max_time=0.5, max_samples=1)
    assert Xs.shape == (1, 4, 700) and Xs[0].sum() == 2 and list(ys) == [7]


def test_bin_events_matches_manual_histogram():
    rng = np.random.default_rng(0)
    t = rng.random(500) * 1.4
    u = rng.integers(0, 700, 500)
    B = data.bin_events(t, u, n_steps=50, max_time=1.4, clip=False)
    ref = np.zeros((50, 700), int)
    for ti, ui in zip(t, u):
        ref[int(ti / 1.4 * 50), ui] += 1
    np.testing.assert_array_equal(B, ref)


# ----------------------------------------------------------------------------
# sklearn digits
# ----------------------------------------------------------------------------
def test_digits_latency_and_rate_coding():
    from sklearn.datasets import load_digits
    d = load_digits()
    X, y = data.load_digits_spikes("latency", n_steps=17)
    assert X.shape == (1797, 17, 64) and X.dtype == np.uint8
    np.testing.assert_array_equal(y, d.target)
    v = d.data / 16
    np.testing.assert_array_equal(X.sum(axis=1), (v >= 1 / 16).astype(int))
    on = v >= 1 / 16
    np.testing.assert_array_equal(X.argmax(axis=1)[on], np.rint((1 - v[on]) * 16))
    assert np.all(X[:, 0][v == 1.0] == 1)             # brightest pixels fire first
    R, _ = data.load_digits_spikes("rate", n_steps=200, max_prob=0.5, seed=1)
    rate = R.mean(axis=1)
    assert np.all(rate[v == 0] == 0)
    assert abs(rate[v == 1].mean() - 0.5) < 0.01
    np.testing.assert_array_equal(R, data.load_digits_spikes("rate", n_steps=200, seed=1)[0])
    assert not np.array_equal(R, data.load_digits_spikes("rate", n_steps=200, seed=2)[0])


# ----------------------------------------------------------------------------
# tonic-style events
# ----------------------------------------------------------------------------
def test_events_round_trip_and_format():
    rng = np.random.default_rng(0)
    S = (rng.random((30, 12)) < 0.2).astype(np.uint8)
    ev = data.to_events(S)
    assert ev.dtype == np.dtype([("t", "<i8"), ("x", "<i8"), ("p", "<i8")])
    assert len(ev) == S.sum() and np.all(ev["p"] == 1)
    assert np.all(np.diff(ev["t"]) >= 0)
    np.testing.assert_array_equal(data.from_events(ev, 12, 30), S)
    ev_us = data.to_events(S, dt_us=1000)
    np.testing.assert_array_equal(ev_us["t"], ev["t"] * 1000)
    np.testing.assert_array_equal(data.from_events(ev_us, 12, 30, dt_us=1000), S)
    # counts > 1 -> repeated events; out-of-range events dropped
    C = np.zeros((4, 3), np.int32)
    C[1, 2] = 3
    ev3 = data.to_events(C)
    assert len(ev3) == 3 and set(ev3["x"]) == {2}
    np.testing.assert_array_equal(data.from_events(ev3, 3, 4, clip=False), C)
    extra = np.array([(9, 0, 1), (0, 7, 1), (-1, 0, 1)], dtype=data.EVENT_DTYPE)
    assert data.from_events(np.concatenate([ev3, extra]), 3, 4, clip=False).sum() == 3
    # tonic-style microsecond events with sub-step times
    evt = np.array([(0, 0, 1), (999, 1, 1), (1000, 1, 1), (2500, 2, 1)], dtype=data.EVENT_DTYPE)
    F = data.from_events(evt, 3, 3, dt_us=1000)
    np.testing.assert_array_equal(F, [[1, 1, 0], [0, 1, 0], [0, 0, 1]])
