"""Packed records shared by the learning core, the host link and the host driver.

Every layout is derived from a :class:`golden.fixed.FixedParams`, so widths follow the build
parameters. The host side (``host/``) imports the same enums to encode commands.
"""

from amaranth.hdl import unsigned, signed
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.fixed import COUNTERS, FixedParams

from .counters import counter_read_signature

#: Cycle counters kept by the RTL only (per phase, plus the total while busy).
CYCLE_COUNTERS = ("cyc_accumulate", "cyc_neuron", "cyc_readout", "cyc_gradient",
                  "cyc_trace", "cyc_busy")
#: All counters in the order the hardware reports them (32 bit each).
ALL_COUNTERS = COUNTERS + CYCLE_COUNTERS
COUNTER_BITS = 32


class TokenKind(enum.Enum, shape=2):
    """Kind of a core input token."""
    EVENT = 0  #: ``value`` = input index spiking in the current step
    STEP = 1   #: run the current step (phases 1-8 of SPEC.md section 5)
    START = 2  #: start a sample: ``value`` = label, ``learn`` = learning sample
    END = 3    #: end the sample: emit the prediction on ``result``


class Memory(enum.Enum, shape=3):
    """Host-visible memories (``MemCmd.mem``)."""
    W = 0      #: W[row=j, col=i], read/write
    W_OUT = 1  #: W_out[row=k, col=j], read/write
    B = 2      #: B[row=j, col=k], read/write (random feedback)
    V = 3      #: membrane V[col=j], read only
    SCORE = 4  #: score[col=k], read only
    Y = 5      #: readout y[col=k], read only


INDEX_BITS = 12  #: row/column index width (FixedParams caps sizes at 4096)


def token_layout() -> data.StructLayout:
    return data.StructLayout({
        "kind": TokenKind,
        "value": unsigned(INDEX_BITS),
        "learn": unsigned(1),
    })


def mem_cmd_layout() -> data.StructLayout:
    return data.StructLayout({
        "write": unsigned(1),
        "mem": Memory,
        "row": unsigned(INDEX_BITS),
        "col": unsigned(INDEX_BITS),
        "data": signed(32),
    })


def hyper_layout(p: FixedParams) -> data.StructLayout:
    """Run-time registers (``golden.fixed.FixedHyper``) plus the ``dense`` mode bit.

    ``rule`` has no bits in a build without ``otpe`` (only rule 0 exists there)."""
    return data.StructLayout({
        "alpha_q": unsigned(p.decay_frac),
        "lam_q": unsigned(p.decay_frac),
        "kappa_q": unsigned(p.decay_frac),
        "theta": unsigned(p.v_bits - 1),
        "b_th": unsigned(p.psi_bits),
        "target": unsigned(p.y_bits - 1),
        "l_shift": unsigned(p.shift_bits),
        "psi_shift": unsigned(p.shift_bits),
        "g_shift": unsigned(p.shift_bits),
        "go_shift": unsigned(p.shift_bits),
        "feedback": unsigned(1),
        "seed": unsigned(32),
        "rule": unsigned(1 if p.otpe else 0),
        "dense": unsigned(1),
    })


def counters_signature() -> wiring.Signature:
    """Read port of the core's counters (``hdl.counters.CounterBank``), seen from the reader:
    ``addr`` is the counter's number in :data:`ALL_COUNTERS`."""
    return counter_read_signature(len(ALL_COUNTERS), COUNTER_BITS)


def result_layout(p: FixedParams) -> data.StructLayout:
    return data.StructLayout({"prediction": unsigned(max(1, (p.n_out - 1).bit_length()))})


def core_members(p: FixedParams) -> dict:
    """Signature members of a learning core (``hdl.core.LearningCore``), seen from the core."""
    return {
        "tokens":         In(stream.Signature(token_layout())),
        "result":         Out(stream.Signature(result_layout(p))),
        "mem_cmd":        In(stream.Signature(mem_cmd_layout())),
        "mem_rsp":        Out(stream.Signature(signed(32))),
        "hyper":          In(hyper_layout(p)),
        "reseed":         In(1),
        "counters":       In(counters_signature()),
        "clear_counters": In(1),
        "busy":           Out(1),
    }
