"""``make demo``: online learning on T-Randman through the whole stack, checked bit for bit.

1. builds and starts the virtual board (``python -m sim.board`` as a subprocess: the same
   ``hdl.top.Top`` as the bitstreams, with the real ``LearningCore``, in Verilator);
2. opens it with :class:`host.device.Device` over its socket URL, configures it, loads the
   initial weights;
3. trains online (every sample updates the weights on the device) for a few epochs on
   T-Randman, evaluating on a held-out set after each epoch, streaming pipelined frames;
4. feeds ``golden.fixed.FixedCore`` the same stream (same registers, same initial weights,
   same samples in the same order) and checks every prediction, every weight read back
   from the device (W, W_OUT, B) and the event counters, bit for bit;
5. prints the accuracy and the check, writes plots and a summary to ``build/demo/``.

Exit code 0 only if everything matched.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from golden.fixed import COUNTERS, FixedCore, FixedHyper, FixedParams

from .device import Device
from .experiment import (Trainer, initial_weights, load_dataset, plot_curves, plot_raster,
                         plot_weights)

ROOT = Path(__file__).resolve().parent.parent


def start_board(params: str, log):
    """``python -m sim.board`` in a subprocess; returns (process, url)."""
    cmd = [sys.executable, "-m", "sim.board", "--port", "0", "--params", params, "--fast"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = [None]

    def pump_err():
        for line in proc.stderr:
            log(f"  [board] {line.rstrip()}")

    threading.Thread(target=pump_err, daemon=True).start()
    t0 = time.monotonic()
    for line in proc.stdout:
        if line.startswith("socket://"):
            url[0] = line.strip()
            break
    if url[0] is None:
        proc.wait()
        raise RuntimeError(f"the virtual board did not start (exit code {proc.returncode})")
    log(f"  virtual board at {url[0]} (ready after {time.monotonic() - t0:.0f} s)")
    return proc, url[0]


def stop_board(proc, url):
    from sim.board import control
    try:
        control(url, "shutdown", timeout=5)
    except OSError:
        proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return proc.returncode


def golden_run(core: FixedCore, X, y, learn: bool, desc: str):
    from tqdm import tqdm
    return np.array([core.run_sample(x, int(label), learn)
                     for x, label in tqdm(list(zip(X, y)), desc=desc, leave=False,
                                          unit="sample", dynamic_ncols=True)])


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m host.demo", description=__doc__.split("\n")[0])
    ap.add_argument("--train", type=int, default=500)
    ap.add_argument("--test", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--n-hid", type=int, default=128)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "build" / "demo"))
    ap.add_argument("--quick", action="store_true", default=os.environ.get("QUICK") == "1",
                    help="a much smaller run (smoke test)")
    args = ap.parse_args(argv)
    if args.quick:
        args.train, args.test, args.epochs, args.n_hid = 60, 40, 2, 64
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()

    def log(msg):
        print(msg, flush=True)

    p = FixedParams(n_in=50, n_hid=args.n_hid, n_out=10)
    hyper = FixedHyper(seed=args.seed)
    spec = f"n_in={p.n_in},n_hid={p.n_hid},n_out={p.n_out}"
    log(f"[1/5] dataset: T-Randman, {args.train} training + {args.test} test samples, "
        f"{args.steps} steps, 50 channels, 10 classes")
    X, y, Xt, yt = load_dataset("t-randman", n_train=args.train, n_test=args.test,
                                steps=args.steps, channels=p.n_in, classes=p.n_out, seed=0)
    plot_raster(X[0], out / "raster.png", f"T-Randman sample 0 (label {y[0]})")

    log(f"[2/5] building and starting the virtual board ({spec}, lanes={p.lanes}, "
        f"w_bits={p.w_bits}; the first build takes ~40 s)")
    proc, url = start_board(spec, log)
    summary = {"params": p.__dict__, "hyper": hyper.as_dict(), "train": args.train,
               "test": args.test, "epochs": args.epochs, "url": url}
    ok = True
    try:
        dev = Device.open(url, params=p, timeout=30)
        dev.configure(hyper)
        w, w_out, b = initial_weights(p, hyper, seed=0)
        dev.load_weights(w, w_out, b)
        before = dev.dump_weights()
        assert all(np.array_equal(before[k], v) for k, v in
                   (("w", w), ("w_out", w_out), ("b", b))), "weights did not load"
        dev.read_counters(clear=True)
        golden = FixedCore(p, hyper)
        golden.load_weights(w, w_out, b)
        trainer = Trainer(dev, hyper, out=out / "checkpoints")

        log(f"[3/5] training online on the device, {args.epochs} epochs "
            f"(pipelined frames), with the golden model fed the same stream")
        mismatches = []
        acc0, loss0, pred0 = trainer.evaluate(Xt, yt)
        g0 = golden_run(golden, Xt, yt, False, "golden eval")
        if not np.array_equal(pred0, g0):
            mismatches.append("eval before training: predictions differ")
        trainer.history = {"epoch": [0], "train_acc": [float("nan")], "test_acc": [acc0],
                           "test_loss": [loss0], "seconds": [0.0],
                           "samples_per_s": [float("nan")]}
        log(f"  before training: test accuracy {acc0:.3f}")
        device_s = 0.0
        for e in range(args.epochs):
            t0 = time.monotonic()
            train_pred = trainer.run(X, y, learn=True, desc=f"epoch {e + 1} (device)")
            device_s += time.monotonic() - t0
            test_acc, test_loss, test_pred = trainer.evaluate(Xt, yt)
            gt = golden_run(golden, X, y, True, f"epoch {e + 1} (golden)")
            ge = golden_run(golden, Xt, yt, False, "golden eval")
            if not np.array_equal(train_pred, gt):
                mismatches.append(f"epoch {e + 1}: {int(np.sum(train_pred != gt))} training "
                                  f"predictions differ")
            if not np.array_equal(test_pred, ge):
                mismatches.append(f"epoch {e + 1}: test predictions differ")
            trainer.epoch = e + 1
            h = trainer.history
            h["epoch"].append(e + 1)
            h["train_acc"].append(float(np.mean(train_pred == y)))
            h["test_acc"].append(test_acc)
            h["test_loss"].append(test_loss)
            h["seconds"].append(time.monotonic() - t0)
            h["samples_per_s"].append(len(y) / max(h["seconds"][-1], 1e-9))
            trainer.checkpoint()
            log(f"  epoch {e + 1}: online train accuracy {h['train_acc'][-1]:.3f}, "
                f"test accuracy {test_acc:.3f}, test loss {test_loss:.4f}")
            plot_curves(h, out / "curves.png", "T-Randman, online learning on the device")

        log("[4/5] reading back all weights and checking them bit for bit")
        after = dev.dump_weights()
        for name, ref in (("w", golden.w), ("w_out", golden.w_out), ("b", golden.b)):
            if not np.array_equal(after[name], ref):
                diff = int(np.sum(after[name] != ref))
                mismatches.append(f"{name}: {diff} of {ref.size} weights differ")
        counters = dev.read_counters()
        gold_counters = golden.counters.as_dict()
        for name in COUNTERS:
            if counters[name] != gold_counters[name]:
                mismatches.append(f"counter {name}: device {counters[name]}, golden "
                                  f"{gold_counters[name]}")
        changed = int(np.sum(after["w"] != before["w"]) + np.sum(after["w_out"]
                                                                 != before["w_out"]))
        np.savez(out / "weights.npz", **after)
        plot_weights(after, out / "weights.png", p.w_bits, before)
        status = dev.read_status()
        link = dev.stats
        dev.close()
        ok = not mismatches

        log("[5/5] result")
        acc = trainer.history["test_acc"][-1]
        n_weights = sum(v.size for v in after.values())
        log(f"  test accuracy on T-Randman: {acc:.3f} ({args.test} held-out samples; "
            f"{acc0:.3f} before training)")
        if ok:
            log(f"  bit-exact check PASSED: {n_weights} weights ({changed} changed by "
                f"learning), {len(y) * args.epochs + len(yt) * (args.epochs + 1)} predictions "
                f"and the 8 event counters equal golden.fixed.FixedCore")
        else:
            log("  bit-exact check FAILED:\n    " + "\n    ".join(mismatches))
        log(f"  device: {counters['samples']} samples, {counters['input_events']} input "
            f"events, {counters['weight_updates']} hidden weight updates, "
            f"{counters['cyc_busy']} busy cycles; link: {link['tx_bytes']} bytes out, "
            f"{link['rx_bytes']} bytes in, {link['frames']} frames, "
            f"{status['naks']} NAKs, {link['recoveries']} recoveries")
        summary.update(test_accuracy=acc, test_accuracy_before=acc0,
                       history=trainer.history, bit_exact=ok, mismatches=mismatches,
                       counters=counters, golden_counters=gold_counters,
                       weights_changed=changed, link=dict(link), status=status,
                       device_train_seconds=device_s)
    finally:
        code = stop_board(proc, url)
        summary["board_exit_code"] = code
        summary["seconds"] = time.monotonic() - t_start
        (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    log(f"  plots and summary in {out}/ (curves.png, raster.png, weights.png, summary.json); "
        f"total {summary['seconds']:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
