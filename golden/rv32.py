"""Instruction-set reference model of the soft CPU (``hdl/rv32.py``): RV32I + Zmmul.

The ISA: every RV32I base instruction (FENCE is a no-op) and the four Zmmul multiplies
(MUL, MULH, MULHSU, MULHU); no CSRs, no interrupts, no compressed instructions, no
division. ECALL, EBREAK, an illegal or unsupported encoding, a misaligned load or store
address and a misaligned jump or taken-branch target *trap*: the instruction has no effect
and the machine halts for good (the CPU raises ``trap``). Programs end with EBREAK.

The encodings (:class:`Opcode`, the ``funct3`` enums, :class:`Funct7`) are the
specification the gateware imports. The model is pure Python with exact 32-bit semantics;
decoded instructions are cached by instruction word, so it also runs compiled firmware at a
usable speed. Memory is a set of byte regions; :meth:`RV32Model.load_word` and
:meth:`RV32Model.store_word` are the bus (word-aligned, byte strobes, like the CPU's) and
can be overridden to model I/O registers.
"""

import enum

__all__ = ["Opcode", "AluOp", "BranchOp", "MemOp", "MulOp", "Funct7", "Trap", "BusError",
           "RV32Model", "STORE_OPS", "INSTR_LOW_BITS", "FENCE_FUNCT3", "ECALL", "EBREAK", "MASK32",
           "lane_mask", "to_signed"]

MASK32 = 0xFFFF_FFFF
INSTR_LOW_BITS = 0b11       #: ``instr[0:2]`` of every 32-bit (non-compressed) instruction
FENCE_FUNCT3 = 0            #: MISC-MEM ``funct3`` of FENCE (FENCE.I and others are illegal)
ECALL = 0x0000_0073         #: the whole ECALL word
EBREAK = 0x0010_0073        #: the whole EBREAK word


class Opcode(enum.IntEnum):
    """``instr[2:7]``."""
    LOAD = 0b00000
    MISC_MEM = 0b00011
    OP_IMM = 0b00100
    AUIPC = 0b00101
    STORE = 0b01000
    OP = 0b01100
    LUI = 0b01101
    BRANCH = 0b11000
    JALR = 0b11001
    JAL = 0b11011
    SYSTEM = 0b11100


class AluOp(enum.IntEnum):
    """``funct3`` of OP and OP-IMM (ADD is SUB and SR is SRA with :attr:`Funct7.ALT`)."""
    ADD = 0
    SLL = 1
    SLT = 2
    SLTU = 3
    XOR = 4
    SR = 5
    OR = 6
    AND = 7


class BranchOp(enum.IntEnum):
    """``funct3`` of BRANCH. Bit 0 negates the condition, bit 2 selects less-than over
    equal, bit 1 unsigned over signed."""
    BEQ = 0
    BNE = 1
    BLT = 4
    BGE = 5
    BLTU = 6
    BGEU = 7


class MemOp(enum.IntEnum):
    """``funct3`` of LOAD and STORE: bits 0-1 are log2 of the width, bit 2 zero-extends
    (loads only). Stores are B, H and W."""
    B = 0
    H = 1
    W = 2
    BU = 4
    HU = 5


class MulOp(enum.IntEnum):
    """``funct3`` of OP with :attr:`Funct7.MULDIV` (4-7, the divisions, are illegal)."""
    MUL = 0
    MULH = 1
    MULHSU = 2
    MULHU = 3


class Funct7(enum.IntEnum):
    """``instr[25:32]`` of OP (and of the OP-IMM shifts)."""
    BASE = 0b0000000
    ALT = 0b0100000         #: SUB, SRA, SRAI
    MULDIV = 0b0000001      #: the M extension (here only its Zmmul part)


STORE_OPS = (MemOp.B, MemOp.H, MemOp.W)


class Trap(enum.Enum):
    """Why the machine halted."""
    ILLEGAL = "illegal instruction"
    ECALL = "ecall"
    EBREAK = "ebreak"
    MISALIGNED_JUMP = "misaligned jump or branch target"
    MISALIGNED_LOAD = "misaligned load"
    MISALIGNED_STORE = "misaligned store"


class BusError(Exception):
    """An access outside every memory region (a model or program error, not a trap)."""


class _Halt(Exception):
    def __init__(self, cause: Trap):
        self.cause = cause


def to_signed(x: int) -> int:
    """A 32-bit word as a signed integer."""
    return x - (1 << 32) if x & 0x8000_0000 else x


def lane_mask(wstrb: int) -> int:
    """The 32-bit mask of the byte lanes enabled by ``wstrb``."""
    return sum(0xFF << (8 * k) for k in range(4) if wstrb >> k & 1)


def _sext(value: int, bits: int) -> int:
    """Sign-extend a ``bits``-bit field to a 32-bit word."""
    sign = 1 << (bits - 1)
    return ((value ^ sign) - sign) & MASK32


def _srl(a, b):
    return a >> (b & 31)


def _sra(a, b):
    return (to_signed(a) >> (b & 31)) & MASK32


def _sub(a, b):
    return (a - b) & MASK32


_ALU = {
    AluOp.ADD: lambda a, b: (a + b) & MASK32,
    AluOp.SLL: lambda a, b: (a << (b & 31)) & MASK32,
    AluOp.SLT: lambda a, b: int(to_signed(a) < to_signed(b)),
    AluOp.SLTU: lambda a, b: int(a < b),
    AluOp.XOR: lambda a, b: a ^ b,
    AluOp.OR: lambda a, b: a | b,
    AluOp.AND: lambda a, b: a & b,
}
_MUL = {
    MulOp.MUL: lambda a, b: (a * b) & MASK32,
    MulOp.MULH: lambda a, b: ((to_signed(a) * to_signed(b)) >> 32) & MASK32,
    MulOp.MULHSU: lambda a, b: ((to_signed(a) * b) >> 32) & MASK32,
    MulOp.MULHU: lambda a, b: (a * b) >> 32,
}
_BRANCH = {
    BranchOp.BEQ: lambda a, b: a == b,
    BranchOp.BNE: lambda a, b: a != b,
    BranchOp.BLT: lambda a, b: to_signed(a) < to_signed(b),
    BranchOp.BGE: lambda a, b: to_signed(a) >= to_signed(b),
    BranchOp.BLTU: lambda a, b: a < b,
    BranchOp.BGEU: lambda a, b: a >= b,
}


class RV32Model:
    """One hart of RV32I + Zmmul.

    Parameters
    ----------
    memory : bytearray or dict of int to bytearray
        A bytearray is memory at address 0; a dict maps each region's base address to its
        bytes. The model reads and writes these objects in place.
    reset_addr : int
        The first ``pc`` (word aligned).

    Attributes
    ----------
    x : list of int
        The 32 registers as unsigned 32-bit words (``x[0]`` is always 0).
    pc : int
        Address of the next instruction (of the trapping one after a trap).
    trap : Trap or None
        Set when the machine halted.
    writes : list of (int, int, int)
        Every store as the CPU's bus carries it: ``(word address, wstrb, data)``, with the
        data shifted into its byte lanes and the other lanes zero.
    steps : int
        Instructions retired.
    """

    def __init__(self, memory, reset_addr: int = 0):
        if reset_addr % 4:
            raise ValueError(f"reset_addr must be word aligned, not {reset_addr:#x}")
        regions = memory.items() if isinstance(memory, dict) else [(0, memory)]
        self.regions = [(base, base + len(buf), buf) for base, buf in sorted(regions)]
        self.x = [0] * 32
        self.pc = reset_addr
        self.trap = None
        self.writes = []
        self.steps = 0
        self._cache = {}

    # -- the bus -------------------------------------------------------------------------

    def _region(self, addr: int):
        for base, end, buf in self.regions:
            if base <= addr < end:
                return base, buf
        raise BusError(f"no memory at {addr:#010x}")

    def load_word(self, addr: int) -> int:
        """Read the aligned word at ``addr``."""
        base, buf = self._region(addr)
        return int.from_bytes(buf[addr - base:addr - base + 4], "little")

    def store_word(self, addr: int, data: int, wstrb: int):
        """Write the lanes of ``data`` enabled by ``wstrb`` into the word at ``addr``."""
        base, buf = self._region(addr)
        for k in range(4):
            if wstrb >> k & 1:
                buf[addr - base + k] = data >> (8 * k) & 0xFF

    # -- execution -----------------------------------------------------------------------

    def step(self) -> bool:
        """Execute one instruction; False (and nothing done) once the machine has halted."""
        if self.trap is not None:
            return False
        word = self.load_word(self.pc)
        decoded = self._cache.get(word)
        if decoded is None:
            decoded = self._cache[word] = self._decode(word)
        handler, rd, rs1, rs2, imm = decoded
        try:
            next_pc, value = handler(rs1, rs2, imm)
        except _Halt as halt:
            self.trap = halt.cause
            return False
        if rd:
            self.x[rd] = value
        self.pc = next_pc & MASK32
        self.steps += 1
        return True

    def run(self, max_steps: int):
        """Step until the machine halts or ``max_steps`` instructions retired; returns the
        :class:`Trap` (None if the step budget ran out first)."""
        for _ in range(max_steps):
            if not self.step():
                break
        return self.trap

    # Each handler returns (next pc, value for rd); rd is ignored by instructions without
    # one (their decoded rd is 0).

    def _decode(self, w: int):
        opcode, rd, f3 = w >> 2 & 0x1F, w >> 7 & 0x1F, w >> 12 & 7
        rs1, rs2, f7 = w >> 15 & 0x1F, w >> 20 & 0x1F, w >> 25
        imm_i = _sext(w >> 20, 12)
        imm_s = _sext((w >> 25) << 5 | (w >> 7 & 0x1F), 12)
        imm_b = _sext((w >> 31) << 12 | (w >> 7 & 1) << 11 | (w >> 25 & 0x3F) << 5
                      | (w >> 8 & 0xF) << 1, 13)
        imm_j = _sext((w >> 31) << 20 | (w >> 12 & 0xFF) << 12 | (w >> 20 & 1) << 11
                      | (w >> 21 & 0x3FF) << 1, 21)
        imm_u = w & 0xFFFF_F000
        illegal = (self._halt, 0, 0, 0, Trap.ILLEGAL)
        if w & 3 != INSTR_LOW_BITS:
            return illegal
        if opcode == Opcode.LUI:
            return self._lui, rd, 0, 0, imm_u
        if opcode == Opcode.AUIPC:
            return self._auipc, rd, 0, 0, imm_u
        if opcode == Opcode.JAL:
            return self._jal, rd, 0, 0, imm_j
        if opcode == Opcode.JALR and f3 == 0:
            return self._jalr, rd, rs1, 0, imm_i
        if opcode == Opcode.BRANCH and f3 in _BRANCH:
            return self._branch(_BRANCH[f3]), 0, rs1, rs2, imm_b
        if opcode == Opcode.LOAD and f3 in set(MemOp):
            return self._load(f3), rd, rs1, 0, imm_i
        if opcode == Opcode.STORE and f3 in STORE_OPS:
            return self._store(f3), 0, rs1, rs2, imm_s
        if opcode == Opcode.OP_IMM:
            if f3 == AluOp.SLL and f7 != Funct7.BASE:
                return illegal
            if f3 == AluOp.SR:
                if f7 not in (Funct7.BASE, Funct7.ALT):
                    return illegal
                return self._op_imm(_sra if f7 == Funct7.ALT else _srl), rd, rs1, 0, imm_i
            return self._op_imm(_ALU[f3]), rd, rs1, 0, imm_i
        if opcode == Opcode.OP:
            if f7 == Funct7.MULDIV and f3 in _MUL:
                fn = _MUL[f3]
            elif f7 == Funct7.BASE:
                fn = _srl if f3 == AluOp.SR else _ALU[f3]
            elif f7 == Funct7.ALT and f3 in (AluOp.ADD, AluOp.SR):
                fn = _sub if f3 == AluOp.ADD else _sra
            else:
                return illegal
            return self._op(fn), rd, rs1, rs2, 0
        if opcode == Opcode.MISC_MEM and f3 == FENCE_FUNCT3:
            return self._fence, 0, 0, 0, 0
        if w == ECALL:
            return self._halt, 0, 0, 0, Trap.ECALL
        if w == EBREAK:
            return self._halt, 0, 0, 0, Trap.EBREAK
        return illegal

    def _halt(self, rs1, rs2, cause):
        raise _Halt(cause)

    def _lui(self, rs1, rs2, imm):
        return self.pc + 4, imm

    def _auipc(self, rs1, rs2, imm):
        return self.pc + 4, (self.pc + imm) & MASK32

    def _jump(self, target):
        if target & 3:
            raise _Halt(Trap.MISALIGNED_JUMP)
        return target, (self.pc + 4) & MASK32

    def _jal(self, rs1, rs2, imm):
        return self._jump((self.pc + imm) & MASK32)

    def _jalr(self, rs1, rs2, imm):
        return self._jump((self.x[rs1] + imm) & MASK32 & ~1)

    def _branch(self, cond):
        def branch(rs1, rs2, imm):
            if cond(self.x[rs1], self.x[rs2]):
                return self._jump((self.pc + imm) & MASK32)[0], 0
            return self.pc + 4, 0
        return branch

    def _load(self, f3):
        size = 1 << (f3 & 3)
        signed = not f3 & 4

        def load(rs1, rs2, imm):
            addr = (self.x[rs1] + imm) & MASK32
            if addr % size:
                raise _Halt(Trap.MISALIGNED_LOAD)
            value = self.load_word(addr & ~3) >> (8 * (addr & 3)) & ((1 << (8 * size)) - 1)
            return self.pc + 4, _sext(value, 8 * size) if signed else value
        return load

    def _store(self, f3):
        size = 1 << f3

        def store(rs1, rs2, imm):
            addr = (self.x[rs1] + imm) & MASK32
            if addr % size:
                raise _Halt(Trap.MISALIGNED_STORE)
            lane = addr & 3
            wstrb = ((1 << size) - 1) << lane
            data = (self.x[rs2] << (8 * lane)) & lane_mask(wstrb)
            self.writes.append((addr & ~3, wstrb, data))
            self.store_word(addr & ~3, data, wstrb)
            return self.pc + 4, 0
        return store

    def _op_imm(self, fn):
        def op_imm(rs1, rs2, imm):
            return self.pc + 4, fn(self.x[rs1], imm)
        return op_imm

    def _op(self, fn):
        def op(rs1, rs2, imm):
            return self.pc + 4, fn(self.x[rs1], self.x[rs2])
        return op

    def _fence(self, rs1, rs2, imm):
        return self.pc + 4, 0
