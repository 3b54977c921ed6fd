"""Virtual board: ``hdl.top.Top`` (or ``hdl.soc.SoC``) in Verilator behind a TCP socket.

    python -m sim.board [--port P] [--baud B] [--clk F] [--params n_hid=64,lanes=2]
                        [--link byte|serial] [--cpb N] [--design top|soc] [--core module:Class]

builds the same ``Top`` the bitstreams use (``--design soc``: the iCEBreaker's soft-core
``SoC``), wrapped by ``sim.bridge.BridgeTop``, runs it in Verilator through cocotb (``sim/bridge_cocotb.py``) and prints ``socket://127.0.0.1:PORT``
once it listens. Open that URL with ``serial.serial_for_url(url)`` (or
``host.device.Device.open(url)``) exactly like ``/dev/ttyUSB1``. It runs until SIGINT/SIGTERM
or a ``shutdown`` control command (:func:`control`).

The link (see ``sim/bridge.py``):

* ``--link byte`` (default): bytes enter ``Top`` after the UART, one per ``--cpb`` cycles.
  The default ``--cpb`` is ``10 * divisor``: the byte timing of the UART at ``--baud``, so
  the simulated line rate is that of the real board. ``--fast`` sets ``--cpb 1`` (a byte
  per cycle: a link far faster than any UART, for short simulations).
* ``--link serial``: the real UART path, bit by bit.

Builds are cached in ``build/vboard/<hash>`` (the hash covers the Verilog and the build
options), so starting the same configuration again takes a second.
"""

import argparse
import fcntl
import hashlib
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, fields
from pathlib import Path

from golden.fixed import FixedParams

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "vboard"

DEFAULT_CLK = 48_000_000
DEFAULT_BAUD = 3_000_000
BUILD_ARGS = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-lint",
              "-CFLAGS", "-O2", "--x-assign", "fast", "--x-initial", "fast"]

__all__ = ["VirtualBoard", "build", "control", "parse_params", "main", "BoardError"]


class BoardError(RuntimeError):
    pass


def parse_params(text: str | None, base: FixedParams | None = None) -> FixedParams:
    """``"n_in=50,n_hid=64,recurrent=1"`` -> FixedParams (other fields from ``base``)."""
    values = asdict(base or FixedParams())
    if text:
        names = {f.name for f in fields(FixedParams)}
        for item in text.split(","):
            item = item.strip()
            if not item:
                continue
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or key not in names:
                raise ValueError(f"--params items must be name=value with name one of "
                                 f"{sorted(names)}, not {item!r}")
            if key == "recurrent":
                values[key] = value.strip().lower() in ("1", "true", "yes")
            elif key == "weight_ram":
                values[key] = value.strip()
            else:
                values[key] = int(value, 0)
    return FixedParams(**values)


def load_core(spec: str | None):
    """``"module:attr"`` -> the object (a core class or factory); None -> None (real core)."""
    if not spec:
        return None
    module, _, attr = spec.partition(":")
    if not attr:
        raise ValueError(f"--core must be module:attribute, not {spec!r}")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return getattr(importlib.import_module(module), attr)


DESIGNS = ("top", "soc")


def make_top(params, clk_freq, baud, *, design="top", core=None, timeout_cycles=None,
             max_payload=512, rx_fifo_depth=None):
    """``design`` "top": ``hdl.top.Top`` (the dataflow core); "soc": ``hdl.soc.SoC`` (the
    soft-core engine running ``fw/``). ``rx_fifo_depth`` None: the design's default."""
    link = {"timeout_cycles": timeout_cycles, "max_payload": max_payload}
    if rx_fifo_depth is not None:
        link["rx_fifo_depth"] = rx_fifo_depth
    if design == "soc":
        if core is not None:
            raise BoardError("--core applies to the 'top' design only")
        from hdl.soc import SoC
        return SoC(params, clk_freq, baud, **link)
    if design != "top":
        raise BoardError(f"design must be one of {', '.join(DESIGNS)}, not {design!r}")
    from hdl.top import Top
    if core is None:
        try:
            import hdl.core  # noqa: F401
        except ImportError as exc:
            raise BoardError(f"hdl.core.LearningCore is not available ({exc}); run with "
                             f"--core tests.standin_core:StandInCore to test the link alone")
    return Top(params, clk_freq, baud, core=core, **link)


def build(params: FixedParams, clk_freq: int = DEFAULT_CLK, baud: int = DEFAULT_BAUD, *,
          design: str = "top", core=None, width: int = 256, timeout_cycles: int | None = None,
          max_payload: int = 512, rx_fifo_depth: int | None = None,
          quiet: bool = False) -> dict:
    """Elaborate, convert and (if not cached) Verilate the virtual board.

    Returns ``{"dir", "divisor", "timeout_cycles", "rx_fifo_depth", "max_payload", "built"}``.
    Two cache levels: a key over the *sources* (every file the design is generated from,
    plus the arguments) skips even the elaboration; the build directory itself is keyed by
    the generated Verilog.
    """
    from amaranth.back import verilog

    import cocotb
    src_key = _source_key(params, clk_freq, baud, core, width, timeout_cycles, max_payload,
                          rx_fifo_depth, design, cocotb.__version__)
    meta = BUILD / "by-source" / f"{src_key}.json"
    if meta.exists():
        info = json.loads(meta.read_text())
        if (Path(info["dir"]) / "built.ok").exists():
            return {**info, "built": False}

    from sim.bridge import BridgeTop
    from sim.runner import setup_verilator_env, verilator_runner

    top = make_top(params, clk_freq, baud, design=design, core=core,
                   timeout_cycles=timeout_cycles, max_payload=max_payload,
                   rx_fifo_depth=rx_fifo_depth)
    wrapper = BridgeTop(top, width=width)
    text = verilog.convert(wrapper, name="top", emit_src=False)
    recipe = repr(BUILD_ARGS) + cocotb.__version__ + _public_vlt(wrapper)
    key = hashlib.sha1((text + recipe).encode()).hexdigest()[:16]
    build_dir = BUILD / key
    info = {"dir": str(build_dir), "divisor": top.divisor, "timeout_cycles": top.timeout_cycles,
            "rx_fifo_depth": top.rx_fifo_depth, "max_payload": max_payload, "built": False}
    BUILD.mkdir(parents=True, exist_ok=True)
    with open(BUILD / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = build_dir / "built.ok"
        if not stamp.exists():
            setup_verilator_env()
            build_dir.mkdir(parents=True, exist_ok=True)
            (build_dir / "top.v").write_text(text)
            if not quiet:
                print(f"sim.board: building the virtual board in {build_dir} ...",
                      file=sys.stderr, flush=True)
            t0 = time.monotonic()
            runner = verilator_runner()
            vlt = build_dir / "public.vlt"
            vlt.write_text(_public_vlt(wrapper))
            runner.build(sources=[vlt, build_dir / "top.v"], hdl_toplevel="top",
                         build_dir=build_dir, build_args=BUILD_ARGS, always=True,
                         timescale=("1ns", "1ps"), log_file=build_dir / "build.log")
            stamp.write_text(json.dumps({"seconds": time.monotonic() - t0}))
            info["built"] = True
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({k: v for k, v in info.items() if k != "built"}))
    return info


def _source_key(*args) -> str:
    """Hash of the arguments and of every source file the virtual board is generated from."""
    import inspect
    h = hashlib.sha1()
    core = args[3]
    files = sorted((ROOT / "hdl").glob("*.py")) + sorted((ROOT / "golden").glob("*.py"))
    files += sorted(f for f in (ROOT / "fw").iterdir() if f.suffix in (".py", ".c", ".h", ".S",
                                                                        ".ld"))
    files += [ROOT / "host" / "protocol.py", ROOT / "sim" / "bridge.py",
              ROOT / "sim" / "board.py"]
    if core is not None:
        try:
            files.append(Path(inspect.getsourcefile(core)))
        except TypeError:
            h.update(repr(core).encode())
    for f in files:
        h.update(str(f.relative_to(ROOT) if f.is_relative_to(ROOT) else f).encode())
        h.update(f.read_bytes())
    h.update(repr([a for i, a in enumerate(args) if i != 3]).encode())
    h.update(repr(BUILD_ARGS).encode())
    return h.hexdigest()[:20]


def _public_vlt(wrapper) -> str:
    """Verilator control file: top-level inputs writable and outputs readable through VPI."""
    from amaranth.lib.wiring import In
    lines = ["`verilator_config"]
    for name, member in wrapper.signature.members.items():
        kind = "public_flat_rw" if member.flow == In else "public_flat_rd"
        lines.append(f'{kind} -module "top" -var "{name}"')
    return "\n".join(lines) + "\n"


class _Launcher:
    """cocotb's Verilator runner, with ``_execute`` capturing the command instead of running."""

    def __new__(cls):
        from cocotb_tools.runner import Verilator

        class Capture(Verilator):
            def _execute(self, cmds, cwd):
                self.captured = (list(cmds), dict(self.env), cwd)

        return Capture()


def _sim_command(build_dir: Path, env_extra: dict):
    from sim.runner import setup_verilator_env
    setup_verilator_env()
    saved = os.environ.pop("PYTEST_CURRENT_TEST", None)
    try:
        runner = _Launcher()
        runner.test(test_module="sim.bridge_cocotb", hdl_toplevel="top", build_dir=build_dir,
                    test_dir=build_dir, extra_env=env_extra, hdl_toplevel_lang="verilog",
                    results_xml=str(build_dir / f"results-{os.getpid()}-{time.time_ns()}.xml"))
    finally:
        if saved is not None:
            os.environ["PYTEST_CURRENT_TEST"] = saved
    cmds, env, cwd = runner.captured
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return cmds[0], env, cwd


class VirtualBoard:
    """A running virtual board (the simulator as a child process).

    ``with VirtualBoard(params, core=...) as vb: Device.open(vb.url)``. ``link`` is
    ``"byte"`` or ``"serial"``; ``cpb`` (cycles per byte of the byte link) defaults to the
    UART's byte time; ``fast=True`` uses 1 (a byte per cycle each way).
    """

    def __init__(self, params: FixedParams | None = None, *, clk_freq: int = DEFAULT_CLK,
                 baud: int = DEFAULT_BAUD, design: str = "top", core=None, link: str = "byte",
                 cpb: int | None = None, fast: bool = False, port: int = 0,
                 host: str = "127.0.0.1", timeout_cycles: int | None = 200_000,
                 width: int = 256, poll: int = 256, log: str | os.PathLike | None = None,
                 quiet: bool = True):
        if link not in ("byte", "serial"):
            raise ValueError(f"link must be 'byte' or 'serial', not {link!r}")
        self.params = params or FixedParams()
        self.clk_freq, self.baud = int(clk_freq), int(baud)
        self.design = design
        self.core = core
        self.link = link
        self.cpb = 1 if fast and cpb is None else cpb
        self.port, self.host = port, host
        self.timeout_cycles = timeout_cycles
        self.width, self.poll = width, poll
        self.log = log
        self.quiet = quiet
        self.proc = None
        self.url = None
        self.info = None

    def start(self, wait: float = 600.0) -> "VirtualBoard":
        core = load_core(self.core) if isinstance(self.core, str) else self.core
        self.info = build(self.params, self.clk_freq, self.baud, design=self.design, core=core,
                          width=self.width,
                          timeout_cycles=self.timeout_cycles, quiet=self.quiet)
        build_dir = Path(self.info["dir"])
        cpb = self.cpb if self.cpb is not None else 10 * self.info["divisor"]
        self.cpb_effective = cpb
        ready = Path(tempfile.mkdtemp(prefix="vboard-")) / "ready.json"
        env_extra = {
            "VB_HOST": self.host, "VB_PORT": str(self.port), "VB_READY_FILE": str(ready),
            "VB_WIDTH": str(self.width), "VB_POLL": str(self.poll),
            "VB_MODE": "1" if self.link == "serial" else "0", "VB_CPB": str(cpb),
            "VB_CLK_FREQ": str(self.clk_freq), "VB_BAUD": str(self.baud),
            "VB_TIMEOUT_CYCLES": str(self.info["timeout_cycles"]),
            "VB_INFO": json.dumps({"params": asdict(self.params), "link": self.link,
                                   "divisor": self.info["divisor"]}),
            "COCOTB_LOG_LEVEL": os.environ.get("COCOTB_LOG_LEVEL", "WARNING"),
        }
        cmd, env, cwd = _sim_command(build_dir, env_extra)
        logf = open(self.log, "w") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=logf,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        t0 = time.monotonic()
        while not ready.exists():
            if self.proc.poll() is not None:
                raise BoardError(f"virtual board exited with code {self.proc.returncode} "
                                 f"before listening (log: {self.log or 'pass log=...'})")
            if time.monotonic() - t0 > wait:
                self.stop()
                raise BoardError("virtual board did not start listening")
            time.sleep(0.02)
        self.port = json.loads(ready.read_text())["port"]
        ready.unlink()
        self.url = f"socket://{self.host}:{self.port}"
        return self

    def control(self, cmd: str, timeout: float = 10.0) -> dict:
        return control(self.url, cmd, timeout=timeout)

    def stats(self) -> dict:
        return self.control("stats")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 20.0) -> int | None:
        """Shut down cleanly (control command, then SIGTERM, then SIGKILL)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.control("shutdown", timeout=5.0)
            except (OSError, BoardError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self):
        return self.start() if self.proc is None else self

    def __exit__(self, *exc):
        self.stop()


def _addr(url: str):
    if not url.startswith("socket://"):
        raise ValueError(f"url must be socket://host:port, not {url!r}")
    host, _, port = url[len("socket://"):].partition(":")
    return host, int(port.split("?")[0])


def control(url: str, cmd: str, timeout: float = 10.0) -> dict:
    """Send one control command (``stats``, ``stats_clear``, ``shutdown``) to a board."""
    with socket.create_connection(_addr(url), timeout=timeout) as s:
        s.sendall(b"VBCTL" + json.dumps({"cmd": cmd}).encode() + b"\n")
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise BoardError(f"board closed the control connection ({cmd!r})")
            buf += chunk
    reply = json.loads(buf.split(b"\n", 1)[0])
    if not reply.get("ok"):
        raise BoardError(reply.get("error", "control command failed"))
    return reply


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m sim.board", description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0, help="TCP port (default: any free port)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--baud", type=int, default=DEFAULT_BAUD)
    ap.add_argument("--clk", type=int, default=DEFAULT_CLK, help="design clock in Hz")
    ap.add_argument("--params", default="", help="FixedParams overrides, e.g. n_hid=64,lanes=2")
    ap.add_argument("--link", choices=("byte", "serial"), default="byte")
    ap.add_argument("--cpb", type=int, default=None,
                    help="cycles per byte of the byte link (default: 10 * divisor)")
    ap.add_argument("--fast", action="store_true", help="byte link at 1 cycle per byte")
    ap.add_argument("--timeout-cycles", type=int, default=200_000,
                    help="inter-byte timeout inside a frame, in cycles")
    ap.add_argument("--design", choices=DESIGNS, default="top",
                    help="top: the dataflow core (hdl.top.Top); soc: the soft-core engine "
                         "(hdl.soc.SoC running fw/, the iCEBreaker design)")
    ap.add_argument("--core", default=None,
                    help="module:Class of the core (default: hdl.core.LearningCore)")
    ap.add_argument("--log", default=None, help="simulator log file")
    args = ap.parse_args(argv)

    try:
        params = parse_params(args.params)
        vb = VirtualBoard(params, clk_freq=args.clk, baud=args.baud, design=args.design,
                          core=args.core,
                          link=args.link, cpb=args.cpb, fast=args.fast, port=args.port,
                          host=args.host, timeout_cycles=args.timeout_cycles, log=args.log,
                          quiet=False)
        stopping = {"flag": False}

        def on_signal(signum, frame):
            stopping["flag"] = True

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        vb.start()
    except (ValueError, BoardError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(vb.url, flush=True)
    print(f"sim.board: {args.design} {params} clk={args.clk} baud={args.baud} link={args.link} "
          f"cpb={vb.cpb_effective} (Ctrl-C or a 'shutdown' control command stops it)",
          file=sys.stderr, flush=True)
    while vb.alive() and not stopping["flag"]:
        time.sleep(0.1)
    code = vb.stop()
    print(f"sim.board: stopped (simulator exit code {code})", file=sys.stderr, flush=True)
    return 0 if code in (0, None) else 1


if __name__ == "__main__":
    sys.exit(main())
