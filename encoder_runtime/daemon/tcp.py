"""At-least-once uploader over TCP (optionally TLS): sealed segments out, acknowledgements in.

One connection at a time; up to ``window`` segments in flight, oldest first. A segment is
deleted from the spool only when the receiver acknowledged it (after its fsync). Any error —
refused connection, reset, corrupted bytes, no acknowledgement within ``ack_timeout`` — closes
the connection, returns the in-flight segments to the spool, and reconnects after a full-jitter
exponential backoff ``uniform(0, min(cap, base * 2**n))``, forever. A receiver that refuses the
credentials (``unauthorized``/``forbidden``) is logged as an error on every attempt and retried
after the full, unjittered ``min(cap, base * 2**n)``: a wrong token never hammers the receiver.
"""

from __future__ import annotations

import collections
import logging
import os
import random
import select
import socket
import ssl
import threading
import time

from ..container import PREAMBLE, ContainerError, StreamReader, preamble
from . import wire
from .spool import Segment, Spool, inspect_segment, runs

log = logging.getLogger("sensorcodec.tcp")
AGENT = "sensor-encode/0.1"


class Backoff:
    """Full-jitter exponential backoff."""

    def __init__(self, base: float, cap: float) -> None:
        self.base, self.cap, self.attempt = base, cap, 0

    def next_delay(self) -> float:
        """Delay before the next attempt (and count the attempt)."""
        delay = random.uniform(0, min(self.cap, self.base * (2 ** min(self.attempt, 30))))
        self.attempt += 1
        return delay

    def full_delay(self) -> float:
        """The capped exponential delay without jitter (and count the attempt)."""
        delay = min(self.cap, self.base * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """A connection worked: start again from ``base``."""
        self.attempt = 0


class Refused(ConnectionError):
    """The receiver refused the credentials (``code`` ``unauthorized`` or ``forbidden``)."""

    CODES = ("unauthorized", "forbidden")


def refusal(msg: dict) -> ConnectionError:
    """The exception for a receiver's ``error`` answer to our hello."""
    code = msg.get("code")
    cls = Refused if code in Refused.CODES else ConnectionError
    return cls(f"receiver refused: {code}: {msg.get('message')}")


def client_ssl_context(ca: str = "", cert: str = "", key: str = "") -> ssl.SSLContext:
    """TLS client context: verify the receiver against ``ca`` (system CAs if empty)."""
    ctx = ssl.create_default_context(cafile=ca or None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert:
        ctx.load_cert_chain(cert, key or None)
    return ctx


class Uploader(threading.Thread):
    """Common part of the TCP and MQTT uploaders: the loop, backoff and ack bookkeeping."""

    def __init__(self, spool: Spool, *, backoff_base: float, backoff_cap: float, metrics=None,
                 on_ack=None, name: str = "uploader") -> None:
        super().__init__(name=name, daemon=True)
        self.spool, self.metrics, self.on_ack = spool, metrics, on_ack
        self.backoff = Backoff(backoff_base, backoff_cap)
        self.stop_event = threading.Event()
        self.acked_frames = 0
        self.connected = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)

    def wake(self) -> None:
        """Called when a segment is sealed: stop waiting and send it."""
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    def _drain_wake(self) -> None:
        try:
            os.read(self._wake_r, 4096)
        except (BlockingIOError, OSError):
            pass

    def stop(self) -> None:
        """Ask the loop to finish (in-flight segments stay in the spool)."""
        self.stop_event.set()
        self.wake()

    def run(self) -> None:
        os.set_blocking(self._wake_r, False)
        while not self.stop_event.is_set():
            try:
                self.session()
            except (OSError, ContainerError, TimeoutError, ssl.SSLError, ConnectionError) as exc:
                self.connected.clear()
                if self.stop_event.is_set():
                    break
                refused = isinstance(exc, Refused)   # wrong credentials: loud, and no jitter
                if self.metrics:
                    self.metrics.uploads.inc(1, "refused" if refused else "error")
                delay = self.backoff.full_delay() if refused else self.backoff.next_delay()
                if refused:
                    log.error("sink %s: %s; check token/token_file (or the client certificate); retrying "
                              "in %.2fs (attempt %d)", self.describe(), exc, delay, self.backoff.attempt)
                else:
                    log.warning("sink connection failed: %s; retrying in %.2fs (attempt %d)",
                                exc, delay, self.backoff.attempt)
                self.stop_event.wait(delay)
            except Exception:
                log.exception("uploader: unexpected error")
                self.stop_event.wait(self.backoff.next_delay())
        self.connected.clear()

    def acked(self, seg: Segment, info, sent_at: float) -> None:
        """Bookkeeping for one acknowledged segment."""
        self.spool.ack(seg)
        if log.isEnabledFor(logging.DEBUG):   # the soak benchmark checks these against the store
            log.debug("acked segment %d stream %s frames %s", seg.segno, self.spool.stream_id,
                      ",".join(f"{a}-{b}" for a, b in runs(info.frame_seqs)) or "-")
        self.backoff.reset()
        self.acked_frames += info.frames
        m = self.metrics
        if m:
            m.uploads.inc(1, "ok")
            m.frames_acked.inc(info.frames)
            m.ack_seconds.observe(time.monotonic() - sent_at)
            if info.newest_mono_ns:
                m.latency_seconds.observe((time.monotonic_ns() - info.newest_mono_ns) / 1e9)
        if self.on_ack:
            self.on_ack(seg, info)

    def load(self, seg: Segment):
        """Read and verify a segment before sending; a damaged one is salvaged first (intact records
        kept, a GAP for the rest, the original bytes in ``rejected/``)."""
        try:
            data = seg.read()
            info = inspect_segment(data, strict=True)
        except FileNotFoundError:
            self.spool.release(seg)
            return None, None
        except (OSError, ValueError) as exc:
            fixed = self.spool.salvage(seg, str(exc))   # keep the intact records, GAP the rest
            if fixed is None:
                return None, None
            try:
                data = fixed.read()
                info = inspect_segment(data, strict=True)
            except (OSError, ValueError) as exc2:
                self.spool.reject(fixed, f"{exc}; salvage failed: {exc2}")
                return None, None
        return data, info

    def next_segment(self):
        """Check out and load the oldest pending segment: (seg, data, info), or None if none."""
        while True:
            pending = self.spool.pending()
            if not pending:
                return None
            seg = pending[0]
            if not self.spool.checkout(seg):
                continue
            data, info = self.load(seg)
            if data is not None:
                return seg, data, info

    def session(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:
        """Where segments go, for log lines."""
        return self.name


class TcpUploader(Uploader):
    """Uploads segments to ``sensor-receive`` over TCP or TLS."""

    def __init__(self, spool: Spool, host: str, port: int, *, token: str = "",
                 ssl_context: ssl.SSLContext | None = None, server_name: str = "", window: int = 4,
                 ack_timeout: float = 15.0, connect_timeout: float = 10.0,
                 backoff_base: float = 0.5, backoff_cap: float = 30.0, metrics=None, on_ack=None) -> None:
        super().__init__(spool, backoff_base=backoff_base, backoff_cap=backoff_cap, metrics=metrics,
                         on_ack=on_ack, name="uploader-tcp")
        self.host, self.port, self.token = host, port, token
        self.ssl_context, self.server_name = ssl_context, server_name or host
        self.window, self.ack_timeout, self.connect_timeout = window, ack_timeout, connect_timeout

    def describe(self) -> str:
        """``tcp://HOST:PORT`` (or tls://)."""
        return f"{'tls' if self.ssl_context else 'tcp'}://{self.host}:{self.port}"

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if self.ssl_context is not None:
            sock = self.ssl_context.wrap_socket(sock, server_hostname=self.server_name)
        sock.settimeout(self.ack_timeout)
        return sock

    def _recv_records(self, sock, reader: StreamReader) -> list:
        data = sock.recv(1 << 16)
        if not data:
            raise ConnectionError("receiver closed the connection")
        return reader.feed(data)

    def session(self) -> None:
        sock = self._connect()
        inflight: collections.OrderedDict[int, tuple[Segment, object, float]] = collections.OrderedDict()
        try:
            sock.sendall(preamble() + wire.control({"type": "hello", "proto": wire.PROTO, "token": self.token,
                                                    "agent": AGENT, "stream_id": self.spool.stream_id}))
            reader = StreamReader(max_payload=wire.MAX_CONTROL_BYTES)
            deadline = time.monotonic() + self.ack_timeout
            recs: list = []
            while not recs:
                if time.monotonic() > deadline:
                    raise TimeoutError("no answer to hello")
                recs = self._recv_records(sock, reader)
            msg = wire.parse_control(recs.pop(0))
            if msg["type"] != "welcome":
                raise refusal(msg)
            # Never number below what the receiver already stores (a wiped spool restarts at 0).
            self.spool.settle_numbering(msg.get("next_seq"))
            self.connected.set()
            if self.metrics:
                self.metrics.reconnects.inc()
            log.info("connected to %s:%d (receiver next_seq=%s)", self.host, self.port, msg.get("next_seq"))
            while not self.stop_event.is_set():
                while len(inflight) < self.window and (nxt := self.next_segment()):
                    seg, data, info = nxt
                    inflight[seg.segno] = (seg, info, time.monotonic())
                    sock.sendall(memoryview(data)[PREAMBLE.size:])
                    if self.metrics:
                        self.metrics.bytes_sent.inc(len(data) - PREAMBLE.size)
                pending_tls = sock.pending() if isinstance(sock, ssl.SSLSocket) else 0
                if not pending_tls:
                    ready, _, _ = select.select([sock, self._wake_r], [], [], 0.5)
                    if self._wake_r in ready:
                        self._drain_wake()
                    readable = sock in ready
                else:
                    readable = True
                if readable:
                    for rec in self._recv_records(sock, reader):
                        msg = wire.parse_control(rec)
                        if msg["type"] == "ack":
                            entry = inflight.pop(msg.get("segno"), None)
                            if entry is not None:
                                self.acked(*entry)
                        elif msg["type"] == "error":
                            raise ConnectionError(f"receiver error: {msg.get('code')}: {msg.get('message')}")
                if inflight:
                    oldest = next(iter(inflight.values()))[2]
                    if time.monotonic() - oldest > self.ack_timeout:
                        raise TimeoutError(f"no acknowledgement within {self.ack_timeout:.1f}s "
                                           "(stalled link?)")
        finally:
            for seg, _info, _t in inflight.values():
                self.spool.release(seg)
            try:
                sock.close()
            except OSError:
                pass
