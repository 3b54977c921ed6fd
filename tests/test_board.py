"""The virtual board as a program: ``python -m sim.board``, its socket, its stop paths, the
serial (bit-level UART) link, one client at a time, and the link utilisation with
pipelining at the UART's byte time."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

from host.bench_link import utilisation  # noqa: E402
from host.device import Device, LinkError  # noqa: E402
from sim.board import control, parse_params  # noqa: E402
from vboard_util import HYPER, P, golden_core, make_board, rasters, sample_weights  # noqa

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARAMS = f"n_in={P.n_in},n_hid={P.n_hid},n_out={P.n_out}"


def start_cli(*extra):
    proc = subprocess.Popen([sys.executable, "-m", "sim.board", "--port", "0", "--params",
                             PARAMS, "--fast", *extra], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    assert line.startswith("socket://127.0.0.1:"), (line, proc.stderr.read())
    return proc, line


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGINT", "shutdown"])
def test_cli_board_starts_serves_and_stops(stop):
    proc, url = start_cli()
    try:
        with Device.open(url, params=P, timeout=10) as dev:
            assert dev.identify()["baud"] == 3_000_000
            dev.configure(HYPER)
        if stop == "shutdown":
            control(url, "shutdown")
        else:
            proc.send_signal(getattr(signal, stop))
        assert proc.wait(30) == 0
        err = proc.stderr.read()
        assert "stopped (simulator exit code 0)" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_board_usage_errors():
    r = subprocess.run([sys.executable, "-m", "sim.board", "--params", "n_hidden=3"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "name=value" in r.stderr
    with pytest.raises(ValueError):
        parse_params("n_hid=7,lanes=2")


def test_serial_link_bit_level():
    """The real UART path of Top (bit by bit, divisor 16) gives the same results."""
    weights = sample_weights(3)
    X, y = rasters(4, steps=15, rate=0.2, seed=4)
    with make_board(link="serial", fast=False) as vb:
        with Device.open(vb.url, params=P, timeout=20) as dev:
            dev.configure(HYPER)
            dev.load_weights(*weights)
            preds = dev.run_epoch(X, y, learn=True)
            gold = golden_core(weights)
            assert list(preds) == [gold.run_sample(x, int(lab), True) for x, lab in zip(X, y)]
            assert np.array_equal(dev.read_weights(0), gold.w)
            st = dev.read_status()
            assert not st["rx_overflow"] and not st["rx_frame_error"]
        stats = vb.stats()
        assert stats["mode"] == 1 and stats["h2d_drops"] == 0
        # every byte took 10 bit times on the simulated line
        assert stats["h2d_busy"] >= stats["h2d_bytes"] * 10 * 16


def test_one_client_at_a_time():
    with make_board() as vb:
        a = Device.open(vb.url, params=P, timeout=5)
        b = Device.open(vb.url, params=P, timeout=5)      # replaces a, like reopening a tty
        with pytest.raises(LinkError):
            a.read_counters()
        a.close()
        assert b.read_counters()["samples"] >= 0
        b.close()


def test_pipelined_epoch_keeps_the_line_busy():
    """At the UART byte time (48 MHz, 3 Mbaud: 160 cycles per byte) a pipelined epoch keeps
    the host->device line >= 90 % busy; stop-and-wait leaves it idle between samples."""
    weights = sample_weights(5)
    X, y = rasters(30, steps=30, rate=0.1, seed=6)
    with make_board(fast=False) as vb:
        assert vb.cpb_effective == 160
        with Device.open(vb.url, params=P, timeout=20) as dev:
            dev.configure(HYPER)
            dev.load_weights(*weights)
            vb.control("stats_clear")
            dev.run_epoch(X, y, learn=True)
            piped = vb.stats()
            vb.control("stats_clear")
            for x, label in zip(X[:8], y[:8]):
                dev.run_sample(x, int(label), learn=True)
            stop_wait = vb.stats()
    assert piped["h2d_drops"] == 0
    assert utilisation(piped) >= 0.9, piped
    assert utilisation(stop_wait) < utilisation(piped)
