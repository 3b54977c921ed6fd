"""Command line for the accelerator (``snn-host`` / ``python -m host.cli``).

    snn-host --port /dev/ttyUSB1 info
    snn-host --port socket://127.0.0.1:PORT train --data t-randman --epochs 3 --out build/run
    snn-host --port ... train --out build/run --resume        # continue from the last epoch
    snn-host --port ... train --rule otpe --out build/otpe    # approximate OTPE (rule 1)
    snn-host --port ... eval --data t-randman --weights build/run/checkpoint_epoch003.npz
    snn-host --port ... weights dump build/w.npz | weights load build/w.npz
    snn-host --port ... counters [--clear]
    snn-host --virtual n_hid=64 info        # start a virtual board for this command

Exit codes: 0 success, 1 device or link error, 2 usage or data error.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from golden.fixed import FixedHyper
from golden.quantize import OTPE_HYPER
from .device import Device, DeviceError, ShapeMismatch
from .experiment import (DATASETS, Trainer, check_dataset, initial_weights, load_dataset,
                         load_mem_arrays, parse_hyper, plot_curves, plot_raster, plot_weights)


def _open(args):
    return Device.open(args.port, baudrate=args.baud, timeout=args.timeout)


def cmd_info(dev, args):
    info = dict(dev.info)
    info["status"] = dev.read_status()
    print(json.dumps(info, indent=1, default=str))


def cmd_counters(dev, args):
    print(json.dumps(dev.read_counters(clear=args.clear), indent=1))


def cmd_weights(dev, args):
    if args.action == "dump":
        wts = dev.dump_weights()
        np.savez(args.file, **wts)
        print(f"wrote {args.file}: " + ", ".join(f"{k} {v.shape}" for k, v in wts.items()))
    else:
        load_mem_arrays(dev, Path(args.file))
        print(f"loaded {args.file}")


def _data(args, dev):
    X, y, Xt, yt = load_dataset(args.data, n_train=args.train, n_test=args.test,
                                steps=args.steps, channels=args.channels or dev.params.n_in,
                                classes=dev.params.n_out, seed=args.data_seed)
    check_dataset(dev.params, X, y)
    return X, y, Xt, yt


def _hyper(args):
    """--rule picks the base registers (otpe: golden.quantize.OTPE_HYPER), --hyper overrides."""
    return parse_hyper(args.hyper, OTPE_HYPER if args.rule == "otpe" else FixedHyper())


def cmd_train(dev, args):
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    hyper = _hyper(args)
    trainer = Trainer(dev, hyper, dense=args.dense, out=out, progress=not args.quiet)
    X, y, Xt, yt = _data(args, dev)
    dev.configure(hyper, dense=args.dense)
    start = 0
    if args.resume:
        ck = Trainer.latest_checkpoint(out)
        if ck is None:
            print(f"no checkpoint in {out}: starting from scratch", file=sys.stderr)
        else:
            start = trainer.resume(ck)
            print(f"resumed from {ck} (epoch {start})")
    before = None
    if start == 0:
        w, w_out, b = initial_weights(dev.params, hyper, seed=args.init_seed)
        dev.load_weights(w, w_out, b)
        before = {"w": w, "w_out": w_out, "b": b}
    plot_raster(X[0], out / "raster.png", f"{args.data} sample 0 (label {y[0]})")
    for _ in range(start, args.epochs):
        trainer.train_epoch(X, y, Xt, yt)
        plot_curves(trainer.history, out / "curves.png", f"{args.data} on the device")
    wts = dev.dump_weights()
    np.savez(out / "weights.npz", **wts)
    plot_weights(wts, out / "weights.png", dev.params.w_bits, before)
    (out / "history.json").write_text(json.dumps(trainer.history, indent=1))
    print(f"wrote {out}/curves.png, raster.png, weights.png, weights.npz, checkpoints")


def cmd_eval(dev, args):
    hyper = _hyper(args)
    if args.weights:
        load_mem_arrays(dev, Path(args.weights))
    dev.configure(hyper, dense=args.dense)
    _, _, Xt, yt = _data(args, dev)
    trainer = Trainer(dev, hyper, progress=not args.quiet)
    acc, loss, _ = trainer.evaluate(Xt, yt)
    print(json.dumps({"accuracy": acc, "loss": loss, "samples": len(yt)}))


def build_parser():
    ap = argparse.ArgumentParser(prog="snn-host", description=__doc__.split("\n")[0])
    ap.add_argument("--port", default=None,
                    help="serial device or pyserial URL (socket://127.0.0.1:PORT)")
    ap.add_argument("--virtual", metavar="PARAMS", default=None,
                    help="start a virtual board with these FixedParams overrides "
                         "(e.g. n_hid=64; '' for the defaults) instead of --port")
    ap.add_argument("--baud", type=int, default=3_000_000)
    ap.add_argument("--timeout", type=float, default=5.0, help="reply timeout in seconds")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="identify the device and show its status")
    c = sub.add_parser("counters", help="read the hardware counters")
    c.add_argument("--clear", action="store_true")
    w = sub.add_parser("weights", help="dump or load all weight memories (npz)")
    w.add_argument("action", choices=("dump", "load"))
    w.add_argument("file")
    for name in ("train", "eval"):
        t = sub.add_parser(name, help=f"{name} on a dataset")
        t.add_argument("--data", choices=DATASETS, default="t-randman")
        t.add_argument("--train", type=int, default=500, help="training samples")
        t.add_argument("--test", type=int, default=200, help="test samples")
        t.add_argument("--steps", type=int, default=50, help="time steps per sample")
        t.add_argument("--channels", type=int, default=None,
                       help="input channels of generated data (default: the device's n_in)")
        t.add_argument("--data-seed", type=int, default=0)
        t.add_argument("--rule", choices=("ottt", "otpe"), default="ottt",
                       help="learning rule: ottt, or approximate OTPE (needs an otpe build; "
                            "its default learning rates are 16x lower)")
        t.add_argument("--hyper", default="", help="FixedHyper overrides, e.g. seed=3")
        t.add_argument("--dense", action="store_true", help="dense (ReckOn-like) schedule")
        if name == "train":
            t.add_argument("--epochs", type=int, default=3)
            t.add_argument("--init-seed", type=int, default=0)
            t.add_argument("--out", default="build/train")
            t.add_argument("--resume", action="store_true",
                           help="continue from the last checkpoint in --out")
        else:
            t.add_argument("--weights", default=None, help="npz to load before evaluating")
    return ap


COMMANDS = {"info": cmd_info, "counters": cmd_counters, "weights": cmd_weights,
            "train": cmd_train, "eval": cmd_eval}


def main(argv=None):
    args = build_parser().parse_args(argv)
    board = None
    try:
        if args.virtual is not None:
            from sim.board import VirtualBoard, parse_params
            board = VirtualBoard(parse_params(args.virtual), fast=True).start()
            args.port = board.url
        if not args.port:
            print("error: give --port (or --virtual)", file=sys.stderr)
            return 2
        with _open(args) as dev:
            COMMANDS[args.command](dev, args)
        return 0
    except (ShapeMismatch, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except DeviceError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        if board is not None:
            board.stop()


if __name__ == "__main__":
    sys.exit(main())
