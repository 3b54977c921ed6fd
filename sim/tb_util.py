"""cocotb helpers for the learning core: struct packing and a transaction-level driver.

Python stays off the per-cycle path: the driver waits on the core's ``busy`` and handshake
signals (value-change triggers), never polls every clock while a step runs.
"""

import json
import os

import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge, Timer

from golden.fixed import COUNTERS, FixedHyper, FixedParams
from hdl.interface import (ALL_COUNTERS, Memory, TokenKind, hyper_layout,
                           mem_cmd_layout, token_layout)


def pack(layout, values: dict) -> int:
    word = 0
    for name, field in layout:
        value = int(values.get(name, 0))
        word |= (value & ((1 << field.width) - 1)) << field.offset
    return word


def unpack(layout, word: int) -> dict:
    return {name: (word >> field.offset) & ((1 << field.width) - 1) for name, field in layout}


def to_signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def env_config() -> dict:
    return json.loads(os.environ.get("TB_CONFIG", "{}"))


def params_from(cfg: dict) -> FixedParams:
    return FixedParams(**cfg.get("params", {}))


class CoreDriver:
    """Token, memory-command and register access to a ``LearningCore`` toplevel."""

    def __init__(self, dut, p: FixedParams):
        self.dut, self.p = dut, p
        self.token_layout = token_layout()
        self.cmd_layout = mem_cmd_layout()
        self.hyper_layout = hyper_layout(p)
        self.predictions = []

    async def start(self):
        dut = self.dut
        Clock(dut.clk, 10, unit="ns", impl="gpi").start()
        for name in ("tokens__valid", "mem_cmd__valid", "reseed", "clear_counters"):
            getattr(dut, name).value = 0
        dut.result__ready.value = 1
        dut.mem_rsp__ready.value = 1
        dut.rst.value = 1
        await Timer(35, unit="ns")
        await FallingEdge(dut.clk)
        dut.rst.value = 0
        await FallingEdge(dut.clk)

    async def put(self, valid, payload, ready, word):
        """One valid/ready transfer. ``valid`` and ``payload`` are driven from the next falling
        edge on and dropped after the first rising edge with ``ready`` high, which is read
        once the falling edge's writes have settled (inputs only change at falling edges or
        just after rising edges, so it holds until the rising edge). While ``ready`` is low
        the driver sleeps until it rises (a value-change trigger), however long that takes.
        Back to back, one transfer per cycle."""
        clk = self.dut.clk
        await FallingEdge(clk)
        payload.value = word
        valid.value = 1
        await ReadOnly()
        while not ready.value:
            await RisingEdge(ready)
            await FallingEdge(clk)
            await ReadOnly()
        await RisingEdge(clk)
        valid.value = 0

    async def token(self, kind: TokenKind, value: int = 0, learn: int = 0):
        d = self.dut
        word = pack(self.token_layout, {"kind": kind.value, "value": value, "learn": learn})
        await self.put(d.tokens__valid, d.tokens__payload, d.tokens__ready, word)

    async def idle(self):
        dut = self.dut
        await FallingEdge(dut.clk)
        while dut.busy.value:
            await FallingEdge(dut.busy)
            await FallingEdge(dut.clk)

    async def run_sample(self, raster, label: int, learn: bool, rng=None,
                         noise: bool = False) -> int:
        """START, the events of each step (shuffled with ``rng``) and STEP, then END. With
        ``noise`` every step also repeats some of its events (the first one back to back) and
        sends indices ``>= n_in``, which the core must ignore."""
        await self.token(TokenKind.START, label, int(learn))
        for row in np.asarray(raster):
            events = np.flatnonzero(row)
            if noise:
                extra = [self.p.n_in, (1 << 12) - 1] + list(events[::2])
                events = np.concatenate([events, np.array(extra, dtype=events.dtype)])
            if rng is not None:
                events = rng.permutation(events)
            if noise and np.any(row):    # the first event in range also twice in a row
                pos = int(np.flatnonzero(events < self.p.n_in)[0])
                events = np.insert(events, pos + 1, events[pos])
            for i in events:
                await self.token(TokenKind.EVENT, int(i))
            await self.token(TokenKind.STEP)
        return await self.end()

    async def end(self) -> int:
        dut = self.dut
        await self.token(TokenKind.END)
        await RisingEdge(dut.result__valid)
        prediction = int(dut.result__payload.value)
        await self.idle()
        return prediction

    async def command(self, write: bool, mem: Memory, row: int, col: int, data: int = 0):
        d = self.dut
        word = pack(self.cmd_layout, {"write": int(write), "mem": mem.value, "row": row,
                                      "col": col, "data": data})
        await self.put(d.mem_cmd__valid, d.mem_cmd__payload, d.mem_cmd__ready, word)
        if write:
            return None
        await FallingEdge(d.clk)
        while not d.mem_rsp__valid.value:
            await FallingEdge(d.clk)
        return to_signed(int(d.mem_rsp__payload.value), 32)

    async def write(self, mem: Memory, row: int, col: int, value: int):
        await self.command(True, mem, row, col, value)

    async def read(self, mem: Memory, row: int, col: int) -> int:
        return await self.command(False, mem, row, col)

    async def load_weights(self, w, w_out, b):
        for mem, array in ((Memory.W, w), (Memory.W_OUT, w_out), (Memory.B, b)):
            rows, cols = array.shape
            for r in range(rows):
                for c in range(cols):
                    await self.write(mem, r, c, int(array[r, c]))

    async def read_matrix(self, mem: Memory, shape) -> np.ndarray:
        out = np.zeros(shape, dtype=np.int64)
        for r in range(shape[0]):
            for c in range(shape[1]):
                out[r, c] = await self.read(mem, r, c)
        return out

    async def read_vector(self, mem: Memory, size: int) -> np.ndarray:
        return np.array([await self.read(mem, 0, c) for c in range(size)], dtype=np.int64)

    async def configure(self, hyper: FixedHyper, dense: bool = False):
        d = self.dut
        d.hyper.value = pack(self.hyper_layout, {**hyper.as_dict(), "dense": int(dense)})
        await FallingEdge(d.clk)
        d.reseed.value = 1
        await FallingEdge(d.clk)
        d.reseed.value = 0

    async def clear_counters(self):
        d = self.dut
        await FallingEdge(d.clk)
        d.clear_counters.value = 1
        await FallingEdge(d.clk)
        d.clear_counters.value = 0

    async def counters(self) -> dict:
        """Every counter, read through the core's counter port once it is idle."""
        await self.idle()
        d = self.dut
        out = {}
        for c, name in enumerate(ALL_COUNTERS):
            d.counters__addr.value = c
            await FallingEdge(d.clk)
            out[name] = int(d.counters__data.value)
        return out

    async def golden_counters(self) -> dict:
        c = await self.counters()
        return {name: c[name] for name in COUNTERS}
