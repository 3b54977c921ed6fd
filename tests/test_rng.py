"""Per-block bench: xorshift32 generator (``hdl.rng.Xorshift32``) vs. ``golden.rng``."""

import json

from hdl.rng import Xorshift32
from sim.runner import run_cocotb


def test_rng_lane():
    run_cocotb(Xorshift32(lane=5), name="rng_lane5", test_module="sim.tb_rng",
               extra_env={"TB_CONFIG": json.dumps({"lane": 5, "seed": 14})})
