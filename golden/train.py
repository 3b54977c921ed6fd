"""Online / minibatch training loop for the float reference model.

batch_size=1 is true online learning: the weights are updated after every
sample with the gradient of that sample (summed over its time steps).  With
batch_size > 1 the gradient is the minibatch mean.  Everything is deterministic
in cfg.seed (initial weights, masks, feedback matrices, sample order).
"""
from __future__ import annotations

import numpy as np

from . import float_model as fm
from .config import NetConfig

__all__ = ["Optimizer", "evaluate", "train"]


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


def train(cfg: NetConfig, X: np.ndarray, y: np.ndarray, *, X_test=None, y_test=None,
          epochs: int = 1, batch_size: int = 1, n_samples: int | None = None,
          eval_every: int | None = None, params: dict | None = None, shuffle: bool = True):
    """Train with cfg.rule / cfg.optimizer / cfg.lr.

    X [N, T, n_in] spikes, y [N] labels.  Processes `epochs` passes (or stops after
    `n_samples` training samples in total).  Every `eval_every` samples (default:
    once per epoch) it records

      history['samples']   number of samples seen so far
      history['train_acc'] prequential accuracy over the window: each sample is
                           predicted *before* the update it causes (online accuracy)
      history['loss']      mean per-sample loss over the window
      history['test_acc']  accuracy on (X_test, y_test) if given

    Returns (params, history).  The input params dict is not modified."""
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
        g, aux = fm.gradients(cfg, params, xb, lb, return_aux=True)
        opt.step(params, {k: g[k] for k in keys})
        correct += int(np.sum(np.atleast_1d(aux["pred"]) == np.atleast_1d(lb)))
        loss_sum += float(np.sum(aux["loss"]))
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
