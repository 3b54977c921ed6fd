"""The soft-core engine (hdl/soc.py: the RV32 CPU running fw/) on the virtual board.

The host driver talks to the SoC in Verilator exactly as to the dataflow design, and every
result is compared bit for bit with golden.fixed: the firmware's model (fw/snn.c), its
protocol (fw/link.c) and the CPU that runs them are all in the loop. The SoC's own
behaviour (a reply longer than the transmit FIFO, a CPU trap) is checked as well.
"""

import dataclasses
import os
import sys

import numpy as np
from amaranth.sim import Simulator

sys.path.insert(0, os.path.dirname(__file__))

from fw.image import build_image  # noqa: E402
from golden.fixed import RULE_OTPE, FEEDBACK_RANDOM, FixedCore, FixedParams  # noqa: E402
from golden.rv32 import RV32Model  # noqa: E402
from hdl.soc import IoReg, Region, SoC  # noqa: E402
from host import protocol as wire  # noqa: E402
from host.device import Device  # noqa: E402
from vboard_util import HYPER, P, golden_core, make_board, rasters, sample_weights  # noqa

#: recurrent, OTPE built in, 10-bit weights (two bytes on the wire)
P_REC = dataclasses.replace(P, recurrent=True)


def run_and_compare(dev, params, hyper, weights, X, y):
    gold = FixedCore(params, hyper)
    gold.load_weights(*weights)
    dev.configure(hyper)
    dev.load_weights(*weights)
    dev.read_counters(clear=True)
    preds = dev.run_epoch(X, y, learn=True)
    assert list(preds) == [gold.run_sample(x, int(lab), True) for x, lab in zip(X, y)]
    assert np.array_equal(dev.read_weights(0), gold.w)
    assert np.array_equal(dev.read_weights(1), gold.w_out)
    counters = dev.read_counters()
    for name, value in gold.counters.as_dict().items():
        assert counters[name] == value, name
    # inference on the trained weights: predictions and scores
    x = X[0]
    pred = dev.run_sample(x, int(y[0]), learn=False)
    assert pred == gold.run_sample(x, int(y[0]), False)
    assert dev.read_result()[0] == pred
    assert np.array_equal(dev.read_result()[1], gold.score)


def test_soc_identify_and_learning_match_golden():
    """IDENTIFY describes the firmware's network; OTTT and OTPE training, symmetric and random
    feedback, recurrent: predictions, weights, scores and counters equal golden.fixed."""
    weights = sample_weights(5)
    w, w_out, b = weights
    rng = np.random.default_rng(6)
    w_rec = np.concatenate([w, rng.integers(-20, 30, size=(P.n_hid, P.n_hid))], axis=1)
    X, y = rasters(3, steps=20, rate=0.2, seed=7)
    with make_board(design="soc") as vb:
        # the dataflow design's test network first (feed-forward)
        with Device.open(vb.url, params=P, timeout=20) as dev:
            ident = dev.identify()
            assert ident["params"]["lanes"] == 1
            assert (ident["params"]["n_in"], ident["params"]["n_hid"]) == (P.n_in, P.n_hid)
            # one frame buffer: the FIFO also holds the frame that waits behind the running one
            assert ident["rx_fifo_depth"] == 2048 - (512 + 9)
            run_and_compare(dev, P, HYPER, weights, X, y)
    with make_board(design="soc", params=P_REC) as vb:
        with Device.open(vb.url, params=P_REC, timeout=20) as dev:
            for hyper in (dataclasses.replace(HYPER, rule=RULE_OTPE),
                          dataclasses.replace(HYPER, feedback=FEEDBACK_RANDOM, seed=99)):
                run_and_compare(dev, P_REC, hyper, (w_rec, w_out, b), X, y)


def test_soc_at_the_uart_byte_time():
    """At the UART's byte time: a 512-byte READ_WEIGHTS reply overfills the 512-byte
    transmit FIFO (the CPU's stores wait, no byte is lost), and a pipelined learning epoch
    (the host keeps up to IDENTIFY's window in flight while the firmware computes) loses
    no byte and matches golden.fixed."""
    weights = sample_weights(8)
    X, y = rasters(4, steps=25, rate=0.2, seed=9)
    with make_board(design="soc", fast=False) as vb:
        with Device.open(vb.url, params=P, timeout=60) as dev:
            dev.configure(HYPER)
            dev.load_weights(*weights)
            assert np.array_equal(dev.read_weights(0), weights[0])
            gold = golden_core(weights)
            preds = dev.run_epoch(X, y, learn=True)
            assert list(preds) == [gold.run_sample(x, int(lab), True) for x, lab in zip(X, y)]
            assert np.array_equal(dev.read_weights(0), gold.w)
            status = dev.read_status()
            assert not status["rx_overflow"] and status["naks"] == 0
        assert vb.stats()["h2d_drops"] == 0


class SoCModel(RV32Model):
    """The instruction-set model with the SoC's memory map and I/O registers (bytes in from
    a list, out into a bytearray; the cycle counter reads 0)."""

    def __init__(self, image: bytes, ram_bytes: int):
        super().__init__({Region.ROM.base: bytearray(image),
                          Region.RAM.base: bytearray(ram_bytes)}, Region.ROM.base)
        self.rx, self.tx = [], bytearray()

    def load_word(self, addr):
        if addr >> 28 != Region.IO:
            return super().load_word(addr)
        if addr & 0x1F == IoReg.RXDATA and self.rx:
            return 0x100 | self.rx.pop(0)
        return 0

    def store_word(self, addr, data, wstrb):
        if addr >> 28 != Region.IO:
            super().store_word(addr, data, wstrb)
        elif addr & 0x1F == IoReg.TXDATA:
            self.tx.append(data & 0xFF)


def test_firmware_image_on_the_instruction_set_model():
    """The cross-compiled firmware (the SoC's ROM image) boots on golden.rv32 and answers
    IDENTIFY with exactly the block host.protocol expects for its build."""
    p, clk, baud, payload, fifo = FixedParams(n_in=20, n_hid=16, n_out=4), 39_000_000, \
        3_000_000, 512, 2048
    image = build_image(p, clk_freq=clk, baud=baud, max_payload=payload, rx_fifo_depth=fifo,
                        timeout_cycles=1000, ram_bytes=1 << 17)
    cpu = SoCModel(image, 1 << 17)
    cpu.rx += list(wire.encode_frame(wire.Cmd.IDENTIFY, 0, b""))
    while cpu.rx or len(cpu.tx) < 9 + 46:
        assert cpu.run(20_000) is None, cpu.trap
    frame = wire.FrameParser().feed(bytes(cpu.tx))[0]
    assert frame.type == wire.Cmd.IDENTIFY | wire.ACK_BIT
    assert frame.payload == wire.identify_block(
        p, max_payload=payload, rx_fifo_depth=fifo - (payload + 9), clk_freq=clk, baud=baud,
        timeout_cycles=1000)


def trap_soc(image_words):
    soc = SoC(FixedParams(n_in=4, n_hid=4, n_out=2), 1_000_000, 100_000, ram_words=1024,
              image=b"".join(w.to_bytes(4, "little") for w in image_words))
    seen = []

    async def bench(ctx):
        for _ in range(200):
            await ctx.tick()
            seen.append(ctx.get(soc.error))

    sim = Simulator(soc)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return seen


def test_soc_trap_lights_the_error_led():
    """An illegal instruction halts the CPU and lights ``error``; a running loop does not."""
    jal_self = 0x0000006F           # jal x0, 0: spin
    assert not any(trap_soc([jal_self]))
    seen = trap_soc([0x00000013, 0xFFFFFFFF])   # nop, then an illegal instruction
    assert seen[-1] and not seen[0]
