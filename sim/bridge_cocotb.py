"""cocotb side of the virtual board: TCP socket <-> ``sim.bridge.BridgeTop``.

Started by ``sim/board.py`` (never by pytest directly). Settings come in environment
variables (``VB_*``, see :func:`settings`). The clock runs in the simulator
(``Clock(impl="gpi")``) and this coroutine only wakes every ``VB_POLL`` cycles (``Timer``),
so Python never touches a signal per cycle.

One TCP listener: a connection whose first bytes are ``VBCTL`` is a control connection
(one JSON command per line: ``{"cmd": "stats"}``, ``"stats_clear"``, ``"shutdown"``; one
JSON reply per line); any other connection is the serial line (one at a time; a new one
replaces the old one, as re-opening a serial port would). Bytes the host wrote before it
closed still go to the device; bytes the device sends while nobody is connected are lost.

Stops on SIGINT/SIGTERM or a ``shutdown`` control command, then returns normally so that
the simulator exits cleanly.
"""

import json
import os
import selectors
import signal
import socket
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import Timer

from sim.bridge import STAT_NAMES

CTL_MAGIC = b"VBCTL"


def settings() -> dict:
    env = os.environ
    return {
        "host": env.get("VB_HOST", "127.0.0.1"),
        "port": int(env.get("VB_PORT", "0")),
        "ready_file": env.get("VB_READY_FILE", ""),
        "width": int(env.get("VB_WIDTH", "256")),
        "poll": int(env.get("VB_POLL", "256")),
        "mode": int(env.get("VB_MODE", "0")),
        "cpb": int(env.get("VB_CPB", "0")),
        "clk_freq": int(env.get("VB_CLK_FREQ", "48000000")),
        "baud": int(env.get("VB_BAUD", "3000000")),
        "timeout_cycles": int(env.get("VB_TIMEOUT_CYCLES", "100000")),
        "info": env.get("VB_INFO", "{}"),
    }


class _Conn:
    def __init__(self, sock):
        self.sock = sock
        self.kind = None          # None (undecided), "data" or "ctl"
        self.inbuf = bytearray()
        self.outbuf = bytearray()


@cocotb.test()
async def serve(dut):
    cfg = settings()
    W = cfg["width"]
    period_ns = 10
    Clock(dut.clk, period_ns, unit="ns", impl="gpi").start()

    stop = {"flag": False, "why": ""}

    def on_signal(signum, frame):
        stop["flag"] = True
        stop["why"] = signal.Signals(signum).name

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    dut.mode.value = cfg["mode"]
    if cfg["cpb"]:
        dut.cpb.value = cfg["cpb"]
    dut.h2d_req.value = 0
    dut.d2h_ack.value = 0
    dut.stats_clear.value = 0
    await Timer(10 * period_ns, "ns")   # no reset input: registers start at their init

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((cfg["host"], cfg["port"]))
    listener.listen(4)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    if cfg["ready_file"]:
        tmp = cfg["ready_file"] + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"port": port, "pid": os.getpid()}, f)
        os.replace(tmp, cfg["ready_file"])

    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    conns = []
    data_conn = None
    h2d = bytearray()           # bytes received from the host, not yet in the wrapper
    req = 0
    d2h_seen = 0
    stats_toggle = 0
    wall0 = time.monotonic()
    poll_ns = cfg["poll"] * period_ns
    idle_polls = 0
    # sleep in select() only after the device had time to drop any half-received frame
    idle_limit = cfg["timeout_cycles"] // cfg["poll"] + 16

    def close(conn):
        nonlocal data_conn
        try:
            conn.sock.close()
        except OSError:
            pass
        if conn in conns:
            conns.remove(conn)
        if conn is data_conn:
            data_conn = None

    def stats():
        out = {name: int(getattr(dut, name).value) for name in STAT_NAMES}
        out.update(wall=time.monotonic() - wall0, cpb=int(dut.cpb.value), mode=cfg["mode"],
                   clk_freq=cfg["clk_freq"], baud=cfg["baud"], width=W, poll=cfg["poll"],
                   pending=len(h2d), info=json.loads(cfg["info"]))
        return out

    def control(conn, line):
        nonlocal stats_toggle
        try:
            cmd = json.loads(line)
            name = cmd.get("cmd") if isinstance(cmd, dict) else str(cmd)
        except ValueError:
            name = line.strip()
        if name == "stats":
            reply = {"ok": True, **stats()}
        elif name == "stats_clear":
            stats_toggle ^= 1
            dut.stats_clear.value = stats_toggle
            reply = {"ok": True}
        elif name == "shutdown":
            stop["flag"] = True
            stop["why"] = "shutdown command"
            reply = {"ok": True}
        else:
            reply = {"ok": False, "error": f"unknown command {name!r}"}
        conn.outbuf += json.dumps(reply).encode() + b"\n"

    while not stop["flag"]:
        busy = bool(h2d) or int(dut.h2d_pending.value) != 0
        # sockets: never block while there is work in the simulation
        timeout = 0 if (busy or conns or idle_polls < idle_limit) else 0.02
        for key, _ in sel.select(timeout=timeout):
            if key.fileobj is listener:
                try:
                    s, _addr = listener.accept()
                except BlockingIOError:
                    continue
                s.setblocking(False)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conns.append(_Conn(s))
        for conn in list(conns):
            # read (bounded, so that TCP flow control pushes back on a fast host)
            if conn.kind != "data" or len(h2d) < 8 * W:
                try:
                    chunk = conn.sock.recv(65536)
                    if not chunk:
                        close(conn)
                        continue
                    conn.inbuf += chunk
                except BlockingIOError:
                    pass
                except OSError:
                    close(conn)
                    continue
            if conn.kind is None and conn.inbuf:
                head = bytes(conn.inbuf[:len(CTL_MAGIC)])
                if head == CTL_MAGIC:
                    conn.kind = "ctl"
                elif CTL_MAGIC.startswith(head) and len(head) < len(CTL_MAGIC):
                    pass  # undecided yet
                else:
                    conn.kind = "data"
                    if data_conn is not None:
                        close(data_conn)
                    data_conn = conn
            if conn.kind == "data":
                h2d += conn.inbuf
                conn.inbuf.clear()
            elif conn.kind == "ctl":
                while b"\n" in conn.inbuf:
                    line, _, rest = bytes(conn.inbuf).partition(b"\n")
                    conn.inbuf = bytearray(rest)
                    line = line[len(CTL_MAGIC):] if line.startswith(CTL_MAGIC) else line
                    control(conn, line.decode(errors="replace").strip())
            if conn.outbuf:
                try:
                    n = conn.sock.send(conn.outbuf)
                    del conn.outbuf[:n]
                except BlockingIOError:
                    pass
                except OSError:
                    close(conn)

        # host -> device
        if h2d and int(dut.h2d_ack.value) == req:
            chunk = bytes(h2d[:W])
            del h2d[:len(chunk)]
            dut.h2d_data.value = int.from_bytes(chunk, "little")
            dut.h2d_len.value = len(chunk)
            req ^= 1
            dut.h2d_req.value = req

        # device -> host
        moved = False
        seq = int(dut.d2h_seq.value)
        if seq != d2h_seen:
            n = int(dut.d2h_len.value)
            value = int(dut.d2h_data.value)
            data = (value >> (8 * (W - n))).to_bytes(n, "little")
            d2h_seen = seq
            dut.d2h_ack.value = seq
            moved = True
            if data_conn is not None:
                data_conn.outbuf += data
                try:
                    sent = data_conn.sock.send(data_conn.outbuf)
                    del data_conn.outbuf[:sent]
                except BlockingIOError:
                    pass
                except OSError:
                    close(data_conn)

        idle_polls = 0 if (moved or h2d or conns) else idle_polls + 1
        await Timer(poll_ns, "ns")

    for conn in list(conns):
        if conn.outbuf:
            try:
                conn.sock.setblocking(True)
                conn.sock.settimeout(1.0)
                conn.sock.sendall(conn.outbuf)
            except OSError:
                pass
        close(conn)
    sel.close()
    listener.close()
    dut._log.info("virtual board stopped (%s) after %d cycles", stop["why"],
                  int(dut.cycles.value))
