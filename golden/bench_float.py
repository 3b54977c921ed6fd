"""Benchmark of the float reference model (not a test).

    python -m golden.bench_float [--samples 1000] [--hidden 128]

Times T-Randman generation and online training (batch 1, rule 'ottt', T = 50,
one hidden layer) with per-sample and per-step weight updates, then prints one
JSON object (seconds, samples/s and the test accuracy reached).
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

from .config import NetConfig
from .data import make_randman
from .train import evaluate, train

# hyper-parameters that train T-Randman well online (1 hidden layer, batch 1, SGD):
# ~99% test accuracy after 1000-2000 samples, also with per-step updates
BENCH_CFG = dict(n_in=50, n_out=10, rule="ottt", loss="mse", surrogate="triangle",
                 alpha=0.95, kappa=0.9, theta=1.0, target=1.0, lr=3e-3, w_scale=2.0,
                 w_out_scale=1.0, seed=0)


def cosine_to_bptt(X, y, n_samples=20, **kw):
    """Mean per-layer cosine similarity of each rule's gradient to BPTT's on a
    2-hidden-layer (128, 128) net at initialisation, over n_samples samples."""
    from . import float_model as fm
    base = dict(n_in=X.shape[-1], n_hidden=(128, 128), n_out=10, loss="ce", w_scale=2.0,
                rule="bptt", seed=0)
    base.update(kw)
    cfg = NetConfig(**base)
    params = fm.init_params(cfg)
    out = {}
    gb = [fm.gradients(cfg, params, X[i], y[i]) for i in range(n_samples)]
    for rule in ("eprop", "ottt", "otpe_approx", "otpe"):
        c = cfg.replace(rule=rule)
        cos = {k: [] for k in ("W0", "W1", "Wout")}
        for i in range(n_samples):
            g = fm.gradients(c, params, X[i], y[i])
            for k in cos:
                cos[k].append(fm.cosine(g[k], gb[i][k]))
        out[rule] = {k: round(float(np.mean(v)), 3) for k, v in cos.items()}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--test", type=int, default=1000)
    args = ap.parse_args(argv)

    per_class = -(-(args.samples + args.test) // 10)
    t0 = time.perf_counter()
    X, y = make_randman(n_classes=10, n_units=50, n_steps=50, dim_manifold=3,
                        n_samples_per_class=per_class, alpha=1.0, seed=0)
    t_data = time.perf_counter() - t0
    Xtr, ytr = X[:args.samples], y[:args.samples]
    Xte, yte = X[args.samples:args.samples + args.test], y[args.samples:args.samples + args.test]

    cfg = NetConfig(n_hidden=(args.hidden,), **BENCH_CFG)
    res = {"platform": platform.processor() or platform.machine(),
           "numpy": np.__version__, "n_train": len(ytr), "n_test": len(yte),
           "n_hidden": args.hidden, "T": 50, "rule": cfg.rule,
           "randman_gen_s": round(t_data, 3), "randman_samples": len(y)}
    for update in ("sample", "step"):
        t0 = time.perf_counter()
        params, hist = train(cfg, Xtr, ytr, batch_size=1, update=update)
        dt = time.perf_counter() - t0
        t1 = time.perf_counter()
        acc = evaluate(cfg, params, Xte, yte)
        res[f"train_{update}_s"] = round(dt, 3)
        res[f"train_{update}_samples_per_s"] = round(len(ytr) / dt, 1)
        res[f"train_{update}_online_acc"] = round(hist["train_acc"][-1], 4)
        res[f"test_acc_{update}"] = round(acc, 4)
        res[f"eval_s_{update}"] = round(time.perf_counter() - t1, 3)
    res["target_s"] = 30.0
    res["ok"] = res["train_sample_s"] < 30.0
    t0 = time.perf_counter()
    res["cosine_to_bptt"] = {
        "triangle_alpha0.95_kappa0.9": cosine_to_bptt(Xte, yte, alpha=0.95, kappa=0.9),
        "fast_sigmoid25_lambda0.9526": cosine_to_bptt(
            Xte, yte, surrogate="fast_sigmoid", surrogate_slope=25.0, alpha=0.9526,
            kappa=0.9526),
    }
    res["cosine_s"] = round(time.perf_counter() - t0, 2)
    print(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
