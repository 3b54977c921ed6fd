"""cocotb bench: the whole ``LearningCore`` against ``golden.fixed.FixedCore``.

Configuration comes as JSON in ``TB_CONFIG`` (see ``tests/test_core.py``). A scoreboard
feeds the same token stream to the RTL and to the golden model and checks, exactly:
the prediction, ``y`` and ``score`` after every sample (and ``V``/``y`` after every step with
``check_steps``), the golden counters, and at the end every weight (``W``, ``W_out``, ``B``).
With ``dense_too`` the same stream runs again in dense mode and must give identical results
with more accumulate / gradient cycles.
"""

import json
import os

import cocotb
import numpy as np

from golden.fixed import FixedCore, FixedHyper, init_weights
from hdl.interface import Memory, TokenKind
from sim.tb_util import CoreDriver, env_config, params_from


def make_samples(cfg, p):
    rng = np.random.default_rng(cfg.get("seed", 0))
    n, T = cfg.get("samples", 3), cfg.get("T", 12)
    kind = cfg.get("data", "bernoulli")
    if kind == "randman":
        from golden.data import make_randman
        spikes, labels = make_randman(n_classes=p.n_out, n_units=p.n_in, n_steps=T,
                                      n_samples_per_class=max(1, -(-n // p.n_out)),
                                      seed=cfg.get("seed", 0))
        spikes, labels = spikes[:n], labels[:n]
    else:
        rate = cfg.get("rate", 0.2)
        labels = rng.integers(0, p.n_out, size=n)
        # class-dependent channel rates: a learnable, T-Randman-like toy task
        proto = rng.random((p.n_out, p.n_in)) * 2 * rate
        spikes = (rng.random((n, T, p.n_in)) < proto[labels][:, None, :]).astype(np.uint8)
    learn = cfg.get("learn", None)
    if learn is None:
        learn = [True] * (n - 1) + [False] if n > 1 else [True]
    return [(spikes[s], int(labels[s]), bool(learn[s % len(learn)])) for s in range(n)]


def initial_weights(cfg, p, hyper):
    w, w_out, b = init_weights(p, cfg.get("seed", 0), cfg.get("w_scale", 0.5),
                               cfg.get("out_scale", 0.5), theta=hyper.theta)
    if "w_fill" in cfg:
        w[...] = cfg["w_fill"]
    if "w_out_fill" in cfg:
        w_out[...] = cfg["w_out_fill"]
    return w, w_out, b


async def run_stream(drv, gold, samples, cfg, tag):
    p = drv.p
    rng = np.random.default_rng(cfg.get("seed", 0) + 1)
    stream_cycles = {}
    infer = {"infer_samples": 0, "infer_correct": 0}
    for s, (raster, label, learn) in enumerate(samples):
        before = await drv.counters()
        if cfg.get("check_steps"):
            await drv.token(TokenKind.START, label, int(learn))
            gold.start_sample(label, learn)
            for t, row in enumerate(raster):
                events = rng.permutation(np.flatnonzero(row))
                for i in events:
                    await drv.token(TokenKind.EVENT, int(i))
                await drv.token(TokenKind.STEP)
                trace = gold.step(np.sort(events))
                await drv.idle()
                v = await drv.read_vector(Memory.V, p.n_hid)
                y = await drv.read_vector(Memory.Y, p.n_out)
                assert (v == trace.v).all(), f"{tag} sample {s} step {t}: V {v} != {trace.v}"
                assert (y == trace.y).all(), f"{tag} sample {s} step {t}: y {y} != {trace.y}"
                if learn and cfg.get("check_step_weights"):
                    w = await drv.read_matrix(Memory.W, gold.w.shape)
                    bad = np.argwhere(w != gold.w)
                    assert not bad.size, f"{tag} sample {s} step {t}: W differs at " \
                        f"{bad[:8].tolist()} rtl {w[tuple(bad.T)][:8]} gold {gold.w[tuple(bad.T)][:8]}" \
                        f" active {trace.active} psi {trace.psi}"
                    wo = await drv.read_matrix(Memory.W_OUT, gold.w_out.shape)
                    bad = np.argwhere(wo != gold.w_out)
                    assert not bad.size, f"{tag} sample {s} step {t}: W_out differs at " \
                        f"{bad[:8].tolist()} rtl {wo[tuple(bad.T)][:8]} gold {gold.w_out[tuple(bad.T)][:8]}"
            prediction = await drv.end()
            expected = gold.end_sample()
        else:
            prediction = await drv.run_sample(raster, label, learn, rng,
                                              noise=cfg.get("noise_events", False))
            expected = gold.run_sample(raster, label, learn)
        assert prediction == expected, f"{tag} sample {s}: prediction {prediction} != {expected}"
        if not learn:
            infer["infer_samples"] += 1
            infer["infer_correct"] += int(prediction == label)
        got = await drv.golden_counters()
        assert got == gold.counters.as_dict(), \
            f"{tag} sample {s}: counters {got} != {gold.counters.as_dict()}"
        # cycle counters of the token stream alone (memory reads below are busy cycles too)
        for name, value in (await drv.counters()).items():
            if name.startswith("cyc_"):
                stream_cycles[name] = stream_cycles.get(name, 0) + value - before.get(name, 0)
        y = await drv.read_vector(Memory.Y, p.n_out)
        score = await drv.read_vector(Memory.SCORE, p.n_out)
        assert (y == gold.y).all(), f"{tag} sample {s}: y {y} != {gold.y}"
        assert (score == gold.score).all(), f"{tag} sample {s}: score {score} != {gold.score}"
        got = await drv.golden_counters()
        assert got == gold.counters.as_dict(), \
            f"{tag} sample {s}: counters {got} != {gold.counters.as_dict()}"
        drv.dut._log.info(f"{tag} sample {s}: prediction {prediction} ok, "
                          f"cycles {stream_cycles['cyc_busy']}")
    v = await drv.read_vector(Memory.V, p.n_hid)
    assert (v == gold.v).all(), f"{tag}: V differs"
    for mem, ref in ((Memory.W, gold.w), (Memory.W_OUT, gold.w_out), (Memory.B, gold.b)):
        got = await drv.read_matrix(mem, ref.shape)
        bad = np.argwhere(got != ref)
        assert not bad.size, f"{tag}: {mem.name} differs at {bad[:8].tolist()} " \
            f"(rtl {[int(got[tuple(i)]) for i in bad[:8]]}, gold {[int(ref[tuple(i)]) for i in bad[:8]]})"
    return {**(await drv.golden_counters()), **stream_cycles, **infer}


@cocotb.test()
async def core_matches_golden(dut):
    base = env_config()
    p = params_from(base)
    drv = CoreDriver(dut, p)
    await drv.start()
    scenarios = []
    # further scenarios (``then``) run in the same simulation: weights reloaded, reseeded
    for n, override in enumerate([{}] + base.get("then", [])):
        cfg = {**base, **override}
        hyper = FixedHyper(**{**base["hyper"], **override.get("hyper", {})})
        samples = make_samples(cfg, p)
        w, w_out, b = initial_weights(cfg, p, hyper)
        modes = [bool(cfg.get("dense", False))] + ([True] if cfg.get("dense_too") else [])
        results = []
        for dense in modes:
            tag = f"scenario {n} {'dense' if dense else 'event'}"
            gold = FixedCore(p, hyper)
            gold.load_weights(w, w_out, b)
            await drv.configure(hyper, dense=dense)
            await drv.load_weights(w, w_out, b)
            await drv.clear_counters()
            counters = await run_stream(drv, gold, samples, cfg, tag)
            results.append(counters)
            dut._log.info(f"{tag} counters: {counters}")
        if len(results) == 2:
            event, dense = results
            for name in gold.counters.as_dict():
                assert event[name] == dense[name], f"{name}: event {event[name]} != dense {dense[name]}"
            assert dense["cyc_accumulate"] > event["cyc_accumulate"]
            assert dense["cyc_gradient"] >= event["cyc_gradient"]
            assert dense["cyc_busy"] > event["cyc_busy"]
        scenarios.append(results)
    # strict memories (built without read-during-write logic, data always used): no read met
    # a write of the same word
    hazards = [key for key, handle in dut._items() if key.endswith("_rw_hazard")]
    assert hazards, "no _rw_hazard flags found"
    hit = [key for key in hazards if int(getattr(dut, key).value)]
    assert not hit, f"read and write of the same word in one cycle: {hit}"
    out = os.environ.get("TB_RESULT")
    if out:  # per scenario: [event-mode counters] or [event, dense]
        with open(out, "w") as f:
            json.dump(scenarios, f)
