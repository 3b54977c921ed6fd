"""xorshift32 stochastic-rounding generator (gateware twin of ``golden.rng``).

One generator per hidden gradient lane and one per readout class. A use advances the
generator once; the value used is the *new* state (``golden.rng.LaneRNG.take``). The readout
generators of a serialised readout update (``out_lanes < n_out``) share one datapath in a
:class:`Xorshift32Ring`.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from golden.rng import GOLDEN_GAMMA, MASK32, lane_seed
from .arith import sweep

__all__ = ["xorshift32_next", "lane_gamma", "lane_seed_expr", "Xorshift32", "Xorshift32Ring"]


def xorshift32_next(x) -> Value:
    """One xorshift32 step (13/17/5) of a 32-bit expression."""
    x = Value.cast(x)[:32]
    x = (x ^ (x << 13))[:32]
    x = x ^ (x >> 17)
    x = (x ^ (x << 5))[:32]
    return x


def lane_gamma(lane: int) -> int:
    """The constant ``golden.rng.lane_seed`` mixes into the seed of generator ``lane``."""
    return (GOLDEN_GAMMA * (lane + 1)) & MASK32


def lane_seed_expr(seed, gamma) -> Value:
    """``golden.rng.lane_seed`` as an expression: ``seed ^ gamma``, 1 instead of 0 (``gamma``:
    ``lane_gamma(lane)``, or an expression selecting one). Only bit 0 depends on the zero test
    (the other bits of a zero ``s`` are zero anyway)."""
    s = Value.cast(seed)[:32] ^ gamma
    return Cat(s[0] | ~s[1:].any(), s[1:])


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
            m.d.sync += self.state.eq(lane_seed_expr(self.seed, lane_gamma(self.lane)))
        with m.Elif(self.advance):
            m.d.sync += self.state.eq(self.value)
        return m


class Xorshift32Ring(wiring.Component):
    """``width * slots`` generators used ``width`` at a time, in a fixed cyclic order.

    Generators ``first_lane + s*width + l`` (slot ``s``, lane ``l``) are used slot after
    slot: each ``advance`` uses the current slot (``value`` is its next output), stores the
    new states and moves to the next slot, so ``slots`` advances use every generator once.
    Only one slot has the xorshift logic. One slot: registers; more: a memory of ``slots``
    words (block RAM on the FPGA) whose read port already holds the current slot. A ``load``
    writes the lane seeds of slot 0 in its cycle and of slots 1 .. ``slots - 1`` in the
    following cycles and restarts at slot 0. The memory starts with the seeds of
    ``reset_seed`` but, unlike registers, keeps its states through a reset: ``load`` then.

    Interface attributes
    --------------------
    seed : Signal(32), in
        Held for ``slots`` cycles from ``load``.
    load : Signal(1), in
        Reload every generator from ``lane_seed(seed, lane)``; no ``advance`` in that cycle
        or the ``slots - 1`` cycles after it.
    advance : Signal(1), in
    value : ArrayLayout(unsigned(32), width), out
        ``xorshift32`` of the current slot (combinational).
    """

    def __init__(self, first_lane: int, width: int, slots: int, reset_seed: int = 1):
        self.first_lane, self.width, self.slots = first_lane, width, slots
        self.reset_seed = reset_seed
        super().__init__({
            "seed":    In(32),
            "load":    In(1),
            "advance": In(1),
            "value":   Out(data.ArrayLayout(unsigned(32), width)),
        })

    def elaborate(self, platform):
        m = Module()
        w, S = self.width, self.slots
        word = data.ArrayLayout(unsigned(32), w)
        seeds = [[lane_seed(self.reset_seed, self.first_lane + s * w + l) for l in range(w)]
                 for s in range(S)]
        loading = Signal()
        slot = Signal(range(S))  # slot whose seeds are written
        if S > 1:
            sweep(m, self.load, loading, slot, S, first=1)
        seeding = self.load | loading
        seed_slot = Mux(self.load, 0, slot)
        head, new = Signal(word), Signal(word)  # current slot; what is stored
        for l in range(w):
            gamma = Signal(32, name=f"gamma{l}")  # of the lane in the slot being seeded
            with m.Switch(seed_slot):
                for s in range(S):
                    with m.Case(s):
                        m.d.comb += gamma.eq(lane_gamma(self.first_lane + s * w + l))
            m.d.comb += [self.value[l].eq(xorshift32_next(head[l])),
                         new[l].eq(Mux(seeding, lane_seed_expr(self.seed, gamma),
                                       self.value[l]))]
        if S == 1:
            state = Signal(word, init=seeds[0])
            m.d.comb += head.eq(state)
            with m.If(seeding | self.advance):
                m.d.sync += state.eq(new)
            return m
        m.submodules.states = mem = memory.Memory(shape=word, depth=S, init=seeds,
                                                  attrs={"ram_style": "block"})
        rd, wr = mem.read_port(), mem.write_port()
        cur, nxt = Signal(range(S)), Signal(range(S))
        m.d.comb += [
            nxt.eq(Mux(seeding, 0, Mux(self.advance, Mux(cur == S - 1, 0, cur + 1), cur))),
            rd.addr.eq(nxt), head.eq(rd.data),
            wr.addr.eq(Mux(seeding, seed_slot, cur)), wr.data.eq(new),
            wr.en.eq(seeding | self.advance),
        ]
        m.d.sync += cur.eq(nxt)
        return m
