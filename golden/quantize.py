"""Map between the fixed-point hardware registers and the float reference model.

The float model measures weights, membrane and readout in units of the threshold
(``theta = 1``); the hardware measures them in weight LSBs, so one float unit is
``scale = hyper.theta`` LSBs. With that scale (derivation in ``golden/SPEC.md`` terms):

* ``B err`` carries ``scale**2``, so ``L_int = scale**2 * L / 2**l_shift``;
* ``psi_int = b_th - |V - theta| = scale * psi`` for a triangle of height and half-width
  ``b_th / scale`` (``NetConfig(surrogate_width=surrogate_height=b_th/scale)``);
* a trace of one spike is ``2**tr_frac``.

Hence the float learning rates the shifts implement are
``lr_hidden = scale**2 * 2**tr_frac / 2**(l_shift + psi_shift + g_shift)`` and
``lr_readout = 2**tr_frac / 2**go_shift``.

Rule 1 (approximate OTPE) maps to the float rule ``otpe_approx`` with the same learning
rate: ``gbar_int = scale * gbar`` like ``psi`` and ``z`` has the unit of ``a``, so the shifts
mean the same; the float rule simply sees traces ``z`` about ``1 / (1 - lam)`` larger than
``a``, exactly as the float model does. The float rule decays ``z`` and ``gbar`` with the
readout leak ``kappa`` (the leak of the layer that consumes the spikes), the hardware with
``lam_q``: the mapping requires ``kappa_q == lam_q``.
"""

from dataclasses import replace

import numpy as np

from .config import NetConfig
from .fixed import RULE_OTPE, FixedHyper, FixedParams


#: Rule 1 at a 16x lower learning rate (float 2**-10): the traces ``z`` are about
#: ``1 / (1 - lam)`` = 20x ``a``, and at the OTTT rate 2**-6 both the float ``otpe_approx``
#: and the fixed-point model stay at chance on T-Randman. ``gbar`` is an average (often a few
#: LSBs), so the modulator keeps all its bits (``psi_shift = 0``, ``g_shift`` + 8): with
#: ``psi_shift = 4`` the truncated ``m_j`` cost the fixed-point model 6 points (1000 samples).
OTPE_HYPER = replace(FixedHyper(), rule=RULE_OTPE, psi_shift=0, g_shift=27, go_shift=17)


def learning_rates(p: FixedParams, h: FixedHyper) -> tuple[float, float]:
    """(hidden, readout) float SGD learning rates equivalent to the shift registers."""
    lr_hid = h.theta ** 2 * 2.0 ** (p.tr_frac - h.l_shift - h.psi_shift - h.g_shift)
    lr_out = 2.0 ** (p.tr_frac - h.go_shift)
    return lr_hid, lr_out


def float_config(p: FixedParams, h: FixedHyper, **overrides) -> NetConfig:
    """The float ``NetConfig`` computing the same rule as the hardware (up to rounding).

    Raises ``ValueError`` when the hidden and readout learning rates differ, since the
    float model has a single learning rate, or for rule 1 when ``kappa_q != lam_q``.
    """
    lr_hid, lr_out = learning_rates(p, h)
    if not np.isclose(lr_hid, lr_out):
        raise ValueError(f"hidden and readout learning rates differ ({lr_hid} vs {lr_out})")
    if h.rule == RULE_OTPE and h.kappa_q != h.lam_q:
        raise ValueError(f"rule 1 needs kappa_q == lam_q, not {h.kappa_q} and {h.lam_q}")
    one = float(1 << p.decay_frac)
    b_th = h.b_th / h.theta
    cfg = dict(n_in=p.n_in, n_hidden=(p.n_hid,), n_out=p.n_out, recurrent=p.recurrent,
               alpha=h.alpha_q / one, lam=h.lam_q / one, lam_out=h.lam_q / one,
               kappa=h.kappa_q / one, theta=1.0, surrogate="triangle",
               surrogate_width=b_th, surrogate_height=b_th, b_th=b_th,
               rule="otpe_approx" if h.rule == RULE_OTPE else "ottt",
               feedback="symmetric" if h.feedback == 0 else "random", loss="mse",
               target=h.target / h.theta, lr=lr_hid, optimizer="sgd")
    cfg.update(overrides)
    return NetConfig(**cfg)


def quantize_params(p: FixedParams, h: FixedHyper, params: dict) -> tuple:
    """Float parameters (``golden.float_model.init_params`` keys) to hardware weights.

    Returns ``(w, w_out, b)`` as saturated integers, ``b`` zero when there is no ``B0``.
    """
    hi = (1 << (p.w_bits - 1)) - 1

    def q(x):
        return np.clip(np.round(np.asarray(x) * h.theta), -hi - 1, hi).astype(np.int64)

    w = q(params["W0"])                      # [n_hid, n_in], as W[j, i]
    if p.recurrent:
        w = np.concatenate([w, q(params["R0"])], axis=1)
    w_out = q(params["Wout"])                # [n_out, n_hid]
    b = q(params["B0"].T) if "B0" in params else np.zeros((p.n_hid, p.n_out), dtype=np.int64)
    return w, w_out, b
