"""Native board: the firmware (``fw/main.c``, ``fw/link.c``, ``fw/snn.c``) compiled for the
host with ``fw/hal_native.c``, serving the link on a TCP socket.

    python -m fw.native_board [--port P] [--params n_in=13,n_hid=8] [--baud B] [--clk F]

prints ``socket://127.0.0.1:PORT`` once it listens, like ``python -m sim.board``; open that URL
with ``host.device.Device.open(url)``. No simulator: the firmware runs at native speed; the
receive path models the UART at ``baud`` in front of a FIFO of ``rx_fifo_depth`` bytes
(overflow sets the status flag, see ``fw/hal_native.c``).

Executables are cached in ``build/fw/board-<hash>/`` by a hash of the sources and the flags.
"""

import argparse
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from golden.fixed import FixedParams

FW = Path(__file__).resolve().parent
SOURCES = ("main.c", "link.c", "snn.c", "hal_native.c")
HEADERS = ("hal.h", "link.h", "snn.h")
CC = os.environ.get("CC", "gcc")
CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-DFW_NATIVE=1")

DEFAULT_CLK = 48_000_000
DEFAULT_BAUD = 3_000_000
DEFAULT_MAX_PAYLOAD = 512
DEFAULT_RX_FIFO_DEPTH = 2048
FRAME_OVERHEAD = 9

__all__ = ["NativeBoard", "BoardError", "build", "identify_rx_depth", "main"]


class BoardError(RuntimeError):
    pass


def default_timeout_cycles(clk_freq: int) -> int:
    """50 ms of the clock."""
    return clk_freq // 20


def identify_rx_depth(rx_fifo_depth: int, max_payload: int) -> int:
    """What IDENTIFY reports as ``rx_fifo_depth``: the FIFO minus one whole frame (the
    firmware has one frame buffer; the frame waiting behind it sits in the FIFO)."""
    return rx_fifo_depth - (max_payload + FRAME_OVERHEAD)


def build(params: FixedParams, *, clk_freq: int = DEFAULT_CLK, baud: int = DEFAULT_BAUD,
          max_payload: int = DEFAULT_MAX_PAYLOAD, rx_fifo_depth: int = DEFAULT_RX_FIFO_DEPTH,
          timeout_cycles: int | None = None) -> Path:
    """Compile the native firmware (cached); returns the executable's path."""
    from fw.build import cached_build, link_defines, param_defines

    if timeout_cycles is None:
        timeout_cycles = default_timeout_cycles(clk_freq)
    if not 32 <= max_payload <= 32768:
        raise ValueError(f"max_payload must be in [32, 32768], not {max_payload!r}")
    if not 64 <= identify_rx_depth(rx_fifo_depth, max_payload) <= 0xFFFF:
        raise ValueError(f"rx_fifo_depth must exceed max_payload + {FRAME_OVERHEAD} by 64 "
                         f"at least, not {rx_fifo_depth!r}")
    if not 16 <= timeout_cycles < 1 << 31:
        raise ValueError(f"timeout_cycles must be in [16, 2**31), not {timeout_cycles!r}")
    flags = [*CFLAGS, *param_defines(params),
             *link_defines(clk_freq=clk_freq, baud=baud, max_payload=max_payload,
                           rx_fifo_depth=rx_fifo_depth, timeout_cycles=timeout_cycles)]

    def make(tmp, out):
        cmd = [CC, *flags, f"-I{FW}", *(str(FW / s) for s in SOURCES), "-o", str(tmp)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            raise BoardError(f"native firmware build failed:\n{' '.join(cmd)}\n{proc.stderr}")

    return cached_build("board", (CC, flags), [FW / n for n in SOURCES + HEADERS], "fw_native",
                        make)


class NativeBoard:
    """The native firmware as a child process serving ``url``.

    ``with NativeBoard(params) as nb: Device.open(nb.url)``. ``rx_fifo_depth`` is the UART
    receive FIFO of the model (IDENTIFY reports :func:`identify_rx_depth` of it).
    """

    def __init__(self, params: FixedParams | None = None, *, clk_freq: int = DEFAULT_CLK,
                 baud: int = DEFAULT_BAUD, max_payload: int = DEFAULT_MAX_PAYLOAD,
                 rx_fifo_depth: int = DEFAULT_RX_FIFO_DEPTH, timeout_cycles: int | None = None,
                 port: int = 0, host: str = "127.0.0.1", log: str | os.PathLike | None = None):
        self.params = params or FixedParams()
        self.clk_freq, self.baud = int(clk_freq), int(baud)
        self.max_payload = int(max_payload)
        self.rx_fifo_depth = int(rx_fifo_depth)
        self.timeout_cycles = int(timeout_cycles if timeout_cycles is not None
                                  else default_timeout_cycles(self.clk_freq))
        self.port, self.host = int(port), host
        self.log = log
        self.proc = None
        self.url = None
        self.exe = None

    @property
    def info(self) -> dict:
        return {"exe": str(self.exe), "timeout_cycles": self.timeout_cycles,
                "rx_fifo_depth": self.rx_fifo_depth, "max_payload": self.max_payload,
                "identify_rx_fifo_depth": identify_rx_depth(self.rx_fifo_depth,
                                                            self.max_payload)}

    def start(self, wait: float = 120.0) -> "NativeBoard":
        if self.host != "127.0.0.1":
            raise ValueError("the native board listens on 127.0.0.1 only")
        self.exe = build(self.params, clk_freq=self.clk_freq, baud=self.baud,
                         max_payload=self.max_payload, rx_fifo_depth=self.rx_fifo_depth,
                         timeout_cycles=self.timeout_cycles)
        logf = open(self.log, "w") if self.log else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen([str(self.exe), str(self.port)],
                                         stdout=subprocess.PIPE, stderr=logf,
                                         start_new_session=True)
        finally:
            if self.log:
                logf.close()
        deadline = time.monotonic() + wait
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready = select.select([self.proc.stdout], [], [], max(0.0, left))[0]
            chunk = os.read(self.proc.stdout.fileno(), 256) if ready else b""
            if not chunk:
                code = self.proc.poll()
                self.stop()
                raise BoardError(f"native board did not start listening (exit code {code})")
            line += chunk
        self.url = line.decode().strip()
        if not self.url.startswith("socket://127.0.0.1:"):
            self.stop()
            raise BoardError(f"unexpected output of the native board: {self.url!r}")
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (then SIGKILL); returns the exit code (0 after a clean stop)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode

    def __enter__(self):
        return self.start() if self.proc is None else self

    def __exit__(self, *exc):
        self.stop()


def main(argv=None):
    from sim.board import parse_params

    ap = argparse.ArgumentParser(prog="python -m fw.native_board",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0, help="TCP port (default: any free port)")
    ap.add_argument("--baud", type=int, default=DEFAULT_BAUD)
    ap.add_argument("--clk", type=int, default=DEFAULT_CLK, help="clock in Hz (hal_cycles)")
    ap.add_argument("--params", default="", help="FixedParams overrides, e.g. n_hid=64")
    ap.add_argument("--max-payload", type=int, default=DEFAULT_MAX_PAYLOAD)
    ap.add_argument("--rx-fifo-depth", type=int, default=DEFAULT_RX_FIFO_DEPTH)
    ap.add_argument("--timeout-cycles", type=int, default=None,
                    help="inter-byte timeout inside a frame (default: 50 ms of --clk)")
    args = ap.parse_args(argv)
    stopping = {"flag": False}

    def on_signal(signum, frame):
        stopping["flag"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        nb = NativeBoard(parse_params(args.params), clk_freq=args.clk, baud=args.baud,
                         max_payload=args.max_payload, rx_fifo_depth=args.rx_fifo_depth,
                         timeout_cycles=args.timeout_cycles, port=args.port).start()
    except (ValueError, BoardError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(nb.url, flush=True)
    while nb.alive() and not stopping["flag"]:
        time.sleep(0.1)
    code = nb.stop()
    print(f"fw.native_board: stopped (exit code {code})", file=sys.stderr, flush=True)
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
