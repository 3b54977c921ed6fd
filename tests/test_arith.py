"""The saturation helpers (hdl/arith.py) against golden.fixed.sat / usat, exhaustively."""

import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from golden import fixed
from hdl.arith import sat, usat


@pytest.mark.parametrize("shape", [signed(3), signed(4), signed(5), signed(6), signed(8),
                                   unsigned(3), unsigned(4), unsigned(5), unsigned(7)])
def test_saturation_exhaustive(shape):
    """Every value of ``shape`` through sat and usat to 4 bits (narrower, equal and wider
    inputs; signed and unsigned)."""
    x = Signal(shape)
    outs = {(fn, bits): Signal(signed(bits) if fn is sat else unsigned(bits))
            for fn in (sat, usat) for bits in (3, 4, 5)}
    m = Module()
    m.d.comb += [out.eq(fn(x, bits)) for (fn, bits), out in outs.items()]
    golden = {sat: fixed.sat, usat: fixed.usat}
    values = range(-(1 << shape.width - 1), 1 << shape.width - 1) if shape.signed \
        else range(1 << shape.width)

    async def tb(ctx):
        for v in values:
            ctx.set(x, v)
            for (fn, bits), out in outs.items():
                assert ctx.get(out) == int(golden[fn](v, bits)), (fn.__name__, bits, v)

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
