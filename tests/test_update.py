"""Per-block bench: the stochastic-rounding weight update (``StochasticUpdateLanes``) in both
of its uses, the hidden update (``x = m_j``: ``l_bits``) and the readout update
(``x = err_k``: ``y_bits``), against the golden formula."""

import dataclasses
import json

import pytest
from amaranth.hdl import signed, unsigned

from golden.fixed import FixedParams
from hdl.update import StochasticUpdateLanes
from sim.runner import run_cocotb
from sim.tb_blocks import PipelineHarness


@pytest.mark.parametrize("use", ["hidden", "readout"])
def test_update_lanes(use):
    p = FixedParams(n_in=8, n_hid=8, n_out=3, lanes=2)
    # the hidden update multiplies m_j by a trace a_i or (OTPE rule 1) z_i: grad_tr_bits
    lanes, x_bits, a_bits = ((p.lanes, p.l_bits, p.grad_tr_bits) if use == "hidden"
                             else (p.n_out, p.y_bits, p.tr_bits))
    x_shape, a_shape = signed(x_bits), unsigned(a_bits)
    cfg = {"params": dataclasses.asdict(p), "seed": 13, "lanes": lanes,
           "x_shape": [x_shape.width, x_shape.signed], "a_shape": [a_shape.width, a_shape.signed]}
    comp = StochasticUpdateLanes(p, lanes, x_shape, a_shape, tag_shape=8)
    run_cocotb(PipelineHarness(comp), name=f"update_{use}", test_module="sim.tb_update",
               extra_env={"TB_CONFIG": json.dumps(cfg)})
