"""Saturating event counters kept in one block RAM instead of flip-flops.

Golden counterpart: ``golden.fixed.Counters`` (each counter is the saturating sum of its
increments). A small accumulator per counter (``pending``) takes the increments; a flusher
walks the counters in turn and adds each accumulator into the RAM word. Logic per counter is
one narrow adder; the 32-bit adder, the saturation and the read-back select exist once.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for

__all__ = ["CounterBank", "counter_read_signature"]


def counter_read_signature(n_counters: int, bits: int) -> wiring.Signature:
    """Read port of a :class:`CounterBank`, seen from the reader: ``addr`` (counter number)
    out, ``data`` in, one cycle later."""
    return wiring.Signature({"addr": Out(range(n_counters)), "data": In(bits)})


class CounterBank(wiring.Component):
    """``len(increments)`` counters of ``bits`` bits, saturating at ``2**bits - 1``.

    Parameters
    ----------
    increments : dict of str to int
        Counter name to the largest increment it gets in one cycle (at least 1). The order
        is the RAM order (counter ``c`` is word ``c``). At least three counters.
    bits : int
        Counter width.

    Interface attributes
    --------------------
    inc : StructLayout of the counters' increments, in
        Added every cycle (each field as wide as its largest increment).
    clear : Signal(1), in
        Zero every counter. Increments presented from this cycle on count; earlier ones do
        not.
    read : ``counter_read_signature`` flipped, in
        ``read.data`` is counter ``read.addr`` of the cycle before. Valid only while ``busy``
        is low (the flusher owns the RAM while it works).
    busy : Signal(1), out
        An increment or a clear is not yet in the RAM.

    Cycle behaviour: an increment presented in cycle ``t`` is in ``pending`` at ``t + 2``;
    the flusher reads counter ``c`` (and takes ``pending[c]``), adds and saturates a cycle
    later, writes a cycle after that. It visits each counter once every
    ``len(increments)`` cycles while anything is pending, so ``pending[c]`` never holds more
    than ``len(increments) + 3`` cycles of increments and is sized for that.
    """

    def __init__(self, increments: dict, *, bits: int = 32):
        if len(increments) < 3:
            raise ValueError(f"at least three counters, not {len(increments)}")
        if any(v < 1 for v in increments.values()):
            raise ValueError(f"every largest increment must be at least 1: {increments!r}")
        self.increments = dict(increments)
        self.bits = bits
        self.n = len(increments)
        #: cycles of increments a pending accumulator may gather before it is flushed
        self.pending_cycles = self.n + 3
        super().__init__({
            "inc": In(data.StructLayout({name: unsigned(bits_for(v))
                                         for name, v in increments.items()})),
            "clear": In(1),
            "read": In(counter_read_signature(self.n, bits)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        n, bits = self.n, self.bits
        names = list(self.increments)
        widths = [bits_for(self.increments[k] * self.pending_cycles) for k in names]
        pw = max(widths)

        m.submodules.ram = ram = memory.Memory(shape=bits, depth=n, init=[0] * n)
        rd = ram.read_port()
        wr = ram.write_port()

        step = [Signal(len(self.inc[k]), name=f"step_{k}") for k in names]
        pending = [Signal(w, name=f"pending_{k}") for k, w in zip(names, widths)]
        stale = Signal(n)                      # cleared: the RAM word is not the count
        c = Signal(range(n))                   # the counter the flusher reads next
        sel = Signal(n, init=1)                # one-hot c
        run = Signal()                         # flushing: something was pending or stale

        # stage 1: the RAM word is read; its pending sum and stale bit are taken
        v1, c1, add1, stale1 = Signal(), Signal(range(n)), Signal(pw), Signal()
        # stage 2: the saturated sum, written the next cycle
        v2, c2, sum2 = Signal(), Signal(range(n)), Signal(bits)

        m.d.sync += [s.eq(self.inc[k]) for s, k in zip(step, names)]
        m.d.comb += [rd.addr.eq(Mux(run, c, self.read.addr)), rd.en.eq(1),
                     self.read.data.eq(rd.data)]
        with m.If(run):
            m.d.sync += [c.eq(Mux(c == n - 1, 0, c + 1)), sel.eq(Cat(sel[-1], sel[:-1])),
                         v1.eq(1), c1.eq(c), stale1.eq((stale & sel) != 0), add1.eq(0)]
            for k in range(n):
                with m.If(sel[k]):
                    m.d.sync += add1.eq(pending[k])
            m.d.sync += stale.eq(stale & ~sel)
        with m.Else():
            m.d.sync += v1.eq(0)
        for k in range(n):
            m.d.sync += pending[k].eq(Mux(run & sel[k], 0, pending[k]) + step[k])

        total = Signal(max(bits, pw) + 1)
        m.d.comb += total.eq(Mux(stale1, 0, rd.data) + add1)
        m.d.sync += [v2.eq(v1), c2.eq(c1),
                     sum2.eq(Mux(total[bits:] != 0, (1 << bits) - 1, total[:bits]))]
        m.d.comb += [wr.addr.eq(c2), wr.data.eq(sum2), wr.en.eq(v2)]

        work = (stale != 0) | (Cat(*pending) != 0) | (Cat(*step) != 0)
        m.d.sync += run.eq(work)
        m.d.comb += self.busy.eq(work | run | v1 | v2)

        with m.If(self.clear):
            m.d.sync += [stale.eq((1 << n) - 1), v1.eq(0), v2.eq(0)]
            m.d.sync += [p_.eq(0) for p_ in pending]
        return m
