"""Per-block benches: approximate-OTPE units (``hdl.otpe``) vs. golden formulas."""

import dataclasses
import json

import pytest

from golden.fixed import FixedParams
from hdl.otpe import Normalizer, SurrogateAverageLanes, ZTraceLanes
from sim.runner import run_cocotb
from sim.tb_blocks import PipelineHarness


def _run(component, name, p, **cfg):
    cfg = {"params": dataclasses.asdict(p), "seed": 21, **cfg}
    run_cocotb(component, name=name, test_module="sim.tb_otpe",
               extra_env={"TB_CONFIG": json.dumps(cfg)})


@pytest.mark.parametrize("c_frac, recip_frac", [(8, 16), (0, 5), (3, 9)])
def test_normalizer(c_frac, recip_frac):
    p = FixedParams(n_in=4, n_hid=4, n_out=2, c_frac=c_frac, recip_frac=recip_frac)
    _run(Normalizer(p), f"otpe_norm_{c_frac}_{recip_frac}", p, block="normalizer")


def test_surrogate_average_lanes():
    p = FixedParams(n_in=4, n_hid=8, n_out=2, lanes=2, gsum_bits=12, recip_frac=12)
    _run(PipelineHarness(SurrogateAverageLanes(p, tag_shape=8)), "otpe_average", p,
         block="average")


def test_z_trace_lanes():
    p = FixedParams(n_in=4, n_hid=8, n_out=2, lanes=4, z_bits=14)
    _run(PipelineHarness(ZTraceLanes(p, 4, tag_shape=8)), "otpe_z", p, block="z", lanes=4)
