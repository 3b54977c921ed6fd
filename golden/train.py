"""Online / minibatch training loop for the float reference model.

batch_size=1 is true online learning: the weights are updated after every
sample with the gradient of that sample (summed over its time steps).  With
batch_size > 1 the gradient is the minibatch mean.  update='step' (online rules,
batch 1) instead applies each time step's gradient contribution immediately, so
the rest of the sample already runs with the new weights -- what the hardware
(golden/SPEC.md) does.  Everything is deterministic in cfg.seed (initial weights,
masks, feedback matrices, sample order).
"""
from __future__ import annotations

import numpy as np

from . import float_model as fm
from .config import NetConfig

__all__ = ["Optimizer", "evaluate", "train", "train_sample_stepwise"]


class Optimizer:
    """Plain SGD (W -= lr*g) or Adamax (Kingma & Ba 2014, beta1 0.9, beta2 0.999):
    m = b1*m + (1-b1)*g;  u = max(b2*u, |g|);  W -= lr/(1-b1^k) * m/(u + eps)."""

    def __init__(self, cfg: NetConfig, beta1=0.9, beta2=0.999, eps=1e-8):
        self.kind = cfg.optimizer
        self.lr = cfg.lr
        self.b1, self.b2, self.eps = beta1, beta2, eps
        self.k = 0
        self.m = {}
        self.u = {}

    def step(self, params: dict, grads: dict) -> None:
        """In-place update of params (only the keys present in grads)."""
        self.k += 1
        for key, g in grads.items():
            if self.kind == "sgd":
                params[key] -= self.lr * g
                continue
            m = self.m.setdefault(key, np.zeros_like(g))
            u = self.u.setdefault(key, np.zeros_like(g))
            m *= self.b1
            m += (1 - self.b1) * g
            np.maximum(self.b2 * u, np.abs(g), out=u)
            params[key] -= (self.lr / (1 - self.b1**self.k)) * m / (u + self.eps)


def evaluate(cfg: NetConfig, params: dict, X: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of argmax_k sum_t y_k[t] on X [N, T, n_in]."""
    if len(y) == 0:
        return float("nan")
    return float(np.mean(fm.predict(cfg, params, X) == np.asarray(y)))


def train_sample_stepwise(cfg: NetConfig, params: dict, x: np.ndarray, label: int, opt):
    """One sample of online learning with a weight update after *every time step*
    (rules eprop / ottt / otpe_approx / otpe, batch 1).  At step t: forward with the
    current weights, traces, err[t], the step's gradient contribution (the same
    per-step terms whose sum over t is fm.gradients), then opt.step(params, g_t).
    For one hidden layer and rule='ottt' this is golden/SPEC.md section 5 in float
    (with lam_out = lam for its readout update).  Returns (prediction, loss)."""
    if cfg.rule == "bptt":
        raise ValueError("rule 'bptt' cannot update after every step (not online)")
    x = np.asarray(x, dtype=np.float64)
    L, rule = cfg.n_layers, cfg.rule
    nh, sizes = cfg.n_hidden, cfg.layer_sizes
    masks = fm.connection_masks(cfg)
    rec = cfg.recurrent
    onehot = np.eye(cfg.n_out)[label]
    v = [np.zeros(n) for n in nh]
    s = [np.zeros(n) for n in nh]
    y = np.zeros(cfg.n_out)
    score = np.zeros(cfg.n_out)
    ybar = np.zeros(nh[-1])
    # per weight matrix (key -> trace state); pre-size = sizes[l] (W) or nh[l] (R)
    wkeys = [(f"W{l}", l, sizes[l]) for l in range(L)]
    if rec:
        wkeys += [(f"R{l}", l, nh[l]) for l in range(L)]
    ahat = {k: np.zeros(n) for k, _, n in wkeys}
    zhat = {k: np.zeros(n) for k, _, n in wkeys}
    mat = {k: np.zeros((nh[l], n)) for k, l, n in wkeys} if rule in ("eprop", "otpe") else {}
    gbar = [np.zeros(n) for n in nh]
    c = [0.0] * L
    loss = 0.0
    for t in range(x.shape[0]):
        inp = x[t]
        pre, psi = {}, []
        for l in range(L):
            s_prev = s[l]
            cur = params[f"W{l}"] @ inp - cfg.theta * s_prev
            if rec:
                cur = cur + params[f"R{l}"] @ s_prev
                pre[f"R{l}"] = s_prev
            pre[f"W{l}"] = inp
            v[l] = cfg.alpha * v[l] + cur
            s[l] = (v[l] >= cfg.theta).astype(np.float64)
            psi.append(fm.surrogate(cfg, v[l]))
            inp = s[l]
        y = cfg.kappa * y + params["Wout"] @ inp
        score += y
        if cfg.loss == "mse":
            err = y - cfg.target * onehot
            loss += 0.5 * float(err @ err)
        else:
            e = np.exp(y - y.max())
            p = e / e.sum()
            loss -= float(np.log(p[label]))
            err = p - onehot
        ybar = cfg.lam_out * ybar + s[-1]
        g = {"Wout": np.outer(err, ybar)}
        sig = err @ fm._feedback(cfg, params, L - 1)      # signal into layer L-1
        for l in range(L - 1, -1, -1):
            lp = cfg.kappa if l == L - 1 else cfg.lam
            c_new = lp * c[l] + 1.0
            gbar[l] = (lp * c[l] / c_new) * gbar[l] + psi[l] / c_new
            c[l] = c_new
            for k, ll, _ in wkeys:
                if ll != l:
                    continue
                ahat[k] = cfg.lam * ahat[k] + pre[k]
                if rule == "ottt":
                    g[k] = np.outer(sig * psi[l], ahat[k])
                elif rule == "otpe_approx":
                    zhat[k] = lp * zhat[k] + ahat[k]
                    g[k] = np.outer(sig * gbar[l], zhat[k])
                elif rule == "otpe":
                    mat[k] = lp * mat[k] + np.outer(psi[l], ahat[k])
                    g[k] = sig[:, None] * mat[k]
                else:  # eprop: kappa-filtered eligibility, broadcast signal
                    mat[k] = cfg.kappa * mat[k] + np.outer(psi[l], ahat[k])
                    g[k] = sig[:, None] * mat[k]
                if k in masks:
                    g[k] *= masks[k]
            if l > 0:
                M = fm._feedback(cfg, params, l - 1)
                if rule == "eprop":
                    sig = sig @ M
                elif rule == "ottt":
                    sig = (sig * psi[l]) @ M
                else:
                    sig = (sig * gbar[l]) @ M
        opt.step(params, g)
    return int(np.argmax(score)), loss


def train(cfg: NetConfig, X: np.ndarray, y: np.ndarray, *, X_test=None, y_test=None,
          epochs: int = 1, batch_size: int = 1, n_samples: int | None = None,
          eval_every: int | None = None, params: dict | None = None, shuffle: bool = True,
          update: str = "sample"):
    """Train with cfg.rule / cfg.optimizer / cfg.lr.

    X [N, T, n_in] spikes, y [N] labels.  Processes `epochs` passes (or stops after
    `n_samples` training samples in total).  Every `eval_every` samples (default:
    once per epoch) it records

      history['samples']   number of samples seen so far
      history['train_acc'] prequential accuracy over the window: each sample is
                           predicted *before* the update it causes (online accuracy)
      history['loss']      mean per-sample loss over the window
      history['test_acc']  accuracy on (X_test, y_test) if given

    update='step' (batch_size 1, online rules only) applies the gradient after every
    time step via `train_sample_stepwise`.

    Returns (params, history).  The input params dict is not modified."""
    if update not in ("sample", "step"):
        raise ValueError(f"update must be 'sample' or 'step', not {update!r}")
    if update == "step" and batch_size != 1:
        raise ValueError("update='step' needs batch_size=1")
    X = np.asarray(X)
    y = np.asarray(y, dtype=np.int64)
    N = len(y)
    params = {k: v.copy() for k, v in (params or fm.init_params(cfg)).items()}
    keys = fm.trainable_keys(cfg)
    opt = Optimizer(cfg)
    rng = np.random.default_rng([cfg.seed, 3])
    total = epochs * N if n_samples is None else n_samples
    eval_every = eval_every or N
    hist = {"samples": [], "train_acc": [], "loss": [], "test_acc": []}
    seen, correct, loss_sum, win = 0, 0, 0.0, 0
    next_eval = eval_every
    order = np.arange(0)
    pos = 0
    while seen < total:
        if pos >= len(order):
            order = rng.permutation(N) if shuffle else np.arange(N)
            pos = 0
        bs = min(batch_size, total - seen, len(order) - pos)
        idx = order[pos:pos + bs]
        pos += bs
        xb = X[idx] if bs > 1 else X[idx[0]]
        lb = y[idx] if bs > 1 else y[idx[0]]
        if update == "step":
            pred, loss = train_sample_stepwise(cfg, params, xb, int(lb), opt)
        else:
            g, aux = fm.gradients(cfg, params, xb, lb, return_aux=True)
            opt.step(params, {k: g[k] for k in keys})
            pred, loss = aux["pred"], aux["loss"]
        correct += int(np.sum(np.atleast_1d(pred) == np.atleast_1d(lb)))
        loss_sum += float(np.sum(loss))
        seen += bs
        win += bs
        if seen >= next_eval or seen >= total:
            hist["samples"].append(seen)
            hist["train_acc"].append(correct / win)
            hist["loss"].append(loss_sum / win)
            if X_test is not None:
                hist["test_acc"].append(evaluate(cfg, params, X_test, y_test))
            correct, loss_sum, win = 0, 0.0, 0
            next_eval += eval_every
    return params, hist
