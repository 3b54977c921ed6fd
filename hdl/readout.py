"""Leaky readout (SPEC.md steps 4, 5), readout weight update and hidden traces (steps 7, 8).

* :class:`Readout` keeps ``y``, ``score`` and ``err``: per step it decays ``y`` (one class per
  cycle, one multiplier), adds one ``W_out`` column per hidden spike (all classes in
  parallel), then saturates ``y`` and updates ``score`` and the error.
* The update of one ``W_out`` column (``out_lanes`` classes per cycle) with stochastic
  rounding is :class:`hdl.update.StochasticUpdateLanes`.
* :class:`ReadoutUpdatePhase` walks every hidden neuron once per learning step: hidden trace
  update (step 7) followed by the update of its ``W_out`` column (step 8).
"""

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from golden.fixed import FixedParams
from .arith import bits_for, sat, sweep
from .interface import hyper_layout
from .otpe import ZTraceLanes, z_word
from .rng import Xorshift32Ring
from .trace import TraceLanes, trace_word
from .update import StochasticUpdateLanes, shares_update, update_signatures

__all__ = ["wout_word", "y_word", "Readout", "ReadoutUpdatePhase"]


def wout_word(p: FixedParams) -> data.ArrayLayout:
    """One ``W_out`` column (all classes of hidden neuron ``j``); also a ``B`` row."""
    return data.ArrayLayout(signed(p.w_bits), p.n_out)


def y_word(p: FixedParams) -> data.ArrayLayout:
    return data.ArrayLayout(signed(p.y_bits), p.n_out)


def label_shape(p: FixedParams):
    return unsigned(bits_for(max(p.n_out - 1, 1)))


class Readout(wiring.Component):
    """Readout state ``y``, ``score``, error ``err`` and the per-step readout update.

    Sequence per step: ``start`` (decay, ``busy`` for about ``n_out`` cycles), then any number
    of ``add_valid`` cycles (one ``W_out`` column of a spiking neuron each), then ``finish``
    (``busy`` for ``chunks + 1`` cycles, ``out_lanes`` classes per cycle): ``y = sat_y(acc)``,
    ``score = sat(score + y)``, ``err = sat_y(y - target * onehot(label))``. ``clear`` and
    ``label`` pass a register first: ``y`` and ``score`` are zero from the second edge after
    ``clear``; a new ``label`` needs one cycle before ``finish``.

    Interface attributes
    --------------------
    clear, start, finish : Signal(1), in
    add_valid : Signal(1), in
    add_word : wout_word, in
    label : in
    hyper : hyper_layout, in
    busy : Signal(1), out
        A flip-flop (low fanout): high the cycle after ``start`` or ``finish`` until done.
    y, err : y_word, out
    score : ArrayLayout(signed(score_bits), n_out), out
    at : label_shape, in
        Class selected onto ``y_at`` and ``score_at`` (combinational) while idle; with
        ``chunks > 1`` the finish uses the ``score_at`` selector.
    y_at : signed(y_bits), out
    score_at : signed(score_bits), out
    """

    def __init__(self, p: FixedParams):
        self.p = p
        super().__init__({
            "clear": In(1), "start": In(1), "finish": In(1), "busy": Out(1),
            "add_valid": In(1), "add_word": In(wout_word(p)),
            "label": In(label_shape(p)),
            "hyper": In(hyper_layout(p)),
            "y": Out(y_word(p)), "err": Out(y_word(p)),
            "score": Out(data.ArrayLayout(signed(p.score_bits), p.n_out)),
            "at": In(label_shape(p)),
            "y_at": Out(signed(p.y_bits)), "score_at": Out(signed(p.score_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        p, h, K = self.p, self.hyper, self.p.n_out
        yf = getattr(p, "y_frac", 0)
        acc_bits = max(p.y_bits, p.w_bits + bits_for(p.n_hid) + yf) + 2
        acc = [Signal(signed(acc_bits), name=f"acc{k}") for k in range(K)]

        # decay: one class per cycle through a 2-stage multiplier pipeline
        decaying = Signal()
        k = Signal(range(K + 1))
        va, vb = Signal(), Signal()
        ka, kb = Signal.like(k), Signal.like(k)
        sel = Signal(signed(p.y_bits))
        prod = Signal(signed(p.y_bits + p.decay_frac + 1))
        sweep(m, self.start, decaying, k, K)
        m.d.comb += self.y_at.eq(self.y[self.at])
        m.d.sync += [va.eq(decaying), ka.eq(k), sel.eq(self.y[k])]
        m.d.sync += [vb.eq(va), kb.eq(ka), prod.eq(sel * h.kappa_q)]
        with m.If(vb):
            with m.Switch(kb):
                for c in range(K):
                    with m.Case(c):
                        m.d.sync += acc[c].eq(prod >> p.decay_frac)
        with m.If(self.add_valid):
            for c in range(K):
                m.d.sync += acc[c].eq(acc[c] + (self.add_word[c] << yf))

        # finish, out_lanes classes per cycle: acc and score selected, y saturated (stage 1),
        # then score and error (stage 2)
        ol, C = p.out_lanes or K, -(-K // (p.out_lanes or K))
        f1, f2 = Signal(), Signal()  # stage 1 (C cycles), stage 2 valid
        c1, c2 = Signal(range(C)), Signal(range(C))
        if C == 1:
            m.d.comb += self.score_at.eq(self.score[self.at])
            m.d.sync += f1.eq(self.finish)
            is_label = Signal(K)  # registered one-hot of the label
            m.d.sync += [is_label[c].eq(self.label == c) for c in range(K)]
        else:
            m.d.comb += self.score_at.eq(self.score[Mux(f1, c1 * ol, self.at)])
            sweep(m, self.finish, f1, c1, C)
        m.d.sync += [f2.eq(f1), c2.eq(c1)]
        for l in range(ol):
            a1 = Signal(signed(acc_bits), name=f"a1_{l}")
            y1 = Signal(signed(p.y_bits), name=f"y1_{l}")
            with m.Switch(c1):
                for c in range(C):
                    with m.Case(c):
                        m.d.comb += a1.eq(acc[min(c * ol + l, K - 1)])
            m.d.comb += y1.eq(sat(a1, p.y_bits))
            if C > 1:  # stage 2 operands registered in stage 1 (no muxes in stage 2)
                y2 = Signal(signed(p.y_bits), name=f"y2_{l}")
                s2 = Signal(signed(p.score_bits), name=f"s2_{l}")
                m.d.sync += y2.eq(y1)
                if l == 0:  # through the shared selector
                    m.d.sync += s2.eq(self.score_at)
                else:
                    with m.Switch(c1):
                        for c in range(C):
                            with m.Case(c):
                                m.d.sync += s2.eq(self.score[min(c * ol + l, K - 1)])
            for c in range(C):
                k = c * ol + l
                if k >= K:
                    continue
                if C == 1:
                    y2, s2 = self.y[k], self.score[k]
                    new_s = sat(s2 + y2, p.score_bits)
                    new_e = sat((y2 >> yf) - Mux(is_label[k], h.target, 0), p.y_bits)
                elif c == 0:  # one adder and subtractor per lane, shared by its classes
                    new_s, new_e = Signal.like(s2), Signal(signed(p.y_bits), name=f"e2_{l}")
                    m.d.comb += [
                        new_s.eq(sat(s2 + y2, p.score_bits)),
                        new_e.eq(sat((y2 >> yf) - Mux(self.label == c2 * ol + l, h.target, 0),
                                     p.y_bits)),
                    ]
                with m.If(f1 & (c1 == c)):
                    m.d.sync += self.y[k].eq(y1)
                with m.If(f2 & (c2 == c)):
                    m.d.sync += [self.score[k].eq(new_s), self.err[k].eq(new_e)]
        clear = Signal()
        m.d.sync += clear.eq(self.clear)
        with m.If(clear):
            for c in range(K):
                m.d.sync += [self.y[c].eq(0), self.score[c].eq(0)]
        # busy = decaying | va | vb | f1 | f2, computed one cycle ahead
        m.d.sync += self.busy.eq(self.start | decaying | va | self.finish | f1)
        return m


class ReadoutUpdatePhase(wiring.Component):
    """Steps 7 and 8 for every hidden neuron ``j`` ascending, one neuron per ``chunks`` cycles.

    ``a_hid[j] = usat(decay(a_hid[j]) + one * s_j)`` then the ``W_out`` column ``j`` update,
    ``out_lanes`` classes per cycle (``chunks = ceil(n_out / out_lanes)`` cycles, class chunk
    ``c`` written with the enables of its classes); readout generator ``k`` advances
    once per neuron (:class:`hdl.rng.Xorshift32Ring`). Runs only in learning steps. With
    ``otpe`` the new ``a_hid[j]`` then updates ``z_hid[j]`` (:class:`hdl.otpe.ZTraceLanes`).

    Interface attributes
    --------------------
    start : Signal(1), in
        Registered: the walk begins on the second edge after it.
    busy : Signal(1), out
        High from the cycle after ``start`` until the last write.
    reseed : Signal(1), in
        Reload the readout generators from ``hyper.seed``.
    err : y_word, in
    tr_rd, tr_wr : trace memory ports (``a_hid[j]`` is source ``n_in + j``). A word is read
        (``tr_rd.en``) at its first hidden lane only; its data must hold while ``en`` is low.
    s_rd : spike memory read port.
    wout_rd, wout_wr : ``W_out`` memory ports (per-class write enables).
    z_rd, z_wr : ``z`` memory ports, addressed like the trace memory (``otpe`` only).
    upd_i, upd_o : the weight update stream to and from the core's shared
        :class:`hdl.update.StochasticUpdateLanes` (only if :func:`hdl.update.shares_update`)
    """

    def __init__(self, p: FixedParams):
        self.p = p
        n, G = p.lanes, p.n_hid // p.lanes
        self.c_tr = -(-(p.n_in + p.n_hid) // n)
        self.out_lanes = p.out_lanes or p.n_out
        self.chunks = -(-p.n_out // self.out_lanes)
        #: the tag of a W_out update: neuron, class chunk
        self.upd_tag = data.StructLayout({"j": unsigned(bits_for(p.n_hid)),
                                          "chunk": unsigned(bits_for(max(self.chunks - 1, 1)))})
        members = {
            "start": In(1), "busy": Out(1), "reseed": In(1),
            "hyper": In(hyper_layout(p)), "err": In(y_word(p)),
            "tr_rd": Out(memory.ReadPort.Signature(addr_width=ceil_log2(self.c_tr),
                                                   shape=trace_word(p, n))),
            "tr_wr": Out(memory.WritePort.Signature(addr_width=ceil_log2(self.c_tr),
                                                    shape=trace_word(p, n), granularity=1)),
            "s_rd": Out(memory.ReadPort.Signature(addr_width=ceil_log2(G), shape=unsigned(n))),
            "wout_rd": Out(memory.ReadPort.Signature(addr_width=ceil_log2(p.n_hid),
                                                     shape=wout_word(p))),
            "wout_wr": Out(memory.WritePort.Signature(addr_width=ceil_log2(p.n_hid),
                                                      shape=wout_word(p), granularity=1)),
        }
        if shares_update(p):
            i_sig, o_sig = update_signatures(p, self.out_lanes, signed(p.y_bits),
                                             unsigned(p.tr_bits), self.upd_tag)
            members.update({"upd_i": Out(i_sig), "upd_o": In(o_sig)})
        if p.otpe:
            ta = ceil_log2(self.c_tr)
            members.update({
                "z_rd": Out(memory.ReadPort.Signature(addr_width=ta, shape=z_word(p, n))),
                "z_wr": Out(memory.WritePort.Signature(addr_width=ta, shape=z_word(p, n),
                                                       granularity=1)),
            })
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        p = self.p
        n = p.lanes
        lb = ceil_log2(n)
        src = unsigned(bits_for(p.n_in + p.n_hid))
        ol, C = self.out_lanes, self.chunks
        # one chunk: the column travels with the trace; else it is read after the trace
        tag1 = data.StructLayout({"j": unsigned(bits_for(p.n_hid)), "src": src,
                                  **({"w": wout_word(p)} if C == 1 else {}),
                                  **({"z": unsigned(p.z_bits)} if p.otpe else {})})
        m.submodules.trace = trace = TraceLanes(p, 1, tag_shape=tag1)
        m.d.comb += trace.hyper.eq(self.hyper)
        if shares_update(p):
            upd_i, upd_o = self.upd_i, self.upd_o
        else:
            m.submodules.update = update = StochasticUpdateLanes(
                p, ol, x_shape=signed(p.y_bits), a_shape=unsigned(p.tr_bits),
                tag_shape=self.upd_tag)
            m.d.comb += update.shift.eq(self.hyper.go_shift)
            upd_i, upd_o = update.i, update.o

        running = Signal()
        j = Signal(range(p.n_hid + 1))
        s_idx = Signal(src)  # n_in + j
        phase = Signal(range(C))  # class chunk of the neuron issued
        last_phase = (phase == C - 1) if C > 1 else 1
        tail = max(StochasticUpdateLanes.LATENCY, ZTraceLanes.LATENCY if p.otpe else 0)
        drain_cycles = TraceLanes.LATENCY + tail + 4 + (C + 2 if C > 1 else 0)
        drain = Signal(range(drain_cycles + 1))
        start = Signal()
        m.d.sync += start.eq(self.start)
        with m.If(start):
            m.d.sync += [running.eq(1), j.eq(0), s_idx.eq(p.n_in), phase.eq(0)]
        with m.Elif(running):
            if C > 1:
                m.d.sync += phase.eq(Mux(last_phase, 0, phase + 1))
            with m.If(last_phase):
                m.d.sync += [j.eq(j + 1), s_idx.eq(s_idx + 1)]
                with m.If(j == p.n_hid - 1):
                    m.d.sync += [running.eq(0), drain.eq(drain_cycles)]
        with m.Elif(drain != 0):
            m.d.sync += drain.eq(drain - 1)
        m.d.comb += self.busy.eq(start | running | (drain != 0))

        # a trace word is read once, at its first hidden lane, and held while its lanes are
        # issued: its lanes are written back while later ones are still to be issued, and a read
        # never meets a write of the same word
        first_lane = (j == 0) | (s_idx[:lb] == 0) if n > 1 else 1
        tr_en = Signal()
        m.d.comb += tr_en.eq(running & (phase == 0) & first_lane)
        m.d.comb += [
            self.tr_rd.addr.eq(s_idx >> lb), self.tr_rd.en.eq(tr_en),
            self.s_rd.addr.eq(j >> lb), self.s_rd.en.eq(1),
            self.wout_rd.en.eq(1),
        ]
        # the words read (stage 1) pass a register each before their lane is selected
        # (stage 2; timing: no logic between a block RAM and a flip-flop)
        v1, v2 = Signal(), Signal()
        j1, src1 = Signal.like(j), Signal(src)
        j2, src2 = Signal.like(j), Signal(src)
        tr_q, s_q = Signal.like(self.tr_rd.data), Signal.like(self.s_rd.data)
        m.d.sync += [v1.eq(running & (phase == 0)), j1.eq(j), src1.eq(s_idx),
                     v2.eq(v1), j2.eq(j1), src2.eq(src1),
                     tr_q.eq(self.tr_rd.data), s_q.eq(self.s_rd.data)]
        tr_lane = src2[:lb] if n > 1 else 0
        s_lane = j2[:lb] if n > 1 else 0
        m.d.sync += [
            trace.i.valid.eq(v2),
            trace.i.payload.a[0].eq(tr_q[tr_lane]),
            trace.i.payload.spike.eq(s_q.bit_select(s_lane, 1)),
            trace.i.payload.tag.j.eq(j2), trace.i.payload.tag.src.eq(src2),
        ]
        a_new = trace.o.payload.a[0]
        t = trace.o.payload.tag
        for l in range(n):
            m.d.comb += self.tr_wr.data[l].eq(a_new)
        m.d.comb += [
            self.tr_wr.addr.eq(t.src >> lb),
            self.tr_wr.en.eq(Mux(trace.o.valid,
                                 (Const(1, unsigned(n)) << (t.src[:lb] if n > 1 else 0))[:n], 0)),
        ]

        # the W_out column update, out_lanes classes (one chunk) per cycle
        u = upd_i.payload
        m.submodules.rng = rng = Xorshift32Ring(n, ol, C)
        m.d.comb += [rng.seed.eq(self.hyper.seed), rng.load.eq(self.reseed)]
        if C == 1:
            m.d.comb += self.wout_rd.addr.eq(j1)
            m.d.sync += trace.i.payload.tag.w.eq(self.wout_rd.data)
            m.d.comb += [rng.advance.eq(trace.o.valid), upd_i.valid.eq(trace.o.valid),
                         u.w.eq(t.w), u.tag.j.eq(t.j), u.r.eq(rng.value)]
            for k in range(p.n_out):
                m.d.comb += [u.x[k].eq(self.err[k]), u.a[k].eq(a_new)]
        else:
            # column j read as a_hid[j] leaves the trace pipeline; both held while the chunks
            # are issued (registered operands)
            got, got_a, got_j = Signal(), Signal(unsigned(p.tr_bits)), Signal.like(t.j)
            m.d.comb += self.wout_rd.addr.eq(t.j)
            m.d.sync += [got.eq(trace.o.valid), got_a.eq(a_new), got_j.eq(t.j)]
            hold_w, hold_a = Signal(wout_word(p)), Signal(unsigned(p.tr_bits))
            hold_j, issuing = Signal.like(t.j), Signal()
            chunk = Signal(range(C))
            with m.If(got):
                m.d.sync += [hold_w.eq(self.wout_rd.data), hold_a.eq(got_a), hold_j.eq(got_j),
                             issuing.eq(1), chunk.eq(0)]
            with m.Elif(issuing):
                m.d.sync += chunk.eq(chunk + 1)
                with m.If(chunk == C - 1):
                    m.d.sync += issuing.eq(0)
            m.d.comb += rng.advance.eq(issuing)
            m.d.sync += [upd_i.valid.eq(issuing), u.tag.j.eq(hold_j), u.tag.chunk.eq(chunk),
                         u.r.eq(rng.value)]
            for l in range(ol):
                m.d.sync += u.a[l].eq(hold_a)
                with m.Switch(chunk):
                    for c in range(C):
                        with m.Case(c):
                            k = min(c * ol + l, p.n_out - 1)
                            m.d.sync += [u.x[l].eq(self.err[k]), u.w[l].eq(hold_w[k])]
        o = upd_o.payload
        for k in range(p.n_out):
            m.d.comb += [self.wout_wr.data[k].eq(o.w[k % ol]),
                         self.wout_wr.en[k].eq(upd_o.valid & (o.tag.chunk == k // ol))]
        m.d.comb += self.wout_wr.addr.eq(o.tag.j)
        if p.otpe:
            m.submodules.z_trace = ztr = ZTraceLanes(p, 1, tag_shape=src)
            zs = ztr.o.payload.tag
            m.d.comb += [self.z_rd.addr.eq(s_idx >> lb), self.z_rd.en.eq(tr_en),
                         ztr.hyper.eq(self.hyper), ztr.i.valid.eq(trace.o.valid),
                         ztr.i.payload.z[0].eq(t.z), ztr.i.payload.a[0].eq(a_new),
                         ztr.i.payload.tag.eq(t.src),
                         self.z_wr.addr.eq(zs >> lb),
                         self.z_wr.en.eq(Mux(ztr.o.valid,
                                             (Const(1, unsigned(n)) << (zs[:lb] if n > 1 else 0))[:n],
                                             0))]
            z_q = Signal.like(self.z_rd.data)
            m.d.sync += [z_q.eq(self.z_rd.data), trace.i.payload.tag.z.eq(z_q[tr_lane])]
            for l in range(n):
                m.d.comb += self.z_wr.data[l].eq(ztr.o.payload.z[0])
        return m
