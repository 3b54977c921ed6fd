"""Fixed-point helpers shared by the gateware blocks (saturation, shapes).

All helpers build Amaranth expressions; they mirror ``golden.fixed.sat`` / ``usat``.
"""

from amaranth.hdl import Cat, Const, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.utils import ceil_log2


def sat(value, bits: int) -> Value:
    """Clamp a (signed or unsigned) expression to the signed ``bits``-bit range.

    The range checks are bit tests of the bits above ``bits - 1`` (not comparisons, which
    synthesis maps to carry chains after the ones that computed ``value``)."""
    value = Value.cast(value)
    shape = value.shape()
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if shape.signed and shape.width <= bits:
        return value
    if not shape.signed and shape.width < bits:
        return value
    inner = value[:bits].as_signed()
    if shape.signed:
        sign, upper = value[-1], value[bits - 1:-1]
        over, under = ~sign & upper.any(), sign & ~upper.all()
        return Mux(over, Const(hi, signed(bits)), Mux(under, Const(lo, signed(bits)), inner))
    return Mux(value[bits - 1:].any(), Const(hi, signed(bits)), inner)


def usat(value, bits: int) -> Value:
    """Clamp an expression to the unsigned ``bits``-bit range ``[0, 2**bits - 1]`` (bit tests,
    as :func:`sat`)."""
    value = Value.cast(value)
    shape = value.shape()
    hi = Const((1 << bits) - 1, unsigned(bits))
    inner = value[:bits].as_unsigned()
    if not shape.signed:
        return Mux(value[bits:].any(), hi, inner) if shape.width > bits else inner
    sign = value[-1]
    result = Mux(~sign & value[bits:-1].any(), hi, inner) if shape.width > bits + 1 else inner
    return Mux(sign, Const(0, unsigned(bits)), result)


def clog2(n: int) -> int:
    """Bits needed to index ``n`` items (at least 1)."""
    return max(1, (n - 1).bit_length())


def bits_for(n: int) -> int:
    """Bits needed to hold the value ``n`` (at least 1)."""
    return max(1, int(n).bit_length())


def popcount(value: Value) -> Value:
    value = Value.cast(value)
    total = Const(0, unsigned(1))
    for bit in value:
        total = total + bit
    return total


def shape_width(shape) -> int:
    return Shape.cast(shape).width


def sweep(m, start, active, index, length: int, first: int = 0):
    """Add to ``m`` a one-shot counter: the cycle after ``start``, ``active`` is high and
    ``index`` is ``first``; ``index`` then steps by one per cycle and ``active`` drops after
    the cycle with ``index == length - 1``."""
    with m.If(start):
        m.d.sync += [active.eq(1), index.eq(first)]
    with m.Elif(active):
        m.d.sync += index.eq(index + 1)
        with m.If(index == length - 1):
            m.d.sync += active.eq(0)


def grouped_word_select(m, value, width: int, per_group: int, index):
    """Word ``index`` (``width`` bits) of ``value`` in two steps, for timing: this cycle, the
    word ``index % per_group`` of each group of ``per_group`` words (a power of two) goes into
    a register; returns ``pick(group)``, the registered word of group ``group`` (``index //
    per_group``, taken a cycle later).
    """
    lo = ceil_log2(per_group)
    groups = -(-len(Value.cast(value)) // (width * per_group))
    padded = Cat(value, Const(0, groups * per_group * width - len(Value.cast(value))))
    stage = Signal(groups * width)
    for k in range(groups):
        part = padded[k * per_group * width:(k + 1) * per_group * width]
        m.d.sync += stage[k * width:(k + 1) * width].eq(
            part.word_select(index[:lo], width) if per_group > 1 else part)

    def pick(group):
        return stage.word_select(group[:ceil_log2(groups)], width) if groups > 1 else stage
    return pick
