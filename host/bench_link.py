"""Link benchmark (not a test): bytes per spike event, link utilisation, virtual-board speed.

    python -m host.bench_link [--quick] [--out build/bench_link.json]

1. **Bytes per event** of the wire encoding (host side, exact) for T-Randman, R-Randman and
   latency-coded digits: the step stream alone, with the SAMPLE header and frame, and the
   ACK bytes coming back; cross-checked on the virtual board (bytes on the line divided by
   the device's ``input_events`` counter).
2. **Link utilisation** of a streamed learning epoch on the virtual board with the byte link
   at the UART's byte time (``cpb = 10 * divisor``: the line rate of the real board):
   ``busy line cycles / cycles from the first to the last host->device byte``, for the
   pipelined driver (``Device.run_epoch``) and, as a baseline, stop-and-wait
   (``run_sample`` one at a time). When the core needs more cycles per sample than the line
   takes to carry it, no host can fill the line; the report says which side is the limit.
3. **Virtual board throughput** (wall clock) with the fast byte link (1 cycle per byte):
   the bridge itself (frames the device only deframes and NAKs; a flood of small replies),
   then weight writes/reads and an inference epoch, in kB/s of bytes on the link.

Returns (and writes as JSON) a dict.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from golden.fixed import FixedHyper, FixedParams

from . import protocol as wire
from .device import Device
from .experiment import initial_weights, load_dataset

ROOT = Path(__file__).resolve().parent.parent


def encoding_cost(X) -> dict:
    """Bytes per input event of the SAMPLE encoding for rasters X [N, T, n_in]."""
    n_in = X.shape[2]
    events = int(X.sum())
    steps_bytes = sum(len(wire.encode_steps(wire.raster_steps(x), n_in)) for x in X)
    frame_bytes = steps_bytes + len(X) * (2 + wire.OVERHEAD)        # one frame per sample
    ack_bytes = len(X) * (wire.OVERHEAD + 1)
    return {"samples": len(X), "events": events, "events_per_sample": events / len(X),
            "steps_per_sample": X.shape[1],
            "bytes_per_event_steps": steps_bytes / events,
            "bytes_per_event_framed": frame_bytes / events,
            "ack_bytes_per_sample": ack_bytes / len(X),
            "raw_bitmap_bytes_per_event": X.shape[1] * ((n_in + 7) // 8) * len(X) / events}


def utilisation(st: dict) -> float:
    """Busy fraction of the host->device line between its first and last byte."""
    span = st["h2d_last"] - st["h2d_first"] + st["cpb"]
    return st["h2d_busy"] / span if span > 0 else float("nan")


def streamed_epoch(params: FixedParams, clk: int, baud: int, X, y, *, log=print) -> dict:
    """Learning epoch at the UART byte time: pipelined vs stop-and-wait."""
    from sim.board import VirtualBoard

    hyper = FixedHyper()
    out = {"params": f"n_in={params.n_in},n_hid={params.n_hid},n_out={params.n_out},"
                     f"lanes={params.lanes}",
           "clk_freq": clk, "baud": baud, "samples": len(y)}
    with VirtualBoard(params, clk_freq=clk, baud=baud) as vb:
        out["cycles_per_byte"] = vb.cpb_effective
        with Device.open(vb.url, params=params, timeout=60) as dev:
            weights = initial_weights(params, hyper)
            for mode in ("pipelined", "stop_and_wait"):
                dev.configure(hyper)
                dev.load_weights(*weights)
                dev.read_counters(clear=True)
                vb.control("stats_clear")
                t0 = time.monotonic()
                if mode == "pipelined":
                    dev.run_epoch(X, y, learn=True)
                else:
                    for x, label in zip(X, y):
                        dev.run_sample(x, int(label), learn=True)
                wall = time.monotonic() - t0
                st = vb.stats()
                c = dev.read_counters()
                line_cycles = st["h2d_bytes"] * st["cpb"]
                core_cycles = c["cyc_busy"]
                out[mode] = {
                    "utilisation": round(utilisation(st), 4),
                    "h2d_bytes": st["h2d_bytes"], "d2h_bytes": st["d2h_bytes"],
                    "drops": st["h2d_drops"],
                    "bytes_per_event_measured": round(st["h2d_bytes"] / c["input_events"], 3),
                    "line_cycles_per_sample": line_cycles / len(y),
                    "core_busy_cycles_per_sample": core_cycles / len(y),
                    "limit": ("core" if core_cycles > 1.05 * line_cycles else
                              "line" if line_cycles > 1.05 * core_cycles else "balanced"),
                    "simulated_seconds": st["cycles"] / clk,
                    "samples_per_simulated_second": len(y) / (
                        (st["h2d_last"] - st["h2d_first"] + st["cpb"]) / clk),
                    "wall_seconds": round(wall, 2),
                }
                log(f"  {out['params']} @ {clk / 1e6:.0f} MHz, {baud / 1e6:g} Mbaud "
                    f"({st['cpb']} cycles/byte), {mode}: utilisation "
                    f"{out[mode]['utilisation']:.3f}, limit: {out[mode]['limit']} "
                    f"(line {line_cycles / len(y):.0f} vs core {core_cycles / len(y):.0f} "
                    f"cycles/sample), {out[mode]['bytes_per_event_measured']} bytes/event")
    return out


def throughput(params: FixedParams, X, y, *, log=print) -> dict:
    """Wall-clock speed of the virtual board with the fast byte link (1 cycle per byte)."""
    from host.device import NakError, _Request
    from host.protocol import Cmd, Mem
    from sim.board import VirtualBoard

    out = {}

    def measure(name, fn, direction):
        s0 = vb.stats()
        t0 = time.monotonic()
        fn()
        dt = time.monotonic() - t0
        s1 = vb.stats()
        moved = sum(s1[d] - s0[d] for d in direction)
        out[f"{name}_kB_per_s"] = round(moved / dt / 1e3, 1)
        out[f"{name}_sim_cycles_per_s"] = round((s1["cycles"] - s0["cycles"])
                                                / (s1["wall"] - s0["wall"]))
        return dt

    with VirtualBoard(params, fast=True) as vb:
        with Device.open(vb.url, params=params, timeout=60) as dev:
            dev.configure(FixedHyper())
            mp = dev.max_payload

            def flood_in():
                # frames of an unknown type: the device deframes them at a byte per cycle
                # and only NAKs them, so this measures the bridge itself
                reqs = [dev._submit(_Request(0x7E, bytes(mp), needs_data=False))
                        for _ in range(300)]
                for r in reqs:
                    try:
                        dev._wait(r)
                    except NakError:
                        pass

            def flood_out():
                reqs = [dev._submit(_Request(Cmd.READ_COUNTERS, b"\x00")) for _ in range(1500)]
                for r in reqs:
                    dev._wait(r)

            measure("bridge_host_to_device", flood_in, ("h2d_bytes",))
            measure("bridge_device_to_host", flood_out, ("d2h_bytes",))
            rng = np.random.default_rng(0)
            lim = 1 << (params.w_bits - 1)
            w = rng.integers(-lim, lim, size=dev.mem_shape(Mem.W))
            measure("write_weights", lambda: [dev.write_weights(Mem.W, w) for _ in range(5)],
                    ("h2d_bytes",))
            measure("read_weights", lambda: [dev.read_weights(Mem.W) for _ in range(5)],
                    ("d2h_bytes",))
            dt = measure("inference_link", lambda: dev.run_epoch(X, y, learn=False),
                         ("h2d_bytes", "d2h_bytes"))
            out["inference_samples_per_s"] = round(len(y) / dt, 1)
    log(f"  virtual board, fast link: bridge {out['bridge_host_to_device_kB_per_s']} kB/s in, "
        f"{out['bridge_device_to_host_kB_per_s']} kB/s out "
        f"({out['bridge_host_to_device_sim_cycles_per_s'] / 1e3:.0f} k cycles/s); weights "
        f"write {out['write_weights_kB_per_s']} kB/s, read {out['read_weights_kB_per_s']} "
        f"kB/s; inference {out['inference_samples_per_s']} samples/s "
        f"({out['inference_link_sim_cycles_per_s'] / 1e3:.0f} k cycles/s)")
    return out


def run(quick: bool = False, log=print) -> dict:
    report = {"protocol_version": wire.PROTOCOL_VERSION}
    log("bytes per event of the wire encoding:")
    enc = {}
    for name, steps in (("t-randman", 50), ("r-randman", 50), ("digits", 20)):
        X, _, _, _ = load_dataset(name, n_train=200, n_test=0, steps=steps,
                                  channels=50 if name != "digits" else 64)
        enc[name] = encoding_cost(X)
        log(f"  {name}: {enc[name]['events_per_sample']:.1f} events/sample, "
            f"{enc[name]['bytes_per_event_steps']:.3f} bytes/event (steps), "
            f"{enc[name]['bytes_per_event_framed']:.3f} with header and frame "
            f"(a raw bitmap would be {enc[name]['raw_bitmap_bytes_per_event']:.2f})")
    report["encoding"] = enc

    n = 40 if quick else 100
    X, y, _, _ = load_dataset("t-randman", n_train=n, n_test=0, steps=50, channels=50)
    log("link utilisation of a streamed learning epoch (T-Randman) at the UART byte time:")
    configs = [(FixedParams(n_in=50, n_hid=64, n_out=10), 48_000_000, 3_000_000),
               (FixedParams(n_in=50, n_hid=128, n_out=10), 48_000_000, 3_000_000),
               (FixedParams(n_in=50, n_hid=128, n_out=10), 100_000_000, 3_000_000)]
    if quick:
        configs = configs[:1]
    report["streamed_epoch"] = [streamed_epoch(p, clk, baud, X, y, log=log)
                                for p, clk, baud in configs]
    log("virtual board throughput:")
    report["virtual_board"] = throughput(configs[0][0], X, y, log=log)
    return report


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m host.bench_link",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "build" / "bench_link.json"))
    args = ap.parse_args(argv)
    report = run(args.quick)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
