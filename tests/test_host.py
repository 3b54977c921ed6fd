"""host.device.Device and host.cli against the virtual board (real core), end to end."""

import json
import os
import sys
from dataclasses import replace

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

from golden.fixed import COUNTERS, FixedHyper  # noqa: E402
from host import cli  # noqa: E402
from host import protocol as wire  # noqa: E402
from host.device import (Device, IndexOutOfRange, NakError, NotAnswering,  # noqa: E402
                         ParamOutOfRange, PortNotFound, ProtocolMismatch, ShapeMismatch,
                         UnknownCommand, UnsortedEvents)
from host.protocol import Cmd, Mem  # noqa: E402
from vboard_util import (HYPER, P, golden_core, make_board, rasters, sample_weights,  # noqa
                         silent_server)


@pytest.fixture(scope="module")
def board():
    with make_board() as vb:
        yield vb


@pytest.fixture()
def dev(board):
    d = Device.open(board.url, params=P, timeout=10)
    yield d
    d.close()


def test_open_errors(board):
    with pytest.raises(PortNotFound):
        Device.open("/dev/does-not-exist-ttyUSB9")
    with pytest.raises(PortNotFound):
        Device.open("socket://127.0.0.1:1")
    srv, url = silent_server()
    try:
        with pytest.raises(NotAnswering):
            Device.open(url, timeout=0.3, retries=1)
    finally:
        srv.close()
    with pytest.raises(ProtocolMismatch, match="n_hid expected 32 got 16"):
        Device.open(board.url, params=replace(P, n_hid=32))


def test_identify_and_status(dev):
    assert dev.params == P
    info = dev.identify()
    assert info["version"] == wire.PROTOCOL_VERSION and info["weight_bytes"] == 2
    st = dev.read_status()
    assert not st["in_sample"] and not st["rx_overflow"] and st["last_nak"] is None
    assert dev.window_bytes == info["rx_fifo_depth"] - 32


def test_configure_checks(dev):
    with pytest.raises(ValueError, match="theta"):
        dev.configure(HYPER, theta=0)                        # caught on the host
    payload = bytearray(wire.pack_hyper(HYPER))
    payload[16] = 40                                         # l_shift > 31
    with pytest.raises(ParamOutOfRange) as exc:
        dev.send_configure_raw(bytes(payload))               # caught by the device
    assert exc.value.detail == 6
    dev.configure(HYPER, dense=True)
    dev.configure(HYPER)


def test_weights_roundtrip(dev):
    rng = np.random.default_rng(4)
    lo, hi = -(1 << (P.w_bits - 1)), (1 << (P.w_bits - 1))
    for mem in (Mem.W, Mem.W_OUT, Mem.B):
        shape = dev.mem_shape(mem)
        values = rng.integers(lo, hi, size=shape)
        dev.write_weights(mem, values)
        assert np.array_equal(dev.read_weights(mem), values)
    block = rng.integers(lo, hi, size=(3, 5))
    dev.write_weights(Mem.W, block, row0=4, col0=7)
    assert np.array_equal(dev.read_weights(Mem.W, slice(4, 7), slice(7, 12)), block)
    assert dev.read_weights(Mem.V).shape == (1, P.n_hid)
    assert dev.read_weights(Mem.SCORE).shape == (1, P.n_out)
    with pytest.raises(ShapeMismatch, match="values must be in"):
        dev.write_weights(Mem.W, np.full((1, 1), hi))
    with pytest.raises(ShapeMismatch, match="does not fit"):
        dev.write_weights(Mem.W_OUT, np.zeros((P.n_out + 1, 1)))
    with pytest.raises(ValueError):
        dev.write_weights(Mem.V, np.zeros((1, 1)))


def test_naks_raise_subclasses(dev):
    with pytest.raises(IndexOutOfRange):
        dev.raw_call(Cmd.READ_WEIGHTS, bytes([Mem.W]) + np.array([P.n_hid, 1, 0, 1], "<u2")
                     .tobytes())
    with pytest.raises(UnsortedEvents) as exc:
        dev.raw_call(Cmd.SAMPLE, bytes([3, 0, 2, 4, 4]))
    assert isinstance(exc.value, NakError) and exc.value.detail == 4
    with pytest.raises(UnknownCommand):
        dev.raw_call(0x3F)
    assert dev.read_status()["last_nak"] == "UNKNOWN_TYPE"
    dev.reset()
    assert dev.read_status()["last_nak"] is None


def test_learning_end_to_end_bit_exact(dev):
    """Pipelined online learning: every prediction, the weights, the scores, V, y and the
    event counters equal golden.fixed.FixedCore fed the same stream."""
    weights = sample_weights(2)
    dev.configure(HYPER)
    dev.load_weights(*weights)
    dev.read_counters(clear=True)
    gold = golden_core(weights)
    X, y = rasters(24, steps=40, rate=0.15, seed=1)
    preds = dev.run_epoch(X, y, learn=True)
    assert list(preds) == [gold.run_sample(x, int(lab), True) for x, lab in zip(X, y)]
    Xt, yt = rasters(8, steps=40, rate=0.15, seed=2)
    preds, scores = dev.run_epoch(Xt, yt, learn=False, scores=True)
    for x, lab, pred, score in zip(Xt, yt, preds, scores):
        assert pred == gold.run_sample(x, int(lab), False)
        assert np.array_equal(score, gold.score)
    # a long sample split over several frames, then the state memories
    xl, yl = rasters(1, steps=400, rate=0.3, seed=3)
    assert len(dev.sample_frames(xl[0], int(yl[0]), True)) > 2
    assert dev.run_sample(xl[0], int(yl[0]), True) == gold.run_sample(xl[0], int(yl[0]), True)
    pred, score = dev.read_result()
    assert pred == int(np.argmax(gold.score)) and np.array_equal(score, gold.score)
    assert np.array_equal(dev.read_weights(Mem.V)[0], gold.v)
    assert np.array_equal(dev.read_weights(Mem.Y)[0], gold.y)
    got = dev.dump_weights()
    for name in ("w", "w_out", "b"):
        assert np.array_equal(got[name], getattr(gold, name)), name
    counters = dev.read_counters()
    assert {k: counters[k] for k in COUNTERS} == gold.counters.as_dict()
    assert counters["spikes"] > 0 and counters["weight_updates"] > 0
    assert dev.stats["recoveries"] == 0


def test_otpe_rule_end_to_end_bit_exact(dev):
    """configure(rule=1) through the link: approximate OTPE weights, counters and predictions
    equal the golden model's; a device-side range check rejects rule 2."""
    hyper = replace(HYPER, rule=1, g_shift=17)
    weights = sample_weights(5)
    dev.configure(hyper)
    dev.load_weights(*weights)
    dev.read_counters(clear=True)
    gold = golden_core(weights, hyper)
    X, y = rasters(8, steps=30, rate=0.15, seed=6)
    preds = dev.run_epoch(X, y, learn=True)
    assert list(preds) == [gold.run_sample(x, int(lab), True) for x, lab in zip(X, y)]
    got = dev.dump_weights()
    for name in ("w", "w_out"):
        assert np.array_equal(got[name], getattr(gold, name)), name
    counters = dev.read_counters()
    assert {k: counters[k] for k in COUNTERS} == gold.counters.as_dict()
    assert counters["weight_updates"] > 0
    payload = bytearray(wire.pack_hyper(hyper))
    payload[25] = 2                                          # rule > 1
    with pytest.raises(ParamOutOfRange) as exc:
        dev.send_configure_raw(bytes(payload))
    assert exc.value.detail == 12
    dev.configure(HYPER)


def test_sample_shape_errors(dev):
    with pytest.raises(ShapeMismatch, match="n_in=20"):
        dev.run_sample(np.zeros((10, P.n_in + 1)), 0, False)
    with pytest.raises(ShapeMismatch, match="label"):
        dev.run_sample(np.zeros((10, P.n_in)), P.n_out, False)
    with pytest.raises(ShapeMismatch, match="0/1"):
        dev.run_sample(np.full((3, P.n_in), 2), 0, False)
    with pytest.raises(ShapeMismatch, match="n_in=20"):
        dev.run_epoch(np.zeros((2, 5, 50)), [0, 1], True)


def run_cli(*args, capsys=None):
    code = cli.main(list(args))
    out = capsys.readouterr() if capsys else None
    return code, out


def test_cli(board, tmp_path, capsys):
    url = board.url
    code, out = run_cli("--port", url, "info", capsys=capsys)
    assert code == 0 and json.loads(out.out)["params"]["n_hid"] == P.n_hid
    code, out = run_cli("--port", url, "counters", capsys=capsys)
    assert code == 0 and "samples" in json.loads(out.out)
    dump = tmp_path / "w.npz"
    code, _ = run_cli("--port", url, "weights", "dump", str(dump), capsys=capsys)
    assert code == 0 and np.load(dump)["w"].shape == (P.n_hid, P.n_pre)
    run_dir = tmp_path / "run"
    common = ["--data", "random", "--train", "12", "--test", "6", "--steps", "20"]
    hyper = "seed=3,theta=96,b_th=40,target=96,g_shift=14,go_shift=12"
    code, out = run_cli("--port", url, "--quiet", "train", *common, "--epochs", "1",
                        "--hyper", hyper, "--out", str(run_dir), capsys=capsys)
    assert code == 0, out.err
    for name in ("curves.png", "raster.png", "weights.png", "weights.npz",
                 "checkpoint_epoch001.npz", "history.json"):
        assert (run_dir / name).exists(), name
    code, out = run_cli("--port", url, "--quiet", "train", *common, "--epochs", "2",
                        "--hyper", hyper, "--out", str(run_dir), "--resume", capsys=capsys)
    assert code == 0 and "resumed from" in out.out
    assert json.loads((run_dir / "history.json").read_text())["epoch"] == [1, 2]
    code, out = run_cli("--port", url, "--quiet", "eval", *common, "--hyper", hyper,
                        "--weights", str(run_dir / "weights.npz"), capsys=capsys)
    assert code == 0 and 0 <= json.loads(out.out)["accuracy"] <= 1
    code, out = run_cli("--port", url, "--quiet", "eval", *common, "--rule", "otpe",
                        "--weights", str(run_dir / "weights.npz"), capsys=capsys)
    assert code == 0 and 0 <= json.loads(out.out)["accuracy"] <= 1
    code, _ = run_cli("--port", url, "weights", "load", str(dump), capsys=capsys)
    assert code == 0
    # a dataset that does not fit the build: a clear message, exit code 2
    code, out = run_cli("--port", url, "--quiet", "eval", "--data", "digits", "--train", "0",
                        "--test", "4", "--steps", "10", capsys=capsys)
    assert code == 2 and "64 input channels" in out.err and "n_in=20" in out.err
    code, out = run_cli("--port", "socket://127.0.0.1:1", "info", capsys=capsys)
    assert code == 1 and "PortNotFound" in out.err


def test_default_hyper_fits(dev):
    """The golden defaults are accepted by a build with these widths."""
    dev.configure(FixedHyper())
