"""Training on the device: datasets, initial weights, the epoch loop, checkpoints, plots.

Shared by ``host/cli.py`` (``train``/``eval``) and ``host/demo.py``.
"""

import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from golden.fixed import FixedHyper, FixedParams, init_weights

from .device import Device, ShapeMismatch
from .protocol import Mem

__all__ = ["DATASETS", "load_dataset", "initial_weights", "Trainer", "plot_curves",
           "plot_raster", "plot_weights", "readout_loss", "parse_hyper"]

DATASETS = ("t-randman", "r-randman", "digits", "digits-rate", "random")


def load_dataset(name: str, *, n_train: int, n_test: int, steps: int = 50,
                 channels: int = 50, classes: int = 10, seed: int = 0):
    """``(X_train, y_train, X_test, y_test)``; rasters are uint8 ``[N, T, channels]``."""
    n = n_train + n_test
    if name in ("t-randman", "r-randman"):
        from golden.data import make_randman
        per_class = -(-n // classes)
        X, y = make_randman(n_classes=classes, n_units=channels, n_steps=steps,
                            n_samples_per_class=per_class, seed=seed,
                            encoding="time" if name == "t-randman" else "rate")
    elif name in ("digits", "digits-rate"):
        from golden.data import load_digits_spikes
        X, y = load_digits_spikes("latency" if name == "digits" else "rate", n_steps=steps,
                                  seed=seed)
        perm = np.random.default_rng(seed).permutation(len(y))
        X, y = X[perm], y[perm]
        if n > len(y):
            raise ValueError(f"digits has {len(y)} samples, not {n}")
    elif name == "random":
        rng = np.random.default_rng(seed)
        X = (rng.random((n, steps, channels)) < 0.05).astype(np.uint8)
        y = rng.integers(0, classes, n)
    else:
        raise ValueError(f"dataset must be one of {DATASETS}, not {name!r}")
    X, y = X[:n], y[:n]
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def check_dataset(params: FixedParams, X, y):
    """Raise :class:`ShapeMismatch` when a dataset does not fit the device's build."""
    X = np.asarray(X)
    if X.ndim != 3:
        raise ShapeMismatch(f"the dataset must be [N, T, channels], not {X.shape}")
    if X.shape[2] != params.n_in:
        raise ShapeMismatch(f"the dataset has {X.shape[2]} input channels but the device was "
                            f"built with n_in={params.n_in} (use --channels or another build)")
    if len(y) and int(np.max(y)) >= params.n_out:
        raise ShapeMismatch(f"the dataset has {int(np.max(y)) + 1} classes but the device "
                            f"was built with n_out={params.n_out}")


def initial_weights(params: FixedParams, hyper: FixedHyper, seed: int = 0):
    """Quantised initial weights ``(w, w_out, b)`` as ``golden/report.py`` trains from them
    (float model init in units of theta), or ``golden.fixed.init_weights`` when the float
    mapping does not apply."""
    try:
        from golden import float_model as fm
        from golden.quantize import float_config, quantize_params
        cfg = float_config(params, hyper, w_scale=1.0, w_out_scale=1.0, seed=seed,
                           feedback="random" if hyper.feedback else "symmetric")
        w, w_out, b = quantize_params(params, hyper, fm.init_params(cfg))
        if hyper.feedback and not np.any(b):
            raise ValueError("no feedback matrix")
        return w, w_out, b
    except (ValueError, KeyError, TypeError, ImportError):
        return init_weights(params, seed, w_scale=1.0, out_scale=1.0, theta=hyper.theta)


def parse_hyper(text: str | None, base: FixedHyper | None = None) -> FixedHyper:
    """``"seed=3,g_shift=18"`` -> FixedHyper."""
    base = base or FixedHyper()
    if not text:
        return base
    changes = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in base.as_dict():
            raise ValueError(f"--hyper items must be name=value with name one of "
                             f"{list(base.as_dict())}, not {item!r}")
        changes[key.strip()] = int(value, 0)
    return replace(base, **changes)


def readout_loss(scores, labels, steps: int, target: int) -> float:
    """Mean squared error of the time-averaged readout ``score / T`` against the one-hot
    target (in units of ``target``): the quantity the rule descends."""
    scores = np.asarray(scores, dtype=np.float64) / max(steps, 1)
    onehot = np.zeros_like(scores)
    onehot[np.arange(len(labels)), labels] = target
    return float(np.mean(((scores - onehot) / max(target, 1)) ** 2))


class Trainer:
    """Epoch loop with history, per-epoch checkpoints (npz) and resume."""

    def __init__(self, dev: Device, hyper: FixedHyper, *, dense: bool = False,
                 out: Path | None = None, progress: bool = True):
        self.dev = dev
        self.hyper = hyper
        self.dense = dense
        self.out = Path(out) if out else None
        self.progress = progress
        self.history = {"epoch": [], "train_acc": [], "test_acc": [], "test_loss": [],
                        "seconds": [], "samples_per_s": []}
        self.epoch = 0

    def _bar(self, total, desc):
        if not self.progress:
            return None
        from tqdm import tqdm
        return tqdm(total=total, desc=desc, unit="sample", leave=False, dynamic_ncols=True)

    def run(self, X, y, learn: bool, desc: str, scores: bool = False):
        bar = self._bar(len(y), desc)
        last = [0]

        def progress(n):
            if bar is not None:
                bar.update(n - last[0])
                last[0] = n

        try:
            return self.dev.run_epoch(X, y, learn=learn, progress=progress, scores=scores)
        finally:
            if bar is not None:
                bar.close()

    def evaluate(self, X, y):
        preds, scores = self.run(X, y, learn=False, desc="eval", scores=True)
        acc = float(np.mean(preds == y))
        loss = readout_loss(scores, y, X.shape[1], self.hyper.target)
        return acc, loss, preds

    def train_epoch(self, X, y, X_test=None, y_test=None, log=print):
        t0 = time.monotonic()
        preds = self.run(X, y, learn=True, desc=f"epoch {self.epoch + 1}")
        dt = time.monotonic() - t0
        train_acc = float(np.mean(preds == y))
        test_acc, test_loss = float("nan"), float("nan")
        if X_test is not None and len(y_test):
            test_acc, test_loss, _ = self.evaluate(X_test, y_test)
        self.epoch += 1
        h = self.history
        h["epoch"].append(self.epoch)
        h["train_acc"].append(train_acc)
        h["test_acc"].append(test_acc)
        h["test_loss"].append(test_loss)
        h["seconds"].append(dt)
        h["samples_per_s"].append(len(y) / dt if dt else float("nan"))
        log(f"epoch {self.epoch}: online train acc {train_acc:.3f}, test acc {test_acc:.3f}, "
            f"test loss {test_loss:.4f}, {len(y) / dt:.1f} samples/s")
        if self.out is not None:
            self.checkpoint()
        return train_acc, test_acc

    # checkpoints ------------------------------------------------------------------------
    def checkpoint(self) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        wts = self.dev.dump_weights()
        path = self.out / f"checkpoint_epoch{self.epoch:03d}.npz"
        np.savez(path, **wts, epoch=self.epoch, hyper=json.dumps(self.hyper.as_dict()),
                 dense=self.dense, params=json.dumps(asdict(self.dev.params)),
                 history=json.dumps(self.history))
        return path

    @staticmethod
    def latest_checkpoint(out: Path) -> Path | None:
        found = sorted(Path(out).glob("checkpoint_epoch*.npz"))
        return found[-1] if found else None

    def resume(self, path: Path):
        """Load weights, epoch and history from a checkpoint (the generators restart from
        the seed: a resumed run is not bit-identical to an uninterrupted one)."""
        ck = np.load(path)
        params = FixedParams(**json.loads(str(ck["params"])))
        if params != self.dev.params:
            raise ShapeMismatch(f"{path} was made on a device built with {params}, this "
                                f"one has {self.dev.params}")
        self.dev.load_weights(ck["w"], ck["w_out"], ck["b"])
        self.epoch = int(ck["epoch"])
        self.history = json.loads(str(ck["history"]))
        return self.epoch


# -- plots ----------------------------------------------------------------------------------
def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_curves(history: dict, path: Path, title: str = ""):
    plt = _plt()
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(10, 4))
    ep = history["epoch"]
    ax_acc.plot(ep, history["train_acc"], "o-", label="online train (while learning)")
    ax_acc.plot(ep, history["test_acc"], "s-", label="test")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_ylim(0, 1)
    ax_acc.grid(alpha=0.3)
    ax_acc.legend()
    ax_loss.plot(ep, history["test_loss"], "s-", color="C3")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("test readout MSE (units of target)")
    ax_loss.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_raster(raster, path: Path, title: str = "input spikes"):
    plt = _plt()
    raster = np.asarray(raster)
    t, i = np.nonzero(raster)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.scatter(t, i, s=6, marker="|", color="k")
    ax.set_xlim(-0.5, raster.shape[0] - 0.5)
    ax.set_ylim(-0.5, raster.shape[1] - 0.5)
    ax.set_xlabel("time step")
    ax.set_ylabel("input channel")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_weights(weights: dict, path: Path, w_bits: int, before: dict | None = None):
    plt = _plt()
    names = [n for n in ("w", "w_out", "b") if n in weights and np.any(weights[n])]
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.5), squeeze=False)
    lim = 1 << (w_bits - 1)
    bins = np.linspace(-lim, lim, 65)
    for ax, name in zip(axes[0], names):
        if before is not None and name in before:
            ax.hist(np.ravel(before[name]), bins=bins, alpha=0.5, label="initial")
        ax.hist(np.ravel(weights[name]), bins=bins, alpha=0.7, label="trained")
        ax.set_title(f"{name} ({np.size(weights[name])} weights)")
        ax.set_xlabel("weight (LSB)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def load_mem_arrays(dev: Device, path: Path):
    """Load ``w``, ``w_out`` and ``b`` from an npz (checkpoint or dump) into the device."""
    data = np.load(path)
    missing = [n for n in ("w", "w_out", "b") if n not in data]
    if len(missing) == 3:
        raise ShapeMismatch(f"{path} holds none of w, w_out, b")
    dev.load_weights(*(data[n] if n in data else None for n in ("w", "w_out", "b")))


MEMS = {"w": Mem.W, "w_out": Mem.W_OUT, "b": Mem.B}
