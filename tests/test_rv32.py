"""The RV32 CPU (hdl/rv32.py) against its instruction-set model (golden/rv32.py).

Each program runs on the model and on the gateware (Amaranth simulator, a memory that
answers each request after a random 0-3 cycles); the final memory (programs end by storing
x1-x31 into a dump area), the sequence of bus writes and the trap are compared exactly.
Programs: seeded random instruction mixes, directed trap and corner cases, and a C program
compiled with the Zig toolchain (tests/rv32_prog/).
"""

import gc
import random
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from amaranth.hdl import UnusedElaboratable
from amaranth.sim import Simulator

from golden.rv32 import (EBREAK, ECALL, MASK32, AluOp, BranchOp, Funct7, MemOp, MulOp,
                         Opcode, RV32Model, Trap, lane_mask)
from hdl.rv32 import RV32

MEM_BYTES = 0x4000
DUMP = 0x000            # x1..x31 stored here at the end of a program
DATA = 0x200            # random loads and stores: DATA - 256 .. DATA + 255
CODE = 0x400            # reset address of the random programs
BASE, COUNT, LINK = 31, 30, 29      # reserved registers: data base, loop counter, link
FREE = range(1, 29)                 # destinations of random instructions


# -- an assembler for the encodings ------------------------------------------------------

def _op(opcode):
    return (opcode << 2) | 0b11


def r_type(opcode, f3, f7, rd, rs1, rs2):
    return (f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | _op(opcode)


def i_type(opcode, f3, rd, rs1, imm):
    return ((imm & 0xFFF) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | _op(opcode)


def s_type(opcode, f3, rs1, rs2, imm):
    imm &= 0xFFF
    return ((imm >> 5) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (
        (imm & 0x1F) << 7) | _op(opcode)


def b_type(f3, rs1, rs2, offset):
    o = offset & 0x1FFF
    return ((o >> 12) << 31) | (((o >> 5) & 0x3F) << 25) | (rs2 << 20) | (rs1 << 15) | (
        f3 << 12) | (((o >> 1) & 0xF) << 8) | (((o >> 11) & 1) << 7) | _op(Opcode.BRANCH)


def u_type(opcode, rd, imm20):
    return ((imm20 & 0xFFFFF) << 12) | (rd << 7) | _op(opcode)


def jal(rd, offset):
    o = offset & 0x1FFFFF
    return ((o >> 20) << 31) | (((o >> 1) & 0x3FF) << 21) | (((o >> 11) & 1) << 20) | (
        ((o >> 12) & 0xFF) << 12) | (rd << 7) | _op(Opcode.JAL)


def addi(rd, rs1, imm):
    return i_type(Opcode.OP_IMM, AluOp.ADD, rd, rs1, imm)


def jalr(rd, rs1, imm):
    return i_type(Opcode.JALR, 0, rd, rs1, imm)


def load(f3, rd, rs1, imm):
    return i_type(Opcode.LOAD, f3, rd, rs1, imm)


def store(f3, rs2, rs1, imm):
    return s_type(Opcode.STORE, f3, rs1, rs2, imm)


def li(rd, value):
    """LUI + ADDI for any 32-bit value."""
    value &= MASK32
    hi = ((value + 0x800) >> 12) & 0xFFFFF
    lo = value - (hi << 12)
    lo = ((lo + 0x800) & 0xFFF) - 0x800
    return [u_type(Opcode.LUI, rd, hi), addi(rd, rd, lo)]


FENCE = i_type(Opcode.MISC_MEM, 0, 0, 0, 0)
NOP = addi(0, 0, 0)
EDGES = [0, 1, MASK32, 0x8000_0000, 0x7FFF_FFFF, 0xFFFF_8000, 0x0000_FFFF, 0x8000_0001]
IMM_EDGES = [0, 1, -1, 2047, -2048, 0x7FF, 31, 0x555]
ALU_R = [(AluOp.ADD, Funct7.BASE), (AluOp.ADD, Funct7.ALT), (AluOp.SLL, Funct7.BASE),
         (AluOp.SLT, Funct7.BASE), (AluOp.SLTU, Funct7.BASE), (AluOp.XOR, Funct7.BASE),
         (AluOp.SR, Funct7.BASE), (AluOp.SR, Funct7.ALT), (AluOp.OR, Funct7.BASE),
         (AluOp.AND, Funct7.BASE)] + [(op, Funct7.MULDIV) for op in MulOp]


def dump_and_stop():
    """Store x1..x31 into the dump area, then EBREAK."""
    return [store(MemOp.W, r, 0, DUMP + 4 * (r - 1)) for r in range(1, 32)] + [EBREAK]


# -- random programs ---------------------------------------------------------------------

class ProgramGenerator:
    """Seeded random instruction mixes over registers seeded with edge and random values."""

    def __init__(self, seed):
        self.rng = random.Random(seed)

    def value(self):
        rng = self.rng
        return rng.choice(EDGES) if rng.random() < 0.4 else rng.getrandbits(32)

    def reg(self):
        return self.rng.randrange(32)

    def dest(self):
        return self.rng.choice(FREE)

    def imm12(self):
        rng = self.rng
        return rng.choice(IMM_EDGES) if rng.random() < 0.3 else rng.randrange(-2048, 2048)

    def alu(self):
        """One register-register, register-immediate, LUI or AUIPC instruction."""
        rng = self.rng
        kind = rng.random()
        if kind < 0.45:
            f3, f7 = rng.choice(ALU_R)
            return r_type(Opcode.OP, f3, f7, self.dest(), self.reg(), self.reg())
        if kind < 0.9:
            f3 = rng.choice(list(AluOp))
            if f3 in (AluOp.SLL, AluOp.SR):
                f7 = Funct7.ALT if f3 == AluOp.SR and rng.random() < 0.5 else Funct7.BASE
                shamt = rng.choice([0, 1, 8, 12, 16, 19, 24, 31, rng.randrange(32)])
                return i_type(Opcode.OP_IMM, f3, self.dest(), self.reg(), (f7 << 5) | shamt)
            return i_type(Opcode.OP_IMM, f3, self.dest(), self.reg(), self.imm12())
        opcode = Opcode.LUI if kind < 0.95 else Opcode.AUIPC
        return u_type(opcode, self.dest(), rng.getrandbits(20))

    def memory(self):
        rng = self.rng
        f3 = rng.choice([MemOp.B, MemOp.H, MemOp.W, MemOp.BU, MemOp.HU] + [MemOp.W] * 2)
        size = 1 << (f3 & 3)
        offset = rng.randrange(-256, 256) & ~(size - 1)
        if rng.random() < 0.5:
            return [load(f3, self.dest(), BASE, offset)]
        f3 &= 3
        if rng.random() < 0.3:      # a store and a load of the same place
            rd = self.dest()
            return [store(f3, self.reg(), BASE, offset), load(f3, rd, BASE, offset)]
        return [store(f3, self.reg(), BASE, offset)]

    def branch(self):
        """A forward branch over 1-3 instructions."""
        skip = [self.alu() for _ in range(self.rng.randrange(1, 4))]
        f3 = self.rng.choice(list(BranchOp))
        rs1, rs2 = self.reg(), self.reg()
        if self.rng.random() < 0.2:
            rs2 = rs1
        return [b_type(f3, rs1, rs2, 4 * (len(skip) + 1))] + skip

    def loop(self):
        """A counted loop of a few ALU instructions, closed by a backward branch."""
        body = [self.alu() for _ in range(self.rng.randrange(1, 4))]
        body.append(addi(COUNT, COUNT, -1))
        close = b_type(BranchOp.BNE, COUNT, 0, -4 * len(body))
        return [addi(COUNT, 0, self.rng.randrange(1, 5))] + body + [close]

    def call(self):
        """JAL to a one-instruction subroutine and JALR back; or a computed JALR jump
        (with an odd offset: bit 0 is cleared)."""
        if self.rng.random() < 0.5:
            return [jal(LINK, 12),                      # call the subroutine
                    jal(0, 16),                         # after the return: jump past it
                    self.alu(),                         # never executed
                    self.alu(),                         # the subroutine
                    jalr(self.rng.choice([0, self.dest()]), LINK, 0)]
        return [u_type(Opcode.AUIPC, LINK, 0),
                jalr(self.dest(), LINK, self.rng.choice([12, 13])),
                self.alu()]                             # skipped

    def program(self, length):
        code = [addi(BASE, 0, DATA), addi(COUNT, 0, 0)]
        for r in FREE:
            code += li(r, self.value())
        pieces = ([lambda: [self.alu()]] * 10 + [self.memory] * 5 + [self.branch] * 2
                  + [self.loop, self.call])
        while len(code) < length:
            if self.rng.random() < 0.01:
                code.append(FENCE)
            code += self.rng.choice(pieces)()
        return code + dump_and_stop()


# -- running a program ---------------------------------------------------------------------

def image(code, origin=CODE, data_seed=0):
    """Memory with random data and ``code`` at ``origin``."""
    mem = bytearray(random.Random(data_seed).randbytes(MEM_BYTES))
    mem[DUMP:DUMP + 128] = bytes(128)
    for k, word in enumerate(code):
        mem[origin + 4 * k:origin + 4 * k + 4] = word.to_bytes(4, "little")
    return mem


def run_model(mem, reset_addr, max_steps=200_000):
    model = RV32Model(bytearray(mem), reset_addr=reset_addr)
    trap = model.run(max_steps)
    assert trap is not None, "the program did not stop"
    return model


def run_rtl(mem, reset_addr, *, seed=0, latencies=(0, 1, 2, 3), max_cycles=2_000_000):
    """Run until ``trap``; returns (memory, writes, cycles). Checks the bus protocol on the
    way: requests held until ready, aligned, no write fetch, nothing after the trap."""
    dut = RV32(reset_addr=reset_addr)
    mem = bytearray(mem)
    rng = random.Random(seed)
    out = {"writes": [], "cycles": 0}

    async def bench(ctx):
        bus = dut.bus
        wait = None         # cycles left before ready of the pending request
        held = None
        cycles = 0
        while not ctx.get(dut.trap):
            assert cycles < max_cycles, "no trap"
            valid = ctx.get(bus.valid)
            ctx.set(bus.ready, 0)
            if valid:
                request = (ctx.get(bus.addr), ctx.get(bus.wstrb), ctx.get(bus.wdata),
                           ctx.get(bus.fetch))
                addr, wstrb, wdata, fetch = request
                if wait is None:
                    wait = rng.choice(latencies)
                    held = request
                    assert addr % 4 == 0 and addr + 4 <= len(mem), hex(addr)
                    assert not (fetch and wstrb)
                assert request == held, "request changed before ready"
                if wait == 0:
                    if wstrb:
                        data = wdata & lane_mask(wstrb)
                        out["writes"].append((addr, wstrb, data))
                        word = int.from_bytes(mem[addr:addr + 4], "little")
                        word = (word & ~lane_mask(wstrb)) | data
                        mem[addr:addr + 4] = word.to_bytes(4, "little")
                    else:
                        ctx.set(bus.rdata, int.from_bytes(mem[addr:addr + 4], "little"))
                    ctx.set(bus.ready, 1)
                    wait = None
                else:
                    ctx.set(bus.rdata, rng.getrandbits(32))     # not valid yet
                    wait -= 1
            else:
                assert wait is None, "valid fell before ready"
            await ctx.tick()
            cycles += 1
        for _ in range(20):                                     # halted for good
            assert not ctx.get(bus.valid) and ctx.get(dut.trap)
            await ctx.tick()
        out["cycles"] = cycles

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return mem, out["writes"], out["cycles"]


def check_program(code, *, reset_addr=CODE, seed=0, expect=Trap.EBREAK, latencies=(0, 1, 2, 3)):
    """Run ``code`` on both; assert equal memory, writes and trap. Returns the model."""
    mem = image(code, reset_addr, data_seed=seed)
    model = run_model(mem, reset_addr)
    assert model.trap == expect, (model.trap, hex(model.pc))
    rtl_mem, writes, _ = run_rtl(mem, reset_addr, seed=seed, latencies=latencies)
    assert writes == model.writes
    assert rtl_mem == model.regions[0][2]
    return model


def dumped(model, reg):
    return model.load_word(DUMP + 4 * (reg - 1))


# -- random programs ---------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(16))
def test_random_programs(seed):
    code = ProgramGenerator(seed).program(length=1000)
    model = check_program(code, seed=seed)
    assert model.steps > 1000 and len(model.writes) > 31 + 60


def test_random_programs_zero_latency():
    """Memory that always answers in the request's first cycle."""
    code = ProgramGenerator(100).program(length=300)
    check_program(code, seed=100, latencies=(0,))


def test_multiply_edges():
    """All four multiplies over every pair of edge operands."""
    code = li(4, 0x3000)
    values = EDGES + [0x1234_5678, 0xFEDC_BA98, 0x0001_0000, 0xFFFF_0001]
    for x in values:
        for y in values:
            code += li(1, x) + li(2, y)
            for op in MulOp:
                code += [r_type(Opcode.OP, op, Funct7.MULDIV, 3, 1, 2),
                         store(MemOp.W, 3, 4, 4 * op)]
            code.append(addi(4, 4, 16))
    code.append(EBREAK)
    mem = image(code, 0x1000)
    model = run_model(mem, 0x1000)
    assert model.trap == Trap.EBREAK
    rtl_mem, writes, _ = run_rtl(mem, 0x1000, latencies=(1,))
    assert writes == model.writes and rtl_mem == model.regions[0][2]
    # and the model against Python's integers
    signed = [v - (1 << 32) if v >> 31 else v for v in values]
    k = 0
    for x, sx in zip(values, signed):
        for y, sy in zip(values, signed):
            want = [(x * y) & MASK32, (sx * sy) >> 32 & MASK32, (sx * y) >> 32 & MASK32,
                    (x * y) >> 32]
            got = [model.load_word(0x3000 + 4 * (k + j)) for j in range(4)]
            assert got == want, (hex(x), hex(y))
            k += 4


# -- directed programs -------------------------------------------------------------------

def test_x0_stays_zero():
    code = [addi(0, 0, 123), u_type(Opcode.LUI, 0, 0xABCDE), jal(0, 4),
            r_type(Opcode.OP, AluOp.ADD, Funct7.BASE, 0, BASE, BASE),
            r_type(Opcode.OP, MulOp.MUL, Funct7.MULDIV, 0, BASE, BASE),
            addi(BASE, 0, DATA), load(MemOp.W, 0, BASE, 0),
            i_type(Opcode.OP_IMM, AluOp.SLL, 0, BASE, 3),
            addi(1, 0, 0)] + dump_and_stop()
    model = check_program(code)
    assert dumped(model, 1) == 0


def test_store_then_load():
    """Every width stored and read back from the same address, both sign extensions."""
    code = [addi(BASE, 0, DATA)] + li(1, 0x8001_F0F0)
    rd = 2
    for size_op in (MemOp.B, MemOp.H, MemOp.W):
        size = 1 << size_op
        for offset in range(0, 4, size):
            code.append(store(size_op, 1, BASE, offset))
            for f3 in (MemOp.B, MemOp.BU, MemOp.H, MemOp.HU, MemOp.W):
                if offset % (1 << (f3 & 3)) == 0:
                    code.append(load(f3, rd, BASE, offset))
                    code.append(store(MemOp.W, rd, 0, 0x100 + 4 * (rd - 2)))
                    rd = 2 + (rd - 1) % 27
    check_program(code + dump_and_stop())


def test_branches_all_conditions():
    """Each branch condition taken and not taken over signed/unsigned corner pairs."""
    pairs = [(0, 0), (1, 2), (2, 1), (MASK32, 1), (1, MASK32), (0x8000_0000, 0x7FFF_FFFF),
             (0x7FFF_FFFF, 0x8000_0000), (MASK32, MASK32)]
    code = []
    for x, y in pairs:
        code += li(1, x) + li(2, y)
        for f3 in BranchOp:
            code += [addi(3, 0, 1), b_type(f3, 1, 2, 8), addi(3, 0, 2),
                     store(MemOp.B, 3, 0, 0x100 + len(code) % 0x100)]
    check_program(code + dump_and_stop())


TRAPS = {
    "ecall": ([ECALL], Trap.ECALL),
    "ebreak": ([EBREAK], Trap.EBREAK),
    "zero word": ([0], Trap.ILLEGAL),
    "all ones": ([MASK32], Trap.ILLEGAL),
    "compressed": ([0x0000_4501], Trap.ILLEGAL),
    "div": ([r_type(Opcode.OP, 4, Funct7.MULDIV, 1, 2, 3)], Trap.ILLEGAL),
    "remu": ([r_type(Opcode.OP, 7, Funct7.MULDIV, 1, 2, 3)], Trap.ILLEGAL),
    "sub funct7": ([r_type(Opcode.OP, AluOp.SLT, Funct7.ALT, 1, 2, 3)], Trap.ILLEGAL),
    "slli shamt 32": ([i_type(Opcode.OP_IMM, AluOp.SLL, 1, 2, 32)], Trap.ILLEGAL),
    "srai funct7": ([i_type(Opcode.OP_IMM, AluOp.SR, 1, 2, 0x610)], Trap.ILLEGAL),
    "fence.i": ([i_type(Opcode.MISC_MEM, 1, 0, 0, 0)], Trap.ILLEGAL),
    "csrrw": ([i_type(Opcode.SYSTEM, 1, 1, 2, 0x300)], Trap.ILLEGAL),
    "jalr funct3": ([i_type(Opcode.JALR, 1, 1, 2, 0)], Trap.ILLEGAL),
    "branch funct3": ([b_type(2, 0, 0, 8)], Trap.ILLEGAL),
    "load funct3": ([load(3, 1, BASE, 0)], Trap.ILLEGAL),
    "store funct3": ([store(3, 1, BASE, 0)], Trap.ILLEGAL),
    "unknown opcode": ([_op(0b11111)], Trap.ILLEGAL),
    "lw misaligned": ([load(MemOp.W, 1, BASE, 2)], Trap.MISALIGNED_LOAD),
    "lh misaligned": ([load(MemOp.HU, 1, BASE, 3)], Trap.MISALIGNED_LOAD),
    "sw misaligned": ([store(MemOp.W, 1, BASE, 1)], Trap.MISALIGNED_STORE),
    "sh misaligned": ([store(MemOp.H, 1, BASE, -1)], Trap.MISALIGNED_STORE),
    "jal misaligned": ([jal(1, 6)], Trap.MISALIGNED_JUMP),
    "jalr misaligned": ([addi(2, 0, CODE + 2), jalr(1, 2, 0x40)], Trap.MISALIGNED_JUMP),
    "branch misaligned": ([b_type(BranchOp.BEQ, 0, 0, 6)], Trap.MISALIGNED_JUMP),
}


@pytest.mark.parametrize("name", TRAPS)
def test_trap(name):
    """The cause halts the CPU: the stores before it happen, the one after it does not,
    and the bus stays idle (checked by run_rtl)."""
    body, cause = TRAPS[name]
    code = ([addi(BASE, 0, DATA), addi(1, 0, 0x5A), store(MemOp.W, 1, 0, 0x100)] + body
            + [store(MemOp.W, 1, 0, 0x104)] + dump_and_stop())
    model = check_program(code, expect=cause)
    assert model.writes == [(0x100, 0b1111, 0x5A)]


def test_branch_not_taken_misaligned_target():
    """Only a taken branch checks its target."""
    check_program([b_type(BranchOp.BNE, 0, 0, 6), addi(1, 0, 7)] + dump_and_stop())


def test_reset_address_argument():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(ValueError, match="word-aligned"):
            RV32(reset_addr=2)
        gc.collect()
    check_program([addi(1, 0, 9)] + dump_and_stop(), reset_addr=MEM_BYTES - 4 * 33)


# -- compiled C --------------------------------------------------------------------------

PROG = Path(__file__).parent / "rv32_prog"


def build_c_program(out: Path) -> bytes:
    zig = [sys.executable, "-m", "ziglang"]
    elf = out / "prog.elf"
    flags = ["-target", "riscv32-freestanding-none", "-mcpu=generic_rv32+zmmul", "-Os",
             "-ffreestanding", "-mno-relax", "-Wall", "-Werror"]
    subprocess.run([*zig, "cc", *flags, "-T", str(PROG / "link.ld"), str(PROG / "crt.S"),
                    str(PROG / "prog.c"), "-o", str(elf)], check=True, capture_output=True)
    subprocess.run([*zig, "objcopy", "-O", "binary", str(elf), str(out / "prog.bin")],
                   check=True, capture_output=True)
    return (out / "prog.bin").read_bytes()


def test_compiled_c_program(tmp_path):
    pytest.importorskip("ziglang")
    binary = build_c_program(tmp_path)
    assert len(binary) <= 0x2000
    mem = bytearray(MEM_BYTES)
    mem[:len(binary)] = binary
    model = run_model(mem, 0)
    assert model.trap == Trap.EBREAK
    results = [model.load_word(0x1000 + 4 * k) for k in range(8)]
    # prog.c in Python
    values = sorted((k * 2654435761) & 0xFFFF for k in range(48))
    checksum = acc = uacc = 0
    for k, v in enumerate(values):
        checksum = (checksum * 31 + v + k) & MASK32
        x = ((v * 40503) & MASK32) - 0x4000_0000
        x = x - (1 << 32) if x >= 1 << 31 else x
        acc += x * (k - 20) * 977
        uacc += v * 0x9E37_79B9 + ((x & MASK32) << 7)
    acc &= (1 << 64) - 1
    uacc &= (1 << 64) - 1
    assert results == [checksum, acc & MASK32, acc >> 32, uacc & MASK32, uacc >> 32,
                       1_000_000_007 // 12345, 1_000_000_007 % 12345, -123456 & MASK32]
    rtl_mem, writes, cycles = run_rtl(mem, 0, latencies=(1,))
    assert writes == model.writes and rtl_mem == model.regions[0][2]
    print(f"{model.steps} instructions, {cycles} cycles, CPI {cycles / model.steps:.2f}")
