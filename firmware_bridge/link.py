"""The host side of the MCU link: a reader thread on ``serial.serial_for_url``.

:class:`Link` opens ``loop://``, ``socket://host:port``, ``rfc2217://`` or a device path, decodes
frames with a bounded :class:`~firmware_bridge.frame.FrameDecoder`, runs the HELLO / TIMESYNC /
CMD-ACK session, unwraps the MCU's 16-bit sequence numbers and 32-bit microsecond clock, and puts
DATA frames and explicit gap records into a bounded queue. A dropped port (USB unplug, pty closed,
socket reset) is reopened with backoff; the frames missed meanwhile show up as a counted gap.

Counters (:meth:`Link.counters`) are exact: ``lost_frames`` is the sum of all gap sizes, every
dropped chunk is counted by reason, and a full queue never drops silently (the dropped sequence
numbers become a ``queue_full`` gap record).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from typing import Any, Callable

import numpy as np
import serial

from firmware_bridge import frame as fr
from firmware_bridge import spec

log = logging.getLogger("firmware_bridge.link")


class LinkError(RuntimeError):
    """The link cannot do what was asked (port closed, schema refused)."""


class CommandTimeout(LinkError):
    """A CMD was not acknowledged after all retries."""


class CommandRejected(LinkError):
    """The MCU answered a CMD with NAK."""


@dataclasses.dataclass(frozen=True)
class DataEvent:
    """One DATA frame, timestamped on the host clocks.

    ``seq`` is the host's 64-bit sequence number: the MCU's 16-bit counter unwrapped, continued
    across reboots so it never repeats within one :class:`Link`.
    """

    seq: int
    t_mcu_us: int
    t_mono_ns: int
    t_wall_ns: int
    kind: int
    array: np.ndarray | None
    flags: int
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class GapEvent:
    """Host sequence numbers ``first..last`` (inclusive) that will never arrive, and why."""

    first: int
    last: int
    reason: str  # "serial_loss" | "queue_full" | "bad_payload"
    t_mono_ns: int
    t_wall_ns: int

    @property
    def count(self) -> int:
        """How many frames are missing."""
        return self.last - self.first + 1


class SeqTracker:
    """Unwraps 16-bit DATA sequence numbers into host 64-bit ones and finds gaps.

    Host number = ``base`` + the MCU counter unwrapped; ``base`` is chosen at the first frame of each
    MCU session so host numbers continue where the previous session stopped.
    """

    def __init__(self) -> None:
        self.next_host = 0          # host seq the next new session starts at
        self._base = 0
        self._exp: int | None = None  # unwrapped MCU seq expected next in this session
        self.duplicates = 0

    @property
    def in_session(self) -> bool:
        """Whether a DATA frame of the current MCU session has been seen."""
        return self._seen

    _seen = False

    def new_session(self, from_zero: bool = False) -> None:
        """The MCU rebooted: its counter restarts; host numbers continue after the last one.

        With ``from_zero`` (the reboot was announced by a boot HELLO) the session's first DATA
        frame is expected to be seq 0, so frames lost before the first one that arrives are counted.
        """
        if self._exp is not None:
            self.next_host = self._base + self._exp
        self._exp = None
        self._seen = False
        if from_zero:
            self._base, self._exp = self.next_host, 0

    def push(self, seq16: int) -> tuple[int | None, tuple[int, int] | None]:
        """``(host_seq, gap)`` for an arriving MCU seq; ``host_seq`` is None for a stale duplicate."""
        self._seen = True
        if self._exp is None:
            self._base = self.next_host - seq16
            self._exp = seq16 + 1
            return self.next_host, None
        d = (seq16 - self._exp) & 0xFFFF
        if d >= 0x8000:  # behind us: duplicate or stale
            self.duplicates += 1
            return None, None
        u = self._exp + d
        gap = (self._base + self._exp, self._base + u - 1) if d else None
        self._exp = u + 1
        return self._base + u, gap


class ClockSync:
    """MCU microseconds -> host monotonic nanoseconds, from TIMESYNC round trips.

    Keeps the last ``window`` samples and uses the one with the smallest round-trip time (NTP's
    clock filter); with two good samples far enough apart it also estimates the MCU clock's rate
    error (``skew_ppm``). Until a TIMESYNC reply arrives, the lowest (arrival − MCU time) of DATA
    frames is used (source ``"arrival"``).
    """

    def __init__(self, window: int = 16):
        self.samples: collections.deque[tuple[int, int, int]] = collections.deque(maxlen=window)
        self.offset_ns: int | None = None
        self.rtt_ns: int | None = None
        self.source = "none"
        self.skew = 0.0
        self._ref_mcu_ns = 0
        self._anchor: tuple[int, int] | None = None  # (mcu_ns, offset) of an early good sample

    def reset(self) -> None:
        """Forget everything (the MCU clock restarted)."""
        self.__init__(self.samples.maxlen or 16)

    def add_roundtrip(self, host_t1: int, host_t4: int, mcu_rx_ns: int, mcu_tx_ns: int) -> None:
        """Add one TIMESYNC exchange (host send/receive, MCU receive/send)."""
        rtt = (host_t4 - host_t1) - max(0, mcu_tx_ns - mcu_rx_ns)
        off = ((host_t1 - mcu_rx_ns) + (host_t4 - mcu_tx_ns)) // 2
        self.samples.append((rtt, off, mcu_tx_ns))
        best = min(self.samples)
        self.rtt_ns, self.offset_ns, self._ref_mcu_ns = best
        self.source = "timesync"
        if self._anchor is None:
            self._anchor = (mcu_tx_ns, off)
        else:
            span = self._ref_mcu_ns - self._anchor[0]
            if span > 30_000_000_000:  # shorter spans: RTT noise dominates the rate estimate
                self.skew = (self.offset_ns - self._anchor[1]) / span

    def add_arrival(self, host_ns: int, mcu_ns: int) -> None:
        """Use a DATA frame's arrival as an upper bound of the offset (when no TIMESYNC yet)."""
        if self.source == "timesync":
            return
        off = host_ns - mcu_ns
        if self.offset_ns is None or off < self.offset_ns:
            self.offset_ns, self._ref_mcu_ns, self.source = off, mcu_ns, "arrival"

    def to_host(self, mcu_ns: int, fallback_ns: int) -> int:
        """Host monotonic time of an MCU timestamp (``fallback_ns`` when unsynchronised)."""
        if self.offset_ns is None:
            return fallback_ns
        return int(mcu_ns + self.offset_ns + self.skew * (mcu_ns - self._ref_mcu_ns))


class _Unwrap32:
    """Unwraps the MCU's 32-bit microsecond counter (wraps every 71.6 minutes)."""

    def __init__(self) -> None:
        self.last: int | None = None
        self.high = 0

    def push(self, t: int) -> int:
        if self.last is not None and t < self.last and (self.last - t) > 0x80000000:
            self.high += 1 << 32
        elif self.last is not None and t > self.last and (t - self.last) > 0x80000000:
            return self.high - (1 << 32) + t  # a late, pre-wrap timestamp
        self.last = t
        return self.high + t


def _is_device_path(url: str) -> bool:
    return "://" not in url


class Link:
    """A bridge to one MCU over ``serial.serial_for_url(url)``; see the module docstring.

    Use as a context manager or call :meth:`start` / :meth:`close`. :meth:`get` returns the next
    :class:`DataEvent` or :class:`GapEvent`. :meth:`command` sends an acknowledged CMD.
    """

    def __init__(self, url: str, baudrate: int = 921600, *, max_frame: int = spec.MAX_FRAME_DEFAULT,
                 queue_size: int = 1024, reconnect: bool = True, timesync_interval: float = 1.0,
                 read_timeout: float = 0.05, backoff: tuple[float, float] = (0.02, 1.0),
                 on_event: Callable[[str, dict], None] | None = None, **serial_kwargs: Any):
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.url = url
        self.baudrate = baudrate
        self.max_frame = max_frame
        self.queue_size = queue_size
        self.reconnect = reconnect
        self.timesync_interval = timesync_interval
        self.read_timeout = read_timeout
        self.backoff = backoff
        self.on_event = on_event
        self.serial_kwargs = serial_kwargs
        self.decoder = fr.FrameDecoder(max_frame)
        self.seq = SeqTracker()
        self.clock = ClockSync()
        self._tclock = _Unwrap32()
        self._wall_minus_mono = time.time_ns() - time.monotonic_ns()
        self._ser: serial.SerialBase | None = None
        self._wlock = threading.Lock()
        self._cv = threading.Condition()
        self._queue: collections.deque = collections.deque()
        self._pending_gaps: list[list] = []
        self._acks: dict[int, tuple[int, int, bytes]] = {}
        self._acks_waiting: set[int] = set()
        self._ctl_seq = 0
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_timesync = 0.0
        self._ts_pending: dict[int, int] = {}
        self.mcu_info: dict[str, int] | None = None
        self.schema_ok: bool | None = None
        self._reboot_seen_via_boot_flag = False
        self._last_data_host_ns = 0
        self.last_error: str | None = None
        self.c = collections.Counter()
        self._t_start = time.monotonic()

    # ----------------------------------------------------------------- lifecycle
    def __enter__(self) -> "Link":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, wait_connected: float | None = None) -> "Link":
        """Start the reader thread (it opens the port). Optionally wait for the first open."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"bridge-link {self.url}", daemon=True)
            self._thread.start()
        if wait_connected is not None and not self._connected.wait(wait_connected):
            raise LinkError(f"could not open {self.url} within {wait_connected} s: {self.last_error}")
        return self

    def close(self) -> None:
        """Stop the reader thread and close the port."""
        self._stop.set()
        ser = self._ser
        if ser is not None and hasattr(ser, "cancel_read"):
            try:
                ser.cancel_read()
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        if self._thread is not None:
            self._thread.join(5)
        self._close_port()
        with self._cv:
            self._cv.notify_all()

    @property
    def connected(self) -> bool:
        """Whether the port is open right now."""
        return self._connected.is_set()

    def _open(self) -> serial.SerialBase:
        kw = dict(self.serial_kwargs)
        kw.setdefault("timeout", self.read_timeout)
        kw.setdefault("write_timeout", 1.0)
        if _is_device_path(self.url):
            kw.setdefault("exclusive", True)
        return serial.serial_for_url(self.url, baudrate=self.baudrate, **kw)

    def _close_port(self) -> None:
        ser, self._ser = self._ser, None
        self._connected.clear()
        if ser is not None:
            try:
                ser.close()
            except Exception:  # noqa: BLE001
                pass

    def _emit(self, name: str, **info: Any) -> None:
        if self.on_event is not None:
            try:
                self.on_event(name, info)
            except Exception:  # noqa: BLE001 - a callback must not kill the link
                log.exception("on_event callback failed")

    # ----------------------------------------------------------------- reader thread
    def _run(self) -> None:
        delay = self.backoff[0]
        while not self._stop.is_set():
            if self._ser is None:
                try:
                    self._ser = self._open()
                except (serial.SerialException, OSError, ValueError) as exc:
                    self.last_error = f"open {self.url}: {exc}"
                    self.c["open_failures"] += 1
                    self._stop.wait(delay)
                    delay = min(delay * 2, self.backoff[1])
                    continue
                delay = self.backoff[0]
                self.c["connects"] += 1
                if self.c["connects"] > 1:
                    self.c["reconnects"] += 1
                    log.warning("reconnected to %s", self.url)
                    self._emit("reconnect", url=self.url)
                self.decoder.reset(discard_partial=False)
                self._connected.set()
                self._send_hello()
                self._next_timesync = 0.0
            try:
                self._maybe_timesync()
                ser = self._ser
                n = ser.in_waiting
                data = ser.read(min(max(1, n), 1 << 16))
            except (serial.SerialException, OSError, AttributeError, TypeError) as exc:
                if self._stop.is_set():
                    break
                self.c["disconnects"] += 1
                self.last_error = f"{self.url}: {exc}"
                log.warning("link lost: %s", self.last_error)
                self._emit("disconnect", url=self.url, error=str(exc))
                self._close_port()
                if not self.reconnect:
                    break
                continue
            if data:
                self._on_bytes(data)
        self._connected.clear()

    def _on_bytes(self, data: bytes) -> None:
        for f in self.decoder.feed(data):
            self._dispatch(f)

    def _dispatch(self, f: fr.Frame) -> None:
        now = time.monotonic_ns()
        t = f.type
        if t == spec.T_DATA:
            self._on_data(f, now)
        elif t == spec.T_HELLO:
            self._on_hello(f)
        elif t == spec.T_TIMESYNC:
            self._on_timesync(f, now)
        elif t in (spec.T_ACK, spec.T_NAK):
            if len(f.payload) >= spec.PAYLOADS["ACK"].size:
                acked, status = spec.PAYLOADS["ACK"].unpack_from(f.payload, 0)
                with self._cv:
                    if acked in self._acks_waiting:
                        self._acks[acked] = (t, status, f.payload[spec.PAYLOADS["ACK"].size:])
                        self._cv.notify_all()
                    else:
                        self.c["stale_acks"] += 1
        elif t == spec.T_LOG:
            self.c["log_frames"] += 1
            log.info("mcu: %s", f.payload.decode("utf-8", "replace"))
        elif t == spec.T_ERROR:
            self.c["error_frames"] += 1
            self.last_error = f"MCU error frame: {f.payload!r}"
        else:
            self.c["unknown_frames"] += 1

    def _mcu_ns(self, t_us: int) -> int:
        return self._tclock.push(t_us) * 1000

    def _on_data(self, f: fr.Frame, now: int) -> None:
        self.c["data_frames"] += 1
        if self.schema_ok is False:
            self.c["refused_frames"] += 1
            return
        if f.flags & spec.F_BOOT and self.seq.in_session and f.seq == 0:
            self._reboot("boot flag on DATA seq 0")
            self._reboot_seen_via_boot_flag = True
        if f.flags & spec.F_MCU_OVERRUN:
            self.c["mcu_overruns"] += 1
        host_seq, gap = self.seq.push(f.seq)
        if host_seq is None:
            self.c["duplicates"] += 1
            return
        mcu_ns = self._mcu_ns(f.t_mcu_us)
        self.clock.add_arrival(now, mcu_ns)
        t_mono = self.clock.to_host(mcu_ns, now)
        t_wall = t_mono + self._wall_minus_mono
        if gap is not None:
            self._add_gap(gap[0], gap[1], "serial_loss", t_mono, t_wall)
        try:
            kind, arr = fr.parse_data(f.payload)
            err = None
        except fr.FrameError as exc:
            kind, arr, err = 0, None, str(exc)
            self.c["bad_payloads"] += 1
            self.last_error = err
        self.c["data_bytes"] += len(f.payload)
        self._put(DataEvent(host_seq, mcu_ns // 1000, t_mono, t_wall, kind, arr, f.flags, err), host_seq)

    def _reboot(self, why: str, from_zero: bool = False) -> None:
        self.c["reboots"] += 1
        self.seq.new_session(from_zero)
        self.clock.reset()
        self._tclock = _Unwrap32()
        log.warning("MCU reboot detected (%s)", why)
        self._emit("reboot", why=why)

    def _on_hello(self, f: fr.Frame) -> None:
        st = spec.PAYLOADS["HELLO"]
        if len(f.payload) < st.size:
            self.c["bad_payloads"] += 1
            return
        info = dict(zip(spec.PROTOCOL["payloads"]["HELLO"]["fields"], st.unpack_from(f.payload, 0)))
        self.c["hellos"] += 1
        if info["schema_hash"] != spec.SCHEMA_HASH:
            if self.schema_ok is not False:
                self.last_error = (f"schema mismatch: MCU has {info['schema_hash']:#010x}, "
                                   f"host {spec.SCHEMA_HASH:#010x}; refusing its DATA")
                log.error(self.last_error)
            self.schema_ok = False
            self.c["schema_mismatch"] += 1
            return
        self.schema_ok = True
        prev = self.mcu_info
        if prev is not None and prev["boot_nonce"] != info["boot_nonce"]:
            if self._reboot_seen_via_boot_flag:
                self._reboot_seen_via_boot_flag = False
            else:
                self._reboot("new boot nonce", from_zero=bool(f.flags & spec.F_BOOT))
        elif prev is None and f.flags & spec.F_BOOT and self.seq.in_session:
            self._reboot("boot flag on HELLO", from_zero=True)
        self.mcu_info = info
        self._next_timesync = 0.0
        self._write(spec.T_HELLO_ACK, spec.PAYLOADS["HELLO_ACK"].pack(spec.SCHEMA_HASH, info["boot_nonce"]))

    def _on_timesync(self, f: fr.Frame, now: int) -> None:
        st = spec.PAYLOADS["TIMESYNC"]
        if len(f.payload) < st.size:
            self.c["bad_payloads"] += 1
            return
        t1, mcu_rx_us = st.unpack_from(f.payload, 0)
        if self._ts_pending.pop(t1, None) is None:
            self.c["stale_timesync"] += 1
            return
        self.c["timesyncs"] += 1
        mcu_tx_ns = self._mcu_ns(f.t_mcu_us)
        mcu_rx_ns = mcu_tx_ns - ((f.t_mcu_us - mcu_rx_us) & 0xFFFFFFFF) * 1000
        self.clock.add_roundtrip(t1, now, mcu_rx_ns, mcu_tx_ns)

    def _maybe_timesync(self) -> None:
        if self.timesync_interval <= 0:
            return
        now = time.monotonic()
        if now < self._next_timesync:
            return
        self._next_timesync = now + self.timesync_interval
        t1 = time.monotonic_ns()
        if len(self._ts_pending) > 8:
            self._ts_pending.clear()
        self._ts_pending[t1] = 1
        self._write(spec.T_TIMESYNC, spec.PAYLOADS["TIMESYNC"].pack(t1, 0))

    def _send_hello(self) -> None:
        self._write(spec.T_HELLO, spec.PAYLOADS["HELLO"].pack(
            spec.VERSION, spec.PROTOCOL["crc_kinds"]["CRC32"], self.max_frame, spec.SCHEMA_HASH, 0, 0))

    def _write(self, ftype: int, payload: bytes, flags: int = 0, seq: int | None = None) -> int:
        with self._wlock:
            if seq is None:
                seq = self._ctl_seq
                self._ctl_seq = (self._ctl_seq + 1) & 0xFFFF
            ser = self._ser
            if ser is None:
                self.c["tx_dropped"] += 1
                return seq
            try:
                ser.write(fr.encode_frame(ftype, seq, 0, payload, flags))
                self.c["tx_frames"] += 1
            except (serial.SerialException, OSError) as exc:
                self.c["tx_errors"] += 1
                self.last_error = f"write {self.url}: {exc}"
            return seq

    # ----------------------------------------------------------------- bounded queue
    def _add_gap(self, first: int, last: int, reason: str, t_mono: int, t_wall: int) -> None:
        self.c["gaps"] += 1
        self.c["lost_frames"] += last - first + 1
        self.c["lost_" + reason] += last - first + 1
        with self._cv:
            self._queue_gap(GapEvent(first, last, reason, t_mono, t_wall))

    def _queue_gap(self, g: GapEvent) -> None:
        pg = self._pending_gaps
        if pg and pg[-1][2] == g.reason and pg[-1][1] + 1 == g.first:
            pg[-1][1] = g.last
        else:
            pg.append([g.first, g.last, g.reason, g.t_mono_ns, g.t_wall_ns])
            if len(pg) > 64:  # keep memory bounded: merge the two oldest (over-reports, never hides)
                a, b = pg.pop(0), pg.pop(0)
                pg.insert(0, [a[0], b[1], a[2], a[3], a[4]])
        self._flush_gaps()

    def _flush_gaps(self) -> None:
        while self._pending_gaps and len(self._queue) < self.queue_size:
            f, l, r, tm, tw = self._pending_gaps.pop(0)
            self._queue.append(GapEvent(f, l, r, tm, tw))
            self._cv.notify()

    def _put(self, ev: DataEvent, host_seq: int) -> None:
        with self._cv:
            self._flush_gaps()
            if len(self._queue) >= self.queue_size or self._pending_gaps:
                self.c["queue_drops"] += 1
                self.c["lost_frames"] += 1
                self.c["lost_queue_full"] += 1
                pg = self._pending_gaps
                if pg and pg[-1][2] == "queue_full" and pg[-1][1] + 1 == host_seq:
                    pg[-1][1] = host_seq
                else:
                    self.c["gaps"] += 1
                    self._queue_gap(GapEvent(host_seq, host_seq, "queue_full", ev.t_mono_ns, ev.t_wall_ns))
                return
            self._queue.append(ev)
            self._cv.notify()

    def get(self, timeout: float | None = None) -> DataEvent | GapEvent | None:
        """The next DATA or gap event, or None after ``timeout`` seconds (or once closed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while not self._queue:
                if self._stop.is_set():
                    return None
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cv.wait(left if left is not None else 0.5)
            ev = self._queue.popleft()
            self._flush_gaps()
            return ev

    # ----------------------------------------------------------------- commands
    def command(self, cmd: int, arg: bytes = b"", *, timeout: float | None = None, tries: int = 5) -> bytes:
        """Send a CMD and wait for its ACK, retransmitting (flag RETRY) up to ``tries`` times.

        Returns the ACK's result bytes. Raises :class:`CommandTimeout` or :class:`CommandRejected`.
        The per-try timeout defaults to 2 × frame airtime + 20 ms.
        """
        payload = spec.PAYLOADS["CMD"].pack(cmd) + bytes(arg)
        if timeout is None:
            airtime = (len(payload) + 16) * 10 / max(self.baudrate, 1)
            timeout = 2 * airtime + 0.02
        with self._wlock:
            seq = self._ctl_seq
            self._ctl_seq = (self._ctl_seq + 1) & 0xFFFF
        with self._cv:
            self._acks_waiting = set(self._acks_waiting) | {seq}
        try:
            for attempt in range(tries):
                self.c["cmd_tx"] += 1
                if attempt:
                    self.c["cmd_retries"] += 1
                self._write(spec.T_CMD, payload, spec.F_RETRY if attempt else 0, seq=seq)
                deadline = time.monotonic() + timeout
                with self._cv:
                    while seq not in self._acks:
                        left = deadline - time.monotonic()
                        if left <= 0 or self._stop.is_set():
                            break
                        self._cv.wait(left)
                    res = self._acks.pop(seq, None)
                if res is not None:
                    t, status, extra = res
                    if t == spec.T_NAK or status != spec.ACK_STATUS["OK"]:
                        self.c["cmd_rejected"] += 1
                        raise CommandRejected(f"MCU rejected command {cmd} (status {status})")
                    self.c["cmd_ok"] += 1
                    return extra
            self.c["cmd_failed"] += 1
            raise CommandTimeout(f"command {cmd} not acknowledged after {tries} tries of {timeout * 1000:.0f} ms")
        finally:
            with self._cv:
                self._acks_waiting = set(self._acks_waiting) - {seq}
                self._acks.pop(seq, None)

    # ----------------------------------------------------------------- counters
    def counters(self) -> dict[str, Any]:
        """A snapshot of every counter (exact; safe to call from any thread)."""
        d = self.decoder
        c = dict(self.c)
        out = {
            "frames": d.frames, "bytes": d.bytes_in,
            "crc_errors": d.errors["crc"], "framing_errors": d.errors["cobs"] + d.errors["short"] + d.errors["oversize"],
            "version_errors": d.errors["version"], "rx_overflows": d.overflows,
            "resyncs": d.bad_frames + d.overflows + d.partial_drops, "partial_drops": d.partial_drops,
            "data_frames": c.get("data_frames", 0), "gaps": c.get("gaps", 0), "lost_frames": c.get("lost_frames", 0),
            "reboots": c.get("reboots", 0), "disconnects": c.get("disconnects", 0),
            "reconnects": c.get("reconnects", 0), "queue_len": len(self._queue),
            "rx_buffered": d.buffered, "connected": self.connected,
            "clock_offset_us": None if self.clock.offset_ns is None else self.clock.offset_ns / 1000,
            "clock_rtt_us": None if self.clock.rtt_ns is None else self.clock.rtt_ns / 1000,
            "clock_skew_ppm": self.clock.skew * 1e6, "clock_source": self.clock.source,
            "schema_ok": self.schema_ok, "last_error": self.last_error,
            "uptime_s": time.monotonic() - self._t_start,
        }
        for k, v in c.items():
            out.setdefault(k, v)
        return out
