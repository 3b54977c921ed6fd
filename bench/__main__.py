"""``make bench``: every measurement in one run, side by side.

    python -m bench [--quick]          (QUICK=1 make bench)

Writes ``build/bench.json``, ``build/bench.md`` (the table the README shows) and PNG plots in
``build/bench_*.png``. Cycle counts come from the RTL running in Verilator, every run checked
bit for bit against ``golden.fixed.FixedCore`` by the whole-core bench (``sim/tb_core.py``).
Accuracy curves over the activity sweep come from the fixed-point model, which the RTL
reproduces exactly. The soft-core engine (the iCEBreaker design, ``bench/soc.py``) runs the
same T-Randman samples on its own virtual board. fmax comes from the board reports (``make bitstream``); a board without
one is reported as missing.
"""

import argparse
import dataclasses
import json
import os
import re
import time
from pathlib import Path

import numpy as np

from golden.data import make_randman
from golden.fixed import FixedCore, FixedHyper, FixedParams, init_weights
from golden.quantize import OTPE_HYPER

from .soc import soc_section

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
BOARDS = ("icebreaker", "ulx3s")


def log(msg: str):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- RTL: cycles, sweeps, accuracy ------------------------------------------------------------
def rtl_memory_bits(verilog: Path) -> int:
    """Bits held in memories (``reg [w] name [depth]``) of a generated Verilog file."""
    total = 0
    for hi, lo, a, b in re.findall(r"reg\s*\[(\d+):(\d+)\]\s*\\?\S+\s*\[(\d+):(\d+)\]",
                                   verilog.read_text()):
        total += (int(hi) - int(lo) + 1) * (abs(int(b) - int(a)) + 1)
    return total


def rtl_section(quick: bool) -> dict:
    """One Verilator build of the default core, every scenario checked against the golden model.

    Scenarios: the default registers (event vs dense), an activity sweep over ``b_th``, an
    input-rate sweep, a sequence-length sweep and a train/test run for accuracy; then rule 1
    (approximate OTPE, ``OTPE_HYPER``) on the input of the default scenario and the same
    train/test run.
    """
    from hdl.bench_core import run_scenarios, summarize

    p = FixedParams()
    b_ths = (255,) if quick else (16, 32, 64, 128, 160, 255)
    rates = (0.05,) if quick else (0.005, 0.01, 0.02, 0.05, 0.1)
    lengths = (500,) if quick else (50, 500, 5000)
    n_train, n_test = (40, 20) if quick else (300, 100)
    default_b_th = FixedHyper().b_th

    def scenario(**kw):
        return {"hyper": {"b_th": default_b_th}, "data": "randman", "T": 50, "samples": 2,
                "learn": [True], "dense_too": False, "seed": 0, **kw}

    scen = [scenario(samples=2 if quick else 4, dense_too=True)]
    scen += [scenario(hyper={"b_th": b}, samples=1 if quick else 2, dense_too=True)
             for b in b_ths]
    scen += [scenario(data="bernoulli", rate=r) for r in rates]
    scen += [scenario(data="bernoulli", rate=0.01, T=T, samples=1) for T in lengths]
    scen += [scenario(samples=n_train + n_test, w_scale=1.0, out_scale=1.0, seed=2,
                      learn=[True] * n_train + [False] * n_test)]
    otpe = {"b_th": default_b_th, **{k: getattr(OTPE_HYPER, k) for k in (
        "rule", "l_shift", "psi_shift", "g_shift", "go_shift")}}
    scen += [dict(scen[0], hyper=otpe), dict(scen[-1], hyper=otpe)]
    log(f"RTL core: {len(scen)} scenarios in one Verilator build (each checked bit for bit)")
    first, *rest = scen
    results = iter(run_scenarios(p, first, rest, name="bench_rtl"))
    rtl_bits = rtl_memory_bits(BUILD / "cocotb" / "bench_rtl" / "top.v")

    event, dense = next(results)
    core = {"lanes1": summarize(p, event, dense)}
    activity = []
    for b in (default_b_th,) + b_ths:
        if b != default_b_th:
            event, dense = next(results)
        activity.append({"b_th": b, "active_fraction": event["active"] / event["steps"] / p.n_hid,
                         "gradient_cycles_event": event["cyc_gradient"] / event["samples"],
                         "gradient_cycles_dense": dense["cyc_gradient"] / dense["samples"],
                         "gradient_dense_over_sparse": dense["cyc_gradient"] /
                         max(event["cyc_gradient"], 1),
                         "cycles_per_sample": event["cyc_busy"] / event["samples"],
                         "dense_cycles_per_sample": dense["cyc_busy"] / dense["samples"]})
    activity.sort(key=lambda row: row["b_th"])
    rate_rows = []
    for r in rates:
        (event,) = next(results)
        rate_rows.append({"rate": r, "events_per_sample": event["input_events"] / event["samples"],
                          "accumulate_cycles_per_sample": event["cyc_accumulate"] / event["samples"],
                          "cycles_per_sample": event["cyc_busy"] / event["samples"],
                          "active_fraction": event["active"] / event["steps"] / p.n_hid})
    length_rows = []
    rng = np.random.default_rng(0)
    for T in lengths:
        (event,) = next(results)
        golden = FixedCore(p, FixedHyper())
        golden.load_weights(*init_weights(p, 0))
        golden.run_sample((rng.random((T, p.n_in)) < 0.01).astype(np.uint8), 0, True)
        length_rows.append({"T": T, "events": event["input_events"], "cycles": event["cyc_busy"],
                            "cycles_per_step": event["cyc_busy"] / T,
                            "golden_memory_bits": golden.memory_bits()["total"],
                            "rtl_memory_bits": rtl_bits})
    (event,) = next(results)
    accuracy = {"samples_train": n_train, "samples_test": event["infer_samples"],
                "accuracy_rtl": event["infer_correct"] / max(event["infer_samples"], 1),
                "bit_exact_with_golden": True}
    event, dense = next(results)
    core["lanes1_otpe"] = summarize(p, event, dense)
    (event,) = next(results)
    accuracy["accuracy_rtl_otpe"] = event["infer_correct"] / max(event["infer_samples"], 1)

    # accuracy against activity: the fixed-point model (the RTL is bit-identical to it)
    n_tr, n_te = (300, 200) if quick else (1500, 500)
    X, y = make_randman(n_samples_per_class=(n_tr + n_te) // 10, seed=1)
    for row in activity:
        golden = FixedCore(p, dataclasses.replace(FixedHyper(), b_th=row["b_th"]))
        golden.load_weights(*init_weights(p, 0, w_scale=1.0, out_scale=1.0))
        for x, label in zip(X[:n_tr], y[:n_tr]):
            golden.run_sample(x, int(label), True)
        row["train_active_fraction"] = golden.counters.active / golden.counters.steps / p.n_hid
        row["accuracy_fixed"] = float(np.mean([golden.run_sample(x, int(label), False) == label
                                               for x, label in zip(X[n_tr:], y[n_tr:])]))
    if not quick:
        from hdl.bench_core import run
        log("RTL core, lanes=2: event-driven vs dense on T-Randman")
        m = run(samples=4, lanes=2)
        core["lanes2"] = {k: v for k, v in m.items() if not k.startswith("counters")}
    return {"core": core, "activity": activity, "input_rate": rate_rows,
            "sequence_length": length_rows, "rtl_memory_bits": rtl_bits, "accuracy": accuracy}


# -- golden speed, accuracy, memory -----------------------------------------------------------
def golden_section(quick: bool) -> dict:
    from golden.bench_float import BENCH_CFG
    from golden.config import NetConfig
    from golden.train import train

    n = 200 if quick else 1000
    X, y = make_randman(n_samples_per_class=n // 10, seed=0)
    p = FixedParams()
    core = FixedCore(p, FixedHyper())
    core.load_weights(*init_weights(p, 0, 1.0, 1.0))
    t0 = time.perf_counter()
    for x, label in zip(X, y):
        core.run_sample(x, int(label), True)
    fixed_rate = n / (time.perf_counter() - t0)
    cfg = NetConfig(n_hidden=(128,), **BENCH_CFG)
    t0 = time.perf_counter()
    train(cfg, X, y, batch_size=1, update="sample")
    float_rate = n / (time.perf_counter() - t0)
    memory = {}
    for T in (50, 5000):
        c = FixedCore(p, FixedHyper())
        c.load_weights(*init_weights(p, 0))
        c.run_sample((np.random.default_rng(T).random((T, p.n_in)) < 0.02).astype(np.uint8), 0,
                     True)
        memory[f"T={T}"] = c.memory_bits()["total"]
    return {"numpy_golden_samples_per_s": {"fixed_point": round(fixed_rate, 1),
                                           "float": round(float_rate, 1)},
            "onchip_memory_bits": memory}


def golden_report(quick: bool) -> dict:
    path = BUILD / "golden_report.json"
    if path.exists() and json.loads(path.read_text()).get("quick", True) <= quick:
        return json.loads(path.read_text())
    from golden.report import build_report, plot

    log("golden report (float + fixed-point accuracy per rule, cosine to BPTT)")
    report = build_report(quick)
    path.write_text(json.dumps(report, indent=1))
    plot(report, BUILD / "golden_report.png")
    return report


# -- link and boards --------------------------------------------------------------------------
def link_section(quick: bool) -> dict:
    from host.bench_link import run

    log("link: bytes per event, utilisation on the virtual board")
    return run(quick=quick, log=lambda m: log(f"  {m}"))


def boards_section() -> dict:
    """The synthesis reports of ``make bitstream BOARD=...`` (not rebuilt here: a full
    place-and-route of the large configurations takes longer than the whole bench)."""
    out = {}
    for board in BOARDS:
        path = BUILD / board / "report.json"
        out[board] = (json.loads(path.read_text()) if path.exists() else
                      {"missing": f"run `make bitstream BOARD={board}` first"})
    return out


# -- putting it together ----------------------------------------------------------------------
def summarise(r: dict) -> dict:
    core = r["rtl"]["core"]["lanes1"]
    s = {
        "accumulate_ops_per_cycle_per_lane": core["accumulate_ops_per_cycle_per_lane"],
        "gradient_dense_over_sparse_cycles": core["gradient_dense_over_sparse"],
        "active_fraction": core["active_fraction"],
        "sample_dense_over_event_cycles": core["dense_over_event"],
        "cycles_per_sample": core["cycles_per_sample"],
        "ideal_cycles_per_sample": core["ideal_cycles_per_sample"],
        "overhead_over_ideal": core["overhead"],
        "onchip_memory_bits": r["golden"]["onchip_memory_bits"],
        "rtl_memory_bits": r["rtl"]["rtl_memory_bits"],
        "numpy_golden_samples_per_s": r["golden"]["numpy_golden_samples_per_s"],
    }
    near2 = min(r["rtl"]["activity"], key=lambda row: abs(row["active_fraction"] - 0.02))
    s["gradient_dense_over_sparse_near_2pct"] = {
        "active_fraction": near2["active_fraction"],
        "ratio": near2["gradient_dense_over_sparse"]}
    link = r.get("link", {})
    if link:
        s["bytes_per_event"] = link["encoding"]["t-randman"]["bytes_per_event_framed"]
        s["link_utilisation"] = {e["params"] + f",clk={e['clk_freq'] // 10**6}MHz":
                                 e["pipelined"]["utilisation"] for e in link["streamed_epoch"]}
    s["fmax_mhz"], s["projected_samples_per_s"] = {}, {}
    for board, rep in r["boards"].items():
        if not rep.get("fmax_mhz"):  # no report, or the design did not fit the device
            s["fmax_mhz"][board] = None
            s["projected_samples_per_s"][board] = {
                "samples_per_s": None, "why": rep.get("missing") or rep.get("status") or
                "no fmax in the report"}
            continue
        s["fmax_mhz"][board] = rep["fmax_mhz"]
        clock = min(rep["fmax_mhz"], rep.get("target_mhz", rep["fmax_mhz"])) * 1e6
        if rep.get("design") == "hdl.soc.SoC":     # the soft-core engine: its own cycles
            cyc, lanes_of_cycles = r["soc"]["learn"]["end_to_end_cycles_per_sample"], None
        else:
            lanes = rep.get("params", {}).get("lanes", 1)
            cyc = r["rtl"]["core"].get(f"lanes{lanes}", core)["cycles_per_sample"]
            lanes_of_cycles = lanes if f"lanes{lanes}" in r["rtl"]["core"] else 1
        s["projected_samples_per_s"][board] = {
            "samples_per_s": round(clock / cyc, 1), "clock_mhz": clock / 1e6,
            "cycles_per_sample": cyc, "design": rep.get("design"),
            "lanes_of_cycles": lanes_of_cycles, "task": "T-Randman 50/128/10, T=50, learning"}
    s["soft_core_cycles_per_sample"] = {
        key: r["soc"][key]["end_to_end_cycles_per_sample"] for key in ("learn", "infer")}
    acc = r["golden_report"]["accuracy"]["t_randman"]
    s["accuracy"] = {rule: {"float": e["float"], "fixed": e["fixed"]} for rule, e in acc.items()}
    s["accuracy"]["chip_rule"] = {"float": acc["ottt"]["hardware"]["float"],
                                  "fixed": acc["ottt"]["hardware"]["fixed"],
                                  "rtl_subset": r["rtl"]["accuracy"]["accuracy_rtl"],
                                  "rtl_subset_samples": r["rtl"]["accuracy"]["samples_test"]}
    otpe = r["rtl"]["core"]["lanes1_otpe"]
    s["otpe_vs_ottt"] = {
        key: {"ottt": core[key], "otpe": otpe[key]}
        for key in ("active_fraction", "cycles_per_sample", "sample_cycles_dense")}
    s["otpe_vs_ottt"]["gradient_cycles_per_sample"] = {
        name: c["phase_cycles_per_sample_event"]["cyc_gradient"]
        for name, c in (("ottt", core), ("otpe", otpe))}
    s["otpe_vs_ottt"]["gradient_cycles_per_sample_dense"] = {
        name: c["phase_cycles_per_sample_dense"]["cyc_gradient"]
        for name, c in (("ottt", core), ("otpe", otpe))}
    hw = acc.get("otpe_approx", {}).get("hardware")   # absent in an older golden report
    s["accuracy"]["chip_otpe"] = {"float": hw and hw["float"], "fixed": hw and hw["fixed"],
                                  "rtl_subset": r["rtl"]["accuracy"]["accuracy_rtl_otpe"],
                                  "rtl_subset_samples": r["rtl"]["accuracy"]["samples_test"]}
    s["cosine_to_bptt"] = r["golden_report"]["cosine_to_bptt"]
    return s


def markdown(s: dict) -> str:
    rows = [
        ("synaptic ops / cycle / lane (accumulate)", f"{s['accumulate_ops_per_cycle_per_lane']:.3f}"),
        ("gradient cycles dense / event (untrained, "
         f"{100 * s['active_fraction']:.2f} % active)", f"{s['gradient_dense_over_sparse_cycles']:.0f}x"),
        (f"gradient cycles dense / event at "
         f"{100 * s['gradient_dense_over_sparse_near_2pct']['active_fraction']:.1f} % active",
         f"{s['gradient_dense_over_sparse_near_2pct']['ratio']:.0f}x"),
        ("whole sample cycles dense / event", f"{s['sample_dense_over_event_cycles']:.1f}x"),
        ("cycles per sample (ideal)", f"{s['cycles_per_sample']:.0f} "
                                      f"({s['ideal_cycles_per_sample']:.0f})"),
        ("on-chip memory bits, T=50 / T=5000",
         f"{s['onchip_memory_bits']['T=50']} / {s['onchip_memory_bits']['T=5000']}"),
        ("NumPy golden samples/s (fixed / float)",
         f"{s['numpy_golden_samples_per_s']['fixed_point']} / "
         f"{s['numpy_golden_samples_per_s']['float']}"),
    ]
    if "bytes_per_event" in s:
        rows.append(("bytes per input event on the wire (T-Randman)", f"{s['bytes_per_event']:.2f}"))
        for cfg, u in s["link_utilisation"].items():
            rows.append((f"link utilisation, streamed epoch ({cfg})", f"{100 * u:.1f} %"))
    soft = s["soft_core_cycles_per_sample"]
    rows.append(("soft-core engine (UP5K design), cycles per sample: learning / inference",
                 f"{soft['learn']:.0f} / {soft['infer']:.0f}"))
    for board, f in s["fmax_mhz"].items():
        proj = s["projected_samples_per_s"][board]
        rows.append((f"{board}: fmax / projected learning samples/s",
                     f"{f:.1f} MHz / {proj['samples_per_s']:.1f}" if f else
                     f"none ({proj['why']})"))
    chip = s["accuracy"]["chip_rule"]
    rows.append(("T-Randman accuracy, chip rule: float / fixed / RTL subset",
                 f"{chip['float']:.3f} / {chip['fixed']:.3f} / {chip['rtl_subset']:.3f} "
                 f"(n={chip['rtl_subset_samples']})"))
    ov = s["otpe_vs_ottt"]
    rows.append(("OTPE (rule 1) vs OTTT, same input: walked neurons (% of neuron-steps)",
                 f"{100 * ov['active_fraction']['otpe']:.1f} % vs "
                 f"{100 * ov['active_fraction']['ottt']:.1f} %"))
    rows.append(("OTPE vs OTTT: gradient cycles per sample / cycles per sample",
                 f"{ov['gradient_cycles_per_sample']['otpe']:.0f} vs "
                 f"{ov['gradient_cycles_per_sample']['ottt']:.0f} / "
                 f"{ov['cycles_per_sample']['otpe']:.0f} vs {ov['cycles_per_sample']['ottt']:.0f}"))
    otpe = s["accuracy"]["chip_otpe"]
    fmt = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
    rows.append(("T-Randman accuracy, chip OTPE rule: float / fixed / RTL subset",
                 f"{fmt(otpe['float'])} / {fmt(otpe['fixed'])} / {otpe['rtl_subset']:.3f} "
                 f"(n={otpe['rtl_subset_samples']})"))
    lines = ["| measurement | value |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows]
    return "\n".join(lines) + "\n"


def plots(r: dict):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    act = r["rtl"]["activity"]
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(15, 4.2))
    fr = [100 * row["active_fraction"] for row in act]
    a1.semilogy(fr, [row["gradient_cycles_event"] for row in act], "o-", label="event-driven")
    a1.semilogy(fr, [row["gradient_cycles_dense"] for row in act], "s--", label="dense (ReckOn-like)")
    a1.set_xlabel("active neurons (%)")
    a1.set_ylabel("gradient-phase cycles per sample")
    a1.legend()
    a2.plot([100 * row["train_active_fraction"] for row in act],
            [row["accuracy_fixed"] for row in act], "o-")
    for row in act:
        a2.annotate(f"b_th={row['b_th']}", (100 * row["train_active_fraction"],
                                              row["accuracy_fixed"]), fontsize=7)
    a2.set_xlabel("active neurons during training (%)")
    a2.set_ylabel("T-Randman test accuracy (fixed point = RTL)")
    rates = r["rtl"]["input_rate"]
    a3.plot([row["events_per_sample"] for row in rates],
            [row["cycles_per_sample"] for row in rates], "o-", label="cycles / sample")
    a3.plot([row["events_per_sample"] for row in rates],
            [row["accumulate_cycles_per_sample"] for row in rates], "s--",
            label="accumulate cycles / sample")
    a3.set_xlabel("input events per sample")
    a3.legend()
    fig.tight_layout()
    fig.savefig(BUILD / "bench_activity.png", dpi=110)
    plt.close(fig)

    lengths = r["rtl"]["sequence_length"]
    fig, (b1, b2) = plt.subplots(1, 2, figsize=(10, 4))
    Ts = [row["T"] for row in lengths]
    b1.plot(Ts, [row["golden_memory_bits"] for row in lengths], "o-", label="golden model state")
    b1.plot(Ts, [row["rtl_memory_bits"] for row in lengths], "s--", label="RTL memories")
    b1.set_xscale("log")
    b1.set_ylim(0, None)
    b1.set_xlabel("time steps T")
    b1.set_ylabel("on-chip memory (bits)")
    b1.legend()
    b2.loglog(Ts, [row["cycles"] for row in lengths], "o-", label="cycles")
    b2.loglog(Ts, [row["events"] for row in lengths], "s--", label="input events")
    b2.set_xlabel("time steps T (input rate 1 %)")
    b2.legend()
    fig.tight_layout()
    fig.savefig(BUILD / "bench_length.png", dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", default=os.environ.get("QUICK") == "1")
    args = ap.parse_args(argv)
    BUILD.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    r = {"quick": args.quick}
    r["golden"] = golden_section(args.quick)
    r["golden_report"] = golden_report(args.quick)
    r["rtl"] = rtl_section(args.quick)
    r["link"] = link_section(args.quick)
    r["soc"] = soc_section(args.quick, log=log)
    r["boards"] = boards_section()
    r["summary"] = summarise(r)
    r["bench_seconds"] = round(time.perf_counter() - t0, 1)
    (BUILD / "bench.json").write_text(json.dumps(r, indent=1, default=float))
    table = markdown(r["summary"])
    (BUILD / "bench.md").write_text(table)
    plots(r)
    print(table)
    log(f"wrote build/bench.json, build/bench.md, build/bench_*.png in {r['bench_seconds']} s")


if __name__ == "__main__":
    main()
