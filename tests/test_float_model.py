"""Tests of the float reference model (golden.config, golden.float_model, golden.train).

BPTT is checked against (i) hand-derived numbers, (ii) an independent forward-mode
(tangent / RTRL) implementation written here, (iii) finite differences of a smooth
surrogate-substituted forward.  The online rules are checked against BPTT where
they are exact and against explicit per-step re-implementations otherwise.
"""
import numpy as np
import pytest

from golden import float_model as fm
from golden.config import NetConfig
from golden.train import Optimizer, evaluate, train, train_sample_stepwise

RULES = ["bptt", "eprop", "ottt", "otpe_approx", "otpe"]


def rand_spikes(rng, shape, rate):
    return (rng.random(shape) < rate).astype(np.uint8)


def t_randman_like(rng, n, T, n_in):
    """One spike per channel at a random step (T-Randman statistics)."""
    X = np.zeros((n, T, n_in), np.uint8)
    t = rng.integers(0, T, (n, n_in))
    for i in range(n):
        X[i, t[i], np.arange(n_in)] = 1
    return X


# ----------------------------------------------------------------------------
# config
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("kw, msg", [
    (dict(alpha=1.5), r"alpha must be in \[0, 1\), not 1.5"),
    (dict(alpha=1.0), r"alpha must be in \[0, 1\)"),
    (dict(kappa=-0.1), r"kappa must be in \[0, 1\)"),
    (dict(lam=1.0), r"lam must be None or in \[0, 1\)"),
    (dict(lam_out=-0.5), r"lam_out must be None or in \[0, 1\)"),
    (dict(theta=0.0), "theta must be a positive number"),
    (dict(p=0.0), r"p must be in \(0, 1\]"),
    (dict(p=1.2), r"p must be in \(0, 1\]"),
    (dict(n_in=0), "n_in must be a positive integer"),
    (dict(n_out=2.5), "n_out must be a positive integer"),
    (dict(n_hidden=()), "n_hidden must be a non-empty tuple"),
    (dict(n_hidden=(10, 0)), "n_hidden must be a non-empty tuple"),
    (dict(n_hidden="10"), "n_hidden must be a tuple"),
    (dict(recurrent=1), "recurrent must be a bool"),
    (dict(surrogate="atan"), "surrogate must be one of"),
    (dict(surrogate_width=0), "surrogate_width must be a positive number"),
    (dict(surrogate_slope=-1), "surrogate_slope must be a positive number"),
    (dict(b_th=0.0), "b_th must be None or a positive number"),
    (dict(rule="sgd"), "rule must be one of"),
    (dict(feedback="dfa"), "feedback must be one of"),
    (dict(rule="bptt", feedback="random"), "meaningless"),
    (dict(loss="hinge"), "loss must be one of"),
    (dict(loss="ce", n_out=1), "n_out must be >= 2"),
    (dict(lr=0), "lr must be a positive number"),
    (dict(lr=float("nan")), "lr must be a positive number"),
    (dict(target=-1), "target must be a positive number"),
    (dict(optimizer="adam"), "optimizer must be one of"),
    (dict(seed=-3), "seed must be a non-negative integer"),
    (dict(w_scale=0), "w_scale must be a positive number"),
])
def test_config_validation(kw, msg):
    with pytest.raises(ValueError, match=msg):
        NetConfig(**kw)


def test_config_defaults_and_normalisation():
    cfg = NetConfig(alpha=0.8, n_hidden=[5, 6])
    assert cfg.lam == 0.8 and cfg.n_hidden == (5, 6) and cfg.n_layers == 2
    assert NetConfig(n_hidden=7).n_hidden == (7,)
    assert cfg.layer_sizes == (50, 5, 6, 10)
    assert hash(cfg) == hash(NetConfig(alpha=0.8, n_hidden=(5, 6)))
    assert cfg.replace(alpha=0.7).lam == 0.7          # lam follows alpha ...
    assert cfg.replace(lam=0.5).replace(alpha=0.7).lam == 0.5   # ... unless set
    assert cfg.lam_out == cfg.kappa and cfg.replace(kappa=0.5).lam_out == 0.5
    with pytest.raises(Exception):
        cfg.alpha = 0.5  # frozen


# ----------------------------------------------------------------------------
# neuron / surrogate conventions
# ----------------------------------------------------------------------------
def test_lif_reset_one_step_late_not_decayed():
    cfg = NetConfig(n_in=1, n_hidden=(1,), n_out=1, alpha=0.5, theta=1.0, kappa=0.25)
    p = {"W0": np.array([[0.75]]), "Wout": np.array([[2.0]])}
    x = np.array([[1], [1], [1], [0], [0]])
    o = fm.forward(cfg, p, x)
    # V: .75 ; .375+.75=1.125 (spike) ; .5625+.75-1 = .3125 ; .15625 ; .078125
    np.testing.assert_allclose(o["v"][0][:, 0], [0.75, 1.125, 0.3125, 0.15625, 0.078125])
    np.testing.assert_array_equal(o["s"][0][:, 0], [0, 1, 0, 0, 0])
    np.testing.assert_allclose(o["y"][:, 0], [0, 2.0, 0.5, 0.125, 0.03125])
    # threshold is inclusive (V >= theta spikes)
    p2 = {"W0": np.array([[1.0]]), "Wout": np.array([[1.0]])}
    assert fm.forward(cfg, p2, np.array([[1]]))["s"][0][0, 0] == 1


def test_surrogates_and_gating():
    v = np.array([-1.0, 0.0, 0.5, 0.9, 1.0, 1.1, 1.5, 2.0, 3.0])
    tri = fm.surrogate(NetConfig(surrogate="triangle", surrogate_width=1.0), v)
    np.testing.assert_allclose(tri, [0, 0, 0.5, 0.9, 1.0, 0.9, 0.5, 0, 0])
    tri2 = fm.surrogate(NetConfig(surrogate="triangle", surrogate_width=2.0,
                                  surrogate_height=0.3), v)
    np.testing.assert_allclose(tri2, 0.3 * np.maximum(0, 1 - np.abs(v - 1) / 2))
    fs = fm.surrogate(NetConfig(surrogate="fast_sigmoid", surrogate_slope=25.0), v)
    np.testing.assert_allclose(fs, 1 / (25 * np.abs(v - 1) + 1) ** 2)
    assert fs[4] == 1.0
    g = fm.surrogate(NetConfig(surrogate="fast_sigmoid", b_th=0.2), v)
    inside = np.abs(v - 1) < 0.2
    np.testing.assert_array_equal(g[~inside], 0)
    np.testing.assert_allclose(g[inside], fs[inside])


# ----------------------------------------------------------------------------
# BPTT: hand-derived 2-neuron chain
# ----------------------------------------------------------------------------
def test_bptt_hand_derived_two_neuron_chain():
    """input -> LIF a (w=1.2) -> LIF b (w=1.5) -> readout (u=0.8); alpha=kappa=1/2,
    theta=1, triangle width 1, MSE with target 1, x = 1,1,0,1.
      V_a = 1.2 0.8 0.4 1.4      s_a = 1 0 0 1   psi_a = .8 .8 .4 .6
      V_b = 1.5 -.25 -.125 1.4375 s_b = 1 0 0 1  psi_b = .5 0 0 .5625
      y = .8 .4 .2 .9            err = -.2 -.6 -.8 -.1
    dL/du  = sum_t err_t ybar_t,   ybar = 1 .5 .25 1.125                     = -0.8125
    dL/dwb = sum_t err_t sum_{r<=t} k^{t-r} u psi_b[r] zbar_b[r],
             zbar_b = 1 .5 .25 1.125 -> u psi_b zbar_b = .4 0 0 .50625,
             k-filtered .4 .2 .1 .55625                                     = -0.335625
    dL/dwa : dV_a/dwa = 1 1.5 .75 1.375; * psi_a * wb = 1.2 1.8 .45 1.2375;
             a-filtered (dV_b/dwa) 1.2 2.4 1.65 2.0625; * u psi_b = .48 0 0 .928125;
             k-filtered .48 .24 .12 .988125                                 = -0.4348125
    OTTT (no temporal filtering of the error):
      dwb = u*(-.2*.5*1 - .1*.5625*1.125)                                   = -0.130625
      dwa = sum_t err_t u psi_b wb psi_a a_hat = -.096 - .0405*1.375        = -0.1516875
    """
    cfg = NetConfig(n_in=1, n_hidden=(1, 1), n_out=1, alpha=0.5, kappa=0.5, theta=1.0,
                    surrogate="triangle", surrogate_width=1.0, loss="mse", target=1.0,
                    rule="bptt")
    p = {"W0": np.array([[1.2]]), "W1": np.array([[1.5]]), "Wout": np.array([[0.8]])}
    x = np.array([[1], [1], [0], [1]])
    o = fm.forward(cfg, p, x)
    np.testing.assert_allclose(o["v"][0][:, 0], [1.2, 0.8, 0.4, 1.4])
    np.testing.assert_allclose(o["v"][1][:, 0], [1.5, -0.25, -0.125, 1.4375])
    np.testing.assert_allclose(o["psi"][1][:, 0], [0.5, 0, 0, 0.5625])
    np.testing.assert_allclose(o["y"][:, 0], [0.8, 0.4, 0.2, 0.9])
    g = fm.gradients(cfg, p, x, 0)
    assert g["Wout"][0, 0] == pytest.approx(-0.8125, abs=1e-12)
    assert g["W1"][0, 0] == pytest.approx(-0.335625, abs=1e-12)
    assert g["W0"][0, 0] == pytest.approx(-0.4348125, abs=1e-12)
    go = fm.gradients(cfg.replace(rule="ottt"), p, x, 0)
    assert go["Wout"][0, 0] == pytest.approx(-0.8125, abs=1e-12)
    assert go["W1"][0, 0] == pytest.approx(-0.130625, abs=1e-12)
    assert go["W0"][0, 0] == pytest.approx(-0.1516875, abs=1e-12)


def test_bptt_hand_derived_recurrent_pair():
    """Two recurrently coupled LIF neurons, only neuron a gets input, only b is read
    out; the weight r (a->b) is learned through the recurrent path only.
    alpha=kappa=1/2, theta=1, triangle w=1, MSE target 1, x = 1,1,1, w_a=1.2, r=1.5, u=1.
      V_a = 1.2 0.8 1.6 (s_a = 1 0 1);  V_b = 0 1.5 0.75-1+0 = -.25  (s_b = 0 1 0)
      psi_b = 0 .5 0;   y = 0 1 .5;   err = -1 0 -.5
      dL/dr = sum_t err_t sum_{q<=t} k^{t-q} psi_b[q] sum_{m<=q} a^{q-m} s_a[m-1]
            : s_a[t-1] = 0 1 0 -> zbar = 0 1 .5 -> psi_b*zbar = 0 .5 0
              k-filtered 0 .5 .25 -> dL/dr = -.5*.25                        = -0.125
    """
    cfg = NetConfig(n_in=1, n_hidden=(2,), n_out=1, recurrent=True, alpha=0.5, kappa=0.5,
                    theta=1.0, rule="bptt")
    p = {"W0": np.array([[1.2], [0.0]]), "R0": np.array([[0.0, 0.0], [1.5, 0.0]]),
         "Wout": np.array([[0.0, 1.0]])}
    x = np.ones((3, 1))
    o = fm.forward(cfg, p, x)
    np.testing.assert_allclose(o["v"][0], [[1.2, 0], [0.8, 1.5], [1.6, -0.25]])
    g = fm.gradients(cfg, p, x, 0)
    assert g["R0"][1, 0] == pytest.approx(-0.125, abs=1e-12)
    # b->a: s_b[t-1] = 0 0 1 only reaches V_a[2], whose spike would act after the end
    assert g["R0"][0, 1] == 0.0
    # dL/dw_a via a->b: dV_a/dw_a = 1 1.5 1.75, psi_a = .8 .8 .4 -> ds_a = .8 1.2 .7
    # dV_b/dw_a = a*dV_b + r*ds_a[t-1] = 0 1.2 2.4 ; * psi_b = 0 .6 0 ; k-filtered 0 .6 .3
    assert g["W0"][0, 0] == pytest.approx(-0.5 * 0.3, abs=1e-12)


# ----------------------------------------------------------------------------
# BPTT: independent forward-mode (tangent) implementation
# ----------------------------------------------------------------------------
def _psi_ref(cfg, v):
    d = abs(v - cfg.theta)
    if cfg.surrogate == "triangle":
        out = cfg.surrogate_height * np.maximum(0.0, 1.0 - d / cfg.surrogate_width)
    else:
        out = cfg.surrogate_height / (cfg.surrogate_slope * d + 1.0) ** 2
    if cfg.b_th is not None:
        out = out * (d < cfg.b_th)
    return out


def forward_mode_grad(cfg, params, x, label):
    """Full gradient by forward-mode differentiation: one tangent per parameter
    entry (D = number of weights), propagated step by step alongside the forward
    pass (surrogate ds/dV = psi, reset detached).  Independent of float_model's
    backward code and of its forward loop."""
    keys = fm.trainable_keys(cfg)
    sizes = [params[k].size for k in keys]
    D = sum(sizes)
    offs = np.cumsum([0] + sizes)

    def basis(k):  # tangent of parameter k for every direction: [D, *shape]
        i = keys.index(k)
        t = np.zeros((D, params[k].size))
        t[offs[i]:offs[i + 1]] = np.eye(sizes[i])
        return t.reshape(D, *params[k].shape)

    dP = {k: basis(k) for k in keys}
    T = x.shape[0]
    L = cfg.n_layers
    v = [np.zeros(n) for n in cfg.n_hidden]
    s = [np.zeros(n) for n in cfg.n_hidden]
    dv = [np.zeros((D, n)) for n in cfg.n_hidden]
    ds = [np.zeros((D, n)) for n in cfg.n_hidden]
    y = np.zeros(cfg.n_out)
    dy = np.zeros((D, cfg.n_out))
    dL = np.zeros(D)
    onehot = np.eye(cfg.n_out)[label]
    for t in range(T):
        inp, dinp = x[t].astype(float), np.zeros((D, cfg.n_in))
        for l in range(L):
            W, dW = params[f"W{l}"], dP[f"W{l}"]
            nv = cfg.alpha * v[l] + W @ inp - cfg.theta * s[l]
            ndv = cfg.alpha * dv[l] + np.einsum("dji,i->dj", dW, inp) + dinp @ W.T
            if cfg.recurrent:
                R, dR = params[f"R{l}"], dP[f"R{l}"]
                nv = nv + R @ s[l]
                ndv = ndv + np.einsum("dji,i->dj", dR, s[l]) + ds[l] @ R.T
            v[l], dv[l] = nv, ndv
            s[l] = (nv >= cfg.theta).astype(float)
            ds[l] = _psi_ref(cfg, nv)[None, :] * ndv
            inp, dinp = s[l], ds[l]
        Wo = params["Wout"]
        y = cfg.kappa * y + Wo @ inp
        dy = cfg.kappa * dy + np.einsum("dki,i->dk", dP["Wout"], inp) + dinp @ Wo.T
        if cfg.loss == "mse":
            e = y - cfg.target * onehot
        else:
            p = np.exp(y - y.max())
            e = p / p.sum() - onehot
        dL += dy @ e
    return {k: dL[offs[i]:offs[i + 1]].reshape(params[k].shape) for i, k in enumerate(keys)}


@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("surr, loss, b_th", [
    ("triangle", "mse", None), ("fast_sigmoid", "ce", None), ("triangle", "ce", 0.4),
])
def test_bptt_matches_forward_mode(recurrent, surr, loss, b_th):
    cfg = NetConfig(n_in=4, n_hidden=(5, 3), n_out=3, recurrent=recurrent, alpha=0.8,
                    kappa=0.7, surrogate=surr, loss=loss, b_th=b_th, w_scale=3.0,
                    p=0.8, rule="bptt", seed=3)
    params = fm.init_params(cfg)
    rng = np.random.default_rng(5)
    x = rand_spikes(rng, (12, 4), 0.4)
    rec = fm.forward(cfg, params, x)
    assert all(0 < s.mean() < 0.9 for s in rec["s"])   # non-trivial activity
    g = fm.gradients(cfg, params, x, 1)
    ref = forward_mode_grad(cfg, params, x, 1)
    masks = fm.connection_masks(cfg)
    for k in ref:
        r = ref[k] * masks[k] if k in masks else ref[k]
        assert np.abs(r).max() > 1e-6, k
        np.testing.assert_allclose(g[k], r, rtol=1e-10, atol=1e-12, err_msg=k)


def test_bptt_backward_matches_finite_differences_of_smooth_forward():
    """Substitute s = sigma(V) with sigma' = fast-sigmoid surrogate, keep the reset
    term as a fixed external train (detached), then the surrogate gradient is the
    true gradient of that smooth network: compare BPTT's backward to central
    finite differences."""
    cfg = NetConfig(n_in=3, n_hidden=(4, 3), n_out=2, recurrent=True, alpha=0.8,
                    kappa=0.6, surrogate="fast_sigmoid", surrogate_slope=2.0,
                    loss="ce", w_scale=2.0, rule="bptt", seed=7)
    params = fm.init_params(cfg)
    rng = np.random.default_rng(2)
    X = rand_spikes(rng, (10, 1, 3), 0.5).astype(float)       # [T, B=1, n_in]
    reset = [rand_spikes(rng, (10, 1, n), 0.3).astype(float) for n in cfg.n_hidden]
    k = cfg.surrogate_slope

    def sig(u):  # antiderivative of the fast sigmoid 1/(k|V-theta|+1)^2
        d = u - cfg.theta
        return np.sign(d) * (1 - 1 / (k * np.abs(d) + 1)) / k

    def run(P):
        rec = {"x": [], "v": [], "s": [], "psi": []}
        x = X
        for l in range(cfg.n_layers):
            T, B, _ = x.shape
            n = cfg.n_hidden[l]
            V = np.zeros((T, B, n))
            S = np.zeros((T, B, n))
            v = np.zeros((B, n))
            s = np.zeros((B, n))
            for t in range(T):
                rs = reset[l][t - 1] if t > 0 else 0.0
                v = cfg.alpha * v + x[t] @ P[f"W{l}"].T + s @ P[f"R{l}"].T - cfg.theta * rs
                s = sig(v)
                V[t], S[t] = v, s
            rec["x"].append(x)
            rec["v"].append(V)
            rec["s"].append(S)
            rec["psi"].append(fm.surrogate(cfg, V))
            x = S
        rec["y"] = fm.leaky_filter(x @ P["Wout"].T, cfg.kappa)
        loss, err = fm.loss_and_error(cfg, rec["y"], np.array([1]))
        return rec, loss[0], err

    rec, _, err = run(params)
    g = fm._grads_bptt(cfg, params, rec, err)
    eps = 1e-6
    for key in fm.trainable_keys(cfg):
        num = np.zeros_like(params[key])
        for idx in np.ndindex(params[key].shape):
            if key.startswith("R") and idx[0] == idx[1]:
                continue  # no self-connections (mask)
            P1 = {kk: vv.copy() for kk, vv in params.items()}
            P2 = {kk: vv.copy() for kk, vv in params.items()}
            P1[key][idx] += eps
            P2[key][idx] -= eps
            num[idx] = (run(P1)[1] - run(P2)[1]) / (2 * eps)
        gk = g[key] * fm.connection_masks(cfg)[key] if key in fm.connection_masks(cfg) else g[key]
        np.testing.assert_allclose(gk, num, rtol=1e-5, atol=1e-8, err_msg=key)


# ----------------------------------------------------------------------------
# online rules vs BPTT
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("loss", ["mse", "ce"])
@pytest.mark.parametrize("surr", ["triangle", "fast_sigmoid"])
def test_eprop_and_otpe_equal_bptt_single_layer(loss, surr):
    cfg = NetConfig(n_in=20, n_hidden=(30,), n_out=4, w_scale=4.0, loss=loss,
                    surrogate=surr, p=0.7, rule="bptt", seed=1)
    params = fm.init_params(cfg)
    rng = np.random.default_rng(1)
    X = rand_spikes(rng, (3, 40, 20), 0.1)
    lab = np.array([0, 2, 3])
    gb = fm.gradients(cfg, params, X, lab)
    assert np.abs(gb["W0"]).max() > 1e-3
    for rule in ("eprop", "otpe"):
        g = fm.gradients(cfg.replace(rule=rule), params, X, lab)
        for k in gb:
            np.testing.assert_allclose(g[k], gb[k], rtol=0, atol=1e-9 * np.abs(gb[k]).max(),
                                       err_msg=f"{rule} {k}")
    # OTTT drops the readout-leak filtering of the error: different, but aligned
    g = fm.gradients(cfg.replace(rule="ottt"), params, X, lab)
    assert 0.8 < fm.cosine(g["W0"], gb["W0"]) < 0.9999


def test_readout_gradient_exact_for_all_rules():
    cfg = NetConfig(n_in=10, n_hidden=(12, 8), n_out=3, recurrent=True, w_scale=3.0,
                    rule="bptt", seed=4)
    params = fm.init_params(cfg)
    X = rand_spikes(np.random.default_rng(0), (2, 25, 10), 0.2)
    gb = fm.gradients(cfg, params, X, np.array([0, 1]))
    for rule in RULES[1:]:
        g = fm.gradients(cfg.replace(rule=rule), params, X, np.array([0, 1]))
        np.testing.assert_allclose(g["Wout"], gb["Wout"], rtol=1e-12, atol=1e-14)
        assert set(g) == set(gb) == {"W0", "R0", "W1", "R1", "Wout"}


def _explicit_online(cfg, params, x, label):
    """Per-step, per-layer re-implementation of the online rules for one sample,
    written as the accumulate-every-step form (what the hardware does)."""
    rec = fm._forward_tm(cfg, params, x[:, None, :].astype(float))
    _, err = fm.loss_and_error(cfg, rec["y"], np.array([label]))
    err = err[:, 0]
    T, L = x.shape[0], cfg.n_layers
    M = [params[f"B{l}"] if cfg.feedback == "random" else
         (params[f"W{l + 1}"] if l + 1 < L else params["Wout"]) for l in range(L)]
    lam, kap = cfg.lam, cfg.kappa
    ahat = [np.zeros(cfg.layer_sizes[l]) for l in range(L)]
    zhat = [np.zeros(cfg.layer_sizes[l]) for l in range(L)]
    Rh = [np.zeros((cfg.n_hidden[l], cfg.layer_sizes[l])) for l in range(L)]
    gbar = [np.zeros(n) for n in cfg.n_hidden]
    c = [0.0] * L
    ybar = np.zeros(cfg.n_hidden[-1])
    grads = {f"W{l}": np.zeros_like(params[f"W{l}"]) for l in range(L)}
    grads["Wout"] = np.zeros_like(params["Wout"])
    for t in range(T):
        ybar = kap * ybar + rec["s"][-1][t, 0]
        grads["Wout"] += np.outer(err[t], ybar)
        g = err[t] @ M[L - 1]
        for l in range(L - 1, -1, -1):
            psi = rec["psi"][l][t, 0]
            lp = kap if l == L - 1 else lam
            ahat[l] = lam * ahat[l] + rec["x"][l][t, 0]
            zhat[l] = lp * zhat[l] + ahat[l]
            Rh[l] = lp * Rh[l] + np.outer(psi, ahat[l])
            c_new = lp * c[l] + 1
            gbar[l] = lp * c[l] / c_new * gbar[l] + psi / c_new
            c[l] = c_new
            if cfg.rule == "ottt":
                grads[f"W{l}"] += np.outer(g * psi, ahat[l])
                g = (g * psi) @ M[l - 1] if l else None
            elif cfg.rule == "otpe_approx":
                grads[f"W{l}"] += np.outer(g * gbar[l], zhat[l])
                g = (g * gbar[l]) @ M[l - 1] if l else None
            else:
                grads[f"W{l}"] += g[:, None] * Rh[l]
                g = (g * gbar[l]) @ M[l - 1] if l else None
    return grads


@pytest.mark.parametrize("rule", ["ottt", "otpe_approx", "otpe"])
@pytest.mark.parametrize("feedback", ["symmetric", "random"])
def test_online_rules_match_explicit_per_step_form(rule, feedback):
    cfg = NetConfig(n_in=8, n_hidden=(10, 6), n_out=3, kappa=0.85, alpha=0.9, lam=0.8,
                    w_scale=3.0, rule=rule, feedback=feedback, loss="ce", seed=2)
    params = fm.init_params(cfg)
    x = rand_spikes(np.random.default_rng(3), (30, 8), 0.25)
    g = fm.gradients(cfg, params, x, 2)
    ref = _explicit_online(cfg, params, x, 2)
    for k in ref:
        assert np.abs(ref[k]).max() > 0, k
        np.testing.assert_allclose(g[k], ref[k], rtol=1e-10, atol=1e-13, err_msg=k)


def test_ottt_hardware_form_one_layer_random_feedback():
    """dW_ji = sum_t L_j[t] psi_j[t] a_i[t], L_j[t] = sum_k B_kj err_k[t],
    a_i = lam*a_i + x_i; dWout_kj = sum_t err_k[t] ybar_j[t]."""
    cfg = NetConfig(n_in=6, n_hidden=(9,), n_out=3, rule="ottt", feedback="random",
                    loss="mse", target=0.5, w_scale=3.0, seed=8)
    params = fm.init_params(cfg)
    assert params["B0"].shape == (3, 9)
    assert not np.allclose(params["B0"], params["Wout"])
    x = rand_spikes(np.random.default_rng(1), (20, 6), 0.3)
    rec = fm.forward(cfg, params, x)
    err = rec["y"] - 0.5 * np.eye(3)[1]
    a = np.zeros(6)
    ybar = np.zeros(9)
    dW = np.zeros((9, 6))
    dWo = np.zeros((3, 9))
    for t in range(20):
        a = cfg.lam * a + x[t]
        ybar = cfg.kappa * ybar + rec["s"][0][t]
        Lsig = params["B0"].T @ err[t]
        dW += np.outer(Lsig * rec["psi"][0][t], a)
        dWo += np.outer(err[t], ybar)
    g = fm.gradients(cfg, params, x, 1)
    np.testing.assert_allclose(g["W0"], dW, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g["Wout"], dWo, rtol=1e-12, atol=1e-14)
    # symmetric feedback: B = Wout
    gs = fm.gradients(cfg.replace(feedback="symmetric"), params, x, 1)
    dWs = sum(np.outer((params["Wout"].T @ err[t]) * rec["psi"][0][t],
                       fm.leaky_filter(x.astype(float), cfg.lam)[t]) for t in range(20))
    np.testing.assert_allclose(gs["W0"], dWs, rtol=1e-12, atol=1e-14)


def test_eprop_deep_uses_broadcast_learning_signal():
    """Deep e-prop: L_l = err @ Wout @ W_{L-1} ... (product of transposed forward
    weights, no intermediate surrogates); the last hidden layer equals BPTT."""
    cfg = NetConfig(n_in=8, n_hidden=(10, 6), n_out=3, w_scale=3.0, rule="eprop", seed=6)
    params = fm.init_params(cfg)
    x = rand_spikes(np.random.default_rng(4), (30, 8), 0.25)
    g = fm.gradients(cfg, params, x, 0)
    gb = fm.gradients(cfg.replace(rule="bptt"), params, x, 0)
    np.testing.assert_allclose(g["W1"], gb["W1"], rtol=1e-9, atol=1e-12)
    rec = fm._forward_tm(cfg, params, x[:, None, :].astype(float))
    _, err = fm.loss_and_error(cfg, rec["y"], np.array([0]))
    Lsig = err[:, 0] @ params["Wout"] @ params["W1"]                  # [T, n0]
    zbar = fm.leaky_filter(x.astype(float), cfg.lam)
    ebar = fm.leaky_filter(rec["psi"][0][:, 0, :, None] * zbar[:, None, :], cfg.kappa)
    np.testing.assert_allclose(g["W0"], np.einsum("tj,tji->ji", Lsig, ebar), rtol=1e-10)


@pytest.mark.parametrize("surr", [
    dict(surrogate="triangle", alpha=0.95, kappa=0.9),
    dict(surrogate="fast_sigmoid", surrogate_slope=25.0, alpha=0.9526, kappa=0.9526),
])
def test_cosine_to_bptt_ordering_two_hidden_layers(surr):
    """Seed-002 ordering on a fixed seed, T-Randman-like input, averaged over 12
    samples.  First hidden layer: OTPE > approx-OTPE > OTTT (the paper's claim).
    Last hidden layer: OTPE is exact here (its post-synaptic estimate decays with the
    readout leak) and so >= OTTT; approx-OTPE is NOT reliably better than OTTT there
    in this architecture (leaky non-spiking readout), so that is not asserted.
    Readouts are exact for every rule."""
    cfg = NetConfig(n_in=50, n_hidden=(64, 64), n_out=10, loss="ce", w_scale=2.5,
                    rule="bptt", seed=0, **surr)
    params = fm.init_params(cfg)
    rng = np.random.default_rng(1)
    X = t_randman_like(rng, 12, 50, 50)
    labels = rng.integers(0, 10, 12)
    cos = {r: {k: [] for k in ("W0", "W1", "Wout")} for r in RULES[1:]}
    for x, lab in zip(X, labels):
        gb = fm.gradients(cfg, params, x, lab)
        for r in cos:
            g = fm.gradients(cfg.replace(rule=r), params, x, lab)
            for k in cos[r]:
                cos[r][k].append(fm.cosine(g[k], gb[k]))
    m = {r: {k: float(np.mean(v)) for k, v in d.items()} for r, d in cos.items()}
    for r in m:
        assert m[r]["Wout"] == pytest.approx(1.0, abs=1e-12)
    assert m["otpe"]["W1"] == pytest.approx(1.0, abs=1e-9)
    assert m["eprop"]["W1"] == pytest.approx(1.0, abs=1e-9)
    assert m["otpe"]["W1"] > m["ottt"]["W1"]
    assert m["otpe"]["W0"] > m["otpe_approx"]["W0"] + 0.02 > m["ottt"]["W0"] + 0.04
    assert m["ottt"]["W1"] > 0.8 and m["ottt"]["W0"] > 0.4   # all are sensible estimates


# ----------------------------------------------------------------------------
# active gating, masks, batching
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("rule", RULES)
def test_active_gating_zeroes_gradients_of_inactive_neurons(rule):
    cfg = NetConfig(n_in=10, n_hidden=(16,), n_out=3, b_th=0.3, w_scale=3.0, rule=rule,
                    recurrent=(rule == "bptt"), seed=9)
    params = fm.init_params(cfg)
    X = rand_spikes(np.random.default_rng(2), (2, 30, 10), 0.2)
    rec = fm.forward(cfg, params, X)
    v, psi = rec["v"][0], rec["psi"][0]
    active = np.abs(v - cfg.theta) < cfg.b_th
    assert np.all(psi[~active] == 0) and np.all(psi[active] > 0)
    never = ~active.any(axis=(0, 1))
    assert 0 < never.sum() < 16      # some neurons never in the band, some are
    g = fm.gradients(cfg, params, X, np.array([0, 2]))
    assert np.all(g["W0"][never] == 0)
    assert np.abs(g["W0"][~never]).sum() > 0
    if cfg.recurrent:
        assert np.all(g["R0"][never] == 0)
    ungated = fm.gradients(cfg.replace(b_th=None), params, X, np.array([0, 2]))
    assert not np.allclose(ungated["W0"], g["W0"])


def test_masks_sparse_connectivity():
    cfg = NetConfig(n_in=30, n_hidden=(40, 20), n_out=5, p=0.3, recurrent=True, seed=11,
                    rule="eprop")
    m = fm.connection_masks(cfg)
    params = fm.init_params(cfg)
    assert abs(m["W0"].mean() - 0.3) < 0.06
    for k in ("R0", "R1"):
        assert not np.any(np.diag(m[k]))
    for k in m:
        assert np.all(params[k][~m[k]] == 0)
    X = rand_spikes(np.random.default_rng(0), (25, 30), 0.3)
    for rule in RULES:
        g = fm.gradients(cfg.replace(rule=rule), params, X, 3)
        for k in m:
            assert np.all(g[k][~m[k]] == 0), (rule, k)
    # deterministic in the seed, different for another seed
    assert np.array_equal(fm.connection_masks(cfg)["W0"], m["W0"])
    assert not np.array_equal(fm.connection_masks(cfg.replace(seed=12))["W0"], m["W0"])


@pytest.mark.parametrize("rule", RULES)
def test_batch_gradient_is_mean_of_sample_gradients(rule):
    cfg = NetConfig(n_in=6, n_hidden=(8, 5), n_out=3, recurrent=True, w_scale=3.0,
                    rule=rule, seed=5)
    params = fm.init_params(cfg)
    X = rand_spikes(np.random.default_rng(6), (4, 15, 6), 0.3)
    lab = np.array([0, 1, 2, 1])
    gB, aux = fm.gradients(cfg, params, X, lab, return_aux=True)
    assert aux["y"].shape == (4, 15, 3) and aux["loss"].shape == (4,)
    for k in gB:
        mean = np.mean([fm.gradients(cfg, params, X[i], lab[i])[k] for i in range(4)], axis=0)
        np.testing.assert_allclose(gB[k], mean, rtol=1e-12, atol=1e-14)
    out1 = fm.forward(cfg, params, X[2])
    outB = fm.forward(cfg, params, X)
    np.testing.assert_array_equal(outB["s"][1][2], out1["s"][1])
    np.testing.assert_allclose(outB["y"][2], out1["y"])
    assert list(fm.predict(cfg, params, X)) == [fm.predict(cfg, params, x) for x in X]


def test_loss_and_error_definitions():
    cfg = NetConfig(n_out=3, loss="mse", target=2.0)
    Y = np.array([[[0.5, 1.0, -1.0]], [[2.0, 0.0, 0.0]]])   # [T=2, B=1, 3]
    loss, err = fm.loss_and_error(cfg, Y, np.array([0]))
    np.testing.assert_allclose(err[:, 0], [[-1.5, 1, -1], [0, 0, 0]])
    assert loss[0] == pytest.approx(0.5 * (2.25 + 1 + 1))
    loss, err = fm.loss_and_error(cfg.replace(loss="ce"), Y, np.array([1]))
    p = np.exp(Y[:, 0]) / np.exp(Y[:, 0]).sum(1, keepdims=True)
    np.testing.assert_allclose(err[:, 0], p - np.eye(3)[1])
    assert loss[0] == pytest.approx(-np.log(p[:, 1]).sum())


# ----------------------------------------------------------------------------
# training loop
# ----------------------------------------------------------------------------
def _toy_task(n=300, seed=0):
    """3 classes of latency patterns with jitter over 12 channels, T=20."""
    rng = np.random.default_rng(seed)
    protos = rng.integers(0, 20, (3, 12))
    y = rng.integers(0, 3, n)
    X = np.zeros((n, 20, 12), np.uint8)
    t = np.clip(protos[y] + rng.integers(-1, 2, (n, 12)), 0, 19)
    for i in range(n):
        X[i, t[i], np.arange(12)] = 1
    return X, y


@pytest.mark.parametrize("rule, opt, lr, bs", [
    ("ottt", "sgd", 3e-3, 1), ("eprop", "sgd", 3e-3, 1), ("bptt", "adamax", 3e-3, 8),
    ("otpe_approx", "sgd", 3e-3, 1),
])
def test_training_learns_and_is_deterministic(rule, opt, lr, bs):
    X, y = _toy_task()
    cfg = NetConfig(n_in=12, n_hidden=(32,), n_out=3, rule=rule, optimizer=opt, lr=lr,
                    w_scale=3.0, seed=1)
    p0 = fm.init_params(cfg)
    acc0 = evaluate(cfg, p0, X[200:], y[200:])
    p1, h1 = train(cfg, X[:200], y[:200], X_test=X[200:], y_test=y[200:], epochs=2,
                   batch_size=bs, eval_every=200)
    assert h1["samples"] == [200, 400]
    assert h1["test_acc"][-1] >= 0.85 > acc0 + 0.2
    assert h1["loss"][-1] < h1["loss"][0]
    p2, h2 = train(cfg, X[:200], y[:200], X_test=X[200:], y_test=y[200:], epochs=2,
                   batch_size=bs, eval_every=200)
    assert h1 == h2
    for k in p1:
        np.testing.assert_array_equal(p1[k], p2[k])
    assert np.array_equal(p0["W0"], fm.init_params(cfg)["W0"])   # input untouched


def test_online_training_updates_after_every_sample():
    X, y = _toy_task(n=5)
    cfg = NetConfig(n_in=12, n_hidden=(8,), n_out=3, rule="ottt", lr=1e-2, w_scale=3.0)
    p0 = fm.init_params(cfg)
    p, _ = train(cfg, X, y, n_samples=3, shuffle=False)
    ref = {k: v.copy() for k, v in p0.items()}
    opt = Optimizer(cfg)
    for i in range(3):
        opt.step(ref, fm.gradients(cfg, ref, X[i], y[i]))
    for k in p:
        np.testing.assert_allclose(p[k], ref[k], rtol=1e-14, atol=1e-15)


def test_adamax_step():
    cfg = NetConfig(optimizer="adamax", lr=0.1)
    opt = Optimizer(cfg)
    P = {"a": np.array([1.0, 1.0])}
    opt.step(P, {"a": np.array([2.0, -0.5])})
    # first step: m = 0.1 g, u = |g|, m_hat = g -> W -= lr * sign(g)
    np.testing.assert_allclose(P["a"], [0.9, 1.1], rtol=1e-6)


class _Recorder:
    """Optimizer stand-in that records the per-step gradients without applying them."""

    def __init__(self):
        self.total = {}
        self.calls = 0

    def step(self, params, grads):
        self.calls += 1
        for k, g in grads.items():
            self.total[k] = self.total.get(k, 0) + g


@pytest.mark.parametrize("rule", ["eprop", "ottt", "otpe_approx", "otpe"])
@pytest.mark.parametrize("recurrent, feedback", [(False, "symmetric"), (True, "random")])
def test_stepwise_updates_sum_to_sample_gradient(rule, recurrent, feedback):
    cfg = NetConfig(n_in=7, n_hidden=(9, 5), n_out=3, recurrent=recurrent, feedback=feedback,
                    rule=rule, w_scale=3.0, alpha=0.85, lam=0.8, kappa=0.9, lam_out=0.7,
                    loss="ce", p=0.8, seed=12)
    params = fm.init_params(cfg)
    x = rand_spikes(np.random.default_rng(8), (25, 7), 0.3)
    rec = _Recorder()
    pred, loss = train_sample_stepwise(cfg, params, x, 1, rec)
    g, aux = fm.gradients(cfg, params, x, 1, return_aux=True)
    assert rec.calls == 25 and pred == aux["pred"] and loss == pytest.approx(aux["loss"][0])
    assert set(rec.total) == set(g)
    for k in g:
        np.testing.assert_allclose(rec.total[k], g[k], rtol=1e-10, atol=1e-13, err_msg=k)


def test_stepwise_training_close_to_sample_training_for_small_lr():
    X, y = _toy_task(n=20)
    cfg = NetConfig(n_in=12, n_hidden=(16,), n_out=3, rule="ottt", lr=1e-4, w_scale=3.0,
                    lam_out=0.9)
    p_s, _ = train(cfg, X, y, update="sample", shuffle=False)
    p_t, _ = train(cfg, X, y, update="step", shuffle=False)
    p0 = fm.init_params(cfg)
    for k in p0:
        d_s, d_t = p_s[k] - p0[k], p_t[k] - p0[k]
        assert np.abs(d_s).max() > 0
        assert np.abs(d_t - d_s).max() < 0.05 * np.abs(d_s).max()
    with pytest.raises(ValueError):
        train(cfg.replace(rule="bptt"), X, y, update="step")


def test_t_randman_online_ottt_reaches_high_accuracy():
    """The reported configuration (bench_float.BENCH_CFG): 1 hidden layer of 128,
    rule 'ottt', MSE, triangle surrogate, batch 1, SGD; 600 online samples."""
    from golden.bench_float import BENCH_CFG
    from golden.data import make_randman
    X, y = make_randman(n_samples_per_class=100, seed=0)
    cfg = NetConfig(n_hidden=(128,), **BENCH_CFG)
    _, h = train(cfg, X[:600], y[:600], X_test=X[600:], y_test=y[600:])
    assert h["test_acc"][-1] > 0.9
