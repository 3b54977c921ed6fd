"""Host driver: the learning accelerator behind a serial port (or a virtual board).

    dev = Device.open("/dev/ttyUSB1")              # or "socket://127.0.0.1:PORT"
    dev.configure(FixedHyper(seed=7), dense=False)
    dev.write_weights(Mem.W, w); dev.write_weights(Mem.W_OUT, w_out)
    pred = dev.run_sample(raster, label=3, learn=True)
    preds = dev.run_epoch(rasters, labels, learn=True)   # pipelined
    dev.read_counters(), dev.read_status(), dev.read_result()

Transport (``host/PROTOCOL.md``): every request frame gets exactly one reply, in order.
Requests are *pipelined*: up to a window of frames is sent before the oldest reply
arrives. The window is bounded so that the device can always buffer it: two frames (the one
being executed and the one waiting in the second frame buffer) plus what fits in the
device's receive FIFO (``rx_fifo_depth`` from IDENTIFY). Replies are matched to requests in
order (type and sequence number).

Errors: :class:`PortNotFound`, :class:`NotAnswering` (no reply after the retries),
:class:`ProtocolMismatch` (version or build parameters), :class:`NakError` with one subclass
per NAK reason (:class:`IndexOutOfRange`, :class:`TooManyEvents`, ...), :class:`LinkError`
(transport failures that retries could not fix), :class:`ShapeMismatch` (data that does
not fit the device's configuration).
"""

import collections
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from golden.fixed import FixedHyper, FixedParams

from . import protocol as wire
from .protocol import Cmd, Mem, Nak

__all__ = ["Device", "DeviceError", "PortNotFound", "NotAnswering", "ProtocolMismatch",
           "LinkError", "NakError", "ShapeMismatch", "NAK_ERRORS", "Mem"]


# -- exceptions -----------------------------------------------------------------------------
class DeviceError(Exception):
    """Base class of every error of this module."""


class PortNotFound(DeviceError):
    """The serial port (or virtual board socket) could not be opened."""


class NotAnswering(DeviceError):
    """No (valid) reply within the timeout, after the retries."""


class ProtocolMismatch(DeviceError):
    """The device speaks another protocol version or was built with other parameters."""


class LinkError(DeviceError):
    """A transport problem that the retries could not fix (or a reply that was lost)."""


class ShapeMismatch(DeviceError, ValueError):
    """Data (raster, labels, weights) that does not match the device configuration."""


class NakError(DeviceError):
    """The device rejected a frame. ``code``, ``request`` (command) and ``detail``."""

    code = None

    def __init__(self, code, request, detail, message=None):
        self.code = code
        self.request = request
        self.detail = detail
        try:
            req = Cmd(request).name
        except ValueError:
            req = f"0x{request:02x}"
        try:
            name = Nak(code).name
        except ValueError:
            name = f"0x{code:02x}"
        super().__init__(message or f"{req} rejected: {name} (detail {detail})")


def _nak_class(name, code, doc):
    return type(name, (NakError,), {"__doc__": doc, "code": code})


BadCrc = _nak_class("BadCrc", Nak.BAD_CRC, "Frame CRC mismatch.")
FrameTooLong = _nak_class("FrameTooLong", Nak.TOO_LONG, "Frame longer than max_payload.")
FrameTimeout = _nak_class("FrameTimeout", Nak.TIMEOUT, "Frame truncated (inter-byte timeout).")
SequenceError = _nak_class("SequenceError", Nak.SEQUENCE, "Unexpected sequence number.")
UnknownCommand = _nak_class("UnknownCommand", Nak.UNKNOWN_TYPE, "Unknown frame type.")
BadLength = _nak_class("BadLength", Nak.BAD_LENGTH, "Payload length wrong for the command.")
IndexOutOfRange = _nak_class("IndexOutOfRange", Nak.INDEX_RANGE,
                             "Memory, row, column, event index or label out of range.")
TooManyEvents = _nak_class("TooManyEvents", Nak.TOO_MANY_EVENTS,
                           "More events in one step than inputs.")
UnsortedEvents = _nak_class("UnsortedEvents", Nak.UNSORTED,
                            "Event indices of a step not strictly increasing.")
ParamOutOfRange = _nak_class("ParamOutOfRange", Nak.PARAM_RANGE,
                             "A CONFIGURE field (detail = field number) out of range.")
WeightOutOfRange = _nak_class("WeightOutOfRange", Nak.WEIGHT_RANGE,
                              "A weight (detail = its number) does not fit in w_bits.")
DeviceBusy = _nak_class("DeviceBusy", Nak.BUSY, "Not allowed while a sample is open.")
StateError = _nak_class("StateError", Nak.STATE, "SAMPLE continuation without an open sample.")
BadStep = _nak_class("BadStep", Nak.BAD_STEP, "Reserved step opcode in a SAMPLE.")

NAK_ERRORS = {cls.code: cls for cls in (
    BadCrc, FrameTooLong, FrameTimeout, SequenceError, UnknownCommand, BadLength,
    IndexOutOfRange, TooManyEvents, UnsortedEvents, ParamOutOfRange, WeightOutOfRange,
    DeviceBusy, StateError, BadStep)}
__all__ += [cls.__name__ for cls in NAK_ERRORS.values()]


def nak_error(code, request, detail) -> NakError:
    return NAK_ERRORS.get(code, NakError)(code, request, detail)


# -- transport ------------------------------------------------------------------------------
@dataclass
class _Request:
    cmd: int
    payload: bytes
    seq: int = 0
    frame: bytes = b""
    needs_data: bool = False
    reply: object = None            # Frame once answered
    error: object = None            # exception once failed
    done: bool = False
    callback: object = None
    sent_at: float = 0.0
    tries: int = 0
    extra: dict = field(default_factory=dict)


class Device:
    """A connection to the accelerator. Use :meth:`open`."""

    def __init__(self, port, *, timeout: float = 2.0, retries: int = 3,
                 params: FixedParams | None = None, window_bytes: int | None = None,
                 reset: bool = True):
        self.port = port
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.parser = wire.FrameParser()
        self.outstanding = collections.deque()
        rng = np.random.default_rng()
        self.seq = int(rng.integers(0, 256))          # in-band sequence numbers
        self._progress = time.monotonic()
        self.oob_seq = int(rng.integers(0, 256))      # IDENTIFY / READ_STATUS
        self.stats = collections.Counter()
        self.info = None
        self._window_override = window_bytes
        self._identify(expected=params)
        if reset:
            self.reset()
        else:
            self.seq = (self.read_status()["expected_seq"] - 1) & 0xFF

    # -- opening --------------------------------------------------------------------------
    @classmethod
    def open(cls, url: str, *, baudrate: int = 3_000_000, timeout: float = 2.0,
             retries: int = 3, params: FixedParams | None = None, reset: bool = True,
             window_bytes: int | None = None) -> "Device":
        """Open ``url`` (a device path or any pyserial URL such as ``socket://host:port``),
        identify the device and check its protocol version (and ``params`` if given)."""
        import serial

        try:
            port = serial.serial_for_url(url, baudrate=baudrate, timeout=0.05,
                                         write_timeout=max(10.0, timeout))
        except (serial.SerialException, OSError, ValueError) as exc:
            raise PortNotFound(f"cannot open {url!r}: {exc}") from exc
        try:
            return cls(port, timeout=timeout, retries=retries, params=params, reset=reset,
                       window_bytes=window_bytes)
        except BaseException:
            port.close()
            raise

    def close(self):
        """Wait for outstanding replies (errors are dropped) and close the port."""
        try:
            self.flush()
        except DeviceError:
            self.stats["unflushed_on_close"] += len(self.outstanding)
        finally:
            self.port.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- properties -----------------------------------------------------------------------
    @property
    def params(self) -> FixedParams:
        return self._params

    @property
    def max_payload(self) -> int:
        return self.info["max_payload"]

    @property
    def window_bytes(self) -> int:
        if self._window_override is not None:
            return self._window_override
        return max(0, self.info["rx_fifo_depth"] - 32)

    # -- low level I/O --------------------------------------------------------------------
    def _write(self, data: bytes):
        import serial
        try:
            self.port.write(data)
            self.port.flush()
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"write failed: {exc}") from exc
        self.stats["tx_bytes"] += len(data)

    def _read(self, timeout: float) -> list:
        """Frames received within ``timeout`` (returns as soon as some bytes came)."""
        import serial
        try:
            self.port.timeout = max(0.0, timeout)
            data = self.port.read(1)
            if data:
                self.port.timeout = 0
                data += self.port.read(1 << 16)
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"read failed: {exc}") from exc
        self.stats["rx_bytes"] += len(data)
        return self.parser.feed(data) if data else []

    def _next_seq(self) -> int:
        self.seq = (self.seq + 1) & 0xFF
        return self.seq

    def _submit(self, req: _Request, *, oob: bool = False) -> _Request:
        """Send a request as soon as the window allows (replies are processed meanwhile)."""
        req.seq = self._next_seq()
        req.frame = wire.encode_frame(req.cmd, req.seq, req.payload)
        while not self._fits(len(req.frame)):
            self._pump()
        self._send(req)
        return req

    def _fits(self, size: int) -> bool:
        out = self.outstanding
        if len(out) < 2:
            return True
        if len(out) >= 100:
            return False
        queued = sum(len(r.frame) for r in list(out)[2:])
        return queued + size <= self.window_bytes

    def _send(self, req: _Request):
        if not self.outstanding:
            self._progress = time.monotonic()
        req.sent_at = time.monotonic()
        req.tries += 1
        self.outstanding.append(req)
        self._write(req.frame)
        self.stats["frames"] += 1

    def _pump(self):
        """Wait for replies to the outstanding requests; handle errors and retries."""
        if not self.outstanding:
            return
        # the timeout runs from the last reply (or the first send): a deep pipeline may
        # legitimately wait for the device to work through the frames before
        left = self._progress + self.timeout - time.monotonic()
        frames = self._read(min(max(left, 0.0), 0.05))
        for frame in frames:
            if self._on_frame(frame) == "recovered":
                break        # the rest of this batch is stale: the drain handled it
        if self.outstanding and time.monotonic() > self._progress + self.timeout:
            self._recover(reason="timeout")

    def _on_frame(self, frame):
        if not self.outstanding:
            self.stats["stray_replies"] += 1
            return
        req = self.outstanding[0]
        nak_req = frame.payload[1] if frame.is_nak and len(frame.payload) >= 4 else None
        if frame.seq != req.seq or (frame.type != (req.cmd | wire.ACK_BIT)
                                    and nak_req != req.cmd):
            # a reply to something else (stale, from before a reconnect): ignore it
            self.stats["stray_replies"] += 1
            return
        if frame.is_nak:
            code, _, detail = frame.nak
            if code in wire.TRANSPORT_NAKS:
                self.stats[f"nak_{Nak(code).name.lower()}"] += 1
                self._recover(reason=Nak(code).name)
                return "recovered"
            self.outstanding.popleft()
            self._finish(req, error=nak_error(code, req.cmd, detail))
            return
        self.outstanding.popleft()
        self._finish(req, reply=frame)

    def _finish(self, req, reply=None, error=None):
        self._progress = time.monotonic()
        req.reply, req.error, req.done = reply, error, True
        if req.callback is not None and error is None:
            req.callback(req)

    def _recover(self, reason: str):
        """Go back N: drain the replies of what is in flight, then resend from the first
        request the device has not executed (READ_STATUS tells which one it expects)."""
        self.stats["recoveries"] += 1
        pending = list(self.outstanding)
        if any(r.tries > self.retries for r in pending):
            self.outstanding.clear()
            exc = (NotAnswering if reason == "timeout" else LinkError)(
                f"link failed after {self.retries} retries ({reason})")
            for r in pending:
                self._finish(r, error=exc)
            raise exc
        # drain: collect whatever replies still come, for a short while
        deadline = time.monotonic() + min(self.timeout, 0.5)
        late = []
        while time.monotonic() < deadline:
            got = self._read(0.05)
            late += got
            if not got and len(late) >= len(pending) - 1:
                break
        self.outstanding.clear()
        expected = self._status_expected()
        # requests before `expected` (in send order) were executed by the device
        seqs = [r.seq for r in pending]
        replies = {(f.seq, f.type): f for f in late}
        resend = []
        executed = True
        if expected not in seqs and expected != (seqs[-1] + 1) & 0xFF:
            exc = LinkError(f"sequence numbers out of step (device expects {expected}, "
                            f"host sent {seqs[0]}..{seqs[-1]}); reopen the device")
            for r in pending:
                self._finish(r, error=exc)
            raise exc
        for r in pending:
            if r.seq == expected:
                executed = False
            if executed:
                ack = replies.get((r.seq, r.cmd | wire.ACK_BIT))
                if ack is not None:
                    self._finish(r, reply=ack)
                elif r.needs_data:
                    self._finish(r, error=LinkError(
                        f"{Cmd(r.cmd).name} seq {r.seq} was executed but its reply was lost"))
                else:
                    self._finish(r, reply=wire.Frame(r.cmd | wire.ACK_BIT, r.seq, b""))
            else:
                resend.append(r)
        for r in resend:
            r.frame = wire.encode_frame(r.cmd, r.seq, r.payload)
            self._send(r)

    def _status_expected(self) -> int:
        """The sequence number the device expects next (out-of-band READ_STATUS)."""
        for _ in range(self.retries + 1):
            seq = self.oob_seq = (self.oob_seq + 1) & 0xFF
            self._write(wire.encode_frame(Cmd.READ_STATUS, seq))
            deadline = time.monotonic() + self.timeout
            while time.monotonic() < deadline:
                for f in self._read(0.05):
                    if f.seq == seq and f.type == (Cmd.READ_STATUS | wire.ACK_BIT):
                        return wire.unpack_fields(wire.STATUS_FIELDS, f.payload)["expected_seq"]
        raise NotAnswering("device does not answer READ_STATUS")

    def _wait(self, req: _Request):
        while not req.done:
            self._pump()
        if req.error is not None:
            raise req.error
        return req.reply

    def flush(self):
        """Wait until every request sent so far is answered (raises the first error)."""
        while self.outstanding:
            self._pump()

    def _call(self, cmd, payload=b"", *, needs_data=True) -> bytes:
        req = self._submit(_Request(cmd, bytes(payload), needs_data=needs_data))
        return self._wait(req).payload

    def _oob_call(self, cmd, payload=b"", *, expect_len=None) -> bytes:
        """An out-of-band request (IDENTIFY, READ_STATUS, RESET) with its own retries."""
        self.flush()
        last = None
        for attempt in range(self.retries + 1):
            if cmd == Cmd.RESET:     # RESET resynchronises the in-band numbers to its own
                seq = self._next_seq()
            else:
                seq = self.oob_seq = (self.oob_seq + 1) & 0xFF
            self._write(wire.encode_frame(cmd, seq, payload))
            deadline = time.monotonic() + self.timeout
            while time.monotonic() < deadline:
                for f in self._read(0.05):
                    if f.seq != seq:
                        self.stats["stray_replies"] += 1
                        continue
                    if f.type == (cmd | wire.ACK_BIT):
                        return f.payload
                    if f.is_nak and f.nak[1] == cmd:
                        code, _, detail = f.nak
                        if code in wire.TRANSPORT_NAKS:
                            last = nak_error(code, cmd, detail)
                            deadline = 0
                            break
                        raise nak_error(code, cmd, detail)
            self.stats["oob_retries"] += 1
        raise NotAnswering(f"no reply to {Cmd(cmd).name} after {self.retries + 1} tries"
                           + (f" (last: {last})" if last else ""))

    # -- commands -------------------------------------------------------------------------
    def _identify(self, expected: FixedParams | None):
        # forget anything a previous session left in the pipe
        self._read(0.05)
        self.parser = wire.FrameParser()
        payload = self._oob_call(Cmd.IDENTIFY)
        try:
            info = wire.parse_identify(payload)
        except ValueError as exc:
            raise ProtocolMismatch(f"unexpected IDENTIFY reply: {exc}") from exc
        if info["version"] != wire.PROTOCOL_VERSION:
            raise ProtocolMismatch(f"device speaks protocol version {info['version']}, "
                                   f"this host {wire.PROTOCOL_VERSION}")
        self.info = info
        self._params = FixedParams(**info["params"])
        if expected is not None and expected != self._params:
            diff = {k: (v, getattr(self._params, k)) for k, v in asdict(expected).items()
                    if getattr(self._params, k) != v}
            raise ProtocolMismatch("device was built with other parameters: "
                                   + ", ".join(f"{k} expected {a} got {b}"
                                               for k, (a, b) in diff.items()))
        return info

    def identify(self) -> dict:
        """IDENTIFY: protocol version, build parameters, link parameters."""
        return self._identify(None)

    def reset(self, clear_counters: bool = False, reseed: bool = False):
        """RESET: abort an open sample, clear status flags, resynchronise sequence numbers
        (weights, registers and counters are kept unless asked)."""
        flags = (wire.RESET_CLEAR_COUNTERS if clear_counters else 0) | \
                (wire.RESET_RESEED if reseed else 0)
        self.flush()
        self._oob_call(Cmd.RESET, bytes([flags]))

    def read_status(self) -> dict:
        """READ_STATUS: flags, last NAK, expected sequence number, link counters."""
        st = wire.unpack_fields(wire.STATUS_FIELDS, self._oob_call(Cmd.READ_STATUS))
        flags = st["flags"]
        st.update(in_sample=bool(flags & wire.STATUS_IN_SAMPLE),
                  core_busy=bool(flags & wire.STATUS_CORE_BUSY),
                  result_valid=bool(flags & wire.STATUS_RESULT_VALID),
                  rx_overflow=bool(flags & wire.STATUS_RX_OVERFLOW),
                  rx_frame_error=bool(flags & wire.STATUS_RX_FRAME_ERROR),
                  naked=bool(flags & wire.STATUS_NAKED))
        try:
            st["last_nak"] = Nak(st["last_nak_code"]).name if st["last_nak_code"] else None
        except ValueError:
            st["last_nak"] = st["last_nak_code"]
        return st

    def configure(self, hyper: FixedHyper | None = None, dense: bool = False, **changes):
        """CONFIGURE: load the run-time registers (reloads the generators from the seed).

        ``changes`` override single registers, e.g. ``configure(rule=1)`` for approximate OTPE
        (accepted only by a device built with ``otpe``, IDENTIFY ``params["otpe"]``).

        Values are checked here against the device's parameters (``FixedHyper.validate``)
        and again by the device (``ParamOutOfRange``).
        """
        hyper = hyper or FixedHyper()
        if changes:
            from dataclasses import replace
            hyper = replace(hyper, **changes)
        hyper.validate(self.params)
        self._call(Cmd.CONFIGURE, wire.pack_hyper(hyper, dense), needs_data=False)
        self.hyper, self.dense = hyper, bool(dense)

    def send_configure_raw(self, payload: bytes):
        """CONFIGURE with an arbitrary payload (no host-side checks; for tests)."""
        self._call(Cmd.CONFIGURE, payload, needs_data=False)

    # weights ----------------------------------------------------------------------------
    def mem_shape(self, mem) -> tuple:
        return wire.mem_shape(self.params, mem)

    def _blocks(self, rows, cols, width, limit):
        """Row-major blocks (r0, nr, c0, nc) with nr * nc * width <= limit."""
        per = max(1, limit // width)
        if cols <= per:
            nr = max(1, per // cols)
            for r0 in range(0, rows, nr):
                yield r0, min(nr, rows - r0), 0, cols
        else:
            for r0 in range(rows):
                for c0 in range(0, cols, per):
                    yield r0, 1, c0, min(per, cols - c0)

    def write_weights(self, mem, values, row0: int = 0, col0: int = 0):
        """WRITE_WEIGHTS of a 2-D block (pipelined frames of at most max_payload bytes)."""
        mem = Mem(mem)
        if mem not in wire.WRITABLE:
            raise ValueError(f"mem must be one of {[m.name for m in wire.WRITABLE]}, not "
                             f"{mem.name}")
        values = np.asarray(values)
        rows, cols = self.mem_shape(mem)
        if values.ndim != 2 or row0 + values.shape[0] > rows or col0 + values.shape[1] > cols:
            raise ShapeMismatch(f"{mem.name} is {rows}x{cols}; a {values.shape} block at "
                                f"({row0}, {col0}) does not fit")
        lo, hi = -(1 << (self.params.w_bits - 1)), (1 << (self.params.w_bits - 1)) - 1
        if values.size and (values.min() < lo or values.max() > hi):
            raise ShapeMismatch(f"{mem.name} values must be in [{lo}, {hi}] (w_bits="
                                f"{self.params.w_bits})")
        wb = wire.weight_bytes(self.params.w_bits)
        dtype = np.int8 if wb == 1 else np.dtype("<i2")
        limit = self.max_payload - wire.WEIGHT_HEADER_BYTES
        reqs = []
        for r0, nr, c0, nc in self._blocks(values.shape[0], values.shape[1], wb, limit):
            block = values[r0:r0 + nr, c0:c0 + nc].astype(dtype)
            head = bytes([mem]) + np.array([row0 + r0, nr, col0 + c0, nc], "<u2").tobytes()
            reqs.append(self._submit(_Request(Cmd.WRITE_WEIGHTS, head + block.tobytes())))
        for r in reqs:
            self._wait(r)

    def read_weights(self, mem, rows=None, cols=None) -> np.ndarray:
        """READ_WEIGHTS of ``rows`` x ``cols`` (slices or ranges; default: everything)."""
        mem = Mem(mem)
        R, C = self.mem_shape(mem)
        r = range(R)[rows] if isinstance(rows, slice) else (rows or range(R))
        c = range(C)[cols] if isinstance(cols, slice) else (cols or range(C))
        r0, nr, c0, nc = r.start, len(r), c.start, len(c)
        width = wire.mem_width(self.params, mem)
        out = np.zeros((nr, nc), dtype=np.int64)
        limit = min(4096, wire.MAX_REPLY)
        reqs = []
        for br, bnr, bc, bnc in self._blocks(nr, nc, width, limit):
            head = bytes([mem]) + np.array([r0 + br, bnr, c0 + bc, bnc], "<u2").tobytes()
            req = _Request(Cmd.READ_WEIGHTS, head, needs_data=True)
            req.extra = {"at": (br, bnr, bc, bnc)}
            reqs.append(self._submit(req))
        dtype = {1: np.int8, 2: np.dtype("<i2"), 4: np.dtype("<i4")}[width]
        for req in reqs:
            data = self._wait(req).payload
            br, bnr, bc, bnc = req.extra["at"]
            out[br:br + bnr, bc:bc + bnc] = np.frombuffer(data, dtype).reshape(bnr, bnc)
        return out

    def load_weights(self, w=None, w_out=None, b=None):
        """Write whole memories (like ``FixedCore.load_weights``)."""
        for mem, value in ((Mem.W, w), (Mem.W_OUT, w_out), (Mem.B, b)):
            if value is not None:
                value = np.asarray(value)
                if value.shape != self.mem_shape(mem):
                    raise ShapeMismatch(f"{mem.name} must have shape {self.mem_shape(mem)}, "
                                        f"not {value.shape}")
                self.write_weights(mem, value)

    def dump_weights(self) -> dict:
        """All weight memories: ``{"w", "w_out", "b"}``."""
        return {"w": self.read_weights(Mem.W), "w_out": self.read_weights(Mem.W_OUT),
                "b": self.read_weights(Mem.B)}

    # samples ----------------------------------------------------------------------------
    def check_raster(self, raster) -> np.ndarray:
        raster = np.asarray(raster)
        n_in = self.params.n_in
        if raster.ndim != 2 or raster.shape[1] != n_in:
            raise ShapeMismatch(f"a sample must be a [T, n_in={n_in}] raster, not "
                                f"{raster.shape} (the device was built with n_in={n_in})")
        if raster.size and (raster.min() < 0 or raster.max() > 1):
            raise ShapeMismatch("a raster must hold 0/1 spikes (at most one event per input "
                                "and step)")
        return raster

    def _check_label(self, label):
        if not 0 <= int(label) < self.params.n_out:
            raise ShapeMismatch(f"label must be in [0, {self.params.n_out - 1}] (n_out="
                                f"{self.params.n_out}), not {label!r}")

    def sample_frames(self, raster, label: int, learn: bool) -> list:
        """The SAMPLE payloads of one sample (split to fit max_payload)."""
        raster = self.check_raster(raster)
        self._check_label(label)
        steps = wire.raster_steps(raster)
        chunks = wire.split_steps(steps, self.params.n_in, self.max_payload - 2)
        out = []
        for k, chunk in enumerate(chunks):
            flags = ((wire.SAMPLE_BEGIN if k == 0 else 0)
                     | (wire.SAMPLE_END if k == len(chunks) - 1 else 0)
                     | (wire.SAMPLE_LEARN if learn else 0))
            out.append(bytes([flags, int(label)]) + chunk)
        return out

    def submit_sample(self, raster, label: int, learn: bool, callback=None) -> list:
        """Send a sample without waiting; returns its requests (the last one's
        ``reply.payload[0]`` is the prediction once it is ``done``)."""
        frames = self.sample_frames(raster, label, learn)
        reqs = []
        for k, payload in enumerate(frames):
            req = _Request(Cmd.SAMPLE, payload, needs_data=(k == len(frames) - 1))
            if k == len(frames) - 1:
                req.callback = callback
            reqs.append(self._submit(req))
        return reqs

    def run_sample(self, raster, label: int, learn: bool) -> int:
        """Run one sample (``[T, n_in]`` 0/1 raster); returns the prediction."""
        reqs = self.submit_sample(raster, label, learn)
        for req in reqs:
            self._wait(req)
        return int(reqs[-1].reply.payload[0])

    def run_epoch(self, rasters, labels, learn: bool, progress=None, scores: bool = False):
        """Stream samples with pipelining; returns the predictions (and, with ``scores``,
        the per-class scores ``[N, n_out]`` read back after each sample).

        ``progress(done_count)`` is called as predictions arrive.
        """
        rasters = np.asarray(rasters)
        labels = np.asarray(labels)
        if rasters.ndim != 3 or rasters.shape[2] != self.params.n_in:
            raise ShapeMismatch(f"rasters must be [N, T, n_in={self.params.n_in}], not "
                                f"{rasters.shape} (the device was built with n_in="
                                f"{self.params.n_in})")
        if labels.shape != (rasters.shape[0],):
            raise ShapeMismatch(f"labels must be [N={rasters.shape[0]}], not {labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() >= self.params.n_out):
            raise ShapeMismatch(f"labels must be in [0, {self.params.n_out - 1}] (the device "
                                f"was built with n_out={self.params.n_out})")
        preds = np.full(len(labels), -1, dtype=np.int64)
        score = np.zeros((len(labels), self.params.n_out), dtype=np.int64)
        done = [0]

        def on_pred(i):
            def cb(req):
                preds[i] = req.reply.payload[0]
                done[0] += 1
                if progress is not None:
                    progress(done[0])
            return cb

        def on_score(i):
            def cb(req):
                score[i] = np.frombuffer(req.reply.payload[2:], "<i4")
            return cb

        reqs = []
        for i, (r, lab) in enumerate(zip(rasters, labels)):
            reqs += self.submit_sample(r, int(lab), learn, callback=on_pred(i))
            if scores:
                req = _Request(Cmd.READ_RESULT, b"", needs_data=True, callback=on_score(i))
                reqs.append(self._submit(req))
        for req in reqs:
            self._wait(req)
        return (preds, score) if scores else preds

    def read_result(self) -> tuple:
        """READ_RESULT: (prediction or None if no sample ended yet, scores int64[n_out])."""
        data = self._call(Cmd.READ_RESULT)
        scores = np.frombuffer(data[2:], "<i4").astype(np.int64)
        return (int(data[1]) if data[0] else None), scores

    def read_counters(self, clear: bool = False) -> dict:
        """READ_COUNTERS: the 14 hardware counters (``clear`` zeroes them after reading)."""
        data = self._call(Cmd.READ_COUNTERS, bytes([wire.COUNTERS_CLEAR if clear else 0]))
        values = np.frombuffer(data, "<u4")
        return {name: int(v) for name, v in zip(wire.COUNTER_NAMES, values)}

    def raw_call(self, cmd: int, payload: bytes = b"") -> bytes:
        """Send any frame in sequence and return the ACK payload (NAKs raise)."""
        return self._call(cmd, payload)
