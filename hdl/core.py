"""The learning core: bit-exact gateware twin of ``golden.fixed.FixedCore``.

The core owns the memories and the per-step phase sequencer; the arithmetic lives in one
component per concern:

========================  ==========================================================
``lif.SynapticAccumulator``  step 1: weight rows into ``I`` (``lanes`` synapses/cycle)
``lif.NeuronPhase``          steps 2, 3: ``V``, spikes, ``psi``, group lists, ``a_in``
``readout.Readout``          steps 4, 5: ``y``, ``score``, ``err``
``gradient.GradientWalk``    step 6: active-neuron walk, stochastic rounding
``readout.ReadoutUpdatePhase``  steps 7, 8: ``a_hid`` and ``W_out`` update
``scheduler.GroupWalker``    spike / active lists (or all neurons in dense mode)
``otpe.Normalizer``          (``otpe``) ``c`` and ``recip``, started by the STEP token
========================  ==========================================================

Memories: ``W`` in ``lanes`` skewed banks (SPEC.md section 6, :class:`hdl.weights.WeightBank`:
block RAM in ``w_chunk``-word memories or, with ``weight_ram = "spram"``, single-port RAM;
read latency ``WeightBank.LATENCY``); ``W_out`` and ``B`` one word
of ``n_out`` weights per hidden neuron; ``V``, ``I``, ``s``, ``psi`` one word of ``lanes``
neurons per group; the traces of all presynaptic sources (inputs, then hidden), ``lanes``
per word. Built with ``otpe``: ``gsum`` (like ``V``) and ``z`` (like the traces); the neuron
pass waits for ``recip`` in rule 1, and the gradient walk reads ``z`` instead of ``a``.

Per step (STEP token): [dense: walk every input] -> [recurrent: walk previous spikes] ->
neuron pass -> readout -> (learning) gradient walk -> (learning) trace/readout update. In
the event-driven mode input events are accumulated as their EVENT tokens arrive.
"""

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.utils import ceil_log2

from golden.fixed import FixedParams
from .arith import bits_for, grouped_word_select, sat
from .counters import CounterBank
from .gradient import GradientWalk
from .interface import (ALL_COUNTERS, COUNTER_BITS, Memory, TokenKind, core_members,
                        mem_cmd_layout, token_layout)
from .lif import (NeuronPhase, SynapticAccumulator, acc_word, group_entry, psi_word, v_word,
                  w_addr_width)
from .otpe import Normalizer, gsum_word, z_word
from .readout import Readout, ReadoutUpdatePhase, label_shape, wout_word
from .scheduler import GroupWalker
from .skid import SkidBuffer
from .trace import trace_word
from .update import StochasticUpdateLanes, shares_update
from .weights import WeightBank

__all__ = ["LearningCore"]


def _drive_read(m, port, sources):
    """Multiplex read port ``port`` between ``(condition, unit_port)`` sources (first wins);
    the data goes back to every source."""
    for index, (cond, src) in enumerate(sources):
        with (m.If(cond) if index == 0 else m.Elif(cond)):
            m.d.comb += [port.addr.eq(src.addr), port.en.eq(src.en)]
    for _, src in sources:
        m.d.comb += src.data.eq(port.data)


def _drive_write(m, port, sources):
    """Multiplex write port ``port``; a 1-bit enable of a source writes the whole word."""
    for index, (cond, src) in enumerate(sources):
        en = src.en
        if len(en) == 1 and len(port.en) > 1:
            en = en.replicate(len(port.en))
        with (m.If(cond) if index == 0 else m.Elif(cond)):
            m.d.comb += [port.addr.eq(src.addr), port.data.eq(src.data), port.en.eq(en)]


class _Port:
    """Plain signals standing in for a unit's memory port (host access, clear pass)."""

    def __init__(self, port, name):
        self.addr = Signal.like(port.addr, name=f"{name}_addr")
        self.data = Signal.like(port.data, name=f"{name}_data")
        self.en = Signal(len(port.en), name=f"{name}_en")


class LearningCore(wiring.Component):
    """The learning core (see the module docstring and golden/SPEC.md).

    Parameters
    ----------
    params : FixedParams
        Sizes and widths; ``lanes`` must be a power of two dividing ``n_hid``.

    Interface attributes
    --------------------
    tokens : stream of token_layout, in
        EVENT(value = input index) / STEP / START(value = label, learn) / END. Taken into a
        register slice (``ready`` is a flip-flop); the core acts on a token a cycle later.
    result : stream of result_layout, out
        One prediction per END token.
    mem_cmd : stream of mem_cmd_layout, in
        Host read/write of ``W, W_OUT, B`` and read of ``V, SCORE, Y`` (through a register
        slice like ``tokens``).
    mem_rsp : stream of signed(32), out
        One response per read command (0 for an index out of range).
    hyper : hyper_layout, in
        Run-time registers, held stable.
    reseed : Signal(1), in
        Reload every generator from ``hyper.seed``.
    counters : ``counters_signature()`` flipped, in
        Read port of the golden counters and per-phase cycle counters (32 bit, saturating;
        a :class:`~hdl.counters.CounterBank` in block RAM): ``data`` is counter ``addr`` one
        cycle later, valid while ``busy`` is low.
    clear_counters : Signal(1), in
    busy : Signal(1), out
        A step, sample operation or memory command is in progress, a counter update is not
        yet in the counter RAM, or a token or command waits in an input slice.

    Raises
    ------
    ValueError
        If ``lanes`` is not a power of two.
    """

    #: Bits of the input bitmap per word in the EVENT look-up (group, word, then bit).
    LOOKUP_WORD = 32
    #: Bitmap words per group in the first stage of the EVENT look-up.
    LOOKUP_GROUP = 4

    def __init__(self, params: FixedParams):
        if params.lanes & (params.lanes - 1):
            raise ValueError(f"lanes must be a power of two, not {params.lanes!r}")
        self.p = params
        super().__init__(core_members(params))

    def elaborate(self, platform):
        m = Module()
        p, h = self.p, self.hyper
        n, G = p.lanes, p.n_hid // p.lanes
        lb = ceil_log2(n)
        c_in = -(-p.n_in // n)
        c_tr = -(-(p.n_in + p.n_hid) // n)

        # -- memories -------------------------------------------------------------------
        def mem(name, shape, depth, granularity=None, rw_free=False, block=False, strict=False):
            """Read and write port of a new memory. ``rw_free``: no word is read in the cycle
            it is written (or that read data is unused); the read port is then an asynchronous
            read and a data register (same timing), which lets synthesis (``no_rw_check``)
            skip the read-during-write emulation logic after a block RAM. ``block``: a block
            RAM even when shallow (ECP5: a wide distributed RAM spreads its write enable and
            address over dozens of slices all over the chip). ``strict`` (with ``rw_free``): no
            word is read in the cycle it is written, not even for unused data; a sticky
            ``<name>_rw_hazard`` flag (read enabled at the address being written) is checked by
            the test bench and, driving nothing, removed by synthesis."""
            attrs = {"no_rw_check": 1} if rw_free else {}
            if block:
                attrs["ram_style"] = "block"
            m.submodules[name] = mm = memory.Memory(
                shape=shape, depth=depth, init=[], attrs=attrs or None)
            wr = mm.write_port(granularity=granularity)
            if not rw_free:
                return mm.read_port(), wr
            comb = mm.read_port(domain="comb")
            rd = _Port(comb, f"{name}_rd")
            m.d.comb += comb.addr.eq(rd.addr)
            with m.If(rd.en):
                m.d.sync += rd.data.eq(comb.data)
            if strict:
                hazard = Signal(name=f"{name}_rw_hazard")
                m.d.sync += hazard.eq(hazard | (rd.en & wr.en.any() & (rd.addr == wr.addr)))
            return rd, wr

        def registered_write(wr, name):
            """A write port whose address, data and enable reach the memory through flip-flops:
            the write lands one cycle later (no W word is read again that soon)."""
            port = _Port(wr, name)
            m.d.sync += [wr.addr.eq(port.addr), wr.data.eq(port.data), wr.en.eq(port.en)]
            return port

        # W: read latency WeightBank.LATENCY; in block RAM a bank spans many block RAMs
        # across the chip and its write port is registered (the gradient walk's single-port
        # schedule already registers its write-backs)
        w_ports = []
        for b in range(n):
            m.submodules[f"w{b}"] = bank = WeightBank(signed(p.w_bits), p.n_pre * G,
                                                      kind=p.weight_ram, chunk=p.w_chunk)
            w_ports.append((bank.rd, bank.wr if p.weight_ram == "spram"
                            else registered_write(bank.wr, f"w{b}_wr")))
        wout_rd, wout_wr = mem("w_out", wout_word(p), p.n_hid, granularity=1, rw_free=True)
        b_rd, b_wr = mem("b", wout_word(p), p.n_hid, granularity=1, rw_free=True)
        v_rd, v_wr = mem("v", v_word(p), G, rw_free=True, block=True)
        i_rd, i_wr = mem("i", acc_word(p), G, rw_free=True, block=True)
        s_rd, s_wr = mem("s", unsigned(n), G, rw_free=True)
        psi_rd, psi_wr = mem("psi", psi_word(p), G, rw_free=True)
        # traces: a word is read before any of its lanes is written back (neuron pass: the slot
        # runs ahead of the write-backs; update pass: each word is read once, at its first lane)
        tr_rd, tr_wr = mem("trace", trace_word(p, n), c_tr, granularity=1, rw_free=True,
                           strict=True)
        spk_rd, spk_wr = mem("spikes", group_entry(p, unsigned(n)), G, rw_free=True)
        act_rd, act_wr = mem("actives", group_entry(p, psi_word(p)), G, rw_free=True)
        if p.otpe:
            gsum_rd, gsum_wr = mem("gsum", gsum_word(p), G, block=True)
            z_rd, z_wr = mem("z", z_word(p, n), c_tr, granularity=1, rw_free=True, strict=True)

        # -- units ----------------------------------------------------------------------
        m.submodules.accumulator = acc = SynapticAccumulator(p)
        m.submodules.neuron = neuron = NeuronPhase(p)
        m.submodules.spike_walker = spk_walk = GroupWalker(p, unsigned(1))
        m.submodules.active_walker = act_walk = GroupWalker(p, unsigned(p.psi_bits))
        m.submodules.readout = readout = Readout(p)
        m.submodules.gradient = grad = GradientWalk(p)
        m.submodules.update = upd = ReadoutUpdatePhase(p)
        if shares_update(p):
            # one weight-update datapath: the gradient walk's in GRADIENT, else the readout's
            m.submodules.update_lanes = ulanes = StochasticUpdateLanes(
                p, n, x_shape=signed(max(p.l_bits, p.y_bits)),
                a_shape=unsigned(max(p.grad_tr_bits, p.tr_bits)),
                tag_shape=unsigned(max(grad.upd_tag.size, upd.upd_tag.size)))
        if p.otpe:
            m.submodules.normalizer = norm = Normalizer(p)
            m.d.comb += [norm.hyper.eq(h), neuron.recip.eq(norm.recip)]

        # tokens and memory commands enter through register slices (registered ready)
        m.submodules.token_in = token_in = SkidBuffer(token_layout())
        m.submodules.cmd_in = cmd_in = SkidBuffer(mem_cmd_layout())
        wiring.connect(m, wiring.flipped(self.tokens), token_in.i)
        wiring.connect(m, wiring.flipped(self.mem_cmd), cmd_in.i)
        tokens, mem_cmd = token_in.o, cmd_in.o

        label = Signal(label_shape(p))
        learn = Signal()
        bitmap = Signal(c_in * n)
        for unit in (neuron, readout, grad, upd):
            m.d.comb += unit.hyper.eq(h)
        m.d.comb += [
            neuron.events.eq(bitmap), neuron.learn.eq(learn), readout.label.eq(label),
            grad.err.eq(readout.err), upd.err.eq(readout.err),
            grad.reseed.eq(self.reseed), upd.reseed.eq(self.reseed),
            spk_walk.count.eq(neuron.spk_count), act_walk.count.eq(neuron.act_count),
            act_walk.dense.eq(h.dense),
        ]
        # group lists and psi: single users
        m.d.comb += [
            spk_rd.addr.eq(spk_walk.list_rd.addr), spk_rd.en.eq(spk_walk.list_rd.en),
            spk_walk.list_rd.data.as_value().eq(spk_rd.data.as_value()),
            act_rd.addr.eq(act_walk.list_rd.addr), act_rd.en.eq(act_walk.list_rd.en),
            act_walk.list_rd.data.eq(act_rd.data),
            psi_rd.addr.eq(act_walk.dense_rd.addr), psi_rd.en.eq(act_walk.dense_rd.en),
            act_walk.dense_rd.data.eq(psi_rd.data),
        ]
        m.d.comb += [spk_wr.addr.eq(neuron.spk_wr.addr), spk_wr.en.eq(neuron.spk_wr.en),
                     spk_wr.data.as_value().eq(neuron.spk_wr.data.as_value()),
                     act_wr.addr.eq(neuron.act_wr.addr), act_wr.en.eq(neuron.act_wr.en),
                     act_wr.data.eq(neuron.act_wr.data),
                     psi_wr.addr.eq(neuron.psi_wr.addr), psi_wr.en.eq(neuron.psi_wr.en),
                     psi_wr.data.eq(neuron.psi_wr.data)]

        # -- host command registers -----------------------------------------------------
        cmd = Signal(mem_cmd_layout())
        rsp = Signal(signed(32))
        row, col = cmd.row, cmd.col
        # the command decoded in MEM_DECODE into flip-flops: range checks, W bank, one-hot
        # bank / class selects, the saturated write data, which memory is written
        host_w_ok, host_cols_ok, host_rows_ok = Signal(), Signal(), Signal()
        host_k_ok, host_v_ok = Signal(), Signal()     # SCORE, Y: col k; V: col j
        host_bank = Signal(range(max(n, 2)))
        bank_hot, row_hot, col_hot = Signal(n), Signal(p.n_out), Signal(p.n_out)
        writes = {mem: Signal(name=f"writes_{mem.name.lower()}")
                  for mem in (Memory.W, Memory.W_OUT, Memory.B)}
        wdata = Signal(signed(p.w_bits))

        def one_hot(index, width):
            """``width`` bits, bit ``index`` set (its low bits only: range-checked apart)."""
            return (Const(1, width) << index[:max(1, ceil_log2(width))])[:width]
        # memory addresses of the command, registered with it
        host_w_addr = Signal(w_addr_width(p))
        host_col_addr = Signal(range(p.n_hid))  # W_out column: j of W_OUT (col), of B (row)

        # -- sequencer ------------------------------------------------------------------
        count = Signal(range(max(G, c_tr, p.n_in, p.n_out) + 1))
        best = Signal(signed(p.score_bits))
        best_k = Signal(label_shape(p))
        rd_fire = Signal()  # readout: a W_out column read last cycle
        settled = Signal()  # idle with no counter update pending (registered, below)

        # per-counter increments, as wide as the largest one
        inc_max = {"syn_ops": p.n_hid, "readout_updates": p.n_out * p.n_hid,
                   "spikes": n, "active": n, "weight_updates": n * p.n_pre}
        inc = {name: Signal(bits_for(inc_max.get(name, 1)), name=f"inc_{name}")
               for name in ALL_COUNTERS}
        m.d.comb += [inc["syn_ops"].eq(Mux(acc.row_added, p.n_hid, 0)),
                     inc["spikes"].eq(neuron.spikes_inc), inc["active"].eq(neuron.active_inc),
                     inc["weight_updates"].eq(neuron.active_inc * p.n_pre)]

        tok = tokens.payload
        idx = tok.value
        # an accepted EVENT sets its bitmap bit one cycle later, from flip-flops: a one-hot
        # word select and a one-hot bit select (bitmap bit i = word i // LOOKUP_WORD,
        # bit i % LOOKUP_WORD), so each bit's enable is one LUT
        lw = self.LOOKUP_WORD
        n_words = -(-len(bitmap) // lw)
        set_word, set_bit = Signal(n_words), Signal(lw)
        for i in range(len(bitmap)):
            with m.If(set_word[i // lw] & set_bit[i % lw]):
                m.d.sync += bitmap[i].eq(1)
        m.d.sync += [set_word.eq(0), set_bit.eq(0)]

        # ``st(state)``: the sequencer is in ``state`` (a named signal, usable before the FSM
        # is built; with a one-hot state encoding, as in the ECP5 build, one flip-flop)
        in_state = {}

        def st(state):
            if state not in in_state:
                in_state[state] = Signal(name=f"in_{state.lower()}")
            return in_state[state]

        def goto(state):
            m.next = state

        mem_waits = [f"MEM_WAIT{k}" for k in range(WeightBank.LATENCY)]

        # dense mode walks every input row: a copy of the bitmap shifted one bit per row
        dense_bits = Signal.like(bitmap)

        # the look-up of an EVENT at the head of the token slice, in three registered stages
        # while it waits (a group of LOOKUP_GROUP bitmap words, the one-hot selects, the range
        # and forwarding flags; then the word; then the bit; a bit set meanwhile is forwarded):
        # the token is taken in the fourth cycle, so an EVENT takes at least four cycles.
        # ``look3`` implies the state IDLE and an EVENT at the head (a waiting token stays),
        # so the EVENT is handled outside the state decode.
        head_event = tokens.valid & (tok.kind == TokenKind.EVENT) & st("IDLE")
        ev_take = Signal()
        head_stays = head_event & ~ev_take  # (an EVENT at the head is taken by ev_take only)
        look1, look2, look3 = Signal(), Signal(), Signal()
        m.d.sync += [look1.eq(head_stays), look2.eq(look1 & head_stays),
                     look3.eq(look2 & head_stays)]
        bit_sel, word_sel = idx[:ceil_log2(lw)], idx[ceil_log2(lw):]
        lg = self.LOOKUP_GROUP
        pick_group = grouped_word_select(m, bitmap, lw, lg, word_sel)
        # the index taken last cycle: its bit is not yet in the bitmap words read now
        taken_idx, taken_valid = Signal.like(idx), Signal()
        in_range1, forward1 = Signal(), Signal()
        word_hot1, bit_hot1 = Signal(n_words), Signal(lw)
        m.d.sync += [in_range1.eq(idx < p.n_in), forward1.eq(taken_valid & (taken_idx == idx)),
                     word_hot1.eq(Const(1, n_words) << word_sel),
                     bit_hot1.eq(Const(1, lw) << bit_sel)]
        word2, fresh2 = Signal(lw), Signal()
        m.d.sync += [word2.eq(pick_group(word_sel[ceil_log2(lg):])),
                     fresh2.eq(in_range1 & ~forward1)]
        ev_new = Signal()
        m.d.sync += ev_new.eq(fresh2 & ~word2.bit_select(bit_sel, 1))
        m.d.comb += ev_take.eq(look3 & (h.dense | acc.rows.ready))
        # event mode: every EVENT goes to the accumulator, which walks the row of one seen
        # before (or out of range) without adding it
        m.d.comb += [acc.rows.valid.eq(look3 & ~h.dense), acc.rows.payload.row.eq(idx),
                     acc.rows.payload.add.eq(ev_new)]
        m.d.sync += [taken_valid.eq(ev_take & in_range1), taken_idx.eq(idx)]
        with m.If(ev_take):
            m.d.comb += tokens.ready.eq(1)
            with m.If(in_range1):   # (again if seen)
                m.d.sync += [set_word.eq(word_hot1), set_bit.eq(bit_hot1)]
            with m.If(ev_new):
                m.d.comb += inc["input_events"].eq(1)

        def start_step_tail(next_from_acc=True):
            """After the accumulation phases: the neuron pass (with otpe: once recip is ready)."""
            if p.otpe:
                goto("NORM_WAIT")
            else:
                m.d.comb += neuron.start.eq(1)
                goto("NEURON")

        # STEP, START and END are taken in IDLE once the core has settled (a STEP also waits
        # for the normalizer, which it starts); the condition comes from flip-flops only.
        # (``norm.busy`` a cycle late: the core is not settled in the cycles after a STEP)
        control = tokens.valid & (tok.kind != TokenKind.EVENT) & st("IDLE") & settled
        if p.otpe:
            norm_busy = Signal()
            m.d.sync += norm_busy.eq(norm.busy)
            control &= (tok.kind != TokenKind.STEP) | ~norm_busy
        take_control = Signal()
        m.d.comb += take_control.eq(control)
        with m.If(take_control):
            m.d.comb += tokens.ready.eq(1)

        with m.FSM() as sequencer:
            with m.State("IDLE"):
                with m.If(tokens.valid):
                    with m.Switch(tok.kind):
                        # EVENT: handled above (look3)
                        with m.Case(TokenKind.STEP):
                            with m.If(take_control):
                                if p.otpe:
                                    m.d.comb += norm.start.eq(1)
                                with m.If(h.dense):
                                    m.d.sync += [count.eq(0), dense_bits.eq(bitmap)]
                                    goto("ACC_DENSE")
                                with m.Elif(Const(p.recurrent)):
                                    m.d.comb += spk_walk.start.eq(1)
                                    goto("ACC_REC")
                                with m.Else():
                                    start_step_tail()
                        with m.Case(TokenKind.START):
                            with m.If(take_control):
                                m.d.sync += [label.eq(idx), learn.eq(tok.learn), count.eq(0)]
                                m.d.comb += [readout.clear.eq(1), neuron.clear.eq(1)]
                                if p.otpe:
                                    m.d.comb += norm.clear.eq(1)
                                goto("CLEAR")
                        with m.Case(TokenKind.END):
                            with m.If(take_control):
                                m.d.sync += count.eq(0)
                                goto("ARGMAX")
                with m.Elif(mem_cmd.valid & settled):
                    m.d.comb += mem_cmd.ready.eq(1)
                    new = mem_cmd.payload
                    m.d.sync += [cmd.eq(new), host_w_addr.eq(new.col * G + (new.row >> lb)),
                                 host_col_addr.eq(Mux(new.mem == Memory.B, new.row, new.col))]
                    goto("MEM_DECODE")

            # dense mode: every input row, adding only those that spiked
            with m.State("ACC_DENSE"):
                m.d.comb += [acc.rows.valid.eq(1), acc.rows.payload.row.eq(count),
                             acc.rows.payload.add.eq(dense_bits[0])]
                with m.If(acc.rows.ready):
                    m.d.sync += [count.eq(count + 1), dense_bits.eq(dense_bits >> 1)]
                    with m.If(count == p.n_in - 1):
                        if p.recurrent:
                            m.d.comb += spk_walk.start.eq(1)
                            goto("ACC_REC")
                        else:
                            goto("ACC_DRAIN")
            # recurrent sources: previous spikes (all hidden neurons in dense mode)
            with m.State("ACC_REC"):
                m.d.comb += [acc.rows.valid.eq(spk_walk.o.valid),
                             acc.rows.payload.row.eq(p.n_in + spk_walk.o.payload.j),
                             acc.rows.payload.add.eq(spk_walk.o.payload.flag),
                             spk_walk.o.ready.eq(acc.rows.ready)]
                with m.If(~spk_walk.busy):
                    goto("ACC_DRAIN")
            with m.State("ACC_DRAIN"):
                with m.If(~acc.busy):
                    start_step_tail()
            if p.otpe:
                with m.State("NORM_WAIT"):   # rule 0 does not use recip: no wait
                    with m.If(~norm.busy | ~h.rule):
                        m.d.comb += neuron.start.eq(1)
                        goto("NEURON")
            with m.State("NEURON"):
                with m.If(~neuron.busy):
                    m.d.comb += readout.start.eq(1)
                    goto("READOUT_DECAY")
            with m.State("READOUT_DECAY"):
                with m.If(~readout.busy):
                    m.d.comb += spk_walk.start.eq(1)
                    goto("READOUT_ADD")
            with m.State("READOUT_ADD"):
                m.d.comb += spk_walk.o.ready.eq(1)
                with m.If(~spk_walk.busy):
                    goto("READOUT_TAIL")
            with m.State("READOUT_TAIL"):
                m.d.comb += readout.finish.eq(1)
                goto("READOUT_FINISH")
            with m.State("READOUT_FINISH"):
                with m.If(~readout.busy):
                    with m.If(learn):
                        m.d.comb += act_walk.start.eq(1)
                        goto("GRADIENT")
                    with m.Else():
                        goto("STEP_DONE")
            with m.State("GRADIENT"):
                wiring.connect(m, act_walk.o, grad.neurons)
                with m.If(~act_walk.busy & ~grad.busy):
                    m.d.comb += upd.start.eq(1)
                    goto("TRACE")
            with m.State("TRACE"):
                with m.If(~upd.busy):
                    goto("STEP_DONE")
            with m.State("STEP_DONE"):
                m.d.sync += bitmap.eq(0)
                m.d.comb += inc["steps"].eq(1)
                with m.If(learn):
                    m.d.comb += inc["readout_updates"].eq(p.n_out * p.n_hid)
                goto("IDLE")

            with m.State("CLEAR"):
                m.d.sync += [count.eq(count + 1), bitmap.eq(0)]
                with m.If(count == max(G, c_tr) - 1):
                    goto("IDLE")
            with m.State("ARGMAX"):
                m.d.sync += count.eq(count + 1)
                with m.If(count == p.n_out - 1):
                    goto("ARGMAX_LAST")
            with m.State("ARGMAX_LAST"):  # the last score is read
                goto("ARGMAX_COMPARE")
            with m.State("ARGMAX_COMPARE"):  # and compared
                goto("RESULT")
            with m.State("RESULT"):
                m.d.comb += [self.result.valid.eq(1),
                             self.result.payload.prediction.eq(best_k)]
                with m.If(self.result.ready):
                    m.d.comb += inc["samples"].eq(1)
                    goto("IDLE")

            with m.State("MEM_DECODE"):
                bank = (row + col)[:lb] if n > 1 else 0
                m.d.sync += [
                    host_w_ok.eq((row < p.n_hid) & (col < p.n_pre)),
                    host_cols_ok.eq((row < p.n_out) & (col < p.n_hid)),   # W_OUT: row k, col j
                    host_rows_ok.eq((row < p.n_hid) & (col < p.n_out)),   # B: row j, col k
                    host_k_ok.eq(col < p.n_out), host_v_ok.eq(col < p.n_hid),
                    host_bank.eq(bank), bank_hot.eq(Const(1, n) << bank),
                    row_hot.eq(one_hot(row, p.n_out)), col_hot.eq(one_hot(col, p.n_out)),
                    wdata.eq(sat(cmd.data, p.w_bits))]
                m.d.sync += [writes[mem].eq(cmd.write & (cmd.mem == mem)) for mem in writes]
                with m.If(cmd.write):
                    goto("MEM_WRITE")
                with m.Else():
                    goto("MEM_READ")
            with m.State("MEM_WRITE"):
                goto("IDLE")
            # host read-back pipeline (below): the address (MEM_READ), held while the words
            # arrive (W after WeightBank.LATENCY cycles, the other memories after one), word
            # registers, element registers, rsp
            with m.State("MEM_READ"):
                goto(mem_waits[0])
            for k, wait in enumerate(mem_waits):
                with m.State(wait):
                    goto(mem_waits[k + 1] if k + 1 < len(mem_waits) else "MEM_ELEM")
            with m.State("MEM_ELEM"):
                goto("MEM_SELECT")
            with m.State("MEM_SELECT"):
                goto("MEM_RESP")
            with m.State("MEM_RESP"):
                m.d.comb += [self.mem_rsp.valid.eq(1), self.mem_rsp.payload.eq(rsp)]
                with m.If(self.mem_rsp.ready):
                    goto("IDLE")


        # -- argmax: the class selected (registered), its score registered, then compared
        # with the best so far ----------------------------------------------------------------
        at_valid, at_k = Signal(), Signal(label_shape(p))
        arg_valid, arg_k = Signal(), Signal(label_shape(p))
        arg_score = Signal(signed(p.score_bits))
        k_count = count[:len(arg_k)]
        # the readout's class selector: argmax (count), host read-back (col)
        m.d.sync += [readout.at.eq(Mux(st("ARGMAX"), k_count, col)),
                     at_valid.eq(st("ARGMAX")), at_k.eq(k_count)]
        m.d.sync += [arg_valid.eq(at_valid), arg_k.eq(at_k), arg_score.eq(readout.score_at)]
        with m.If(arg_valid & ((arg_k == 0) | (arg_score > best))):
            m.d.sync += [best.eq(arg_score), best_k.eq(arg_k)]

        # -- host read-back: the words read (MEM_WAIT*), one element per memory (MEM_ELEM), then
        # the memory selected into rsp (MEM_SELECT); no more than a few LUT levels per cycle
        word_w = Signal(data.ArrayLayout(signed(p.w_bits), n))
        word_wout, word_b, word_v = Signal(wout_word(p)), Signal(wout_word(p)), Signal(v_word(p))
        m.d.sync += [word_wout.eq(wout_rd.data), word_b.eq(b_rd.data), word_v.eq(v_rd.data)]
        m.d.sync += [word_w[b].eq(w_ports[b][0].data) for b in range(n)]
        elem = {mem: Signal(signed(32), name=f"elem_{mem.name.lower()}") for mem in Memory}
        m.d.sync += [
            elem[Memory.W].eq(Mux(host_w_ok, word_w[host_bank], 0)),
            elem[Memory.W_OUT].eq(Mux(host_cols_ok, word_wout[row], 0)),
            elem[Memory.B].eq(Mux(host_rows_ok, word_b[col], 0)),
            elem[Memory.V].eq(Mux(host_v_ok, word_v[col[:lb]] if n > 1 else word_v[0], 0)),
            elem[Memory.SCORE].eq(Mux(host_k_ok, readout.score_at, 0)),
            elem[Memory.Y].eq(Mux(host_k_ok, readout.y_at, 0)),
        ]
        with m.If(st("MEM_SELECT")):
            with m.Switch(cmd.mem):
                for mem in Memory:
                    with m.Case(mem):
                        m.d.sync += rsp.eq(elem[mem])
        in_mem = st("MEM_READ") | st("MEM_WRITE")
        for wait in mem_waits:
            in_mem |= st(wait)
        in_acc = st("ACC_DENSE") | st("ACC_REC") | st("ACC_DRAIN")
        in_readout = (st("READOUT_DECAY") | st("READOUT_ADD") | st("READOUT_TAIL")
                      | st("READOUT_FINISH"))
        clearing = st("CLEAR")
        m.d.comb += spk_walk.dense.eq(h.dense & ~in_readout)

        # -- readout: one W_out column per spike ------------------------------------------
        # (the column registered before the adders: it is added two cycles after the read)
        add_valid, add_word = Signal(), Signal(wout_word(p))
        m.d.sync += [rd_fire.eq(st("READOUT_ADD") & spk_walk.o.valid),
                     add_valid.eq(rd_fire), add_word.eq(wout_rd.data)]
        m.d.comb += [readout.add_valid.eq(add_valid), readout.add_word.eq(add_word)]

        # -- host and clear-pass port stand-ins --------------------------------------------
        host_w_rd = [_Port(w_ports[b][0], f"host_w{b}_rd") for b in range(n)]
        host_w_wr = [_Port(w_ports[b][1], f"host_w{b}_wr") for b in range(n)]
        w_write = st("MEM_WRITE") & writes[Memory.W] & host_w_ok
        for b in range(n):
            m.d.comb += [host_w_rd[b].addr.eq(host_w_addr), host_w_rd[b].en.eq(1),
                         host_w_wr[b].addr.eq(host_w_addr), host_w_wr[b].data.eq(wdata),
                         host_w_wr[b].en.eq(w_write & bank_hot[b])]
        host_col = _Port(wout_rd, "host_col_rd")
        m.d.comb += [host_col.addr.eq(host_col_addr), host_col.en.eq(1)]
        host_wout_wr, host_b_wr = _Port(wout_wr, "host_wout_wr"), _Port(b_wr, "host_b_wr")
        for k in range(p.n_out):
            m.d.comb += [host_wout_wr.data[k].eq(wdata), host_b_wr.data[k].eq(wdata)]
        m.d.comb += [
            host_wout_wr.addr.eq(col),
            host_wout_wr.en.eq(Mux(st("MEM_WRITE") & writes[Memory.W_OUT] & host_cols_ok,
                                   row_hot, 0)),
            host_b_wr.addr.eq(row),
            host_b_wr.en.eq(Mux(st("MEM_WRITE") & writes[Memory.B] & host_rows_ok, col_hot, 0)),
        ]
        host_v = _Port(v_rd, "host_v_rd")
        m.d.comb += [host_v.addr.eq(col >> lb), host_v.en.eq(1)]
        zero = {}
        for name, port in (("v", v_wr), ("i", i_wr), ("s", s_wr), ("tr", tr_wr)):
            zero[name] = z = _Port(port, f"clear_{name}")
            m.d.comb += [z.addr.eq(count), z.data.eq(0)]
        m.d.comb += [zero["v"].en.eq(count < G), zero["i"].en.eq(count < G),
                     zero["s"].en.eq(count < G),
                     zero["tr"].en.eq(Mux(count < c_tr, (1 << n) - 1, 0))]
        if p.otpe:
            for name, port in (("gsum", gsum_wr), ("z", z_wr)):
                zero[name] = z = _Port(port, f"clear_{name}")
                m.d.comb += [z.addr.eq(count), z.data.eq(0)]
            m.d.comb += [zero["gsum"].en.eq(count < G),
                         zero["z"].en.eq(Mux(count < c_tr, (1 << n) - 1, 0))]

        # -- memory port multiplexing -----------------------------------------------------
        st_neuron, st_grad, st_trace = st("NEURON"), st("GRADIENT"), st("TRACE")
        for b in range(n):
            _drive_read(m, w_ports[b][0], [(st_grad, grad.w_rd[b]), (in_mem, host_w_rd[b]),
                                           (Const(1), acc.w_rd[b])])
            _drive_write(m, w_ports[b][1], [(st_grad, grad.w_wr[b]), (Const(1), host_w_wr[b])])
        _drive_read(m, i_rd, [(st_neuron, neuron.i_rd), (Const(1), acc.i_rd)])
        _drive_write(m, i_wr, [(clearing, zero["i"]), (st_neuron, neuron.i_wr),
                               (Const(1), acc.i_wr)])
        _drive_read(m, v_rd, [(st_neuron, neuron.v_rd), (Const(1), host_v)])
        _drive_write(m, v_wr, [(clearing, zero["v"]), (Const(1), neuron.v_wr)])
        spk_dense = _Port(s_rd, "spk_dense_rd")
        m.d.comb += [spk_dense.addr.eq(spk_walk.dense_rd.addr), spk_dense.en.eq(spk_walk.dense_rd.en),
                     spk_walk.dense_rd.data.as_value().eq(spk_dense.data)]
        _drive_read(m, s_rd, [(st_neuron, neuron.s_rd), (st_trace, upd.s_rd),
                              (Const(1), spk_dense)])
        _drive_write(m, s_wr, [(clearing, zero["s"]), (Const(1), neuron.s_wr)])
        # the gradient walk reads a (rule 0) or z (rule 1) at the same address
        grad_a = _Port(tr_rd, "grad_a_rd")
        m.d.comb += [grad_a.addr.eq(grad.tr_rd.addr), grad_a.en.eq(grad.tr_rd.en)]
        _drive_read(m, tr_rd, [(st_neuron, neuron.tr_rd), (st_grad, grad_a),
                               (Const(1), upd.tr_rd)])
        _drive_write(m, tr_wr, [(clearing, zero["tr"]), (st_neuron, neuron.tr_wr),
                                (Const(1), upd.tr_wr)])
        if p.otpe:
            grad_z = _Port(z_rd, "grad_z_rd")
            m.d.comb += [grad_z.addr.eq(grad.tr_rd.addr), grad_z.en.eq(grad.tr_rd.en)]
            for l in range(n):
                m.d.comb += grad.tr_rd.data[l].eq(Mux(h.rule, grad_z.data[l], grad_a.data[l]))
            _drive_read(m, z_rd, [(st_neuron, neuron.z_rd), (st_grad, grad_z),
                                  (Const(1), upd.z_rd)])
            _drive_write(m, z_wr, [(clearing, zero["z"]), (st_neuron, neuron.z_wr),
                                   (Const(1), upd.z_wr)])
            _drive_read(m, gsum_rd, [(Const(1), neuron.gsum_rd)])
            _drive_write(m, gsum_wr, [(clearing, zero["gsum"]), (Const(1), neuron.gsum_wr)])
        else:
            m.d.comb += grad.tr_rd.data.eq(grad_a.data)
        # W_out: readout columns, symmetric feedback, update pass, host
        rd_col = _Port(wout_rd, "readout_col_rd")
        m.d.comb += [rd_col.addr.eq(spk_walk.o.payload.j), rd_col.en.eq(1)]
        fb_wout = _Port(wout_rd, "fb_wout_rd")
        fb_b = _Port(b_rd, "fb_b_rd")
        for fb in (fb_wout, fb_b):
            m.d.comb += [fb.addr.eq(grad.fb_rd.addr), fb.en.eq(grad.fb_rd.en)]
        m.d.comb += grad.fb_rd.data.eq(Mux(h.feedback, fb_b.data.as_value(),
                                           fb_wout.data.as_value()))
        _drive_read(m, wout_rd, [(st("READOUT_ADD"), rd_col), (st_grad, fb_wout),
                                 (st_trace, upd.wout_rd), (Const(1), host_col)])
        _drive_write(m, wout_wr, [(st_trace, upd.wout_wr), (Const(1), host_wout_wr)])
        host_b = _Port(b_rd, "host_b_rd")
        m.d.comb += [host_b.addr.eq(row), host_b.en.eq(1)]
        _drive_read(m, b_rd, [(st_grad, fb_b), (Const(1), host_b)])
        _drive_write(m, b_wr, [(Const(1), host_b_wr)])

        if shares_update(p):
            m.d.comb += ulanes.shift.eq(Mux(st_grad, h.g_shift, h.go_shift))
            for unit, active in ((grad, st_grad), (upd, ~st_grad)):
                ui, uo = unit.upd_i, unit.upd_o
                with m.If(active):
                    m.d.comb += [ulanes.i.valid.eq(ui.valid),
                                 ulanes.i.payload.r.eq(ui.payload.r),
                                 ulanes.i.payload.w.eq(ui.payload.w),
                                 ulanes.i.payload.tag.eq(ui.payload.tag)]
                    for l in range(n):
                        m.d.comb += [ulanes.i.payload.x[l].eq(ui.payload.x[l]),
                                     ulanes.i.payload.a[l].eq(ui.payload.a[l])]
                m.d.comb += [uo.valid.eq(ulanes.o.valid & active),
                             uo.payload.w.eq(ulanes.o.payload.w),
                             uo.payload.tag.eq(ulanes.o.payload.tag[:unit.upd_tag.size])]

        # -- counters: in a CounterBank (block RAM); ``busy`` stays up until its RAM holds every
        # increment (every counter moves only while the core is busy, except input_events: a
        # new EVENT taken while idle). Tokens other than EVENT and memory commands are taken
        # from the slices only when ``settled``: registered, idle with nothing in the last
        # two cycles (``pending``, ``added``: busy, or an EVENT taken), and nothing taken
        # then (only what the sequencer takes while idle makes it busy again)
        m.submodules.counters = bank = CounterBank(
            {name: max(1, inc_max.get(name, 1)) for name in ALL_COUNTERS}, bits=COUNTER_BITS)
        m.d.comb += [getattr(bank.inc, name).eq(inc[name]) for name in ALL_COUNTERS]
        m.d.comb += bank.clear.eq(self.clear_counters)
        wiring.connect(m, wiring.flipped(self.counters), bank.read)

        busy, pending, added = Signal(), Signal(), Signal()
        m.d.comb += busy.eq(~st("IDLE") | acc.busy)
        m.d.sync += [pending.eq(busy | (inc["input_events"] != 0)), added.eq(pending)]
        took = (tokens.valid & tokens.ready) | (mem_cmd.valid & mem_cmd.ready)
        m.d.sync += settled.eq(~busy & ~pending & ~added & ~took)
        m.d.comb += self.busy.eq(busy | pending | added | bank.busy | tokens.valid
                                 | mem_cmd.valid)
        m.d.comb += [
            inc["cyc_accumulate"].eq(in_acc | (st("IDLE") & acc.busy)),
            inc["cyc_neuron"].eq(st_neuron | (st("NORM_WAIT") if p.otpe else 0)),
            inc["cyc_readout"].eq(in_readout),
            inc["cyc_gradient"].eq(st_grad),
            inc["cyc_trace"].eq(st_trace),
            inc["cyc_busy"].eq(busy),
        ]
        for state, signal in in_state.items():
            m.d.comb += signal.eq(sequencer.ongoing(state))
        return m
