"""Stochastic-rounding random numbers: one xorshift32 generator per hardware lane.

The hardware has one 32-bit xorshift generator (Marsaglia 2003, shifts 13/17/5) per
gradient lane and one per readout class. Each *use* advances the generator by one step
and the new state is the output, ``state = x ^= x << 13; x ^= x >> 17; x ^= x << 5``.

Stepping is sequential, so drawing long runs in Python would be slow. xorshift is linear
over GF(2), so ``k`` steps are a 32x32 bit matrix ``M**k``; this module applies such
matrices to whole arrays of states (four byte-indexed lookup tables per matrix) and builds
long runs by doubling. The bits produced are identical to stepping one at a time.
"""

import numpy as np

MASK32 = 0xFFFF_FFFF
GOLDEN_GAMMA = 0x9E37_79B9


def xorshift32_step(x: int) -> int:
    """One step of xorshift32 on a Python int (the reference definition)."""
    x ^= (x << 13) & MASK32
    x ^= x >> 17
    x ^= (x << 5) & MASK32
    return x


def lane_seed(seed: int, lane: int) -> int:
    """Initial state of generator ``lane`` for a 32-bit user ``seed`` (never zero).

    ``(seed ^ (GOLDEN_GAMMA * (lane + 1))) mod 2**32``, with 1 substituted for 0 because
    zero is the fixed point of xorshift.
    """
    s = (seed ^ (GOLDEN_GAMMA * (lane + 1))) & MASK32
    return s or 1


class _Jump:
    """``M**k`` as four 256-entry tables: ``T0[x & 255] ^ T1[(x >> 8) & 255] ^ ...``."""

    def __init__(self, columns: np.ndarray):
        self.columns = columns  # columns[b] = M**k applied to (1 << b)
        byte = np.arange(256, dtype=np.uint32)
        self.tables = []
        for t in range(4):
            table = np.zeros(256, dtype=np.uint32)
            for b in range(8):
                table ^= np.where((byte >> b) & 1, columns[8 * t + b], 0).astype(np.uint32)
            self.tables.append(table)

    def apply(self, x: np.ndarray) -> np.ndarray:
        t0, t1, t2, t3 = self.tables
        return t0[x & 255] ^ t1[(x >> 8) & 255] ^ t2[(x >> 16) & 255] ^ t3[x >> 24]

    def squared(self) -> "_Jump":
        return _Jump(self.apply(self.columns))


_SEED_RUN = 64
_jumps: list[_Jump] = []  # _jumps[n] = M**(_SEED_RUN * 2**n)


def _jump(n: int) -> _Jump:
    if not _jumps:
        cols = np.array([1 << b for b in range(32)], dtype=np.uint64)
        cols = [int(c) for c in cols]
        for _ in range(_SEED_RUN):
            cols = [xorshift32_step(c) for c in cols]
        _jumps.append(_Jump(np.array(cols, dtype=np.uint32)))
    while len(_jumps) <= n:
        _jumps.append(_jumps[-1].squared())
    return _jumps[n]


def xorshift32_run(state: int, n: int) -> np.ndarray:
    """The next ``n`` outputs of a generator in ``state`` (uint32 array, output 0 first)."""
    first = []
    x = state
    for _ in range(min(n, _SEED_RUN)):
        x = xorshift32_step(x)
        first.append(x)
    out = np.array(first, dtype=np.uint32)
    level = 0
    while len(out) < n:
        # out holds _SEED_RUN * 2**level outputs; the next as many are M**len(out) of them.
        out = np.concatenate([out, _jump(level).apply(out)])
        level += 1
    return out[:n]


class LaneRNG:
    """A bank of independent xorshift32 generators, one per lane, with buffered draws.

    ``take(lane, n)`` returns the next ``n`` outputs of generator ``lane`` in order, exactly
    as ``n`` hardware uses of that lane's generator would see them.
    """

    BLOCK = 1 << 16

    def __init__(self, seed: int, lanes: int, first_lane: int = 0):
        self.states = [lane_seed(seed, first_lane + lane) for lane in range(lanes)]
        self._buf = [np.empty(0, dtype=np.uint32) for _ in range(lanes)]
        self._pos = [0] * lanes

    def take(self, lane: int, n: int) -> np.ndarray:
        buf, pos = self._buf[lane], self._pos[lane]
        if pos + n > len(buf):
            more = xorshift32_run(self.states[lane], max(n, self.BLOCK))
            self.states[lane] = int(more[-1])
            buf = np.concatenate([buf[pos:], more])
            pos = 0
            self._buf[lane] = buf
        self._pos[lane] = pos + n
        return buf[pos:pos + n]

    def current_state(self, lane: int) -> int:
        """State of ``lane`` after the draws taken so far (what the hardware register holds)."""
        pos = self._pos[lane]
        return int(self._buf[lane][pos - 1]) if pos else self.states[lane]
