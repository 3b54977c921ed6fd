"""cocotb bench: ``CoreDriver.put`` against a token sink whose ``ready`` toggles while
``busy`` is high (``tests/test_skid.py``): every token must be taken exactly once, whether
``put`` is called right after a transfer or from a falling edge."""

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, Timer

from golden.fixed import FixedParams
from hdl.interface import TokenKind
from sim.tb_util import CoreDriver

TOKENS = 300


@cocotb.test()
async def every_token_once(dut):
    Clock(dut.clk, 10, unit="ns", impl="gpi").start()
    dut.tokens__valid.value = 0
    dut.rst.value = 1
    await Timer(35, unit="ns")
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    drv = CoreDriver(dut, FixedParams())
    for i in range(TOKENS):
        if i % 3 == 0:      # called from a falling edge as well as right after a transfer
            await FallingEdge(dut.clk)
        await drv.token(TokenKind.EVENT, i)
    await FallingEdge(dut.clk)
    assert int(dut.count.value) == TOKENS, f"{int(dut.count.value)} tokens taken"
    assert int(dut.total.value) == TOKENS * (TOKENS - 1) // 2
