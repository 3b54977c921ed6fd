"""A small multi-cycle RV32I + Zmmul CPU for the iCE40 UP5K soft-core engine (``hdl/soc.py``).

Golden counterpart: ``golden.rv32.RV32Model`` (the ISA, the trap rules and the encodings,
which this module imports).
"""

import enum

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from golden.rv32 import (FENCE_FUNCT3, INSTR_LOW_BITS, STORE_OPS, AluOp, BranchOp, Funct7,
                         MemOp, MulOp, Opcode)

__all__ = ["RV32", "bus_signature", "instr_layout"]

#: The CPU's memory port, seen from the CPU.
bus_signature = wiring.Signature({
    "valid": Out(1),   # a request is pending; addr/wdata/wstrb/fetch hold until ready
    "addr":  Out(32),  # byte address, word aligned (addr[0:2] == 0)
    "wdata": Out(32),  # store data, already shifted into the byte lanes
    "wstrb": Out(4),   # byte enables of a store; 0 = read
    "fetch": Out(1),   # the request is an instruction fetch (informative)
    "ready": In(1),    # the slave completes the request in this cycle
    "rdata": In(32),   # read data, valid in the cycle ready is high
})

#: The fields of a 32-bit instruction.
instr_layout = data.StructLayout({
    "low": 2, "opcode": 5, "rd": 5, "funct3": 3, "rs1": 5, "rs2": 5, "funct7": 7,
})

#: The immediate formats and their opcodes (R-type has none).
FORMATS = {
    "I": (Opcode.OP_IMM, Opcode.LOAD, Opcode.JALR),
    "S": (Opcode.STORE,),
    "B": (Opcode.BRANCH,),
    "U": (Opcode.LUI, Opcode.AUIPC),
    "J": (Opcode.JAL,),
}
#: The sources of the value written to rd (one-hot).
RESULTS = ("sum", "less", "left", "right", "out", "load")
#: Pre-decoded format flags: each is the union of the formats it names.
FORMAT_FLAGS = ("I", "S", "B", "U", "J", "IJ", "SB", "UJ")
HALF = 16               #: operand width of one SB_MAC16 multiply
BYTE = 8                #: bits per byte lane


class State(enum.IntEnum):
    """The control states: bit positions in the one-hot state register."""
    FETCH = 0
    DECODE = 1
    READ2 = 2
    EXEC = 3
    SHIFT = 4
    MUL = 5
    MEM = 6
    COMMIT = 7
    TRAP = 8


def _one_hot(state):
    """The ``Case`` pattern of ``state`` in the one-hot state register."""
    return "".join("1" if k == state else "-" for k in reversed(range(len(State))))


class RV32(wiring.Component):
    """RV32I + Zmmul, one bus request at a time.

    ECALL, EBREAK, an illegal or unsupported instruction (CSRs, division, FENCE.I,
    compressed) and a misaligned load, store or jump/taken-branch target stop the CPU for
    good: ``trap`` goes high, the instruction has no effect, no further bus request is made.

    Parameters
    ----------
    reset_addr : int
        Byte address of the first instruction (word aligned).

    Interface attributes
    --------------------
    bus : ``bus_signature``, out
        Memory port. Every output is a flip-flop. A request is ``valid`` with ``addr``
        (word aligned), ``wstrb`` (0 for a read), ``wdata`` and ``fetch`` held until the
        cycle where ``ready`` is high, which completes it (``ready`` may be high in the
        request's first cycle already); ``rdata`` is sampled in that cycle (a fetched word
        through at most two LUT levels, and into the register file's read address). A
        store puts its data in the lanes selected by ``wstrb`` (a byte or halfword is also
        copied into the other lanes). After a store ``valid`` stays high for the next
        fetch (a new request starts the cycle after ``ready``); after a fetch or a load it
        falls for at least one cycle.
    trap : Signal(1), out
        The CPU has halted.

    Cycle behaviour, ``L`` being the cycles from a request to ``ready`` (1 for block RAM):

    * FETCH, ``L + 1`` cycles: the instruction (pre-decoded into one-hot opcode, funct7 and
      immediate-format flags), the read of ``rs1`` addressed by ``rdata`` in the ``ready``
      cycle;
    * DECODE, 1: the operands, ``rs1 + imm`` (load/store address, JALR target),
      ``pc + imm`` (JAL/branch target), ``pc + 4`` and the decoded controls into
      registers; the read of ``rs2``; the trap checks (illegal, misaligned load/store);
    * READ2, 1, only OP and BRANCH: the second operand from the register file;
    * EXEC, 1: the ALU (a 33-bit add/subtract whose top bit is the signed or unsigned
      less-than, the equality, the logic operations), the first shift stage (multiples of
      8 bits), the data request's registers;
    * SHIFT, 1, shifts only: the second shift stage (0 to 7 bits);
    * MEM, ``L + 1``, loads and stores: the data request; a store then fetches directly;
    * MUL, multiplies only: 7 cycles for MUL and MULHU, 8 for MULHSU, 9 for MULH;
    * COMMIT, 1: the register write (the loaded value aligned and extended here), the
      branch decision and the next fetch request, or the trap on a misaligned target.

    With ``L = 1``: LUI, AUIPC, JAL, JALR, OP-IMM, FENCE take 5 cycles; OP and branches 6;
    shifts one more; stores 6; loads 7; MUL and MULHU 13, MULHSU 14, MULH 15.

    Every carry chain (ALU, the two target adders, ``pc + 4``, the multiplier's
    accumulator) feeds its own register with nothing after it, and the states are one-hot:
    this is what reaches 48 MHz on the UP5K.

    The register file is one ``Memory`` of 32 words (two EBR) with one read port, read
    twice per instruction; ``x0`` is never written.

    The multiplier is one 16x16 unsigned multiply (an SB_MAC16) with registered operands
    and product, stepped over the partial products ``al*bl``, ``al*bh``, ``ah*bl``,
    ``ah*bh``; through a registered summand each is added into a 33-bit accumulator, which
    moves up a 16-bit column before the second and the fourth (shifting the low word's
    halves out into ``lo``). MULHSU then subtracts ``b`` from the high word if ``a`` is
    negative; MULH also subtracts ``a`` if ``b`` is negative (the two's complement
    corrections of an unsigned product).
    """

    bus: Out(bus_signature)
    trap: Out(1)

    def __init__(self, *, reset_addr: int = 0):
        if reset_addr % 4 or not 0 <= reset_addr < 1 << 32:
            raise ValueError(f"reset_addr must be a word-aligned 32-bit address, "
                             f"not {reset_addr!r}")
        self.reset_addr = reset_addr
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        bus = self.bus

        # an asynchronous read port and a data register: Yosys merges them into the EBR's
        # synchronous read, and ``no_rw_check`` spares the logic that would emulate
        # read-before-write (a register read in the cycle of a write, COMMIT, is unused)
        m.submodules.regs = regs = memory.Memory(shape=32, depth=32, init=[],
                                                 attrs={"no_rw_check": 1})
        reg_rd = regs.read_port(domain="comb")
        reg_wr = regs.write_port()
        rs_data = Signal(32, reset_less=True)
        m.d.sync += rs_data.eq(reg_rd.data)

        # bus registers
        valid = Signal(init=1)
        addr = Signal(30, init=self.reset_addr >> 2)        # word address
        wdata = Signal(32, reset_less=True)
        wstrb = Signal(4)
        fetch = Signal(init=1)
        m.d.comb += [bus.valid.eq(valid), bus.addr.eq(Cat(Const(0, 2), addr)),
                     bus.wdata.eq(wdata), bus.wstrb.eq(wstrb), bus.fetch.eq(fetch)]

        # FETCH: the instruction, pre-decoded: a flag per opcode (none for an unknown opcode
        # or a compressed instruction), a flag per funct7 value
        ir = Signal(instr_layout, reset_less=True)
        kind = Signal(data.StructLayout({o.name: 1 for o in Opcode}), reset_less=True)
        f7_kind = Signal(data.StructLayout({f.name: 1 for f in Funct7}), reset_less=True)
        fmt = Signal(data.StructLayout({f: 1 for f in FORMAT_FLAGS}), reset_less=True)
        # DECODE
        pc4 = Signal(30, reset_less=True)                   # pc + 4 (word address)
        address = Signal(32, reset_less=True)   # rs1 + imm: load/store address, JALR target
        target = Signal(32, reset_less=True)    # pc + imm: JAL and branch target; the JALR
                                                # target from EXEC on
        # ALU operands: 33 bits, bit 32 extends the sign for a signed comparison; ``b`` is
        # stored inverted for a subtraction, ``a`` bit-reversed for a left shift
        a = Signal(33, reset_less=True)         # rs1, pc (AUIPC) or 0 (LUI)
        b = Signal(33, reset_less=True)         # rs2 or the immediate
        sub_q = Signal(reset_less=True)         # subtract: the adder's carry input
        trap_q = Signal(reset_less=True)        # illegal, or a misaligned load or store
        mul_q = Signal(reset_less=True)         # EXEC goes on to MUL
        shift_q = Signal(reset_less=True)       # EXEC goes on to SHIFT
        mem_q = Signal(reset_less=True)         # EXEC goes on to MEM
        link_q = Signal(reset_less=True)        # the result is pc + 4 (JAL, JALR)
        write_q = Signal(reset_less=True)       # rd is written (not x0)
        fill_q = Signal(reset_less=True)        # the bit shifted in (SRA, SRAI: rs1[31])
        # the value written (one-hot): r, lt_q, sh reversed, sh, out, the loaded value
        result_sel = Signal(data.StructLayout({k: 1 for k in RESULTS}), reset_less=True)
        # EXEC (every adder feeds its own register, nothing after a carry chain)
        r = Signal(32, reset_less=True)         # a + b, a - b
        lt_q = Signal(reset_less=True)          # a < b
        eq_q = Signal(reset_less=True)          # a == b
        sh = Signal(32, reset_less=True)        # the shifter (also in SHIFT)
        out = Signal(32, reset_less=True)       # any other result (also from MUL); the
                                                # loaded word (MEM)
        ext_q = Signal(reset_less=True)         # the extension bit of a byte or halfword load
        load_byte = Signal(reset_less=True)     # LB, LBU
        load_high = Signal(reset_less=True)     # LH, LHU of the high halfword
        load_word = Signal(reset_less=True)     # LW

        iv = ir.as_value()
        f3 = ir.funct3
        pc_byte = Cat(Const(0, 2), addr)        # in DECODE, addr is still the pc

        # -- decode (from ir) ------------------------------------------------------------
        is_op, is_op_imm = kind.OP, kind.OP_IMM
        is_branch, is_store, is_load = kind.BRANCH, kind.STORE, kind.LOAD
        is_jal, is_jalr = kind.JAL, kind.JALR
        is_mul = is_op & f7_kind.MULDIV
        is_alu = (is_op | is_op_imm) & ~is_mul
        is_shift = is_alu & f3.matches(AluOp.SLL, AluOp.SR)
        left = is_alu & (f3 == AluOp.SLL)
        alt = f7_kind.ALT                                   # SUB, SRA, SRAI
        is_less = is_alu & f3.matches(AluOp.SLT, AluOp.SLTU)
        is_sum = kind.LUI | kind.AUIPC | (is_alu & (f3 == AluOp.ADD))
        sub = is_branch | is_less | (is_op & alt & (f3 == AluOp.ADD))
        signed_cmp = Mux(is_branch, ~f3[1], f3 == AluOp.SLT)  # BranchOp bit 1: unsigned
        legal = (kind.LUI | kind.AUIPC | is_jal
                 | (is_jalr & (f3 == 0))
                 | (is_branch & f3.matches(*BranchOp))
                 | (is_load & f3.matches(*MemOp))
                 | (is_store & f3.matches(*STORE_OPS))
                 | (is_op_imm & Mux(f3 == AluOp.SLL, f7_kind.BASE,
                                    (f3 != AluOp.SR) | f7_kind.BASE | alt))
                 | (is_op & (f7_kind.BASE | (alt & f3.matches(AluOp.ADD, AluOp.SR))
                             | (f7_kind.MULDIV & f3.matches(*MulOp))))
                 | (kind.MISC_MEM & (f3 == FENCE_FUNCT3)))

        # the immediate, one LUT per bit (bit 11: two) from the format flags, kept as one
        # signal for its three users (b, the two target adders)
        imm = Signal(32, attrs={"keep": 1})
        m.d.comb += imm.eq(Cat(
            (fmt.I & iv[20]) | (fmt.S & iv[7]),
            Mux(fmt.IJ, iv[21:25], 0) | Mux(fmt.SB, iv[8:12], 0),
            Mux(fmt.U, 0, iv[25:31]),
            Mux(fmt.B, iv[7], Mux(fmt.J, iv[20], ~fmt.U & iv[31])),
            Mux(fmt.UJ, iv[12:20], iv[31].replicate(8)),
            Mux(fmt.U, iv[20:31], iv[31].replicate(11)),
            iv[31]))

        # whether a load or store address is misaligned, ahead of its adder (DECODE)
        addr_low = (rs_data[:2] + imm[:2])[:2]
        misaligned = Mux(f3[1], addr_low != 0, f3[0] & addr_low[0])    # MemOp: W, H

        def operand(value, sign, invert=Const(0)):
            """``value`` as an ALU operand: ``sign`` extended for a signed comparison
            (which only ever compares a register with a register or the immediate),
            inverted for a subtraction."""
            return Cat(value, signed_cmp & sign) ^ invert.replicate(33)

        # -- EXEC ------------------------------------------------------------------------
        total = Signal(33)                      # a + b, a - b; bit 32: a < b
        m.d.comb += total.eq(a + b + sub_q)
        equal = (a[:32] ^ b[:32]).all()         # b is inverted for a comparison
        other = Mux(link_q, Cat(Const(0, 2), pc4),
                    Mux(f3[1], Mux(f3[0], a & b, a | b), a ^ b)[:32])     # AluOp

        # a right shifter (a left shift shifts the bit-reversed operand): multiples of 8 in
        # EXEC, 0-7 in SHIFT; the result is reversed back when it is written
        shamt = b[:5]
        coarse_in = Cat(a[:32], fill_q.replicate(32 - BYTE))
        coarse = Signal(32)
        with m.Switch(shamt[3:]):
            for k in range(4):
                with m.Case(k):
                    m.d.comb += coarse.eq(coarse_in[k * BYTE:])
        fine = (Cat(sh, fill_q.replicate(BYTE - 1)) >> shamt[:3])[:32]

        width = f3[:2]                                      # MemOp: log2 bytes
        store_strb = Signal(4)
        store_data = Signal(32)
        with m.Switch(width):
            with m.Case(MemOp.B):
                m.d.comb += [store_strb.eq(1 << address[:2]),
                             store_data.eq(rs_data[:BYTE].replicate(4))]
            with m.Case(MemOp.H):
                m.d.comb += [store_strb.eq(0b11 << address[:2]),
                             store_data.eq(rs_data[:2 * BYTE].replicate(2))]
            with m.Default():
                m.d.comb += [store_strb.eq(0b1111), store_data.eq(rs_data)]

        # -- COMMIT ----------------------------------------------------------------------
        taken = Signal(attrs={"keep": 1})       # kept: one LUT (BranchOp: bit 2 less-than,
                                                # bit 0 negates)
        m.d.comb += taken.eq(Mux(f3[2], lt_q, eq_q) ^ f3[0])
        jump = link_q | (is_branch & taken)     # to target
        # the loaded value: the word in out, the byte or halfword at address[:2] in it, and
        # the extension bit taken with the word
        offset = address[:2]
        loaded = Cat(out.word_select(offset, BYTE),
                     Mux(load_byte, ext_q.replicate(BYTE),
                         out.word_select(Cat(1, load_high), BYTE)),
                     Mux(load_word, out[2 * BYTE:], ext_q.replicate(2 * BYTE)))
        result = ((result_sel.sum.replicate(32) & r)
                  | (result_sel.less & lt_q)
                  | (result_sel.left.replicate(32) & sh[::-1])
                  | (result_sel.right.replicate(32) & sh)
                  | (result_sel.out.replicate(32) & out)
                  | (result_sel.load.replicate(32) & loaded))

        # -- multiplier ------------------------------------------------------------------
        phase = Signal(10)      # one-hot MUL step 1-9 (EXEC is step 0: all zero)
        x = Signal(HALF, reset_less=True)
        y = Signal(HALF, reset_less=True)
        product = Signal(2 * HALF, reset_less=True)
        summand = Signal(2 * HALF, reset_less=True)
        acc = Signal(2 * HALF + 1, reset_less=True)
        lo = Signal(32, reset_less=True)        # the low word, 16 bits at a time
        mul_op = f3[:2]
        a_signed = mul_op.matches(MulOp.MULH, MulOp.MULHSU)
        b_signed = mul_op == MulOp.MULH
        # operands in steps 0-3: al*bl, al*bh, ah*bl, ah*bh; each product a step later, a
        # summand two steps later; then the sign corrections, inverted: ~b, ~a
        m.d.sync += [x.eq(a.word_select(phase[2] | phase[3], HALF)),
                     y.eq(b.word_select(phase[1] | phase[3], HALF)),
                     product.eq(x * y),
                     summand.eq(Mux(phase[6], ~b[:32], Mux(phase[7], ~a[:32], product)))]
        # accumulated in steps 3-6 (a column up, the low half out into lo, before al*bh
        # and ah*bh), then -b in step 7 if a < 0 and -a in step 8 if b < 0
        up = Signal(reset_less=True)            # phase[4] | phase[6]
        correct = Signal(reset_less=True)       # phase[7] | phase[8]
        m.d.sync += [up.eq(phase[3] | phase[5]), correct.eq(phase[6] | phase[7])]
        first = Signal(reset_less=True)         # phase[3]: the accumulator starts at 0
        m.d.sync += first.eq(phase[2])
        with m.If(phase[3:7].any() | (phase[7] & a_signed & a[31])
                  | (phase[8] & b_signed & b[31])):
            m.d.sync += acc.eq((Mux(up, acc[HALF:], acc) & ~first.replicate(len(acc)))
                               + summand + correct)
        with m.If(up):
            m.d.sync += lo.eq(Cat(lo[HALF:], acc[:HALF]))
        mul_done = Signal(reset_less=True)      # MUL and MULHU in step 7, MULHSU 8, MULH 9
        m.d.sync += mul_done.eq(Mux(b_signed, phase[8], Mux(a_signed, phase[7], phase[6])))

        # -- control ---------------------------------------------------------------------
        def fetch_next(next_pc, go=1):
            """Request the instruction at ``next_pc`` (unless ``go`` is low)."""
            m.d.sync += [addr.eq(next_pc), valid.eq(go), fetch.eq(1),
                         wstrb.eq(0), state[State.FETCH].eq(go)]

        # one-hot states: a state's decode is one flip-flop (Yosys does not re-encode a
        # state machine whose register has an initial value)
        state = Signal(len(State), init=1 << State.FETCH)

        def goto(next_state):
            m.d.sync += state[next_state].eq(1)

        # every state bit falls unless a transition below sets it
        m.d.sync += state.eq(0)
        m.d.comb += [reg_rd.addr.eq(ir.rs2), reg_wr.addr.eq(ir.rd), reg_wr.data.eq(result),
                     self.trap.eq(state[State.TRAP])]
        with m.Switch(state):
            with m.Case(_one_hot(State.FETCH)):
                m.d.comb += reg_rd.addr.eq(bus.rdata[15:20])        # rs1
                with m.If(bus.ready):
                    fetched = instr_layout(bus.rdata)
                    m.d.sync += [ir.eq(bus.rdata), valid.eq(0)]
                    for o in Opcode:
                        m.d.sync += kind[o.name].eq((fetched.opcode == o)
                                                    & (fetched.low == INSTR_LOW_BITS))
                    for f in Funct7:
                        m.d.sync += f7_kind[f.name].eq(fetched.funct7 == f)
                    for f in FORMAT_FLAGS:
                        m.d.sync += fmt[f].eq(fetched.opcode.matches(
                            *(o for letter in f for o in FORMATS[letter])))
                    goto(State.DECODE)
                with m.Else():
                    goto(State.FETCH)

            with m.Case(_one_hot(State.DECODE)):
                m.d.sync += [
                    a.eq(operand(Mux(kind.AUIPC, pc_byte,
                                     Mux(kind.LUI, 0, Mux(left, rs_data[::-1], rs_data))),
                                 rs_data[31])),
                    b.eq(operand(imm, iv[31], invert=is_less)),
                    address.eq(rs_data + imm),
                    target.eq(pc_byte + imm),
                    pc4.eq(addr + 1),
                    sub_q.eq(sub),
                    trap_q.eq(~legal | ((is_load | is_store) & misaligned)),
                    mul_q.eq(is_mul),
                    shift_q.eq(is_shift),
                    mem_q.eq(is_load | is_store),
                    link_q.eq(is_jal | is_jalr),
                    write_q.eq((ir.rd != 0) & ~is_branch & ~is_store & ~kind.MISC_MEM),
                    result_sel.load.eq(is_load),
                    result_sel.sum.eq(is_sum),
                    result_sel.less.eq(is_less),
                    result_sel.left.eq(left),
                    result_sel.right.eq(is_shift & ~left),
                    result_sel.out.eq(~(is_load | is_sum | is_less | is_shift)),
                    fill_q.eq(alt & rs_data[31]),
                ]
                with m.If(is_op | is_branch):
                    goto(State.READ2)
                with m.Else():
                    goto(State.EXEC)

            with m.Case(_one_hot(State.READ2)):
                m.d.sync += b.eq(operand(rs_data, rs_data[31], invert=sub))
                goto(State.EXEC)

            with m.Case(_one_hot(State.EXEC)):
                # the data request is prepared whatever the instruction: ``valid`` decides
                m.d.sync += [r.eq(total[:32]), lt_q.eq(total[32]), eq_q.eq(equal),
                             sh.eq(coarse), out.eq(other),
                             addr.eq(address[2:]), wstrb.eq(Mux(is_store, store_strb, 0)),
                             wdata.eq(store_data), fetch.eq(0)]
                m.d.sync += [load_byte.eq(width == MemOp.B), load_word.eq(width == MemOp.W),
                             load_high.eq((width == MemOp.H) & address[1])]
                with m.If(is_jalr):
                    m.d.sync += target.eq(address)
                with m.If(trap_q):
                    goto(State.TRAP)
                with m.Elif(mul_q):
                    m.d.sync += phase.eq(1 << 1)
                    goto(State.MUL)
                with m.Elif(shift_q):
                    goto(State.SHIFT)
                with m.Elif(mem_q):
                    m.d.sync += valid.eq(1)
                    goto(State.MEM)
                with m.Else():
                    goto(State.COMMIT)

            with m.Case(_one_hot(State.SHIFT)):
                m.d.sync += sh.eq(fine)
                goto(State.COMMIT)

            with m.Case(_one_hot(State.MUL)):
                m.d.sync += phase.eq(phase << 1)
                with m.If(mul_done):
                    m.d.sync += [out.eq(Mux(mul_op == MulOp.MUL, lo, acc[:32])), phase.eq(0)]
                    goto(State.COMMIT)
                with m.Else():
                    goto(State.MUL)

            with m.Case(_one_hot(State.MEM)):
                with m.If(bus.ready):
                    with m.If(is_store):
                        fetch_next(pc4)
                    with m.Else():
                        byte_sign = bus.rdata.word_select(offset, BYTE)[-1]
                        half_sign = bus.rdata.word_select(offset[1], 2 * BYTE)[-1]
                        m.d.sync += [out.eq(bus.rdata), valid.eq(0),
                                     ext_q.eq(~f3[2] & Mux(width == MemOp.B, byte_sign,
                                                           half_sign))]
                        goto(State.COMMIT)
                with m.Else():
                    goto(State.MEM)

            with m.Case(_one_hot(State.COMMIT)):
                misaligned_jump = jump & target[1]
                m.d.comb += reg_wr.en.eq(write_q & ~(link_q & target[1]))
                fetch_next(Mux(jump, target[2:], pc4), go=~misaligned_jump)
                m.d.sync += state[State.TRAP].eq(misaligned_jump)

            with m.Case(_one_hot(State.TRAP)):
                goto(State.TRAP)

        return m
