"""Board support: iCEBreaker (iCE40UP5K) and ULX3S 85F (LFE5U-85F).

A :class:`Board` names the amaranth-boards platform, the PLL target, the network that fits
on the device and the LEDs; :class:`BoardTop` is the top-level module of a bitstream: the
PLL and reset (:class:`boards.pll.ClockReset`), the UART pins through I/O buffers, the status
LEDs and the design (``hdl.top.Top``) with its plain ports.

LEDs (active when lit):

============  ==========================  ==================================
role          iCEBreaker                  ULX3S
============  ==========================  ==================================
heartbeat     green LED (LED2)            LED0 (1 Hz blink once out of reset)
busy          snap-off LED1 (PMOD2 7)     LED1
error         red LED (LED1)              LED2
PLL locked    --                          LED7
============  ==========================  ==================================

Further single-bit outputs of ``Top`` go to the remaining LEDs in declaration order.
The reset button (iCEBreaker user button, ULX3S FIRE1) resets the design while held.
"""

from dataclasses import dataclass, field

from amaranth.build import Attrs, PinsN, Resource
from amaranth.hdl import ClockDomain, Elaboratable, Module, Signal
from amaranth.lib import io, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.ulx3s import ULX3S_85F_Platform

from golden.fixed import FixedParams

from .pll import ClockReset, pll_config

__all__ = ["Board", "BOARDS", "DESIGNS", "BoardTop", "get_board", "make_top"]


@dataclass(frozen=True)
class Board:
    """What a bitstream for one board is built from.

    Frequencies are in Hz. ``params`` is the full network for the device, ``small_params``
    the smoke-test network (``--small``). ``leds`` maps a role to an amaranth-boards
    ``(resource, number)``; ``spare_leds`` take the further outputs of ``Top``.
    """

    name: str
    platform: type
    family: str               #: "ice40" or "ecp5"
    clk_resource: str         #: oscillator resource (the PLL reference)
    target_freq: int          #: design clock the PLL is set to
    min_freq: int             #: lowest design clock acceptable for this board
    params: FixedParams
    small_params: FixedParams
    baud: int = 3_000_000     #: the host CLI's default (host/cli.py --baud)
    leds: dict = field(default_factory=dict)
    spare_leds: tuple = ()
    reset_button: tuple | None = None
    synth_opts: tuple = ()
    #: Yosys commands after ``read_rtlil`` (before ``synth_<family>``)
    yosys_after_read: tuple = ()
    nextpnr_opts: tuple = ()
    design: str = "top"       #: the design of ``make bitstream`` (see :func:`make_top`)
    programmer: str = ""      #: tool name, overridable through the environment
    programmer_env: str = ""

    def make_platform(self):
        platform = self.platform()
        if self.name == "icebreaker":
            # Snap-off LEDs, and the user button with the FPGA's pull-up enabled.
            platform.add_resources(platform.break_off_pmod)
            platform.add_resources([
                Resource("reset_button", 0, PinsN("10", dir="i"),
                         Attrs(IO_STANDARD="SB_LVCMOS", PULLUP=1)),
            ])
        return platform

    @property
    def ref_freq(self) -> float:
        """Frequency of the oscillator that feeds the PLL, in Hz."""
        for res in self.platform.resources:
            if res.name == self.clk_resource and res.number == 0:
                return res.clock.frequency
        raise LookupError(f"{self.platform.__name__} has no clock {self.clk_resource}")

    def pll(self, freq=None):
        """PLL dividers for ``freq`` Hz (default: the board's target)."""
        return pll_config(self.family, self.ref_freq, freq or self.target_freq)


BOARDS = {
    "icebreaker": Board(
        name="icebreaker",
        platform=ICEBreakerPlatform,
        family="ice40",
        clk_resource="clk12",
        # The soft-core SoC: 41.2 MHz against a 48 MHz constraint (0835161), 42.8 MHz at this
        # 39 MHz target (5a9facb); 39 MHz is a PLL step below those with an exact 3 Mbaud
        # divisor (13).
        target_freq=39_000_000,
        min_freq=30_000_000,
        # T-Randman: 50 inputs, 128 hidden neurons, 10 classes, OTPE built in, on the
        # soft-core engine (hdl/soc.py): the dataflow core needs about twice the UP5K's
        # logic cells (boards/README.md), the RV32 CPU and the firmware fit.
        design="soc",
        params=FixedParams(n_in=50, n_hid=128, n_out=10),
        small_params=FixedParams(n_in=8, n_hid=8, n_out=2),
        leds={"heartbeat": ("led", 1), "busy": ("led", 2), "error": ("led", 0)},
        spare_leds=(("led", 3), ("led", 4), ("led", 5), ("led", 6)),
        reset_button=("reset_button", 0),
        synth_opts=("-dsp", "-device", "u"),
        nextpnr_opts=("--opt-timing",),
        programmer="iceprog",
        programmer_env="ICEPROG",
    ),
    "ulx3s": Board(
        name="ulx3s",
        platform=ULX3S_85F_Platform,
        family="ecp5",
        clk_resource="clk25",
        # 86.3 MHz routed for this network at b0ce096 (88.1 at 0cadd58), built at this
        # 80 MHz target; the 700/256/20 network (--set n_hid=256) reached 72.4 MHz at 6c886c2.
        target_freq=80_000_000,
        min_freq=80_000_000,
        # SHD: 700 input channels, 128 hidden neurons, 20 classes. A weight bank (11,200
        # words of 10 bits) in 8192-word memories: 8192 x 2 bit DP16KDs, five side by side
        # per chunk and no cascade in depth, each chunk's read data registered next to its
        # block RAMs.
        params=FixedParams(n_in=700, n_hid=128, n_out=20, lanes=8, w_chunk=8192),
        small_params=FixedParams(n_in=8, n_hid=8, n_out=2, lanes=2),
        leds={"heartbeat": ("led", 0), "busy": ("led", 1), "error": ("led", 2),
              "locked": ("led", 7)},
        spare_leds=(("led", 3), ("led", 4), ("led", 5), ("led", 6)),
        reset_button=("button_fire", 0),
        # Every Amaranth FSM one-hot: Yosys does not re-encode a state register that has an
        # initial value unless it is marked (it warns that the initial value is ignored: the
        # sync domain is held in reset until the PLL locks, which puts each FSM in its reset
        # state). One flip-flop per state, no state decoding in front of the logic.
        yosys_after_read=('setattr -set fsm_encoding "one-hot" w:fsm_state',),
        programmer="openFPGALoader",
        programmer_env="OPENFPGALOADER",
    ),
}


def get_board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(f"board must be one of {', '.join(BOARDS)}, not {name!r}") from None


DESIGNS = ("top", "soc", "core", "standin")


def make_top(params: FixedParams, clk_freq: int, baud: int, *, design: str = "top"):
    """The design behind the pins.

    ``"top"`` is ``hdl.top.Top`` (the dataflow core); ``"soc"`` ``hdl.soc.SoC`` (the soft-core
    engine running ``fw/``: the same model and protocol on a small CPU); ``"core"`` the
    learning core alone in a timing harness (:mod:`boards.harness`); ``"standin"`` a UART
    loopback (:mod:`boards.standin`) for testing the flow.
    """
    if design == "soc":
        from hdl.soc import SoC
        return SoC(params, clk_freq, baud)
    if design == "standin":
        from .standin import StandInTop
        return StandInTop(params, clk_freq, baud)
    if design == "core":
        from .harness import CoreHarness
        return CoreHarness(params, clk_freq, baud)
    if design != "top":
        raise ValueError(f"design must be one of {', '.join(DESIGNS)}, not {design!r}")
    try:
        from hdl.top import Top
    except ImportError as exc:
        raise RuntimeError(f"hdl.top.Top is not available ({exc}); build the flow test "
                           f"design with --design standin") from exc
    return Top(params, clk_freq, baud)


_RX_NAMES = ("rx", "uart_rx", "rxd")
_TX_NAMES = ("tx", "uart_tx", "txd")


def _design_ports(design):
    """Find ``rx``, ``tx`` and the single-bit status outputs of a design by its signature."""
    members = design.signature.members
    rx = next((n for n in _RX_NAMES if n in members), None)
    tx = next((n for n in _TX_NAMES if n in members), None)
    if rx is None or tx is None:
        raise TypeError(f"{type(design).__name__} must have UART ports named one of "
                        f"{_RX_NAMES} / {_TX_NAMES}, not {list(members)!r}")
    status = {}
    for name, member in members.items():
        if name in (rx, tx) or not member.is_port or member.flow != wiring.Out:
            continue
        value = getattr(design, name)
        for bit in range(len(value)):
            status[name if len(value) == 1 else f"{name}[{bit}]"] = value[bit]
    return getattr(design, rx), getattr(design, tx), status


def _role_of(name: str) -> str | None:
    lower = name.lower()
    if "busy" in lower:
        return "busy"
    if "err" in lower:
        return "error"
    if "heart" in lower:
        return "heartbeat"
    return None


class BoardTop(Elaboratable):
    """Top-level module of a bitstream: clocking, pins and the design.

    Parameters
    ----------
    board : Board
    pll : ICE40PLLConfig or ECP5PLLConfig
        Sets the ``sync`` clock; the design is built for ``pll.f_out``.
    design : wiring.Component
        ``Top(params, int(pll.f_out), baud)`` (or the stand-in), with ports ``rx`` In(1),
        ``tx`` Out(1) and single-bit status outputs.
    """

    def __init__(self, board: Board, pll, design):
        self.board = board
        self.pll = pll
        self.design = design
        self.led_map = {}   # role or design output -> "resource#number", filled at elaboration

    def elaborate(self, platform):
        m = Module()
        board = self.board

        m.domains.sync = ClockDomain("sync")
        clk_port = platform.request(board.clk_resource, 0, dir="-")
        m.submodules.crg = crg = ClockReset(self.pll, clk_port)
        if board.reset_button is not None:
            btn = platform.request(*board.reset_button, dir="-")
            m.submodules.btn_buf = btn_buf = io.Buffer("i", btn)
            m.d.comb += crg.ext_rst.eq(btn_buf.i)

        m.submodules.design = design = self.design
        rx, tx, status = _design_ports(design)

        # UART: the receive line is synchronised here (idle high), the transmit line is
        # driven straight from the design's register so that it idles high from power-up.
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx_buf = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.tx_buf = tx_buf = io.Buffer("o", uart.tx)
        m.submodules.rx_sync = FFSynchronizer(rx_buf.i, rx, init=1)
        m.d.comb += tx_buf.o.eq(tx)

        # Heartbeat: toggles every half second of the design clock while out of reset.
        half = int(self.pll.f_out) // 2
        beat = Signal(range(half))
        heartbeat = Signal()
        with m.If(beat == half - 1):
            m.d.sync += [beat.eq(0), heartbeat.eq(~heartbeat)]
        with m.Else():
            m.d.sync += beat.eq(beat + 1)

        drive = {"heartbeat": heartbeat, "locked": crg.locked}
        extra = []
        for name, value in status.items():
            role = _role_of(name)
            if role is not None and role not in drive and role in board.leds:
                drive[role] = value
            else:
                extra.append((name, value))
        leds = [(role, board.leds[role], drive[role]) for role in board.leds if role in drive]
        leds += [(name, res, value) for (name, value), res in zip(extra, board.spare_leds)]
        for role, (res, number), value in leds:
            pin = platform.request(res, number, dir="-")
            buf = io.Buffer("o", pin)
            m.submodules[f"led_{res}_{number}"] = buf
            m.d.comb += buf.o.eq(value)
            self.led_map[role] = f"{res}#{number}"
        return m
