"""Network / learning-rule configuration for the float reference model.

`NetConfig` is a frozen (hashable) dataclass; every field is validated in
`__post_init__` so that a bad value fails loudly at construction time with a
message such as ``alpha must be in [0, 1), not 1.5``.

Time is discrete (one step = one tick of the hardware); all decay factors are
per-step multipliers (alpha = exp(-dt/tau_m), kappa = exp(-dt/tau_out)).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from numbers import Integral, Real

SURROGATES = ("triangle", "fast_sigmoid")
RULES = ("bptt", "eprop", "ottt", "otpe_approx", "otpe")
FEEDBACKS = ("symmetric", "random")
LOSSES = ("mse", "ce")
OPTIMIZERS = ("sgd", "adamax")


def _is_int(x) -> bool:
    return isinstance(x, Integral) and not isinstance(x, bool)


def _is_real(x) -> bool:
    return isinstance(x, Real) and not isinstance(x, bool) and math.isfinite(float(x))


@dataclass(frozen=True)
class NetConfig:
    """Sizes, neuron constants, surrogate, learning rule and optimiser settings.

    Sizes
      n_in        number of input channels
      n_hidden    tuple of hidden LIF layer sizes (feed-forward stack, >= 1 layer)
      n_out       number of leaky-integrator readout units (= classes)
      recurrent   if True every hidden layer also has recurrent weights R_l
                  (input s_l[t-1]; no self-connections)
      p           connection probability of the random sparse masks of the hidden
                  input / recurrent weights (the readout is dense); masks are
                  drawn from `seed`.

    Neuron (see golden.float_model for the equations)
      alpha       membrane leak per step, in [0, 1)
      theta       firing threshold (> 0); also the amount subtracted on reset
      kappa       readout leak per step, in [0, 1)

    Surrogate derivative psi(V) (pseudo-derivative dS/dV)
      surrogate         'triangle':     h * max(0, 1 - |V-theta|/width)   (NEST-like)
                        'fast_sigmoid': h / (slope*|V-theta| + 1)**2       (snnTorch/OTPE)
      surrogate_width   triangle half-width (> 0)
      surrogate_slope   fast-sigmoid slope (> 0)
      surrogate_height  h (> 0); 1.0 by default (NEST uses 0.3)
      b_th              active-neuron band (seed 003): psi := 0 wherever
                        |V - theta| >= b_th.  None = no gating.

    Learning
      lam         decay of the presynaptic traces (e-prop zbar, OTTT a_hat);
                  None -> alpha (the exact value for e-prop / OTTT).
      lam_out     decay of the readout's presynaptic trace ybar used by the online
                  rules' readout gradient sum_t err[t] (x) ybar[t]; None -> kappa
                  (exact).  The hardware (golden/SPEC.md) uses its hidden trace,
                  i.e. lam_out = lam.  BPTT ignores it (always exact).
      rule        'bptt' | 'eprop' | 'ottt' | 'otpe_approx' | 'otpe'
      feedback    'symmetric' (transposed forward weights) | 'random' (fixed
                  random matrices B_l with the shapes of the forward weights)
      loss        'mse' : 0.5 * sum_t ||y[t] - target*onehot||^2
                  'ce'  : sum_t  -log softmax(y[t])[label]
      target      MSE target amplitude for the correct class (others 0)
      lr          learning rate
      optimizer   'sgd' | 'adamax'
      w_scale     hidden weights ~ N(0, (w_scale/sqrt(fan_in))^2), fan_in counts
                  only existing (unmasked) connections on average
      w_out_scale readout weights ~ N(0, (w_out_scale/sqrt(n_last))^2)
      seed        seed for weights, masks and random feedback
    """

    n_in: int = 50
    n_hidden: tuple = (128,)
    n_out: int = 10
    recurrent: bool = False
    p: float = 1.0
    alpha: float = 0.9
    theta: float = 1.0
    kappa: float = 0.9
    surrogate: str = "triangle"
    surrogate_width: float = 1.0
    surrogate_slope: float = 25.0
    surrogate_height: float = 1.0
    b_th: float | None = None
    lam: float | None = None
    lam_out: float | None = None
    rule: str = "ottt"
    feedback: str = "symmetric"
    loss: str = "mse"
    target: float = 1.0
    lr: float = 1e-3
    optimizer: str = "sgd"
    w_scale: float = 1.0
    w_out_scale: float = 1.0
    seed: int = 0

    # ------------------------------------------------------------------
    def __post_init__(self):
        def err(msg):
            raise ValueError(msg)

        # sizes
        for name in ("n_in", "n_out"):
            v = getattr(self, name)
            if not _is_int(v) or v < 1:
                err(f"{name} must be a positive integer, not {v!r}")
        nh = self.n_hidden
        if _is_int(nh):
            nh = (int(nh),)
        if isinstance(nh, (list, tuple)):
            nh = tuple(nh)
        else:
            err(f"n_hidden must be a tuple of positive integers, not {self.n_hidden!r}")
        if len(nh) == 0 or not all(_is_int(h) and h >= 1 for h in nh):
            err(f"n_hidden must be a non-empty tuple of positive integers, not {self.n_hidden!r}")
        object.__setattr__(self, "n_hidden", tuple(int(h) for h in nh))
        if self.loss == "ce" and self.n_out < 2:
            err(f"n_out must be >= 2 for the 'ce' loss, not {self.n_out}")
        if not isinstance(self.recurrent, bool):
            err(f"recurrent must be a bool, not {self.recurrent!r}")
        if not _is_real(self.p) or not (0.0 < self.p <= 1.0):
            err(f"p must be in (0, 1], not {self.p!r}")

        # neuron constants
        for name in ("alpha", "kappa"):
            v = getattr(self, name)
            if not _is_real(v) or not (0.0 <= v < 1.0):
                err(f"{name} must be in [0, 1), not {v!r}")
        if not _is_real(self.theta) or self.theta <= 0:
            err(f"theta must be a positive number, not {self.theta!r}")

        # surrogate
        if self.surrogate not in SURROGATES:
            err(f"surrogate must be one of {SURROGATES}, not {self.surrogate!r}")
        for name in ("surrogate_width", "surrogate_slope", "surrogate_height"):
            v = getattr(self, name)
            if not _is_real(v) or v <= 0:
                err(f"{name} must be a positive number, not {v!r}")
        if self.b_th is not None and (not _is_real(self.b_th) or self.b_th <= 0):
            err(f"b_th must be None or a positive number, not {self.b_th!r}")

        # learning
        if self.lam is None:
            object.__setattr__(self, "lam", self.alpha)
        elif not _is_real(self.lam) or not (0.0 <= self.lam < 1.0):
            err(f"lam must be None or in [0, 1), not {self.lam!r}")
        if self.lam_out is None:
            object.__setattr__(self, "lam_out", self.kappa)
        elif not _is_real(self.lam_out) or not (0.0 <= self.lam_out < 1.0):
            err(f"lam_out must be None or in [0, 1), not {self.lam_out!r}")
        if self.rule not in RULES:
            err(f"rule must be one of {RULES}, not {self.rule!r}")
        if self.feedback not in FEEDBACKS:
            err(f"feedback must be one of {FEEDBACKS}, not {self.feedback!r}")
        if self.feedback == "random" and self.rule == "bptt":
            err("feedback='random' is meaningless for rule 'bptt' (exact gradient)")
        if self.loss not in LOSSES:
            err(f"loss must be one of {LOSSES}, not {self.loss!r}")
        if self.optimizer not in OPTIMIZERS:
            err(f"optimizer must be one of {OPTIMIZERS}, not {self.optimizer!r}")
        for name in ("target", "lr", "w_scale", "w_out_scale"):
            v = getattr(self, name)
            if not _is_real(v) or v <= 0:
                err(f"{name} must be a positive number, not {v!r}")
        if not _is_int(self.seed) or self.seed < 0:
            err(f"seed must be a non-negative integer, not {self.seed!r}")

    # ------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        """Number of hidden LIF layers."""
        return len(self.n_hidden)

    @property
    def layer_sizes(self) -> tuple:
        """(n_in, n_hidden..., n_out)."""
        return (self.n_in, *self.n_hidden, self.n_out)

    def replace(self, **kw) -> "NetConfig":
        """Copy with some fields changed (re-validated).  lam follows alpha (and
        lam_out follows kappa) unless given explicitly or previously set to a
        different value."""
        if "alpha" in kw and "lam" not in kw and self.lam == self.alpha:
            kw["lam"] = None
        if "kappa" in kw and "lam_out" not in kw and self.lam_out == self.kappa:
            kw["lam_out"] = None
        return replace(self, **kw)
