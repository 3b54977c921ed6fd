"""The soft-core engine's speed (the iCEBreaker design): ``hdl.soc.SoC`` in Verilator.

The same T-Randman scenario as the dataflow core's bench (``sim.tb_core.make_samples`` with
``data="randman"``, T = 50, ``init_weights(seed 0)``, the default registers), streamed
through the host driver into the virtual board of the SoC with the byte link at one byte
per cycle, so the time measured is the firmware's. Results are checked bit for bit against
``golden.fixed.FixedCore`` (predictions, weights, the model counters).

Cycle counts: the firmware's phase counters (``cyc_*``: cycles inside ``snn_step``, from the
SoC's cycle counter) and, end to end, the simulated cycles from the first request byte to
the last reply byte (frame decoding and replies included).
"""

import numpy as np

from golden.fixed import FixedCore, FixedHyper, FixedParams, init_weights

PHASES = ("cyc_accumulate", "cyc_neuron", "cyc_trace", "cyc_readout", "cyc_gradient")

__all__ = ["soc_section"]


def soc_section(quick: bool, params: FixedParams | None = None, log=print) -> dict:
    from host.device import Device
    from sim.board import VirtualBoard
    from sim.tb_core import make_samples

    p = params or FixedParams(n_in=50, n_hid=128, n_out=10)
    hyper = FixedHyper()
    n = 2 if quick else 6
    samples = make_samples({"data": "randman", "T": 50, "samples": n, "seed": 0,
                            "learn": [True]}, p)
    X = np.stack([s[0] for s in samples])
    y = np.array([s[1] for s in samples])
    weights = init_weights(p, 0, theta=hyper.theta)
    gold = FixedCore(p, hyper)
    gold.load_weights(*weights)
    log(f"soft core: {n} T-Randman samples with learning on the SoC virtual board")
    out = {"params": f"{p.n_in}/{p.n_hid}/{p.n_out}", "samples": n, "T": 50}
    with VirtualBoard(p, design="soc", fast=True) as vb:
        with Device.open(vb.url, params=p, timeout=600) as dev:
            dev.configure(hyper)
            dev.load_weights(*weights)
            dev.read_counters(clear=True)
            vb.control("stats_clear")
            for learn, key in ((True, "learn"), (False, "infer")):
                preds = dev.run_epoch(X, y, learn=learn)
                stats = vb.stats()
                counters = dev.read_counters(clear=True)
                expect = [gold.run_sample(x, int(lab), learn) for x, lab in zip(X, y)]
                if list(preds) != expect:
                    raise AssertionError(f"SoC predictions {list(preds)} != golden {expect}")
                steps = counters["steps"]
                out[key] = {
                    "cycles_per_sample": counters["cyc_busy"] / n,
                    "cycles_per_step": counters["cyc_busy"] / steps,
                    "end_to_end_cycles_per_sample": (stats["d2h_last"] - stats["h2d_first"]) / n,
                    "phase_cycles_per_sample": {k: counters[k] / n for k in PHASES},
                    "active_per_step": counters["active"] / steps,
                }
                vb.control("stats_clear")
            if not (np.array_equal(dev.read_weights(0), gold.w)
                    and np.array_equal(dev.read_weights(1), gold.w_out)):
                raise AssertionError("SoC weights differ from golden.fixed")
    model = gold.counters.as_dict()
    out["bit_exact_with_golden"] = True
    out["model_counters"] = model
    log(f"  {out['learn']['cycles_per_sample']:.0f} cycles per sample learning, "
        f"{out['infer']['cycles_per_sample']:.0f} inference")
    return out
