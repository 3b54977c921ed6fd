"""xorshift32 stochastic-rounding generator (gateware twin of ``golden.rng``).

One generator per hidden gradient lane and one per readout class. A use advances the
generator once; the value used is the *new* state (``golden.rng.LaneRNG.take``).
"""

from amaranth.hdl import Module, Mux, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from golden.rng import GOLDEN_GAMMA, MASK32, lane_seed

__all__ = ["xorshift32_next", "lane_seed_expr", "Xorshift32"]


def xorshift32_next(x) -> Value:
    """One xorshift32 step (13/17/5) of a 32-bit expression."""
    x = Value.cast(x)[:32]
    x = (x ^ (x << 13))[:32]
    x = x ^ (x >> 17)
    x = (x ^ (x << 5))[:32]
    return x


def lane_seed_expr(seed, lane: int) -> Value:
    """``golden.rng.lane_seed`` as an expression: ``seed ^ gamma*(lane+1)``, 1 instead of 0."""
    s = Value.cast(seed)[:32] ^ ((GOLDEN_GAMMA * (lane + 1)) & MASK32)
    return Mux(s == 0, 1, s)


class Xorshift32(wiring.Component):
    """A xorshift32 generator with a lane-dependent seed.

    Parameters
    ----------
    lane : int
        Generator number ``n`` in ``golden.rng.lane_seed(seed, n)`` (hidden lanes first,
        then readout classes).
    reset_seed : int
        User seed whose lane seed is the state after reset.

    Interface attributes
    --------------------
    seed : Signal(32), in
        User seed (``hyper.seed``).
    load : Signal(1), in
        Reload the state from ``lane_seed(seed, lane)`` (has priority over ``advance``).
    advance : Signal(1), in
        Use the generator: the state becomes ``value``.
    value : Signal(32), out
        The output of the next use, ``xorshift32(state)`` (combinational).
    state : Signal(32), out
        The current state (what ``golden.fixed.FixedCore.rng_states`` reports).
    """

    def __init__(self, lane: int, reset_seed: int = 1):
        self.lane = lane
        self.reset_seed = reset_seed
        super().__init__({
            "seed":    In(32),
            "load":    In(1),
            "advance": In(1),
            "value":   Out(32),
            "state":   Out(32, init=lane_seed(reset_seed, lane)),
        })

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.value.eq(xorshift32_next(self.state))
        with m.If(self.load):
            m.d.sync += self.state.eq(lane_seed_expr(self.seed, self.lane))
        with m.Elif(self.advance):
            m.d.sync += self.state.eq(self.value)
        return m
