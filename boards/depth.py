"""Estimated register-to-register delays of a synthesised netlist, before place and route.

nextpnr reports only the worst path of each clock, one per 20-60 minute build. This reads
the Yosys JSON netlist (``build/<board>/top.json``) and estimates the arrival time of every
register input with a fixed delay per cell (logic plus a typical net), so that all deep
paths show up at once, grouped by the design signal they end in::

    python -m boards.depth build/ulx3s/top.json --limit 10

The delays are rough (routing is what varies), so the order matters more than the ns.
"""

import argparse
import json
import math
import re
from collections import defaultdict
from pathlib import Path

from .build import _signal_of

__all__ = ["estimate", "grouped", "main"]

#: Delay of a net (ns): base + per_doubling * log2(fanout), added to every cell delay below.
NET_NS = {"ecp5": (0.6, 0.25), "ice40": (0.9, 0.3)}

#: Combinational arcs: cell type -> (input port prefixes, output port prefixes, delay in ns,
#: without the net). A port matches when it starts with a prefix; "*" matches every port.
COMB_ARCS = {
    "ecp5": {
        "LUT4": [("*", "*", 0.45)],
        "PFUMX": [("*", "*", 0.25)],
        "L6MUX21": [("*", "*", 0.25)],
        "CCU2C": [("CIN", "COUT", 0.06), ("CIN", "S", 0.3), ("*", "*", 0.45)],
        "MULT18X18D": [("*", "*", 3.6)],
        "ALU54B": [("*", "*", 2.5)],
        "TRELLIS_DPR16X4": [("RAD", "DO", 1.0)],
    },
    "ice40": {
        "SB_LUT4": [("*", "*", 0.45)],
        "SB_CARRY": [("CI", "CO", 0.13), ("*", "*", 0.25)],
        "SB_MAC16": [("*", "*", 5.0)],
    },
}
#: Carry outputs: they drive the next cell of the chain on a dedicated wire.
CARRY_OUT = ("COUT", "CO")
#: Clock-to-output delay of sequential cells (their outputs start paths).
CLK_TO_OUT = {
    "ecp5": {"TRELLIS_FF": 0.5, "DP16KD": 3.8, "TRELLIS_DPR16X4": 1.2},
    "ice40": {"SB_RAM40_4K": 2.3, "SB_SPRAM256KA": 3.0},
}
_FF = re.compile(r"^(TRELLIS_FF|SB_DFF\w*)$")


def _clock_to_out(family, kind):
    if _FF.match(kind):
        return 0.5
    return CLK_TO_OUT[family].get(kind)


def _arc(family, kind, inp, out):
    for src, dst, delay in COMB_ARCS[family].get(kind, ()):
        if (src == "*" or inp.startswith(src)) and (dst == "*" or out.startswith(dst)):
            return delay
    return None


def _net_names(module):
    """The most readable name of each net bit."""
    names = {}
    for name, net in module["netnames"].items():
        hidden = name.startswith("$") or net.get("hide_name")
        for i, bit in enumerate(net["bits"]):
            if isinstance(bit, str):
                continue
            label = name if len(net["bits"]) == 1 else f"{name}[{i}]"
            rank = (hidden, len(label))
            if bit not in names or rank < names[bit][0]:
                names[bit] = (rank, label)
    return {bit: label for bit, (_, label) in names.items()}


def estimate(netlist: Path, family: str):
    """Per register input: (arrival ns, path of net names), worst first."""
    with open(netlist) as f:
        data = json.load(f)
    module = next(m for m in data["modules"].values() if m.get("attributes", {}).get("top"))
    base, per_doubling = NET_NS[family]
    names = _net_names(module)
    driver = {}                      # bit -> (cell name, output port)
    for cname, cell in module["cells"].items():
        for port, bits in cell["connections"].items():
            if cell["port_directions"].get(port) == "output":
                for bit in bits:
                    if not isinstance(bit, str):
                        driver[bit] = (cname, port)
    fanout = defaultdict(int)
    for cell in module["cells"].values():
        for port, bits in cell["connections"].items():
            if cell["port_directions"].get(port) == "input":
                for bit in bits:
                    if not isinstance(bit, str):
                        fanout[bit] += 1
    cells = module["cells"]
    arrival = {}                     # bit -> (ns, previous bit)

    def inputs_of(cell, port):
        for iport, ibits in cell["connections"].items():
            if cell["port_directions"].get(iport) != "input":
                continue
            delay = _arc(family, cell["type"], iport, port)
            if delay is not None:
                yield from ((ib, delay) for ib in ibits if not isinstance(ib, str))

    def resolve(bit):
        stack = [(bit, False)]
        while stack:
            b, expanded = stack.pop()
            if b in arrival:
                continue
            if b not in driver:
                arrival[b] = (0.0, None)
                continue
            cname, port = driver[b]
            cell = cells[cname]
            start = _clock_to_out(family, cell["type"])
            # carry chains have their own wires
            wire = 0.0 if port in CARRY_OUT else \
                base + per_doubling * math.log2(max(fanout[b], 1))
            best = (start + wire, None) if start is not None else (wire, None)
            arcs = list(inputs_of(cell, port))
            if not expanded and arcs:
                stack.append((b, True))
                stack.extend((ib, False) for ib, _ in arcs if ib not in arrival)
                continue
            for ib, delay in arcs:
                if ib in arrival:    # not there only on a combinational loop
                    best = max(best, (arrival[ib][0] + delay + wire, ib))
            arrival[b] = best
        return arrival[bit]

    ends = []
    for cname, cell in cells.items():
        kind = cell["type"]
        if _clock_to_out(family, kind) is None:
            continue
        for port, bits in cell["connections"].items():
            if cell["port_directions"].get(port) != "input" or port.startswith("CLK"):
                continue
            if kind == "TRELLIS_DPR16X4" and port.startswith("RAD"):
                continue
            for bit in bits:
                if isinstance(bit, str):
                    continue
                ns, _ = resolve(bit)
                ends.append((ns, bit, cname, port))
    ends.sort(key=lambda e: -e[0])
    result = []
    for ns, bit, cname, port in ends:
        path, b = [], bit
        while b is not None:
            path.append((names.get(b, str(b)), round(arrival[b][0], 2), fanout[b]))
            b = arrival[b][1]
        outputs = [bits for p, bits in cells[cname]["connections"].items()
                   if cells[cname]["port_directions"].get(p) == "output"]
        target = names.get(outputs[0][0], cname) if outputs and outputs[0] else cname
        result.append({"ns": round(ns, 2), "cell": cname, "port": port, "target": target,
                       "path": list(reversed(path))})
    return result


def _group(name):
    """The design signal a (technology-mapped) net is named after, without the bit index."""
    return re.sub(r"\[\d+\]", "", _signal_of(name))


def grouped(ends, over=0.0):
    """Endpoints grouped by the signal they end in, worst group first."""
    groups = defaultdict(list)
    for end in ends:
        if end["ns"] < over:
            break
        groups[_group(end["target"])].append(end)
    return groups


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m boards.depth", description=__doc__
                                     .split("\n\n")[0])
    parser.add_argument("netlist", type=Path)
    parser.add_argument("--family", choices=sorted(NET_NS), default=None,
                        help="default: from the cell types")
    parser.add_argument("--limit", type=int, default=20, help="signal groups to print")
    parser.add_argument("--detail", action="store_true",
                        help="every net of the worst path of each group, with arrival and fanout")
    parser.add_argument("--over", type=float, default=0.0, help="only paths above this (ns)")
    args = parser.parse_args(argv)
    family = args.family
    if family is None:
        family = "ice40" if '"SB_LUT4"' in args.netlist.read_text()[:10_000_000] else "ecp5"
    groups = grouped(estimate(args.netlist, family), args.over)
    for shown, (sig, ends) in enumerate(groups.items()):
        if shown >= args.limit:
            break
        worst = ends[0]
        print(f"{worst['ns']:6.2f} ns  {len(ends):4d} ends  {sig}")
        if args.detail:
            for name, ns, fo in worst["path"]:
                print(f"      {ns:6.2f} ns  fanout {fo:5d}  {name}")
            continue
        steps = []
        for name, _, _ in worst["path"]:
            g = _group(name)
            if not steps or steps[-1] != g:
                steps.append(g)
        print("           " + " -> ".join(steps[-14:]))


if __name__ == "__main__":
    main()
