"""Float (float64 NumPy) reference model: LIF network, surrogate gradients and
the online learning rules BPTT / e-prop / OTTT / approximate OTPE / OTPE.

Network (time step t = 0..T-1, all states start at 0)
-----------------------------------------------------
Hidden layer l = 0..L-1 with input x_l[t] (x_0 = input spikes, x_l = s_{l-1}, no
synaptic delay between layers):

    V_l[t] = alpha*V_l[t-1] + W_l x_l[t] (+ R_l s_l[t-1] if recurrent) - theta*s_l[t-1]
    s_l[t] = 1 if V_l[t] >= theta else 0

The subtractive reset is applied one step late and is not decayed: this is
snnTorch ``Leaky(reset_mechanism='subtract')`` with its default
``reset_delay=True`` (snnTorch fires on strict ``>``; we use ``>=`` like NEST).
The reset is *detached*: no gradient flows through ``-theta*s[t-1]`` (as in S3GD,
seed 003, and snnTorch's default ``reset_delay``).  OTPE's reference code instead
decays the reset and keeps its gradient; NEST applies the reset in the same
step and delays synapses by one step.

Readout k (non-spiking leaky integrator, Bellec 2020 / NEST eprop_readout
without the one-step synaptic delay):

    y[t] = kappa*y[t-1] + W_out s_{L-1}[t]

Loss (per step, summed over time, averaged over a minibatch):
    'mse': 0.5*sum_t ||y[t] - target*onehot(label)||^2,  err[t] = y[t] - target*onehot
    'ce' : sum_t -log softmax(y[t])[label],              err[t] = softmax(y[t]) - onehot
err[t] = dL_t/dy[t] is the "output error" that every rule starts from.

Surrogate (pseudo-derivative psi = ds/dV, evaluated on V[t] before the reset):
    triangle     psi = h*max(0, 1 - |V-theta|/width)        (NEST eprop_iaf, height h)
    fast_sigmoid psi = h/(slope*|V-theta| + 1)^2             (snnTorch / OTPE, slope 25)
    active gating (seed 003, S3GD): psi = 0 where |V-theta| >= b_th; applies to all rules
    (with rule='bptt' this is sparse BPTT).

Parameters (dict of float64 arrays; rows = postsynaptic, columns = presynaptic)
    'W{l}'  [n_l, n_{l-1}]  input weights of hidden layer l (n_{-1} = n_in)
    'R{l}'  [n_l, n_l]      recurrent weights (only if cfg.recurrent; zero diagonal)
    'Wout'  [n_out, n_{L-1}]
    'B{l}'  fixed random feedback (only if cfg.feedback == 'random'; not trained),
            same shape as the forward weight leaving layer l (W{l+1} or Wout).
Masks (cfg.p < 1, and the zero diagonal of R) come from `connection_masks(cfg)`;
masked weights are 0 and their gradients are 0.

Feedback ("M_l" below is the matrix that carries a signal from the layer above
back to layer l; it has the shape of the forward weight leaving layer l):
    symmetric: M_l = W{l+1} (or Wout for the last layer), i.e. signal @ W = W^T signal
    random   : M_l = B{l} (feedback alignment; a fixed random matrix per layer)

Traces: every presynaptic trace decays with the leak of the *postsynaptic* unit:
hidden synapses use lam (default alpha), readout synapses use lam_out (default kappa).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .config import NetConfig

__all__ = [
    "connection_masks", "init_params", "trainable_keys", "surrogate", "forward",
    "loss_and_error", "gradients", "predict", "leaky_filter", "reverse_leaky_filter",
    "cosine",
]


# ----------------------------------------------------------------------------
# parameters
# ----------------------------------------------------------------------------
def _rng(cfg: NetConfig, stream: int) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, stream])


@lru_cache(maxsize=64)
def _masks_cached(cfg: NetConfig):
    rng = _rng(cfg, 1)
    masks = {}
    sizes = cfg.layer_sizes
    for l in range(cfg.n_layers):
        n_post, n_pre = sizes[l + 1], sizes[l]
        masks[f"W{l}"] = rng.random((n_post, n_pre)) < cfg.p      # all True for p = 1
        if cfg.recurrent:
            r = rng.random((n_post, n_post)) < cfg.p
            np.fill_diagonal(r, False)
            masks[f"R{l}"] = r
    for m in masks.values():
        m.setflags(write=False)
    return masks


def connection_masks(cfg: NetConfig) -> dict:
    """Boolean masks {'W0': [n0, n_in], 'R0': ..., ...} (True = synapse exists).
    Deterministic in cfg.seed and cfg.p; the readout has no mask (dense)."""
    return dict(_masks_cached(cfg))


def trainable_keys(cfg: NetConfig) -> list:
    keys = []
    for l in range(cfg.n_layers):
        keys.append(f"W{l}")
        if cfg.recurrent:
            keys.append(f"R{l}")
    keys.append("Wout")
    return keys


def init_params(cfg: NetConfig) -> dict:
    """Gaussian init: W{l} ~ N(0, (w_scale/sqrt(p*fan_in))^2) on existing synapses,
    R{l} likewise (fan_in = n_l), Wout ~ N(0, (w_out_scale/sqrt(n_{L-1}))^2).
    If feedback == 'random', B{l} is drawn like the forward weight it replaces
    (for the readout feedback with w_out_scale)."""
    rng = _rng(cfg, 0)
    masks = _masks_cached(cfg)
    sizes = cfg.layer_sizes
    params = {}
    for l in range(cfg.n_layers):
        n_post, n_pre = sizes[l + 1], sizes[l]
        std = cfg.w_scale / np.sqrt(max(cfg.p * n_pre, 1.0))
        params[f"W{l}"] = rng.normal(0.0, std, (n_post, n_pre)) * masks[f"W{l}"]
        if cfg.recurrent:
            std_r = cfg.w_scale / np.sqrt(max(cfg.p * n_post, 1.0))
            params[f"R{l}"] = rng.normal(0.0, std_r, (n_post, n_post)) * masks[f"R{l}"]
    n_last = cfg.n_hidden[-1]
    params["Wout"] = rng.normal(0.0, cfg.w_out_scale / np.sqrt(n_last), (cfg.n_out, n_last))
    if cfg.feedback == "random":
        rng_b = _rng(cfg, 2)
        for l in range(cfg.n_layers):
            if l + 1 < cfg.n_layers:
                shape = (sizes[l + 2], sizes[l + 1])
                std = cfg.w_scale / np.sqrt(sizes[l + 1])
            else:
                shape = (cfg.n_out, n_last)
                std = cfg.w_out_scale / np.sqrt(n_last)
            params[f"B{l}"] = rng_b.normal(0.0, std, shape)
    return params


def _feedback(cfg: NetConfig, params: dict, l: int) -> np.ndarray:
    """M_l: matrix carrying a signal from the layer above back to hidden layer l
    (signal_l = signal_above @ M_l)."""
    if cfg.feedback == "random":
        return params[f"B{l}"]
    return params[f"W{l + 1}"] if l + 1 < cfg.n_layers else params["Wout"]


# ----------------------------------------------------------------------------
# elementary pieces
# ----------------------------------------------------------------------------
def surrogate(cfg: NetConfig, v: np.ndarray) -> np.ndarray:
    """psi(V): surrogate derivative ds/dV (with active-neuron gating if b_th)."""
    d = np.abs(v - cfg.theta)
    if cfg.surrogate == "triangle":
        psi = cfg.surrogate_height * np.maximum(0.0, 1.0 - d / cfg.surrogate_width)
    else:
        psi = cfg.surrogate_height / (cfg.surrogate_slope * d + 1.0) ** 2
    if cfg.b_th is not None:
        psi = np.where(d < cfg.b_th, psi, 0.0)
    return psi


def leaky_filter(x: np.ndarray, decay: float) -> np.ndarray:
    """out[t] = decay*out[t-1] + x[t] along axis 0 (time), out[-1] = 0."""
    out = np.empty_like(x, dtype=np.float64)
    acc = np.zeros(x.shape[1:])
    for t in range(x.shape[0]):
        acc = decay * acc + x[t]
        out[t] = acc
    return out


def reverse_leaky_filter(x: np.ndarray, decay: float) -> np.ndarray:
    """out[t] = x[t] + decay*out[t+1] along axis 0 (time), out[T] = 0."""
    out = np.empty_like(x, dtype=np.float64)
    acc = np.zeros(x.shape[1:])
    for t in range(x.shape[0] - 1, -1, -1):
        acc = x[t] + decay * acc
        out[t] = acc
    return out


def _shift(s: np.ndarray) -> np.ndarray:
    """s[t-1] along time (zeros at t=0)."""
    out = np.zeros_like(s)
    out[1:] = s[:-1]
    return out


def _outer_sum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sum_{t,b} a[t,b,:,None]*b[t,b,None,:] -> [n_a, n_b]."""
    return a.reshape(-1, a.shape[-1]).T @ b.reshape(-1, b.shape[-1])


def cosine(a, b) -> float:
    """Cosine similarity of two arrays (flattened); 0 if either is zero."""
    a = np.ravel(a)
    b = np.ravel(b)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 0.0
    return float(a @ b / (na * nb))


# ----------------------------------------------------------------------------
# forward pass
# ----------------------------------------------------------------------------
def _as_time_major(spikes_in: np.ndarray):
    x = np.asarray(spikes_in)
    if x.ndim == 2:
        return x[:, None, :].astype(np.float64), False
    if x.ndim == 3:
        return np.ascontiguousarray(np.transpose(x, (1, 0, 2)), dtype=np.float64), True
    raise ValueError(f"spikes_in must be [T, n_in] or [B, T, n_in], got shape {x.shape}")


def _forward_tm(cfg: NetConfig, params: dict, X: np.ndarray) -> dict:
    """Time-major forward. X [T, B, n_in] float64. Returns record with lists
    'x' (layer inputs), 'v', 's', 'psi' (per hidden layer, [T, B, n_l]) and 'y'."""
    if X.shape[-1] != cfg.n_in:
        raise ValueError(f"input has {X.shape[-1]} channels, cfg.n_in = {cfg.n_in}")
    T, B, _ = X.shape
    rec = {"x": [], "v": [], "s": [], "psi": []}
    x = X
    a, th = cfg.alpha, cfg.theta
    for l in range(cfg.n_layers):
        W = params[f"W{l}"]
        n = W.shape[0]
        I = (x.reshape(T * B, -1) @ W.T).reshape(T, B, n)
        V = np.empty((T, B, n))
        S = np.empty((T, B, n))
        v = np.zeros((B, n))
        s = np.zeros((B, n))
        if cfg.recurrent:
            RT = params[f"R{l}"].T
            for t in range(T):
                v = a * v + I[t] + s @ RT - th * s
                s = (v >= th).astype(np.float64)
                V[t] = v
                S[t] = s
        else:
            for t in range(T):
                v = a * v + I[t] - th * s
                s = (v >= th).astype(np.float64)
                V[t] = v
                S[t] = s
        rec["x"].append(x)
        rec["v"].append(V)
        rec["s"].append(S)
        rec["psi"].append(surrogate(cfg, V))
        x = S
    Wout = params["Wout"]
    rec["y"] = leaky_filter((x.reshape(T * B, -1) @ Wout.T).reshape(T, B, -1), cfg.kappa)
    return rec


def forward(cfg: NetConfig, params: dict, spikes_in: np.ndarray) -> dict:
    """Run the network. spikes_in: [T, n_in] or [B, T, n_in] (0/1).

    Returns {'v': [per layer], 's': [...], 'psi': [...], 'y': array} with arrays
    shaped [T, n] (single sample) or [B, T, n] (batch) like the input."""
    X, batched = _as_time_major(spikes_in)
    rec = _forward_tm(cfg, params, X)

    def out(a):
        return np.transpose(a, (1, 0, 2)) if batched else a[:, 0, :]

    return {
        "v": [out(a) for a in rec["v"]],
        "s": [out(a) for a in rec["s"]],
        "psi": [out(a) for a in rec["psi"]],
        "y": out(rec["y"]),
    }


def loss_and_error(cfg: NetConfig, Y: np.ndarray, labels: np.ndarray):
    """Y [T, B, n_out] time-major readout, labels [B] -> (loss [B], err [T, B, n_out])."""
    labels = np.asarray(labels)
    onehot = np.zeros(Y.shape[1:])
    onehot[np.arange(Y.shape[1]), labels] = 1.0
    if cfg.loss == "mse":
        err = Y - cfg.target * onehot[None]
        loss = 0.5 * np.sum(err**2, axis=(0, 2))
    else:
        z = Y - Y.max(axis=2, keepdims=True)
        e = np.exp(z)
        p = e / e.sum(axis=2, keepdims=True)
        logp = z - np.log(e.sum(axis=2, keepdims=True))
        loss = -np.sum(logp[:, np.arange(Y.shape[1]), labels], axis=0)
        err = p - onehot[None]
    return loss, err


# ----------------------------------------------------------------------------
# learning rules (all time-major; grads summed over t and over the batch)
# ----------------------------------------------------------------------------
def _readout_grad(cfg, rec, err):
    """dL/dWout = sum_t err[t] (x) ybar[t], ybar = lam_out*ybar + s_{L-1}: exact for
    the default lam_out = kappa (the readout is linear in its weights); the hardware
    uses lam_out = lam (its hidden-spike trace)."""
    ybar = leaky_filter(rec["s"][-1], cfg.lam_out)
    return _outer_sum(err, ybar)


def _grads_bptt(cfg, params, rec, err):
    """Exact surrogate-gradient BPTT with detached reset (seed 003 eq. for S3GD with
    the active set = all neurons, or the gated set if b_th):
        dL/du_out[t] = sum_{t'>=t} kappa^{t'-t} err[t']          (readout leak path)
        dL/ds_l[t]   = (dL/dV_{l+1}[t]) W_{l+1}  [or dL/du_out[t] Wout]
                       + dL/dV_l[t+1] R_l                          (recurrent path)
        dL/dV_l[t]   = psi_l[t] dL/ds_l[t] + alpha dL/dV_l[t+1]   (membrane leak path)
        dL/dW_l = sum_t dL/dV_l[t] (x) x_l[t],  dL/dR_l = sum_t dL/dV_l[t] (x) s_l[t-1]."""
    g = {}
    D = reverse_leaky_filter(err, cfg.kappa)
    g["Wout"] = _outer_sum(D, rec["s"][-1])
    G = D @ params["Wout"]
    a = cfg.alpha
    for l in range(cfg.n_layers - 1, -1, -1):
        psi = rec["psi"][l]
        T, B, n = psi.shape
        if cfg.recurrent:
            R = params[f"R{l}"]
            DV = np.empty((T, B, n))
            dv = np.zeros((B, n))
            for t in range(T - 1, -1, -1):
                dv = psi[t] * (G[t] + dv @ R) + a * dv
                DV[t] = dv
            g[f"R{l}"] = _outer_sum(DV, _shift(rec["s"][l]))
        else:
            DV = reverse_leaky_filter(psi * G, a)
        W = params[f"W{l}"]
        g[f"W{l}"] = _outer_sum(DV, rec["x"][l])
        if l > 0:
            G = DV @ W
    return g


def _broadcast_signals(cfg, params, err):
    """e-prop learning signals L_l[t] = err[t] M_{L-1} ... M_l  ([T,B,n_l]).
    symmetric: product of the transposed forward weights (no surrogate factors of
    the intermediate layers -- a direct broadcast, our choice for deep e-prop);
    random: the same product of the fixed random matrices B."""
    sig = [None] * cfg.n_layers
    G = err
    for l in range(cfg.n_layers - 1, -1, -1):
        G = G @ _feedback(cfg, params, l)
        sig[l] = G
    return sig


def _eprop_layer_grad(Lsig, psi, xin, lam, kappa):
    """Online e-prop for one weight matrix (Bellec 2020 eq. for LIF, NEST eprop_synapse):
        zbar_i[t]   = lam*zbar_i[t-1] + x_i[t]
        e_ji[t]     = psi_j[t] * zbar_i[t]
        ebar_ji[t]  = kappa*ebar_ji[t-1] + e_ji[t]
        g_ji       += L_j[t] * ebar_ji[t]
    Explicit O(n_post*n_pre) eligibility matrix updated every step."""
    zbar = leaky_filter(xin, lam)
    T, B, n = psi.shape
    ebar = np.zeros((B, n, xin.shape[-1]))
    g = np.zeros((n, xin.shape[-1]))
    for t in range(T):
        ebar *= kappa
        ebar += psi[t][:, :, None] * zbar[t][:, None, :]
        g += np.einsum("bj,bji->ji", Lsig[t], ebar)
    return g


def _grads_eprop(cfg, params, rec, err):
    """e-prop (Bellec 2020; seed 001 NEST form without the one-step synaptic delay,
    i.e. L[t] = B err[t] is paired with psi[t]).  For one hidden layer, no recurrence
    and lam == alpha this equals BPTT exactly."""
    g = {"Wout": _readout_grad(cfg, rec, err)}
    sig = _broadcast_signals(cfg, params, err)
    for l in range(cfg.n_layers):
        psi = rec["psi"][l]
        g[f"W{l}"] = _eprop_layer_grad(sig[l], psi, rec["x"][l], cfg.lam, cfg.kappa)
        if cfg.recurrent:
            g[f"R{l}"] = _eprop_layer_grad(sig[l], psi, _shift(rec["s"][l]), cfg.lam, cfg.kappa)
    return g


def _gbar(psi, lam_post):
    """OTPE running weighted average of the surrogate (seed 002 sec. 3.1):
    c[t] = lam*c[t-1] + 1;  gbar[t] = (lam*c[t-1]/c[t]) gbar[t-1] + psi[t]/c[t]."""
    out = np.empty_like(psi)
    gb = np.zeros(psi.shape[1:])
    c = 0.0
    for t in range(psi.shape[0]):
        c_new = lam_post * c + 1.0
        gb = (lam_post * c / c_new) * gb + psi[t] / c_new
        c = c_new
        out[t] = gb
    return out


def _grads_online(cfg, params, rec, err):
    """OTTT / approximate OTPE / OTPE (seed 002, table of ALGORITHMS.md), layer by
    layer from the top. g_l[t] is the instantaneous signal dL_t/ds_l[t] arriving at
    hidden layer l (g_{L-1}[t] = err[t] M_{L-1}; M = Wout for symmetric feedback).

    ottt        a_hat = lam*a_hat + x;         dW = sum_t (g psi) (x) a_hat;
                signal below (g psi) M       (Xiao 2022 / OTPE code `OTTT`)
    otpe_approx a_hat as above, z_hat = lp*z_hat + a_hat, gbar(psi, lp);
                dW = sum_t (g gbar) (x) z_hat;  signal below (g gbar) M   (seed 002 eq. 5)
    otpe        R_hat = lp*R_hat + psi (x) a_hat   (OSTL ds/dW; with the detached reset
                OSTL's trace E reduces to a_hat);  dW = sum_t g . R_hat;
                signal below (g gbar) M            (seed 002 eq. 4, OTPE code `OTPE`)
    lp ("post-synaptic estimate" decay) is the leak of the layer that consumes s_l:
    lam for hidden->hidden, kappa for the last hidden layer (-> readout).  OTPE's
    code uses one global leak, which this reproduces when kappa == lam.  With one
    hidden layer, no recurrence and lam == alpha, rule 'otpe' equals BPTT.

    Hardware form (one hidden layer, rule='ottt'):
        dW_ji = sum_t L_j[t] psi_j[t] a_hat_i[t],  L_j[t] = sum_k B_kj err_k[t]
    with B = Wout (symmetric) or the fixed random B0 (feedback='random')."""
    rule = cfg.rule
    g = {"Wout": _readout_grad(cfg, rec, err)}
    G = err @ _feedback(cfg, params, cfg.n_layers - 1)
    for l in range(cfg.n_layers - 1, -1, -1):
        psi = rec["psi"][l]
        lp = cfg.kappa if l == cfg.n_layers - 1 else cfg.lam
        inputs = [(f"W{l}", rec["x"][l])]
        if cfg.recurrent:
            inputs.append((f"R{l}", _shift(rec["s"][l])))
        if rule == "ottt":
            delta = G * psi
            for key, xin in inputs:
                g[key] = _outer_sum(delta, leaky_filter(xin, cfg.lam))
        else:
            gbar = _gbar(psi, lp)
            delta = G * gbar
            for key, xin in inputs:
                ahat = leaky_filter(xin, cfg.lam)
                if rule == "otpe_approx":
                    g[key] = _outer_sum(delta, leaky_filter(ahat, lp))
                else:  # otpe: explicit R_hat trace [B, n_post, n_pre]
                    T, B, n = psi.shape
                    Rh = np.zeros((B, n, xin.shape[-1]))
                    acc = np.zeros((n, xin.shape[-1]))
                    for t in range(T):
                        Rh *= lp
                        Rh += psi[t][:, :, None] * ahat[t][:, None, :]
                        acc += np.einsum("bj,bji->ji", G[t], Rh)
                    g[key] = acc
        if l > 0:
            G = delta @ _feedback(cfg, params, l - 1)
    return g


_RULES = {
    "bptt": _grads_bptt,
    "eprop": _grads_eprop,
    "ottt": _grads_online,
    "otpe_approx": _grads_online,
    "otpe": _grads_online,
}


def _gradients_tm(cfg, params, X, labels):
    rec = _forward_tm(cfg, params, X)
    loss, err = loss_and_error(cfg, rec["y"], labels)
    g = _RULES[cfg.rule](cfg, params, rec, err)
    B = X.shape[1]
    masks = _masks_cached(cfg)
    for k in g:
        if B != 1:
            g[k] /= B
        if k in masks:
            g[k] *= masks[k]
    return g, rec, loss


def gradients(cfg: NetConfig, params: dict, spikes_in: np.ndarray, label, return_aux=False):
    """Weight gradients of the loss under cfg.rule.

    spikes_in [T, n_in] with an int label, or [B, T, n_in] with labels [B]
    (gradients are summed over time and averaged over the batch).
    Returns {'W0': ..., ['R0': ...], ..., 'Wout': ...}; with return_aux=True
    returns (grads, aux) where aux = {'loss': [B], 'y': [B, T, n_out] or [T, n_out],
    'pred': predicted labels}."""
    X, batched = _as_time_major(spikes_in)
    labels = np.atleast_1d(np.asarray(label)).astype(np.int64)
    if labels.shape != (X.shape[1],):
        raise ValueError(f"need one label per sample: {labels.shape} vs batch {X.shape[1]}")
    g, rec, loss = _gradients_tm(cfg, params, X, labels)
    if not return_aux:
        return g
    Y = rec["y"]
    pred = np.argmax(Y.sum(axis=0), axis=1)
    aux = {
        "loss": loss,
        "y": np.transpose(Y, (1, 0, 2)) if batched else Y[:, 0, :],
        "pred": pred if batched else int(pred[0]),
    }
    return g, aux


def predict(cfg: NetConfig, params: dict, spikes_in: np.ndarray, batch_size: int = 512):
    """argmax_k sum_t y_k[t] for [T, n_in] (int) or [B, T, n_in] (array)."""
    x = np.asarray(spikes_in)
    if x.ndim == 2:
        return int(predict(cfg, params, x[None])[0])
    out = []
    for i in range(0, len(x), batch_size):
        X, _ = _as_time_major(x[i:i + batch_size])
        Y = _forward_tm(cfg, params, X)["y"]
        out.append(np.argmax(Y.sum(axis=0), axis=1))
    return np.concatenate(out) if out else np.zeros(0, np.int64)
