"""UART (hdl/uart.py) against a Python bit-level model, in Amaranth's simulator."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from hdl.uart import AsyncSerial, AsyncSerialRX, AsyncSerialTX, divisor_for


def line_model(data, divisor, *, period=None, idle=20, stop_bits=1.0, glitch_at=None):
    """Samples (one per clock) of an 8n1 line carrying ``data``; ``period`` may be a
    fractional bit time (baud mismatch)."""
    period = divisor if period is None else period
    out = [1] * idle
    t = float(len(out))
    for byte in data:
        bits = [0] + [(byte >> k) & 1 for k in range(8)]
        for bit in bits:
            end = t + period
            out += [bit] * (int(round(end)) - len(out))
            t = end
        end = t + period * stop_bits
        out += [1] * (int(round(end)) - len(out))
        t = end
    out += [1] * idle
    if glitch_at is not None:
        for k in range(glitch_at, glitch_at + max(1, divisor // 4)):
            out[k] = 0
    return out


def run(dut, testbench, vcd=None):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


@pytest.mark.parametrize("divisor", [1, 2, 4, 5, 8, 13, 33])
def test_tx_bit_timing(divisor):
    rng = np.random.default_rng(divisor)
    data = [0x00, 0xFF, 0x55, 0xA5] + list(rng.integers(0, 256, 4))
    dut = AsyncSerialTX(divisor=divisor)
    line = []

    async def tb(ctx):
        queue = list(data)
        for _ in range((len(data) + 2) * 10 * divisor):
            ctx.set(dut.i.valid, bool(queue))
            if queue:
                ctx.set(dut.i.payload, int(queue[0]))
            ready = ctx.get(dut.i.ready)
            line.append(ctx.get(dut.o))
            await ctx.tick()
            if queue and ready:
                queue.pop(0)
        assert not queue

    run(dut, tb)
    start = line.index(0)
    assert all(line[:start])
    expected = line_model(data, divisor, idle=0)
    got = line[start:start + len(expected)]
    assert got == expected, "TX waveform differs from the 8n1 model (back-to-back bytes)"
    assert all(line[start + len(expected):])


def receive(divisor, samples, ready=None):
    dut = AsyncSerialRX(divisor=divisor)
    got, errs = [], {"frame": 0, "overflow": 0}

    async def tb(ctx):
        for k, bit in enumerate(samples):
            ctx.set(dut.i, bit)
            ctx.set(dut.o.ready, 1 if ready is None else ready(k))
            if ctx.get(dut.o.valid) and ctx.get(dut.o.ready):
                got.append(ctx.get(dut.o.payload))
            errs["frame"] += ctx.get(dut.err.frame)
            errs["overflow"] += ctx.get(dut.err.overflow)
            await ctx.tick()

    run(dut, tb)
    return got, errs


@pytest.mark.parametrize("divisor,mismatch", [(4, 0.0), (8, 0.0), (8, 0.03), (8, -0.03),
                                              (16, 0.04), (33, -0.04), (33, 0.0)])
def test_rx_mid_bit_sampling(divisor, mismatch):
    """Bytes are received at the nominal rate and with the sender's clock off by +-3-4 %."""
    rng = np.random.default_rng(divisor + int(mismatch * 100))
    data = [0x00, 0xFF, 0x55, 0xAA] + [int(x) for x in rng.integers(0, 256, 12)]
    samples = line_model(data, divisor, period=divisor * (1 + mismatch))
    got, errs = receive(divisor, samples)
    assert got == data
    assert errs == {"frame": 0, "overflow": 0}


def test_rx_glitch_and_framing_error():
    d = 16
    # a short low glitch on an idle line is not a start bit
    samples = line_model([0x3C], d, idle=60, glitch_at=10)
    got, errs = receive(d, samples)
    assert got == [0x3C] and errs["frame"] == 0
    # a low stop bit: framing error, byte dropped, the next byte is fine once the line idles
    bad = line_model([0x81], d, idle=10)
    stop = 10 + 9 * d
    for k in range(stop, stop + d):
        bad[k] = 0
    got, errs = receive(d, bad + line_model([0x42], d))
    assert got == [0x42] and errs["frame"] == 1


def test_rx_overflow():
    d = 8
    samples = line_model([1, 2, 3], d)
    got, errs = receive(d, samples, ready=lambda k: 0)
    assert errs["overflow"] == 2   # bytes 2 and 3 found byte 1 still waiting


@pytest.mark.parametrize("divisor", [4, 7, 12])
def test_loopback(divisor):
    rng = np.random.default_rng(divisor)
    data = [int(x) for x in rng.integers(0, 256, 24)]
    dut = AsyncSerial(divisor=divisor)
    got = []

    async def tb(ctx):
        queue = list(data)
        for _ in range((len(data) + 3) * 10 * divisor):
            ctx.set(dut.rx, ctx.get(dut.tx))         # loop the line back
            ctx.set(dut.tx_i.valid, bool(queue))
            if queue:
                ctx.set(dut.tx_i.payload, queue[0])
            ctx.set(dut.rx_o.ready, 1)
            ready = ctx.get(dut.tx_i.ready)
            if ctx.get(dut.rx_o.valid):
                got.append(ctx.get(dut.rx_o.payload))
            assert not ctx.get(dut.err.frame) and not ctx.get(dut.err.overflow)
            await ctx.tick()
            if queue and ready:
                queue.pop(0)

    run(dut, tb)
    assert got == data


def test_runtime_divisor():
    """The divisor is a port: the same hardware runs at another rate."""
    dut = AsyncSerial(divisor=16, divisor_bits=8)
    got = []

    async def tb(ctx):
        ctx.set(dut.divisor, 6)
        queue = [0x12, 0xED]
        for _ in range(4 * 10 * 6):
            ctx.set(dut.rx, ctx.get(dut.tx))
            ctx.set(dut.tx_i.valid, bool(queue))
            if queue:
                ctx.set(dut.tx_i.payload, queue[0])
            ctx.set(dut.rx_o.ready, 1)
            ready = ctx.get(dut.tx_i.ready)
            if ctx.get(dut.rx_o.valid):
                got.append(ctx.get(dut.rx_o.payload))
            await ctx.tick()
            if queue and ready:
                queue.pop(0)

    run(dut, tb)
    assert got == [0x12, 0xED]


def test_divisor_for():
    assert divisor_for(24_000_000, 3_000_000) == 8
    assert divisor_for(100_000_000, 3_000_000) == 33
    assert divisor_for(48_000_000, 3_000_000) == 16
    assert divisor_for(12_000_000, 115_200) == 104
    with pytest.raises(ValueError, match="at most"):
        divisor_for(12_000_000, 6_000_000)            # divisor 2 < 4
    with pytest.raises(ValueError, match="error"):
        divisor_for(10_000_000, 1_800_000)            # 5.56 -> 6: 7 % off
