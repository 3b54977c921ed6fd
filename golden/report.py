"""``make golden-report``: accuracy per rule (float and fixed point) and cosine to BPTT.

    python -m golden.report [--quick] [--out build]

Writes ``build/golden_report.json`` and ``build/golden_report.png``. For every rule the float
model trains online (batch 1) on T-Randman and on the spike-encoded sklearn digits. The chip's
rules (``ottt`` with active-neuron gating, per-step updates: ``golden/SPEC.md``; and
``otpe_approx``, register ``rule = 1``, at ``OTPE_HYPER``) are also trained in their float form
(``golden.quantize.float_config``) and in the bit-exact fixed-point model from the same
initial weights, so the two numbers differ only by quantisation. Cosine
similarity of each rule's gradient to BPTT's is reported per layer on a two-hidden-layer net.
"""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from . import float_model as fm
from .bench_float import BENCH_CFG, cosine_to_bptt
from .config import NetConfig
from .data import load_digits_spikes, make_randman
from .fixed import FixedCore, FixedHyper, FixedParams
from .quantize import OTPE_HYPER, float_config, learning_rates, quantize_params
from .train import evaluate, train

RULES = ("bptt", "eprop", "ottt", "otpe_approx", "otpe")
HARDWARE_RULE = "ottt"
OTPE_RULE = "otpe_approx"   #: the chip's second rule (register ``rule = 1``, at OTPE_HYPER)


def datasets(quick: bool) -> dict:
    """name -> (X_train, y_train, X_test, y_test)."""
    n_train, n_test = (600, 400) if quick else (2000, 1000)
    X, y = make_randman(n_samples_per_class=(n_train + n_test) // 10, seed=0)
    out = {"t_randman": (X[:n_train], y[:n_train], X[n_train:], y[n_train:])}
    X, y = load_digits_spikes("latency", n_steps=20)
    perm = np.random.default_rng(0).permutation(len(y))
    X, y = X[perm], y[perm]
    n_train = 600 if quick else 1300
    out["digits_latency"] = (X[:n_train], y[:n_train], X[n_train:], y[n_train:])
    return out


def float_accuracy(rule: str, data, seed: int = 0) -> float:
    Xtr, ytr, Xte, yte = data
    cfg = NetConfig(n_hidden=(128,), **{**BENCH_CFG, "n_in": Xtr.shape[-1], "rule": rule,
                                        "seed": seed})
    params, _ = train(cfg, Xtr, ytr, batch_size=1, update="sample")
    return evaluate(cfg, params, Xte, yte)


def hardware_rule_accuracy(data, hyper: FixedHyper, seed: int = 0) -> dict:
    """Float and fixed-point accuracy of a chip rule (``hyper.rule``), same data, order and
    initial weights."""
    Xtr, ytr, Xte, yte = data
    params = FixedParams(n_in=Xtr.shape[-1])
    cfg = float_config(params, hyper, w_scale=1.0, w_out_scale=1.0, seed=seed)
    init = fm.init_params(cfg)
    t0 = time.perf_counter()
    trained, _ = train(cfg, Xtr, ytr, batch_size=1, update="step", shuffle=False,
                       params=init)
    float_s = time.perf_counter() - t0
    acc_float = evaluate(cfg, trained, Xte, yte)

    core = FixedCore(params, hyper)
    core.load_weights(*quantize_params(params, hyper, init))
    t0 = time.perf_counter()
    for x, label in zip(Xtr, ytr):
        core.run_sample(x, int(label), learn=True)
    fixed_s = time.perf_counter() - t0
    c = core.counters
    active_fraction = c.active / max(c.steps, 1) / params.n_hid
    acc_fixed = float(np.mean([core.run_sample(x, int(label), learn=False) == label
                               for x, label in zip(Xte, yte)]))
    return {"float": round(acc_float, 4), "fixed": round(acc_fixed, 4),
            "fixed_minus_float": round(acc_fixed - acc_float, 4),
            "active_fraction": round(active_fraction, 5),
            "float_train_samples_per_s": round(len(ytr) / float_s, 1),
            "fixed_train_samples_per_s": round(len(ytr) / fixed_s, 1)}


def build_report(quick: bool = False) -> dict:
    hyper = FixedHyper()
    lr_hid, lr_out = learning_rates(FixedParams(), hyper)
    report = {"quick": quick, "hardware_rule": HARDWARE_RULE, "fixed_hyper": hyper.as_dict(),
              "otpe_rule": OTPE_RULE, "otpe_hyper": OTPE_HYPER.as_dict(),
              "fixed_params": FixedParams().__dict__, "float_lr_equivalent": lr_hid,
              "float_cfg": {**BENCH_CFG, "n_hidden": [128]}, "accuracy": {}}
    data = datasets(quick)
    for name, split in data.items():
        per_rule = {}
        for rule in RULES:
            entry = {"float": round(float_accuracy(rule, split), 4), "fixed": None}
            if rule in (HARDWARE_RULE, OTPE_RULE):
                entry["hardware"] = hardware_rule_accuracy(
                    split, hyper if rule == HARDWARE_RULE else OTPE_HYPER)
                entry["fixed"] = entry["hardware"]["fixed"]
            else:
                entry["fixed_note"] = "not implemented in hardware (the chip runs ottt, otpe_approx)"
            per_rule[rule] = entry
        report["accuracy"][name] = per_rule
    Xte, yte = data["t_randman"][2:]
    report["cosine_to_bptt"] = cosine_to_bptt(Xte, yte, n_samples=5 if quick else 20,
                                              alpha=0.95, kappa=0.9)
    report["cosine_setup"] = "2 hidden layers (128, 128), CE loss, triangle, at init"
    assert lr_hid == lr_out
    return report


def plot(report: dict, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_acc, ax_cos) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = list(report["accuracy"])
    width = 0.8 / (len(names) + 1)
    x = np.arange(len(RULES))
    for n, name in enumerate(names):
        accs = [report["accuracy"][name][r]["float"] for r in RULES]
        ax_acc.bar(x + n * width, accs, width, label=f"{name} float")
    for c, chip_rule in enumerate((HARDWARE_RULE, OTPE_RULE)):
        hw = [report["accuracy"][name][chip_rule]["hardware"] for name in names]
        for n, entry in enumerate(hw):
            ax_acc.bar(len(RULES) + c + n * width, entry["fixed"], width, color=f"C{n}",
                       hatch="//", label=f"{names[n]} chip {chip_rule}, fixed point")
    ax_acc.set_xticks(list(x + width / 2) + [len(RULES) + c + width / 2 for c in range(2)])
    ax_acc.set_xticklabels(list(RULES) + [f"chip {HARDWARE_RULE}", f"chip {OTPE_RULE}"],
                           rotation=20)
    ax_acc.set_ylim(0, 1)
    ax_acc.set_ylabel("test accuracy")
    ax_acc.legend(fontsize=7)
    cos = report["cosine_to_bptt"]
    layers = list(next(iter(cos.values())))
    for n, layer in enumerate(layers):
        ax_cos.bar(np.arange(len(cos)) + n * 0.25, [cos[r][layer] for r in cos], 0.25,
                   label=layer)
    ax_cos.set_xticks(np.arange(len(cos)) + 0.25)
    ax_cos.set_xticklabels(list(cos))
    ax_cos.set_ylim(0, 1.05)
    ax_cos.set_ylabel("cosine similarity to BPTT")
    ax_cos.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", default=os.environ.get("QUICK") == "1")
    ap.add_argument("--out", default="build")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = build_report(args.quick)
    (out / "golden_report.json").write_text(json.dumps(report, indent=1))
    plot(report, out / "golden_report.png")
    print(json.dumps(report["accuracy"], indent=1))
    print(json.dumps(report["cosine_to_bptt"], indent=1))
    print(f"wrote {out / 'golden_report.json'} and {out / 'golden_report.png'}")


if __name__ == "__main__":
    main()
