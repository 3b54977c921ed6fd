"""Spiking datasets in pure NumPy (nothing is downloaded).

All loaders return ``(spikes, labels)`` with spikes a dense ``uint8`` array
``[N, T, n_channels]`` (0/1 unless stated) and labels ``int64 [N]``.

* Randman (Zenke & Vogels 2021, fzenke/randman; OTPE's T-/R-Randman variants)
* SHD (Cramer et al.) from the published HDF5 layout
* sklearn's bundled 8x8 digits, latency- or rate-coded (64 channels)
* conversion to/from tonic-compatible structured event arrays
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "randman_params", "randman_eval", "make_randman", "load_shd", "bin_events",
    "load_digits_spikes", "EVENT_DTYPE", "to_events", "from_events",
]


# ----------------------------------------------------------------------------
# Randman
# ----------------------------------------------------------------------------
def randman_params(n_units: int, dim_manifold: int, alpha: float, rng: np.random.Generator,
                   prec: float = 1e-3, max_f_cutoff: int = 1000, dtype=np.float32):
    """Parameters of one random manifold (torch randman convention).

    theta ~ U(0,1) with shape [n_units, dim_manifold, 3, F], theta[:, :, 0, 0] = 0
    (no bias), F = min(ceil(prec**(-1/alpha)), max_f_cutoff)  (F = 1000 for alpha = 1),
    spectrum s_i = 1/((i+1)**alpha + 1)  (torch/jax backends; the numpy backend of
    fzenke/randman uses 1/(i+1)**alpha instead)."""
    F = int(min(np.ceil(prec ** (-1.0 / alpha)), max_f_cutoff))
    theta = rng.random((n_units, dim_manifold, 3, F)).astype(dtype)
    theta[:, :, 0, 0] = 0
    spect = (1.0 / ((np.arange(F, dtype=np.float64) + 1) ** alpha + 1.0)).astype(dtype)
    return theta, spect


def randman_eval(theta: np.ndarray, spect: np.ndarray, x: np.ndarray, chunk: int = 128):
    """y[n, e] = prod_d f_{e,d}(x[n, d]),
    f_{e,d}(u) = sum_{i=0}^{F-1} theta[e,d,0,i] s_i sin(2 pi (i u theta[e,d,1,i] + theta[e,d,2,i]))
    (note the factor i, not i+1, as in fzenke/randman).  Vectorised over units and
    frequencies, chunked over samples; computed in theta's dtype."""
    E, D, _, F = theta.shape
    dtype = theta.dtype
    x = np.asarray(x, dtype=dtype)
    i = np.arange(F, dtype=dtype)
    two_pi = dtype.type(2 * np.pi)
    y = np.ones((x.shape[0], E), dtype=dtype)
    for d in range(D):
        freq = i[None, :] * theta[:, d, 1, :]            # [E, F]
        phase = theta[:, d, 2, :]                         # [E, F]
        amp = theta[:, d, 0, :] * spect[None, :]          # [E, F]
        for a in range(0, x.shape[0], chunk):
            u = x[a:a + chunk, d]
            arg = two_pi * (u[:, None, None] * freq[None] + phase[None])   # [n, E, F]
            np.sin(arg, out=arg)
            y[a:a + chunk] *= np.einsum("nef,ef->ne", arg, amp)
    return y


def make_randman(n_classes: int = 10, n_units: int = 50, n_steps: int = 50,
                 dim_manifold: int = 3, n_samples_per_class: int = 1000, alpha: float = 1.0,
                 encoding: str = "time", seed: int = 0, shuffle: bool = True,
                 dtype=np.float32):
    """Randman spiking classification dataset.

    Each class k has its own random manifold (own seed drawn from `seed`) and its own
    uniform samples x ~ U[0,1)^dim (unlike OTPE's jax version, which reuses one key
    so that x is identical across classes).  y = manifold(x) is min-max standardised
    per class and unit, (y - min)/(max - min + 1e-7), and mapped to the spike step
    floor(y*T) (clipped to T-1).

    encoding='time'  (T-Randman): each unit fires exactly one spike, at that step.
    encoding='rate'  (R-Randman): the unit is on for steps <= floor(y*T), i.e.
                     floor(yT)+1 spikes, then each (sample, unit) train is randomly
                     permuted in time.
    Returns (spikes uint8 [N, T, n_units], labels int64 [N]), N = n_classes*n_samples_per_class,
    shuffled across classes if `shuffle`."""
    if encoding not in ("time", "rate"):
        raise ValueError(f"encoding must be 'time' or 'rate', not {encoding!r}")
    rng = np.random.default_rng(seed)
    class_seeds = rng.integers(0, 2**31 - 1, size=n_classes)
    steps, labels = [], []
    for k in range(n_classes):
        crng = np.random.default_rng(int(class_seeds[k]))
        theta, spect = randman_params(n_units, dim_manifold, alpha, crng, dtype=dtype)
        x = crng.random((n_samples_per_class, dim_manifold))
        y = randman_eval(theta, spect, x).astype(np.float64)
        mi, ma = y.min(axis=0), y.max(axis=0)
        y = (y - mi) / (ma - mi + 1e-7)
        steps.append(np.clip(np.floor(y * n_steps).astype(np.int64), 0, n_steps - 1))
        labels.append(np.full(n_samples_per_class, k, dtype=np.int64))
    steps = np.concatenate(steps)
    labels = np.concatenate(labels)
    if shuffle:
        idx = rng.permutation(len(labels))
        steps, labels = steps[idx], labels[idx]
    N = len(labels)
    t = np.arange(n_steps)[None, :, None]
    if encoding == "time":
        spikes = (t == steps[:, None, :]).astype(np.uint8)
    else:
        # per (sample, unit) random permutation of time; spike at t iff perm[t] <= step
        perm = np.argsort(rng.random((N, n_steps, n_units)), axis=1)
        spikes = (perm <= steps[:, None, :]).astype(np.uint8)
    return spikes, labels


# ----------------------------------------------------------------------------
# SHD
# ----------------------------------------------------------------------------
def bin_events(times, units, n_steps: int, max_time: float, n_channels: int = 700,
               channel_factor: int = 1, clip: bool = True):
    """Bin one sample's events into [n_steps, ceil(n_channels/channel_factor)].

    Step = floor(t / max_time * n_steps); events with t >= max_time (or t < 0) are
    dropped.  Channel = unit // channel_factor (adjacent channels summed).  With
    clip the counts are clipped to 1 (uint8 0/1), else int32 counts."""
    times = np.asarray(times, dtype=np.float64)
    units = np.asarray(units, dtype=np.int64)
    n_ch = -(-n_channels // channel_factor)
    keep = (times >= 0) & (times < max_time) & (units >= 0) & (units < n_channels)
    b = np.floor(times[keep] / max_time * n_steps).astype(np.int64)
    b = np.minimum(b, n_steps - 1)  # guard against rounding at the upper edge
    c = units[keep] // channel_factor
    out = np.zeros((n_steps, n_ch), dtype=np.int32)
    np.add.at(out, (b, c), 1)
    return np.minimum(out, 1).astype(np.uint8) if clip else out


def load_shd(path, n_steps: int = 100, max_time: float = 1.0, channel_factor: int = 1,
             clip: bool = True, max_samples: int | None = None, n_channels: int = 700):
    """Load an SHD HDF5 file (layout: spikes/times vlen float seconds, spikes/units
    vlen uint16 0..699, labels 0..19) and bin it to n_steps over [0, max_time) s.

    Returns (spikes [N, n_steps, ceil(700/channel_factor)] uint8 (int32 if not clip),
    labels int64 [N]).  Nothing is downloaded: pass the path of a local .h5 file."""
    import h5py

    with h5py.File(path, "r") as f:
        times = f["spikes"]["times"]
        units = f["spikes"]["units"]
        labels = np.asarray(f["labels"][:], dtype=np.int64)
        N = len(labels) if max_samples is None else min(max_samples, len(labels))
        n_ch = -(-n_channels // channel_factor)
        X = np.zeros((N, n_steps, n_ch), dtype=np.uint8 if clip else np.int32)
        for i in range(N):
            X[i] = bin_events(times[i], units[i], n_steps, max_time, n_channels,
                              channel_factor, clip)
    return X, labels[:N]


# ----------------------------------------------------------------------------
# sklearn digits
# ----------------------------------------------------------------------------
def load_digits_spikes(encoding: str = "latency", n_steps: int = 20, max_prob: float = 0.5,
                       min_intensity: float = 1.0 / 16, seed: int = 0):
    """sklearn's bundled 8x8 digits (1797 samples, 10 classes, pixel 0..16) as spikes
    on 64 channels.  v = pixel/16 in [0, 1].

    'latency': one spike per pixel with v >= min_intensity at step
               round((1 - v)*(n_steps - 1)) (brightest first, blank pixels silent).
    'rate'   : Bernoulli spikes, P(spike at each step) = max_prob * v, drawn with `seed`.
    Returns (spikes uint8 [1797, n_steps, 64], labels int64)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    v = d.data.astype(np.float64) / 16.0
    labels = d.target.astype(np.int64)
    N = len(labels)
    if encoding == "latency":
        step = np.rint((1.0 - v) * (n_steps - 1)).astype(np.int64)
        spikes = (np.arange(n_steps)[None, :, None] == step[:, None, :])
        spikes &= (v >= min_intensity)[:, None, :]
    elif encoding == "rate":
        rng = np.random.default_rng(seed)
        spikes = rng.random((N, n_steps, 64)) < (max_prob * v)[:, None, :]
    else:
        raise ValueError(f"encoding must be 'latency' or 'rate', not {encoding!r}")
    return spikes.astype(np.uint8), labels


# ----------------------------------------------------------------------------
# tonic-compatible events
# ----------------------------------------------------------------------------
EVENT_DTYPE = np.dtype([("t", "<i8"), ("x", "<i8"), ("p", "<i8")])


def to_events(spikes: np.ndarray, dt_us: int | None = None) -> np.ndarray:
    """Dense [T, C] spike counts -> tonic-style structured events (t, x, p=1),
    sorted by (t, x); a count n > 1 gives n identical events.
    t is the step index if dt_us is None, else step*dt_us in microseconds (tonic's
    unit, e.g. SHD with sensor_size (700, 1, 1))."""
    spikes = np.asarray(spikes)
    if spikes.ndim != 2:
        raise ValueError(f"spikes must be [T, C], got shape {spikes.shape}")
    t, x = np.nonzero(spikes)
    reps = spikes[t, x].astype(np.int64)
    t = np.repeat(t, reps)
    x = np.repeat(x, reps)
    ev = np.zeros(len(t), dtype=EVENT_DTYPE)
    ev["t"] = t if dt_us is None else t * int(dt_us)
    ev["x"] = x
    ev["p"] = 1
    return ev


def from_events(events: np.ndarray, n_channels: int, n_steps: int,
                dt_us: int | None = None, clip: bool = True) -> np.ndarray:
    """tonic-style events -> dense [n_steps, n_channels].  Step = t (dt_us None) or
    t // dt_us; events outside [0, n_steps) or [0, n_channels) are dropped; the
    polarity is ignored.  clip -> uint8 0/1, else int32 counts."""
    t = np.asarray(events["t"], dtype=np.int64)
    x = np.asarray(events["x"], dtype=np.int64)
    b = t if dt_us is None else t // int(dt_us)
    keep = (b >= 0) & (b < n_steps) & (x >= 0) & (x < n_channels)
    out = np.zeros((n_steps, n_channels), dtype=np.int32)
    np.add.at(out, (b[keep], x[keep]), 1)
    return np.minimum(out, 1).astype(np.uint8) if clip else out
