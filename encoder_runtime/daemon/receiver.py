"""``sensor-receive``'s server: authenticate, verify, de-duplicate, store durably, acknowledge.

Each connection is one thread (at most ``max_connections``). Before authentication the
receiver accepts only a small control record within ``handshake_timeout``; afterwards records
may be up to ``max_record_bytes`` and one segment up to ``max_segment_bytes``. Any malformed
input (bad CRC, oversize length, unknown record type, bad stream id, protocol violation) ends
that connection with an ``error`` message; nothing already acknowledged is affected, and
nothing is ever unpickled (``allow_pickle=False`` everywhere, JSON only).
"""

from __future__ import annotations

import hmac
import logging
import queue
import socket
import ssl
import threading
import time
from pathlib import Path

import numpy as np

from ..container import ContainerError, RecordType, StreamReader, preamble
from . import wire
from .config import STREAM_ID_RE
from .store import Store

log = logging.getLogger("sensorcodec.receiver")


def server_ssl_context(cert: str, key: str, client_ca: str = "") -> ssl.SSLContext:
    """TLS server context; with ``client_ca`` clients must present a certificate it signed."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(client_ca)
    return ctx


class ProtocolError(Exception):
    """The peer broke the session protocol."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


def write_reconstruction(out_dir: Path, seq: int, header: dict, arr: np.ndarray) -> Path:
    """Write one decoded frame: PNG for images (Pillow), WAV for audio (soundfile), else ``.npy``."""
    modality = header.get("modality")
    if modality == "image" and arr.dtype == np.uint8 and (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 3, 4))):
        try:
            from PIL import Image
        except ImportError:
            pass
        else:
            path = out_dir / f"{seq:012d}.png"
            Image.fromarray(arr[..., 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr).save(path)
            return path
    if modality == "audio" and arr.dtype == np.int16:
        rate = int((header.get("sample") or {}).get("rate_hz") or ((header.get("meta") or {}).get("rate_hz")) or 0)
        if rate > 0:
            try:
                import soundfile
            except (ImportError, OSError):
                pass
            else:
                path = out_dir / f"{seq:012d}.wav"
                soundfile.write(str(path), arr, rate, subtype="PCM_16")
                return path
    path = out_dir / f"{seq:012d}.npy"
    np.save(path, np.ascontiguousarray(arr), allow_pickle=False)
    return path


class Decoder(threading.Thread):
    """Optional background reconstruction of stored frames (``--decode DIR``).

    Writes ``DIR/<stream>/<seq>.png`` for images when Pillow is installed, ``.wav`` for audio when
    soundfile is, ``.npy`` otherwise. Decoding runs the cloud decoder (much slower than the
    device encoder), so it never back-pressures storage: when more than ``backlog`` segments are
    waiting, new ones are skipped (counted and logged; they are stored and can be decoded later
    from the store with ``Decoder.for_header(header).decode_frame(header, payload)``).
    """

    def __init__(self, out_dir: str, backlog: int = 256, threads: int = 1) -> None:
        super().__init__(name="decoder", daemon=True)
        self.out = Path(out_dir)
        self.q: queue.Queue = queue.Queue(maxsize=backlog)
        self.threads = threads
        self._decoders: dict[str, object] = {}
        self.skipped = 0
        self.written = 0

    def submit(self, stream_id: str, header: dict, records: list) -> None:
        """Queue frames for decoding; never blocks (skips and counts when the backlog is full)."""
        try:
            self.q.put_nowait((stream_id, header, records))
        except queue.Full:
            n = sum(1 for r in records if r.type == RecordType.FRAME)
            self.skipped += n
            log.warning("decode backlog full: %d frames of stream %s stored but not reconstructed "
                        "(%d skipped so far)", n, stream_id, self.skipped)

    def run(self) -> None:
        from .codecs import decoder_for_header

        while True:
            stream_id, header, records = self.q.get()
            try:
                key = repr(sorted((k, repr(v)) for k, v in header.items() if k != "clock"))
                dec = self._decoders.get(key)
                if dec is None:
                    dec = self._decoders[key] = decoder_for_header(header)
                d = self.out / stream_id
                d.mkdir(parents=True, exist_ok=True)
                for rec in records:
                    if rec.type == RecordType.FRAME:
                        write_reconstruction(d, rec.seq, header, dec.decode_frame(header, rec.payload))
                        self.written += 1
            except Exception as exc:
                log.error("decode failed for stream %s: %s", stream_id, exc)


class Receiver:
    """The TCP/TLS server; ``serve_forever`` in a thread or the main thread."""

    def __init__(self, host: str, port: int, store_dir: str, *, token: str = "",
                 ssl_context: ssl.SSLContext | None = None, max_record_bytes: int = 16 * 1024**2,
                 max_segment_bytes: int = 64 * 1024**2, max_connections: int = 64,
                 handshake_timeout: float = 5.0, idle_timeout: float = 120.0,
                 file_max_bytes: int = 64 * 1024**2, decode_dir: str = "", metrics=None) -> None:
        self.store = Store(store_dir, file_max_bytes)
        self.token, self.ssl_context = token, ssl_context
        self.max_record_bytes, self.max_segment_bytes = max_record_bytes, max_segment_bytes
        self.handshake_timeout, self.idle_timeout = handshake_timeout, idle_timeout
        self.metrics = metrics
        self._slots = threading.BoundedSemaphore(max_connections)
        self._stop = threading.Event()
        self.sock = socket.create_server((host, port), reuse_port=False, backlog=64)
        self.address = self.sock.getsockname()[:2]
        self.decoder = Decoder(decode_dir) if decode_dir else None
        if self.decoder:
            self.decoder.start()

    def serve_forever(self) -> None:
        """Accept connections until :meth:`shutdown`."""
        self.sock.settimeout(0.5)
        while not self._stop.is_set():
            try:
                conn, addr = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                if self._stop.is_set():
                    break
                raise
            if not self._slots.acquire(blocking=False):
                self._count_reject("too_many_connections")
                conn.close()
                continue
            threading.Thread(target=self._handle, args=(conn, addr), daemon=True,
                             name=f"conn-{addr[0]}:{addr[1]}").start()

    def shutdown(self) -> None:
        """Stop accepting; open connections finish their current segment or time out."""
        self._stop.set()
        try:
            self.sock.close()
        except OSError:
            pass
        self.store.close()

    def _count_reject(self, reason: str) -> None:
        if self.metrics:
            self.metrics.rejected.inc(1, reason)

    def _handle(self, conn: socket.socket, addr) -> None:
        peer = f"{addr[0]}:{addr[1]}"
        try:
            conn.settimeout(self.handshake_timeout)
            if self.ssl_context is not None:
                conn = self.ssl_context.wrap_socket(conn, server_side=True)
            self._session(conn, peer)
        except ProtocolError as exc:
            log.warning("connection %s rejected: %s", peer, exc)
            self._count_reject(exc.code)
            try:
                conn.sendall(wire.control({"type": "error", "code": exc.code, "message": exc.message}))
            except OSError:
                pass
        except (OSError, ssl.SSLError) as exc:
            log.info("connection %s closed: %s", peer, exc)
            if isinstance(exc, ssl.SSLError):
                self._count_reject("tls")
        except Exception:
            log.exception("connection %s: unexpected error", peer)
        finally:
            try:
                conn.close()
            except OSError:
                pass
            self._slots.release()

    def _recv(self, conn, reader: StreamReader, what: str) -> list:
        try:
            data = conn.recv(1 << 16)
        except socket.timeout:
            raise ProtocolError("timeout", f"nothing received while waiting for {what}") from None
        if not data:
            raise ConnectionResetError("peer closed the connection")
        try:
            return reader.feed(data)
        except ContainerError as exc:
            raise ProtocolError("malformed", str(exc)) from None

    def _session(self, conn, peer: str) -> None:
        reader = StreamReader(max_payload=wire.MAX_CONTROL_BYTES)
        deadline = time.monotonic() + self.handshake_timeout
        recs: list = []
        while not recs:
            if time.monotonic() > deadline:
                raise ProtocolError("timeout", "no hello within the handshake timeout")
            recs = self._recv(conn, reader, "hello")
        try:
            hello = wire.parse_control(recs.pop(0))
        except ContainerError as exc:
            raise ProtocolError("malformed", str(exc)) from None
        if hello["type"] != "hello" or hello.get("proto") != wire.PROTO:
            raise ProtocolError("bad_hello", f"expected hello proto {wire.PROTO}")
        given = hello.get("token", "")
        if self.token and not (isinstance(given, str) and
                               hmac.compare_digest(given.encode(), self.token.encode())):
            raise ProtocolError("unauthorized", "missing or wrong token")
        conn.sendall(preamble() + wire.control({"type": "welcome", "proto": wire.PROTO}))
        if self.metrics:
            self.metrics.connections.inc(1, "ok")
        log.info("connection %s authenticated (%s)", peer, hello.get("agent", "?"))
        reader.max_payload = self.max_record_bytes
        conn.settimeout(self.idle_timeout)
        seg_header: dict | None = None
        seg_records: list = []
        seg_bytes = 0
        while True:
            if not recs:
                recs = self._recv(conn, reader, "records")
                continue
            rec = recs.pop(0)
            if rec.type == RecordType.HEADER:
                if seg_header is not None:
                    raise ProtocolError("protocol", "HEADER inside a segment")
                try:
                    seg_header = rec.header_json()
                except ContainerError as exc:
                    raise ProtocolError("malformed", str(exc)) from None
                sid = seg_header.get("stream_id") if isinstance(seg_header, dict) else None
                if not isinstance(sid, str) or not STREAM_ID_RE.fullmatch(sid):
                    raise ProtocolError("bad_stream_id", f"stream id {sid!r} must match {STREAM_ID_RE.pattern}")
                seg_records, seg_bytes = [], 0
            elif rec.type in (RecordType.FRAME, RecordType.GAP):
                if seg_header is None:
                    raise ProtocolError("protocol", "record outside a segment")
                if rec.type == RecordType.GAP:
                    try:
                        a, b, _ = rec.gap()
                    except ContainerError as exc:
                        raise ProtocolError("malformed", str(exc)) from None
                    if b < a:
                        raise ProtocolError("malformed", f"GAP {a}..{b} is reversed")
                seg_bytes += rec.size
                if seg_bytes > self.max_segment_bytes:
                    raise ProtocolError("too_large", f"segment exceeds {self.max_segment_bytes} bytes")
                seg_records.append(rec)
            elif rec.type == RecordType.END:
                if seg_header is None:
                    raise ProtocolError("protocol", "END outside a segment")
                try:
                    info = wire.end_info(rec)
                except ContainerError as exc:
                    raise ProtocolError("malformed", str(exc)) from None
                self._commit(conn, seg_header, seg_records, info["segno"])
                seg_header, seg_records = None, []
            elif rec.type == RecordType.ANNOTATION:
                continue  # control messages from the client (none defined yet) are ignored
            else:
                raise ProtocolError("protocol", f"unknown record type {rec.type}")

    def _commit(self, conn, header: dict, records: list, segno: int) -> None:
        stream_id = header["stream_id"]
        t0 = time.perf_counter()
        st = self.store.stream(stream_id)
        stored, dups, gaps = st.commit(header, records)
        m = self.metrics
        if m:
            now = time.time_ns()
            for r in records:  # on one host (or NTP-synced ones) this is capture → durably stored
                if r.type == RecordType.FRAME and r.t_wall_ns:
                    m.capture_to_stored.observe(max(0.0, (now - r.t_wall_ns) / 1e9))
            m.commit_seconds.observe(time.perf_counter() - t0)
            m.segments.inc(1, "ok")
            m.frames_stored.inc(stored)
            m.frames_duplicate.inc(dups)
            m.gaps_stored.inc(gaps)
            m.bytes_stored.inc(sum(r.size for r in records))
        if dups:
            log.info("stream %s segment %d: %d duplicate frames ignored", stream_id, segno, dups)
        conn.sendall(wire.control({"type": "ack", "segno": segno, "stream_id": stream_id,
                                   "stored": stored, "duplicates": dups}))
        if self.decoder and stored:
            self.decoder.submit(stream_id, header, [r for r in records if r.type == RecordType.FRAME])
