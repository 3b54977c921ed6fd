"""Build the soft core's ROM image: the firmware in ``fw/`` for one network and link setup.

The C sources are compiled for RV32I + Zmmul with the Zig toolchain's clang (PyPI
``ziglang``, so a fresh machine needs nothing else) and linked with ``fw/soc.ld`` against the
memory map of :mod:`hdl.soc`. Images are cached in ``build/fw/rv32-<hash>/`` by a hash of
the sources and the flags (:func:`fw.build.cached_build`).
"""

import subprocess
import sys
from pathlib import Path

from golden.fixed import FixedParams

FW = Path(__file__).resolve().parent
SOURCES = ("crt0.S", "main.c", "link.c", "snn.c", "hal_rv32.c")
HEADERS = ("hal.h", "link.h", "snn.h")
CFLAGS = ("-target", "riscv32-freestanding-none", "-mcpu=generic_rv32+zmmul", "-mno-relax",
          "-Os", "-ffreestanding", "-fno-builtin", "-Wall", "-Werror")

__all__ = ["build_image", "image_defines", "FirmwareError"]


class FirmwareError(RuntimeError):
    pass


def image_defines(*, clk_freq: int, baud: int, max_payload: int, rx_fifo_depth: int,
                  timeout_cycles: int) -> list[str]:
    """The ``-D`` flags of the link setup and the SoC's memory map."""
    from hdl.soc import IoReg, Region, STATUS_RX_FRAMING, STATUS_RX_OVERFLOW

    from .build import link_defines
    io = Region.IO.base
    defines = {"FW_IO_BASE": f"{io:#x}u",
               "FW_STATUS_RX_OVERFLOW": STATUS_RX_OVERFLOW,
               "FW_STATUS_RX_FRAMING": STATUS_RX_FRAMING,
               "SNN_NOW()": f"(*(volatile unsigned int *){io + IoReg.CYCLES:#x}u)"}
    defines.update({f"FW_REG_{reg.name}": f"{reg.value:#x}u" for reg in IoReg})
    return [*link_defines(clk_freq=clk_freq, baud=baud, max_payload=max_payload,
                          rx_fifo_depth=rx_fifo_depth, timeout_cycles=timeout_cycles),
            *(f"-D{name}={value}" for name, value in defines.items())]


def build_image(params: FixedParams, *, clk_freq: int, baud: int, max_payload: int,
                rx_fifo_depth: int, timeout_cycles: int, ram_bytes: int,
                rom_bytes: int = 1 << 16) -> bytes:
    """Compile and link the firmware; returns the ROM image (code, constants, .data).

    ``rom_bytes`` only bounds the link (the SoC sizes its ROM to the image).
    """
    from hdl.soc import Region

    from .build import cached_build, param_defines
    flags = [*CFLAGS, *param_defines(params),
             *image_defines(clk_freq=clk_freq, baud=baud, max_payload=max_payload,
                            rx_fifo_depth=rx_fifo_depth, timeout_cycles=timeout_cycles)]
    script = (FW / "soc.ld").read_text()
    for name, value in (("ROM_BASE", Region.ROM.base), ("ROM_SIZE", rom_bytes),
                        ("RAM_BASE", Region.RAM.base), ("RAM_SIZE", ram_bytes)):
        script = script.replace(f"@{name}@", f"{value:#x}")
    zig = [sys.executable, "-m", "ziglang"]

    def make(tmp, out):
        elf = out / "firmware.elf"
        (out / "soc.ld").write_text(script)
        _run([*zig, "cc", *flags, "-T", str(out / "soc.ld"), *(str(FW / s) for s in SOURCES),
              "-o", str(elf)])
        _run([*zig, "objcopy", "-O", "binary", str(elf), str(tmp)])

    image = cached_build("rv32", (flags, script), [FW / n for n in SOURCES + HEADERS],
                         "firmware.bin", make)
    return image.read_bytes()


def _run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise FirmwareError(f"{' '.join(cmd[:4])} ... failed:\n{proc.stderr}")
