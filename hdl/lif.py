"""Hidden LIF layer: synaptic accumulation (SPEC.md step 1) and neuron update (step 2).

* :class:`LifLanes` is the pipelined neuron datapath (leak, input, late subtractive reset,
  threshold, active band and surrogate ``psi``), ``lanes`` neurons per cycle.
* :class:`SynapticAccumulator` adds one weight row ``W[:, i]`` (all hidden neurons, ``lanes``
  per cycle) into the accumulator memory ``I`` per presynaptic event.
* :class:`NeuronPhase` walks all neurons once per step: reads ``V, I, s_prev``, writes
  ``V, s, psi``, clears ``I``, builds the spike / active group lists, and updates the input
  traces (step 3) in the same pass. Built with ``otpe`` it also updates ``gsum`` and the
  input ``z`` traces, and in rule 1 lists ``gbar`` instead of ``psi``.
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from golden.fixed import FixedParams
from .arith import bits_for, grouped_word_select, popcount, sat
from .interface import hyper_layout
from .otpe import SurrogateAverageLanes, ZTraceLanes, gsum_word, z_word
from .trace import TraceLanes, trace_word
from .weights import WeightBank

__all__ = ["v_word", "acc_word", "psi_word", "group_entry", "LifLanes", "SynapticAccumulator",
           "NeuronPhase"]


def v_word(p: FixedParams) -> data.ArrayLayout:
    return data.ArrayLayout(signed(p.v_bits), p.lanes)


def acc_word(p: FixedParams) -> data.ArrayLayout:
    return data.ArrayLayout(signed(p.acc_bits), p.lanes)


def psi_word(p: FixedParams) -> data.ArrayLayout:
    return data.ArrayLayout(unsigned(p.psi_bits), p.lanes)


def group_entry(p: FixedParams, word_shape) -> data.StructLayout:
    """A group-list entry: neuron group ``g`` (neurons ``g*lanes + l``), its word and the mask
    of its non-zero elements (never empty: only groups with one are listed)."""
    return data.StructLayout({"g": unsigned(bits_for(p.n_hid // p.lanes)), "word": word_shape,
                              "mask": unsigned(p.lanes)})


def w_addr_width(p: FixedParams) -> int:
    return ceil_log2(p.n_pre * (p.n_hid // p.lanes))


class LifLanes(wiring.Component):
    """Neuron update of ``lanes`` neurons per cycle, ``LATENCY`` cycles deep.

    ``V' = sat_v((V * alpha_q >> decay_frac) + ((I - theta * s_prev) << v_frac))``,
    ``s = V' >= theta << v_frac``, ``d = |V' - (theta << v_frac)| >> v_frac``,
    ``psi = b_th - d`` if ``d < b_th`` else 0 (``v_frac`` = 0 if the parameters have none).

    Interface attributes
    --------------------
    i : stream (always ready), in
        ``v``, ``acc`` (``I``), ``s`` (previous spikes, a bit per lane), ``tag``.
    o : stream (always ready), out
        ``v`` (new membrane), ``s`` (spikes), ``psi`` (0 when inactive), ``tag``.
    hyper : hyper_layout, in
        Uses ``alpha_q``, ``theta``, ``b_th``.
    """

    LATENCY = 5

    def __init__(self, p: FixedParams, tag_shape=unsigned(1)):
        self.p, self.tag_shape = p, tag_shape
        n = p.lanes
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "v": v_word(p), "acc": acc_word(p), "s": unsigned(n), "tag": tag_shape}),
                always_ready=True)),
            "o": Out(stream.Signature(data.StructLayout({
                "v": v_word(p), "s": unsigned(n), "psi": psi_word(p), "tag": tag_shape}),
                always_ready=True)),
            "hyper": In(hyper_layout(p)),
        })

    def elaborate(self, platform):
        m = Module()
        p, h, n = self.p, self.hyper, self.p.lanes
        vf = getattr(p, "v_frac", 0)
        wide = max(p.v_bits + 1, p.acc_bits + vf) + 2

        def stage(name, shape):
            return [Signal(shape, name=f"{name}{l}") for l in range(n)]

        valid = [Signal(name=f"valid{k}") for k in range(self.LATENCY)]
        tag = [Signal(self.tag_shape, name=f"tag{k}") for k in range(self.LATENCY)]
        m.d.sync += [valid[0].eq(self.i.valid), tag[0].eq(self.i.payload.tag)]
        for k in range(1, self.LATENCY):
            m.d.sync += [valid[k].eq(valid[k - 1]), tag[k].eq(tag[k - 1])]

        # 1: leak product
        prod = stage("prod", signed(p.v_bits + p.decay_frac + 1))
        acc1 = stage("acc1_", signed(p.acc_bits))
        s1 = Signal(n)
        m.d.sync += s1.eq(self.i.payload.s)
        for l in range(n):
            m.d.sync += [prod[l].eq(self.i.payload.v[l] * h.alpha_q),
                         acc1[l].eq(self.i.payload.acc[l])]
        # 2: sum
        total = stage("sum", signed(wide))
        for l in range(n):
            m.d.sync += total[l].eq((prod[l] >> p.decay_frac)
                                    + ((acc1[l] - Mux(s1[l], h.theta, 0)) << vf))
        # 3: saturate
        v3 = stage("v3_", signed(p.v_bits))
        for l in range(n):
            m.d.sync += v3[l].eq(sat(total[l], p.v_bits))
        # 4: distance to threshold
        v4 = stage("v4_", signed(p.v_bits))
        diff = stage("diff", signed(p.v_bits + 1))
        for l in range(n):
            m.d.sync += [v4[l].eq(v3[l]), diff[l].eq(v3[l] - (h.theta << vf))]
        # 5: spike, band, surrogate
        m.d.sync += [self.o.valid.eq(valid[3]), self.o.payload.tag.eq(tag[3])]
        for l in range(n):
            dist = Mux(diff[l] < 0, -diff[l], diff[l]) >> vf
            active = dist < h.b_th
            m.d.sync += [
                self.o.payload.v[l].eq(v4[l]),
                self.o.payload.s[l].eq(diff[l] >= 0),
                self.o.payload.psi[l].eq(Mux(active, h.b_th - dist, 0)),
            ]
        return m


class SynapticAccumulator(wiring.Component):
    """Adds weight rows into the accumulator memory: ``I[j] += W[j, row]`` for all ``j``.

    A row takes ``n_hid / lanes`` cycles (one accumulator word of ``lanes`` neurons per
    cycle); rows follow each other without bubbles unless the accumulator is shorter than
    the read-modify-write loop (then each row is padded to ``HAZARD`` cycles).

    Interface attributes
    --------------------
    rows : stream, in
        ``row`` (presynaptic source ``i``) and ``add`` (0: walk the row without adding, as
        the dense schedule does for sources that did not spike).
    busy : Signal(1), out
        A row is waiting or being walked, or the pipeline is draining.
    row_added : Signal(1), out
        Pulses when a row with ``add`` is accepted (counts ``n_hid`` synaptic operations).
    w_rd : ``lanes`` read ports of the weight banks (same address for every bank; latency
        ``WeightBank.LATENCY``).
    i_rd, i_wr : accumulator memory ports.
    """

    #: an ``I`` word is read at t + L (L = ``WeightBank.LATENCY``) and written at t + L + 3:
    #: it is issued again no sooner than HAZARD cycles later
    HAZARD = 4

    def __init__(self, p: FixedParams):
        self.p = p
        G = p.n_hid // p.lanes
        super().__init__({
            "rows": In(stream.Signature(data.StructLayout({
                "row": unsigned(bits_for(p.n_pre)), "add": unsigned(1)}))),
            "busy": Out(1),
            "row_added": Out(1),
            "w_rd": Out(memory.ReadPort.Signature(addr_width=w_addr_width(p),
                                                  shape=signed(p.w_bits))).array(p.lanes),
            "i_rd": Out(memory.ReadPort.Signature(addr_width=ceil_log2(G), shape=acc_word(p))),
            "i_wr": Out(memory.WritePort.Signature(addr_width=ceil_log2(G), shape=acc_word(p))),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.p
        n, G = p.lanes, p.n_hid // p.lanes
        slots = max(G, self.HAZARD)
        lane_bits = ceil_log2(n)

        # every row enters a one-entry buffer (``rows.ready`` and the walk start come from
        # flip-flops); the walk loads it when free or in its last slot, so rows follow each
        # other without bubbles and an idle walk starts one cycle after the row is taken
        buf_valid, buf_add = Signal(), Signal()
        buf_row = Signal.like(self.rows.payload.row)
        walking = Signal()
        slot = Signal(range(slots))
        addr = Signal(w_addr_width(p))
        rot = Signal(max(1, lane_bits))
        add = Signal()
        last = slot == slots - 1
        load = buf_valid & (~walking | last)
        take = self.rows.valid & self.rows.ready

        m.d.comb += self.rows.ready.eq(~buf_valid)
        with m.If(take):
            m.d.comb += self.row_added.eq(self.rows.payload.add)
            m.d.sync += [buf_valid.eq(1), buf_row.eq(self.rows.payload.row),
                         buf_add.eq(self.rows.payload.add)]
        with m.Elif(load):
            m.d.sync += buf_valid.eq(0)
        with m.If(walking):
            m.d.sync += [slot.eq(slot + 1), addr.eq(addr + 1)]
            with m.If(last):
                m.d.sync += walking.eq(0)
        with m.If(load):
            m.d.sync += [walking.eq(1), slot.eq(0), addr.eq(buf_row * G),
                         rot.eq(buf_row[:lane_bits] if n > 1 else 0), add.eq(buf_add)]

        issue = walking & (slot < G)
        for b in range(n):
            m.d.comb += [self.w_rd[b].addr.eq(addr), self.w_rd[b].en.eq(1)]

        # the issue's valid, group, rotation and add flag, delayed: stage[k] holds them in
        # cycle t + k (the weights are on w_rd in t + L, L = WeightBank.LATENCY)
        L = WeightBank.LATENCY
        stage = [(issue, slot, rot, add)]
        for k in range(1, L + 4):
            regs = (Signal(name=f"v{k}"), Signal(range(max(G, 2)), name=f"g{k}"),
                    Signal.like(rot, name=f"rot{k}"), Signal(name=f"add{k}"))
            m.d.sync += [r.eq(prev) for r, prev in zip(regs, stage[-1])]
            stage.append(regs)
        # t+L: bank outputs registered as they are; the accumulator word read
        m.d.comb += [self.i_rd.addr.eq(stage[L][1]), self.i_rd.en.eq(1)]
        bank = [Signal(signed(p.w_bits), name=f"bank_{b}") for b in range(n)]
        m.d.sync += [bank[b].eq(self.w_rd[b].data) for b in range(n)]
        # t+L+1: weights rotated from banks to lanes; accumulator word registered
        _, _, rot_b, add_b = stage[L + 1]
        w_lane = [Signal(signed(p.w_bits), name=f"w_lane{l}") for l in range(n)]
        i_word = Signal(acc_word(p))
        m.d.sync += i_word.eq(self.i_rd.data)
        for lane in range(n):
            # neuron j = g*n + lane lives in bank (row + lane) mod n
            sel = Signal(signed(p.w_bits), name=f"wsel{lane}")
            with m.Switch(rot_b):
                for r in range(n):
                    with m.Case(r):
                        m.d.comb += sel.eq(bank[(r + lane) % n])
            m.d.sync += w_lane[lane].eq(Mux(add_b, sel, 0))
        # t+L+2: add
        total = Signal(acc_word(p))
        for lane in range(n):
            m.d.sync += total[lane].eq(i_word[lane] + w_lane[lane])
        # t+L+3: write back
        valid_w, g_w = stage[L + 3][:2]
        m.d.comb += [self.i_wr.addr.eq(g_w), self.i_wr.data.eq(total), self.i_wr.en.eq(valid_w)]
        busy = buf_valid | walking
        for v, *_ in stage[1:]:
            busy |= v
        m.d.comb += self.busy.eq(busy)
        return m


class NeuronPhase(wiring.Component):
    """One pass over all neurons (and input traces) per time step.

    Slot ``c`` (``0 <= c < max(n_hid, n_in) / lanes``) reads neuron group ``c`` and input
    trace word ``c``; after the pipeline it writes ``V``, ``s``, ``psi``, clears ``I``, appends
    non-empty spike / active groups to their lists and writes the input traces.

    With ``otpe`` (SPEC.md rule 1) it also reads ``gsum`` and ``z`` with the same addresses;
    ``gsum``/``gbar`` follow the neuron pipeline (:class:`hdl.otpe.SurrogateAverageLanes`,
    every neuron result is written after it), ``z`` follows the input trace pipeline
    (:class:`hdl.otpe.ZTraceLanes`). The listed value (``psi`` memory, active list, counters)
    is ``psi`` in rule 0 and ``gbar`` in rule 1.

    Interface attributes
    --------------------
    start : Signal(1), in
        Start a pass (the group lists are restarted).
    clear : Signal(1), in
        Empty the spike list (start of a sample: no previous spikes).
    busy : Signal(1), out
    learn : Signal(1), in
        Count active neurons (``active``, ``weight_updates``) only in learning steps.
    events : Signal(n_in rounded up to lanes), in
        Input event bitmap of this step.
    spk_count, act_count : out
        Entries in the spike / active group lists.
    spikes_inc, active_inc : out
        Counter increments: spikes and (while learning) active neurons of one group,
        registered (one cycle after the group's result, for one cycle).
    recip : unsigned(recip_bits), in (``otpe`` only)
        The step's ``1 / c`` (``hdl.otpe.Normalizer``), stable during the pass.
    gsum_rd, gsum_wr, z_rd, z_wr : memory ports (``otpe`` only)
        Surrogate sums (one word per group, like ``V``); input ``z`` traces (addressed like
        the trace memory).
    """

    #: Event bitmap words per group in the first step of the per-slot event select.
    EVENT_GROUP = 16

    def __init__(self, p: FixedParams):
        self.p = p
        n, G = p.lanes, p.n_hid // p.lanes
        self.c_in = -(-p.n_in // n)
        self.c_tr = -(-(p.n_in + p.n_hid) // n)
        ga, ta = ceil_log2(G), ceil_log2(self.c_tr)
        members = {
            "start": In(1), "clear": In(1), "busy": Out(1), "learn": In(1),
            "hyper": In(hyper_layout(p)),
            "events": In(self.c_in * n),
            "v_rd": Out(memory.ReadPort.Signature(addr_width=ga, shape=v_word(p))),
            "v_wr": Out(memory.WritePort.Signature(addr_width=ga, shape=v_word(p))),
            "i_rd": Out(memory.ReadPort.Signature(addr_width=ga, shape=acc_word(p))),
            "i_wr": Out(memory.WritePort.Signature(addr_width=ga, shape=acc_word(p))),
            "s_rd": Out(memory.ReadPort.Signature(addr_width=ga, shape=unsigned(n))),
            "s_wr": Out(memory.WritePort.Signature(addr_width=ga, shape=unsigned(n))),
            "psi_wr": Out(memory.WritePort.Signature(addr_width=ga, shape=psi_word(p))),
            "tr_rd": Out(memory.ReadPort.Signature(addr_width=ta, shape=trace_word(p, n))),
            "tr_wr": Out(memory.WritePort.Signature(addr_width=ta, shape=trace_word(p, n),
                                                    granularity=1)),
            "spk_wr": Out(memory.WritePort.Signature(
                addr_width=ga, shape=group_entry(p, unsigned(n)))),
            "act_wr": Out(memory.WritePort.Signature(
                addr_width=ga, shape=group_entry(p, psi_word(p)))),
            "spk_count": Out(bits_for(G)),
            "act_count": Out(bits_for(G)),
            "spikes_inc": Out(bits_for(n)),
            "active_inc": Out(bits_for(n)),
        }
        if p.otpe:
            members.update({
                "recip": In(unsigned(p.recip_bits)),
                "gsum_rd": Out(memory.ReadPort.Signature(addr_width=ga, shape=gsum_word(p))),
                "gsum_wr": Out(memory.WritePort.Signature(addr_width=ga, shape=gsum_word(p))),
                "z_rd": Out(memory.ReadPort.Signature(addr_width=ta, shape=z_word(p, n))),
                "z_wr": Out(memory.WritePort.Signature(addr_width=ta, shape=z_word(p, n),
                                                       granularity=1)),
            })
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        p = self.p
        n, G = p.lanes, p.n_hid // p.lanes
        slots = max(G, self.c_in)
        g_shape = unsigned(bits_for(G))
        tr_tag = {"c": unsigned(bits_for(self.c_tr)), "en": unsigned(n)}
        n_latency, t_latency = LifLanes.LATENCY, TraceLanes.LATENCY
        if p.otpe:
            m.submodules.lif = lif = LifLanes(p, tag_shape=data.StructLayout({
                "g": g_shape, "gsum": gsum_word(p)}))
            m.submodules.trace = trace = TraceLanes(
                p, n, tag_shape=data.StructLayout({**tr_tag, "z": z_word(p, n)}))
            m.submodules.average = avg = SurrogateAverageLanes(p, tag_shape=data.StructLayout({
                "g": g_shape, "v": v_word(p), "s": unsigned(n), "psi": psi_word(p)}))
            m.submodules.z_trace = ztr = ZTraceLanes(p, n, tag_shape=data.StructLayout(tr_tag))
            m.d.comb += [avg.hyper.eq(self.hyper), avg.recip.eq(self.recip),
                         ztr.hyper.eq(self.hyper)]
            n_latency += SurrogateAverageLanes.LATENCY
            t_latency += ZTraceLanes.LATENCY
        else:
            m.submodules.lif = lif = LifLanes(p, tag_shape=g_shape)
            m.submodules.trace = trace = TraceLanes(p, n, tag_shape=data.StructLayout(tr_tag))
        m.d.comb += [lif.hyper.eq(self.hyper), trace.hyper.eq(self.hyper)]

        running = Signal()
        slot = Signal(range(slots + 1))
        drain_cycles = max(n_latency + 1, t_latency) + 3
        drain = Signal(range(drain_cycles + 1))
        with m.If(self.start):
            m.d.sync += [running.eq(1), slot.eq(0)]
        with m.Elif(running):
            m.d.sync += slot.eq(slot + 1)
            with m.If(slot == slots - 1):
                m.d.sync += [running.eq(0), drain.eq(drain_cycles)]
        with m.Elif(drain != 0):
            m.d.sync += drain.eq(drain - 1)
        m.d.comb += self.busy.eq(running | (drain != 0))

        # issue: address every memory with the slot
        ports = [self.v_rd, self.i_rd, self.s_rd, self.tr_rd]
        if p.otpe:
            ports += [self.gsum_rd, self.z_rd]
        for port in ports:
            m.d.comb += [port.addr.eq(slot), port.en.eq(1)]
        nv0 = running & (slot < G)
        tv0 = running & (slot < self.c_in)
        en0 = Signal(n)
        for l in range(n):
            m.d.comb += en0[l].eq(slot * n + l < p.n_in)
        # the slot's event bits in two steps: a word from each group of EVENT_GROUP words
        # (registered), then the group (from the registered slot)
        per_group = min(self.EVENT_GROUP, 1 << ceil_log2(self.c_in))
        pick_group = grouped_word_select(m, self.events, n, per_group, slot)
        # t+1: memory data appears; t+2: registered inputs into the datapaths
        nv1, tv1 = Signal(), Signal()
        c1 = Signal.like(slot)
        en1, ev1 = Signal(n), Signal(n)
        m.d.sync += [nv1.eq(nv0), tv1.eq(tv0), c1.eq(slot), en1.eq(en0)]
        m.d.comb += ev1.eq(pick_group(c1[ceil_log2(per_group):]))
        m.d.sync += [
            lif.i.valid.eq(nv1),
            lif.i.payload.v.eq(self.v_rd.data), lif.i.payload.acc.eq(self.i_rd.data),
            lif.i.payload.s.eq(self.s_rd.data),
            trace.i.valid.eq(tv1), trace.i.payload.tag.c.eq(c1), trace.i.payload.tag.en.eq(en1),
            trace.i.payload.a.eq(self.tr_rd.data), trace.i.payload.spike.eq(ev1),
        ]

        # neuron results: straight from the LIF pipeline, or (otpe) after the surrogate average
        out = lif.o.payload
        walk = Signal(psi_word(p))   # the listed value: psi, or gbar in rule 1
        if p.otpe:
            m.d.sync += [lif.i.payload.tag.g.eq(c1), lif.i.payload.tag.gsum.eq(self.gsum_rd.data),
                         trace.i.payload.tag.z.eq(self.z_rd.data)]
            m.d.comb += [avg.i.valid.eq(lif.o.valid), avg.i.payload.psi.eq(out.psi),
                         avg.i.payload.gsum.eq(out.tag.gsum), avg.i.payload.tag.g.eq(out.tag.g),
                         avg.i.payload.tag.v.eq(out.v), avg.i.payload.tag.s.eq(out.s),
                         avg.i.payload.tag.psi.eq(out.psi)]
            res = avg.o.payload.tag
            valid, g, v_new, s_new = avg.o.valid, res.g, res.v, res.s
            m.d.comb += [walk.eq(Mux(self.hyper.rule, avg.o.payload.gbar.as_value(),
                                     res.psi.as_value())),
                         self.gsum_wr.addr.eq(g), self.gsum_wr.data.eq(avg.o.payload.gsum),
                         self.gsum_wr.en.eq(valid)]
        else:
            m.d.sync += lif.i.payload.tag.eq(c1)
            valid, g, v_new, s_new = lif.o.valid, out.tag, out.v, out.s
            m.d.comb += walk.eq(out.psi)
        # results registered once more before the writes, the lists and the counters, with
        # the group's active mask and whether it has a spike
        r_valid, r_g = Signal(), Signal.like(g)
        r_v, r_s, r_walk = Signal.like(v_new), Signal.like(s_new), Signal.like(walk)
        act_mask, any_spike = Signal(n), Signal()
        m.d.sync += [r_valid.eq(valid), r_g.eq(g), r_v.eq(v_new), r_s.eq(s_new),
                     r_walk.eq(walk), any_spike.eq(s_new != 0)]
        for l in range(n):
            m.d.sync += act_mask[l].eq(walk[l] != 0)
        valid, g, v_new, s_new, walk = r_valid, r_g, r_v, r_s, r_walk
        m.d.comb += [
            self.v_wr.addr.eq(g), self.v_wr.data.eq(v_new), self.v_wr.en.eq(valid),
            self.i_wr.addr.eq(g), self.i_wr.data.eq(0), self.i_wr.en.eq(valid),
            self.s_wr.addr.eq(g), self.s_wr.data.eq(s_new), self.s_wr.en.eq(valid),
            self.psi_wr.addr.eq(g), self.psi_wr.data.eq(walk), self.psi_wr.en.eq(valid),
            self.spk_wr.addr.eq(self.spk_count), self.spk_wr.data.g.eq(g),
            self.spk_wr.data.word.eq(s_new), self.spk_wr.data.mask.eq(s_new),
            self.spk_wr.en.eq(valid & any_spike),
            self.act_wr.addr.eq(self.act_count), self.act_wr.data.g.eq(g),
            self.act_wr.data.word.eq(walk), self.act_wr.data.mask.eq(act_mask),
            self.act_wr.en.eq(valid & (act_mask != 0)),
        ]
        with m.If(self.start | self.clear):
            m.d.sync += [self.spk_count.eq(0), self.act_count.eq(0)]
        with m.Else():
            with m.If(self.spk_wr.en):
                m.d.sync += self.spk_count.eq(self.spk_count + 1)
            with m.If(self.act_wr.en):
                m.d.sync += self.act_count.eq(self.act_count + 1)
        n_active = popcount(act_mask)
        m.d.sync += [self.spikes_inc.eq(Mux(valid, popcount(s_new), 0)),
                     self.active_inc.eq(Mux(valid & self.learn, n_active, 0))]

        # input trace results (then, with otpe, the z traces from the new a)
        m.d.comb += [self.tr_wr.addr.eq(trace.o.payload.tag.c), self.tr_wr.data.eq(trace.o.payload.a),
                     self.tr_wr.en.eq(Mux(trace.o.valid, trace.o.payload.tag.en, 0))]
        if p.otpe:
            zt = ztr.o.payload.tag
            m.d.comb += [ztr.i.valid.eq(trace.o.valid), ztr.i.payload.z.eq(trace.o.payload.tag.z),
                         ztr.i.payload.a.eq(trace.o.payload.a),
                         ztr.i.payload.tag.c.eq(trace.o.payload.tag.c),
                         ztr.i.payload.tag.en.eq(trace.o.payload.tag.en),
                         self.z_wr.addr.eq(zt.c), self.z_wr.data.eq(ztr.o.payload.z),
                         self.z_wr.en.eq(Mux(ztr.o.valid, zt.en, 0))]
        return m
