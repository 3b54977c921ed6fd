"""cocotb bench: ``hdl.readout.Readout`` (steps 4-5) vs. the corresponding lines of
``golden.fixed.FixedCore.step`` (the step 8 update is ``sim.tb_update``)."""

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge

from golden.fixed import sat
from hdl.interface import hyper_layout
from hdl.readout import wout_word, y_word
from amaranth.hdl import signed
from amaranth.lib import data
from sim.tb_blocks import config, pack_value, random_hyper, start_clock, unpack_value


@cocotb.test()
async def readout_steps(dut):
    cfg, p = config()
    if cfg.get("block") != "readout":
        return
    rng = np.random.default_rng(cfg.get("seed", 0))
    yf = getattr(p, "y_frac", 0)
    await start_clock(dut)
    score_word = data.ArrayLayout(signed(p.score_bits), p.n_out)
    for name in ("clear", "start", "finish", "add_valid"):
        getattr(dut, name).value = 0

    async def pulse(sig):
        sig.value = 1
        await FallingEdge(dut.clk)
        sig.value = 0

    async def wait_idle():
        await FallingEdge(dut.clk)
        while int(dut.busy.value):
            await FallingEdge(dut.clk)

    wmax = 1 << (p.w_bits - 1)
    for sample in range(cfg.get("samples", 4)):
        h = random_hyper(p, rng)
        if sample == 0:
            h.update(kappa_q=(1 << p.decay_frac) - 1, target=(1 << min(p.y_bits - 1, 10)) - 1)
        label = int(rng.integers(0, p.n_out))
        dut.hyper.value = pack_value(hyper_layout(p), h)
        dut.label.value = label
        await pulse(dut.clear)
        y = np.zeros(p.n_out, dtype=np.int64)
        score = np.zeros(p.n_out, dtype=np.int64)
        for step in range(cfg.get("steps", 12)):
            n_spikes = int(rng.integers(0, p.n_hid + 1))
            extreme = sample == 0
            cols = rng.integers(-wmax, wmax, size=(n_spikes, p.n_out))
            if extreme:
                cols[...] = wmax - 1 if step % 4 < 3 else -wmax
            await pulse(dut.start)
            await wait_idle()
            for col in cols:
                dut.add_word.value = pack_value(wout_word(p), [int(c) for c in col])
                dut.add_valid.value = 1
                await FallingEdge(dut.clk)
            dut.add_valid.value = 0
            await pulse(dut.finish)
            await wait_idle()
            # golden/fixed.py FixedCore.step, steps 4 and 5
            y = sat(((y * h["kappa_q"]) >> p.decay_frac) + (cols.sum(axis=0) << yf), p.y_bits)
            score = sat(score + y, p.score_bits)
            onehot = np.zeros(p.n_out, dtype=np.int64)
            onehot[label] = h["target"]
            err = sat((y >> yf) - onehot, p.y_bits)
            got_y = unpack_value(y_word(p), int(dut.y.value))
            got_s = unpack_value(score_word, int(dut.score.value))
            got_e = unpack_value(y_word(p), int(dut.err.value))
            assert got_y == y.tolist(), f"sample {sample} step {step}: y {got_y} != {y}"
            assert got_s == score.tolist(), f"sample {sample} step {step}: score {got_s}"
            assert got_e == err.tolist(), f"sample {sample} step {step}: err {got_e} != {err}"
        dut._log.info(f"sample {sample}: {step + 1} steps ok")
