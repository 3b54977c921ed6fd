"""Behavioural stand-in for ``hdl.core.LearningCore`` (test support only, never in a build).

Same ports as the real core; a thin wrapper around simple memories so that the link can be
tested while (or independently of) the real core:

* ``W``, ``W_OUT``, ``B`` are real memories (read/write through ``mem_cmd``).
* ``V[j]`` reads back ``steps_in_sample + j``, ``SCORE[k]`` reads ``event_sum - k``,
  ``Y[k]`` reads ``hyper.theta + k``.
* a sample's prediction is ``(sum of its event indices + label) mod n_out``.
* counters: ``samples``, ``steps``, ``input_events`` as the real core; ``syn_ops`` =
  events x n_hid; ``active`` counts ``reseed`` pulses; ``weight_updates`` shows
  ``hyper.seed``; ``readout_updates`` shows ``hyper.dense``; ``cyc_busy`` counts busy cycles.
* every STEP keeps the core busy for ``step_cycles`` cycles (tokens are not accepted then).
"""

from amaranth.hdl import Array, Module, Signal, signed
from amaranth.lib import data, memory, wiring

from golden.fixed import FixedParams
from hdl.interface import ALL_COUNTERS, COUNTER_BITS, Memory, TokenKind, core_members


def standin_prediction(step_events, label, n_out):
    """What the stand-in predicts for a sample (host-side model)."""
    total = sum(int(i) for ev in step_events for i in ev)
    return (total + label) % n_out


class StandInCore(wiring.Component):
    def __init__(self, params: FixedParams, step_cycles: int = 8):
        self.p = params
        self.step_cycles = step_cycles
        super().__init__(core_members(params))

    def elaborate(self, platform):
        m = Module()
        p = self.p
        shapes = {Memory.W: (p.n_hid, p.n_pre), Memory.W_OUT: (p.n_out, p.n_hid),
                  Memory.B: (p.n_hid, p.n_out)}
        ports = {}
        for mem, (rows, cols) in shapes.items():
            mm = memory.Memory(shape=signed(p.w_bits), depth=rows * cols, init=[])
            m.submodules[f"mem_{mem.name.lower()}"] = mm
            ports[mem] = (mm.write_port(), mm.read_port(), cols)

        # the counters in flip-flops, read through the counter port like the real core's RAM
        c = Signal(data.StructLayout({name: COUNTER_BITS for name in ALL_COUNTERS}))
        m.d.sync += self.counters.data.eq(
            Array(getattr(c, name) for name in ALL_COUNTERS)[self.counters.addr])
        timer = Signal(range(self.step_cycles + 1))
        label = Signal(8)
        steps = Signal(16)
        event_sum = Signal(32)
        m.d.comb += self.busy.eq(timer != 0)
        with m.If(timer != 0):
            m.d.sync += [timer.eq(timer - 1), c.cyc_busy.eq(c.cyc_busy + 1)]

        # tokens
        tok = self.tokens.payload
        pending = Signal()
        m.d.comb += self.tokens.ready.eq((timer == 0) & ~pending)
        with m.If(self.tokens.valid & self.tokens.ready):
            with m.Switch(tok.kind):
                with m.Case(TokenKind.START):
                    m.d.sync += [label.eq(tok.value), steps.eq(0), event_sum.eq(0)]
                with m.Case(TokenKind.EVENT):
                    m.d.sync += [event_sum.eq(event_sum + tok.value),
                                 c.input_events.eq(c.input_events + 1),
                                 c.syn_ops.eq(c.syn_ops + p.n_hid)]
                with m.Case(TokenKind.STEP):
                    m.d.sync += [steps.eq(steps + 1), c.steps.eq(c.steps + 1),
                                 timer.eq(self.step_cycles)]
                with m.Case(TokenKind.END):
                    m.d.sync += [pending.eq(1), c.samples.eq(c.samples + 1)]
        m.d.comb += [self.result.valid.eq(pending),
                     self.result.payload.prediction.eq((event_sum + label) % p.n_out)]
        with m.If(self.result.valid & self.result.ready):
            m.d.sync += pending.eq(0)

        with m.If(self.reseed):
            m.d.sync += c.active.eq(c.active + 1)
        m.d.comb += [c.weight_updates.eq(self.hyper.seed),
                     c.readout_updates.eq(self.hyper.dense)]
        with m.If(self.clear_counters):
            m.d.sync += [c.samples.eq(0), c.steps.eq(0), c.input_events.eq(0),
                         c.syn_ops.eq(0), c.active.eq(0), c.cyc_busy.eq(0)]

        # memories
        cmd = self.mem_cmd.payload
        rsp_valid = Signal()
        rsp_kind = Signal(3)
        rsp_col = Signal(12)
        m.d.comb += self.mem_cmd.ready.eq(~rsp_valid)
        for mem, (wp, rp, cols) in ports.items():
            addr = cmd.row * cols + cmd.col
            m.d.comb += [wp.addr.eq(addr), wp.data.eq(cmd.data), rp.addr.eq(addr),
                         wp.en.eq(self.mem_cmd.valid & self.mem_cmd.ready & cmd.write
                                  & (cmd.mem == mem)),
                         rp.en.eq(self.mem_cmd.valid & self.mem_cmd.ready)]
        with m.If(self.mem_cmd.valid & self.mem_cmd.ready & ~cmd.write):
            m.d.sync += [rsp_valid.eq(1), rsp_kind.eq(cmd.mem), rsp_col.eq(cmd.col)]
        m.d.comb += self.mem_rsp.valid.eq(rsp_valid)
        with m.If(self.mem_rsp.valid & self.mem_rsp.ready):
            m.d.sync += rsp_valid.eq(0)
        with m.Switch(rsp_kind):
            for mem, (wp, rp, cols) in ports.items():
                with m.Case(mem):
                    m.d.comb += self.mem_rsp.payload.eq(rp.data)
            with m.Case(Memory.V):
                m.d.comb += self.mem_rsp.payload.eq(steps + rsp_col)
            with m.Case(Memory.SCORE):
                m.d.comb += self.mem_rsp.payload.eq(event_sum - rsp_col)
            with m.Case(Memory.Y):
                m.d.comb += self.mem_rsp.payload.eq(self.hyper.theta + rsp_col)
        return m
