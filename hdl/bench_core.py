"""Cycle benchmark of the RTL learning core (Verilator), event-driven vs. dense schedule.

Runs ``LearningCore`` on T-Randman input (``golden.data.make_randman``) through the cocotb
whole-core bench (``sim.tb_core``, so every result is also checked against ``FixedCore``),
once in the event-driven mode and once in dense mode, and reports:

* ``accumulate_ops_per_cycle_per_lane``: ``syn_ops / (cyc_accumulate * lanes)``
* gradient cycles sparse vs. dense and the active fraction of neurons in learning steps
* cycles per sample, event vs. dense
* cycles per sample vs. the ideal ``(events x fan-out + active x fan-in) / lanes`` and the
  overhead over it

``python -m hdl.bench_core [out.json]``; ``run()`` returns the same dict.
"""

import dataclasses
import json
import sys
from pathlib import Path

from golden.fixed import FixedHyper, FixedParams
from sim.runner import BUILD, run_cocotb

__all__ = ["run", "run_scenarios", "summarize"]


def run_scenarios(p: FixedParams, base: dict, then: list[dict] = (), name: str = "bench") -> list:
    """Run the whole-core bench (``sim.tb_core``) once: ``base`` then each ``then`` override.

    Every scenario is checked bit for bit against ``FixedCore`` by the bench itself. Returns,
    per scenario, ``[event counters]`` or ``[event, dense]`` (with ``dense_too``); counters
    include the cycle counters and, for inference samples, ``infer_correct``.
    """
    from hdl.core import LearningCore

    result_file = BUILD / f"{name}.counters.json"
    cfg = {"params": dataclasses.asdict(p), "hyper": FixedHyper().as_dict(), **base,
           "then": list(then)}
    run_cocotb(LearningCore(p), name=name, test_module="sim.tb_core",
               extra_env={"TB_CONFIG": json.dumps(cfg), "TB_RESULT": str(result_file)})
    return json.loads(result_file.read_text())


def run(samples: int = 4, T: int = 50, lanes: int = 1, recurrent: bool = False, seed: int = 0,
        out: str | Path | None = None, **params) -> dict:
    """Simulate ``samples`` learning samples of length ``T`` and return the metrics dict."""
    p = FixedParams(lanes=lanes, recurrent=recurrent, **params)
    base = {"samples": samples, "T": T, "seed": seed, "data": "randman", "learn": [True],
            "dense_too": True}
    [[event, dense]] = run_scenarios(p, base, name=f"bench_core_l{lanes}{'_rec' * recurrent}")
    metrics = summarize(p, event, dense)
    metrics.update(samples=samples, T=T, params=dataclasses.asdict(p))
    if out is not None:
        Path(out).write_text(json.dumps(metrics, indent=2))
    return metrics


def summarize(p: FixedParams, event: dict, dense: dict) -> dict:
    n = p.lanes
    samples = max(event["samples"], 1)
    learn_steps = max(event["steps"], 1)
    # ideal: every synaptic operation and every active-neuron synapse at `lanes` per cycle
    ideal = (event["syn_ops"] + event["weight_updates"]) / n / samples
    cycles = event["cyc_busy"] / samples
    return {
        "lanes": n,
        "accumulate_ops_per_cycle_per_lane": event["syn_ops"] / max(event["cyc_accumulate"] * n, 1),
        "gradient_cycles_sparse": event["cyc_gradient"],
        "gradient_cycles_dense": dense["cyc_gradient"],
        "gradient_dense_over_sparse": dense["cyc_gradient"] / max(event["cyc_gradient"], 1),
        "active_fraction": event["active"] / (learn_steps * p.n_hid),
        "gradient_cycles_per_active": event["cyc_gradient"] / max(event["active"], 1),
        "gradient_cycles_per_active_ideal": p.n_out + -(-p.n_pre // n),
        "sample_cycles_event": cycles,
        "sample_cycles_dense": dense["cyc_busy"] / samples,
        "dense_over_event": dense["cyc_busy"] / max(event["cyc_busy"], 1),
        "cycles_per_sample": cycles,
        "ideal_cycles_per_sample": ideal,
        "overhead": cycles / ideal - 1 if ideal else None,
        "phase_cycles_per_sample_event": {k: event[k] / samples for k in event if k.startswith("cyc_")},
        "phase_cycles_per_sample_dense": {k: dense[k] / samples for k in dense if k.startswith("cyc_")},
        "counters_event": event,
        "counters_dense": dense,
    }


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else str(BUILD.parent / "bench_core.json")
    result = run(out=out)
    print(json.dumps({k: v for k, v in result.items() if not k.startswith("counters")}, indent=2))
