"""PLL divider search and the clock/reset generator of the board tops.

Divider formulas (all frequencies in Hz; the search is exact, on :class:`fractions.Fraction`):

iCE40 ``SB_PLL40_PAD`` with ``FEEDBACK_PATH="SIMPLE"`` (iCE40 sysCLOCK PLL Design and Usage
Guide, TN1251; limits as ``icepll``)::

    F_PFD = F_REF / (DIVR + 1)      10 .. 133 MHz     DIVR 0 .. 15
    F_VCO = F_PFD * (DIVF + 1)     533 .. 1066 MHz    DIVF 0 .. 127
    F_OUT = F_VCO / 2**DIVQ         16 .. 275 MHz     DIVQ 1 .. 6
    FILTER_RANGE = 1 .. 6 for F_PFD < 17, 26, 44, 66, 101, above

ECP5 ``EHXPLLL`` with feedback from ``CLKOP`` (ECP5 sysCLOCK PLL/DLL Design and Usage Guide,
TN1263; limits as ``ecppll``)::

    F_PFD = F_IN / CLKI_DIV          >= 3.125 MHz      CLKI_DIV  1 .. 128
    F_OUT = F_PFD * CLKFB_DIV        10 .. 400 MHz     CLKFB_DIV 1 .. 80
    F_VCO = F_OUT * CLKOP_DIV       400 .. 800 MHz     CLKOP_DIV 1 .. 128

Both searches return the output frequency closest to the request (first found on ties for
iCE40, as ``icepll``; VCO closest to 600 MHz on ties for ECP5, as ``ecppll``).
"""

from dataclasses import dataclass
from fractions import Fraction

from amaranth.hdl import (ClockDomain, ClockSignal, Const, Elaboratable, Instance, Module,
                          ResetSignal, Signal)
from amaranth.lib import io
from amaranth.lib.cdc import FFSynchronizer, ResetSynchronizer

__all__ = ["ICE40PLLConfig", "ECP5PLLConfig", "ice40_pll", "ecp5_pll", "pll_config",
           "pll_frequencies", "ClockReset"]

MHZ = 1_000_000


def _hz(value) -> Fraction:
    return Fraction(value).limit_denominator(1000) if isinstance(value, float) else Fraction(value)


def _mhz(value: Fraction) -> float:
    return float(value / MHZ)


# -- iCE40 -------------------------------------------------------------------------------------

ICE40_LIMITS = {"in": (10 * MHZ, 133 * MHZ), "pfd": (10 * MHZ, 133 * MHZ),
                "vco": (533 * MHZ, 1066 * MHZ), "out": (16 * MHZ, 275 * MHZ)}


def _ice40_filter_range(f_pfd) -> int:
    for fr, upper in enumerate((17, 26, 44, 66, 101), start=1):
        if f_pfd < upper * MHZ:
            return fr
    return 6


@dataclass(frozen=True)
class ICE40PLLConfig:
    """``SB_PLL40_*`` parameters (``FEEDBACK_PATH="SIMPLE"``)."""

    f_in: Fraction
    divr: int
    divf: int
    divq: int

    family = "ice40"

    @property
    def f_pfd(self) -> Fraction:
        return self.f_in / (self.divr + 1)

    @property
    def f_vco(self) -> Fraction:
        return self.f_pfd * (self.divf + 1)

    @property
    def f_out(self) -> Fraction:
        return self.f_vco / (1 << self.divq)

    @property
    def filter_range(self) -> int:
        return _ice40_filter_range(self.f_pfd)

    def check(self):
        """Raise ``ValueError`` if a divider or an internal frequency is out of range."""
        for name, value, lo, hi in (("DIVR", self.divr, 0, 15), ("DIVF", self.divf, 0, 127),
                                    ("DIVQ", self.divq, 1, 6)):
            if not lo <= value <= hi:
                raise ValueError(f"{name} must be in [{lo}, {hi}], not {value!r}")
        for name, value in (("in", self.f_in), ("pfd", self.f_pfd), ("vco", self.f_vco),
                            ("out", self.f_out)):
            lo, hi = ICE40_LIMITS[name]
            if not lo <= value <= hi:
                raise ValueError(f"F_{name.upper()} must be in [{lo / MHZ}, {hi / MHZ}] MHz, "
                                 f"not {_mhz(value)!r}")
        return self

    def as_dict(self) -> dict:
        return {"primitive": "SB_PLL40_PAD", "f_in_mhz": _mhz(self.f_in),
                "f_out_mhz": _mhz(self.f_out), "f_pfd_mhz": _mhz(self.f_pfd),
                "f_vco_mhz": _mhz(self.f_vco), "DIVR": self.divr, "DIVF": self.divf,
                "DIVQ": self.divq, "FILTER_RANGE": self.filter_range}


def _ice40_candidates(f_in):
    f_in = _hz(f_in)
    lo, hi = ICE40_LIMITS["in"]
    if not lo <= f_in <= hi:
        raise ValueError(f"iCE40 PLL input must be in [{lo / MHZ}, {hi / MHZ}] MHz, "
                         f"not {_mhz(f_in)!r}")
    for divr in range(16):
        f_pfd = f_in / (divr + 1)
        if not ICE40_LIMITS["pfd"][0] <= f_pfd <= ICE40_LIMITS["pfd"][1]:
            continue
        for divf in range(128):
            f_vco = f_pfd * (divf + 1)
            if not ICE40_LIMITS["vco"][0] <= f_vco <= ICE40_LIMITS["vco"][1]:
                continue
            for divq in range(1, 7):
                cfg = ICE40PLLConfig(f_in, divr, divf, divq)
                if ICE40_LIMITS["out"][0] <= cfg.f_out <= ICE40_LIMITS["out"][1]:
                    yield cfg


def ice40_pll(f_in, f_out) -> ICE40PLLConfig:
    """Dividers giving the output frequency closest to ``f_out`` from ``f_in`` (Hz)."""
    f_out = _hz(f_out)
    lo, hi = ICE40_LIMITS["out"]
    if not lo <= f_out <= hi:
        raise ValueError(f"iCE40 PLL output must be in [{lo / MHZ}, {hi / MHZ}] MHz, "
                         f"not {_mhz(f_out)!r}")
    best = None
    for cfg in _ice40_candidates(f_in):
        if best is None or abs(cfg.f_out - f_out) < abs(best.f_out - f_out):
            best = cfg
    return best.check()


# -- ECP5 --------------------------------------------------------------------------------------

ECP5_LIMITS = {"in": (8 * MHZ, 400 * MHZ), "pfd": (Fraction(3125, 1000) * MHZ, 400 * MHZ),
               "vco": (400 * MHZ, 800 * MHZ), "out": (10 * MHZ, 400 * MHZ)}


@dataclass(frozen=True)
class ECP5PLLConfig:
    """``EHXPLLL`` parameters (``FEEDBK_PATH="CLKOP"``)."""

    f_in: Fraction
    clki_div: int
    clkfb_div: int
    clkop_div: int

    family = "ecp5"

    @property
    def f_pfd(self) -> Fraction:
        return self.f_in / self.clki_div

    @property
    def f_out(self) -> Fraction:
        return self.f_pfd * self.clkfb_div

    @property
    def f_vco(self) -> Fraction:
        return self.f_out * self.clkop_div

    @property
    def clkop_cphase(self) -> int:
        """Coarse phase for a 0 degree ``CLKOP`` (one VCO period per step, as LiteX)."""
        return self.clkop_div - 1

    def check(self):
        for name, value, lo, hi in (("CLKI_DIV", self.clki_div, 1, 128),
                                    ("CLKFB_DIV", self.clkfb_div, 1, 80),
                                    ("CLKOP_DIV", self.clkop_div, 1, 128)):
            if not lo <= value <= hi:
                raise ValueError(f"{name} must be in [{lo}, {hi}], not {value!r}")
        for name, value in (("in", self.f_in), ("pfd", self.f_pfd), ("vco", self.f_vco),
                            ("out", self.f_out)):
            lo, hi = ECP5_LIMITS[name]
            if not lo <= value <= hi:
                raise ValueError(f"F_{name.upper()} must be in [{float(lo / MHZ)}, "
                                 f"{float(hi / MHZ)}] MHz, not {_mhz(value)!r}")
        return self

    def as_dict(self) -> dict:
        return {"primitive": "EHXPLLL", "f_in_mhz": _mhz(self.f_in),
                "f_out_mhz": _mhz(self.f_out), "f_pfd_mhz": _mhz(self.f_pfd),
                "f_vco_mhz": _mhz(self.f_vco), "CLKI_DIV": self.clki_div,
                "CLKFB_DIV": self.clkfb_div, "CLKOP_DIV": self.clkop_div,
                "CLKOP_CPHASE": self.clkop_cphase}


def _ecp5_candidates(f_in):
    f_in = _hz(f_in)
    lo, hi = ECP5_LIMITS["in"]
    if not lo <= f_in <= hi:
        raise ValueError(f"ECP5 PLL input must be in [{lo / MHZ}, {hi / MHZ}] MHz, "
                         f"not {_mhz(f_in)!r}")
    for clki_div in range(1, 129):
        f_pfd = f_in / clki_div
        if not ECP5_LIMITS["pfd"][0] <= f_pfd <= ECP5_LIMITS["pfd"][1]:
            continue
        for clkfb_div in range(1, 81):
            f_out = f_pfd * clkfb_div
            if not ECP5_LIMITS["out"][0] <= f_out <= ECP5_LIMITS["out"][1]:
                continue
            # CLKOP_DIV only sets the VCO frequency; the range it may take is contiguous.
            for clkop_div in range(1, 129):
                f_vco = f_out * clkop_div
                if f_vco > ECP5_LIMITS["vco"][1]:
                    break
                if f_vco >= ECP5_LIMITS["vco"][0]:
                    yield ECP5PLLConfig(f_in, clki_div, clkfb_div, clkop_div)


def ecp5_pll(f_in, f_out) -> ECP5PLLConfig:
    """Dividers giving the output frequency closest to ``f_out`` from ``f_in`` (Hz)."""
    f_out = _hz(f_out)
    lo, hi = ECP5_LIMITS["out"]
    if not lo <= f_out <= hi:
        raise ValueError(f"ECP5 PLL output must be in [{lo / MHZ}, {hi / MHZ}] MHz, "
                         f"not {_mhz(f_out)!r}")
    best, vco_mid = None, 600 * MHZ

    def key(cfg):
        return (abs(cfg.f_out - f_out), abs(cfg.f_vco - vco_mid))

    for cfg in _ecp5_candidates(f_in):
        if best is None or key(cfg) < key(best):
            best = cfg
    return best.check()


def pll_config(family: str, f_in, f_out):
    """``ice40_pll`` or ``ecp5_pll`` by family name."""
    if family == "ice40":
        return ice40_pll(f_in, f_out)
    if family == "ecp5":
        return ecp5_pll(f_in, f_out)
    raise ValueError(f"family must be 'ice40' or 'ecp5', not {family!r}")


def pll_frequencies(family: str, f_in, lo, hi) -> list[Fraction]:
    """Every exactly reachable output frequency in ``[lo, hi]`` Hz, ascending."""
    candidates = {"ice40": _ice40_candidates, "ecp5": _ecp5_candidates}[family](f_in)
    lo, hi = _hz(lo), _hz(hi)
    return sorted({cfg.f_out for cfg in candidates if lo <= cfg.f_out <= hi})


# -- gateware ----------------------------------------------------------------------------------

class ClockReset(Elaboratable):
    """Clock and reset of a board top's ``sync`` domain: PLL from the oscillator, then reset.

    The parent module defines the domain (``m.domains.sync = ClockDomain("sync")``); this
    drives its clock and reset. ``sync`` is held in reset until the PLL has locked and then
    for ``por_cycles`` more cycles (iCE40 block RAMs read as zero for ~3 us after
    configuration), and whenever ``ext_rst`` is high. Reset is asserted asynchronously and
    released synchronously (:class:`amaranth.lib.cdc.ResetSynchronizer`).

    Parameters
    ----------
    pll : ICE40PLLConfig or ECP5PLLConfig
        Dividers (the family is taken from the config).
    clk_port : amaranth.lib.io.PortLike
        The oscillator pin, requested with ``dir="-"``. On iCE40 it must be the PLL pad
        (``SB_PLL40_PAD``: iCEBreaker pin 35).
    por_cycles : int
        Extra reset cycles after lock.

    Interface attributes
    --------------------
    ext_rst : Signal(), input
        Asynchronous reset request (e.g. a button), active high.
    locked : Signal(), output
        PLL lock, synchronised to ``sync`` (for a status LED).
    """

    def __init__(self, pll, clk_port, *, por_cycles=None):
        self.pll = pll.check()
        self.clk_port = clk_port
        f_out = float(pll.f_out)
        self.por_cycles = int(20e-6 * f_out) if por_cycles is None else int(por_cycles)
        self.ext_rst = Signal()
        self.locked = Signal()

    def elaborate(self, platform):
        m = Module()
        clk = Signal()
        lock = Signal()
        cfg = self.pll

        if cfg.family == "ice40":
            m.submodules.pll = Instance(
                "SB_PLL40_PAD",
                p_FEEDBACK_PATH="SIMPLE",
                p_DIVR=Const(cfg.divr, 4),
                p_DIVF=Const(cfg.divf, 7),
                p_DIVQ=Const(cfg.divq, 3),
                p_FILTER_RANGE=Const(cfg.filter_range, 3),
                io_PACKAGEPIN=self.clk_port.io,
                i_RESETB=Const(1),
                i_BYPASS=Const(0),
                o_PLLOUTGLOBAL=clk,
                o_LOCK=lock,
            )
        else:
            m.submodules.clk_buf = clk_buf = io.Buffer("i", self.clk_port)
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=f"{_mhz(cfg.f_in):.6g}",
                a_FREQUENCY_PIN_CLKOP=f"{_mhz(cfg.f_out):.6g}",
                a_ICP_CURRENT="12",
                a_LPF_RESISTOR="8",
                a_MFG_ENABLE_FILTEROPAMP="1",
                a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED",
                p_INTFB_WAKE="DISABLED",
                p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED",
                p_OUTDIVIDER_MUXA="DIVA",
                p_OUTDIVIDER_MUXB="DIVB",
                p_OUTDIVIDER_MUXC="DIVC",
                p_OUTDIVIDER_MUXD="DIVD",
                p_CLKI_DIV=cfg.clki_div,
                p_CLKOP_ENABLE="ENABLED",
                p_CLKOP_DIV=cfg.clkop_div,
                p_CLKOP_CPHASE=cfg.clkop_cphase,
                p_CLKOP_FPHASE=0,
                p_FEEDBK_PATH="CLKOP",
                p_CLKFB_DIV=cfg.clkfb_div,
                i_CLKI=clk_buf.i,
                i_CLKFB=clk,
                i_RST=Const(0),
                i_STDBY=Const(0),
                i_PHASESEL0=Const(0),
                i_PHASESEL1=Const(0),
                i_PHASEDIR=Const(1),
                i_PHASESTEP=Const(1),
                i_PHASELOADREG=Const(1),
                i_PLLWAKESYNC=Const(0),
                i_ENCLKOP=Const(0),
                o_CLKOP=clk,
                o_LOCK=lock,
            )

        # Power-on timer in a reset-less domain on the PLL clock: restarts on loss of lock.
        m.domains.por = ClockDomain("por", reset_less=True, local=True)
        m.d.comb += [ClockSignal("por").eq(clk), ClockSignal("sync").eq(clk)]
        lock_s = Signal()
        m.submodules.lock_sync = FFSynchronizer(lock, lock_s, o_domain="por")
        timer = Signal(range(self.por_cycles + 1))
        ready = Signal()
        with m.If(~lock_s):
            m.d.por += [timer.eq(0), ready.eq(0)]
        with m.Elif(timer == self.por_cycles):
            m.d.por += ready.eq(1)
        with m.Else():
            m.d.por += timer.eq(timer + 1)
        reset_domain = "sync"
        if cfg.family == "ecp5":
            # The synchronous reset reaches every resettable flip-flop (some 25,000 in the
            # SHD build): on fabric routing it crowded the router and its delay entered
            # the paths to the flip-flops' LSR inputs. A DCCA puts it on a primary clock
            # network, which reaches the slices' LSR inputs directly.
            reset_domain = "rst_src"
            m.domains.rst_src = ClockDomain("rst_src", local=True)
            m.d.comb += ClockSignal("rst_src").eq(clk)
            m.submodules.reset_buf = Instance("DCCA", i_CLKI=ResetSignal("rst_src"),
                                              i_CE=Const(1), o_CLKO=ResetSignal("sync"))
        m.submodules.reset_sync = ResetSynchronizer(~ready | self.ext_rst, domain=reset_domain)
        m.d.comb += self.locked.eq(ready & ~ResetSignal("sync"))
        if platform is not None and cfg.family == "ice40":
            # nextpnr-ecp5 derives the CLKOP constraint from CLKI itself (and the flattened
            # net is renamed, so a constraint on it would be ignored with a warning).
            platform.add_clock_constraint(clk, float(cfg.f_out))
        return m
