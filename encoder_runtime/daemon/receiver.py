"""``sensor-receive``'s server: authenticate, verify, de-duplicate, store durably, acknowledge.

Each connection is one thread. Admission is in two stages so that unauthenticated peers
cannot starve authenticated ones: at most ``max_handshakes`` connections (and
``max_handshakes_per_peer`` from one IP address) may be between accept and a verified hello,
and all of that — TLS handshake included — must finish within ``handshake_timeout``; at most
``max_connections`` authenticated ones, and ``max_connections_per_peer`` of both kinds from one
address. After authentication each segment must arrive whole within ``segment_timeout`` of its
first byte, an idle connection is closed after ``idle_timeout``, and all connections together
may buffer at most ``max_buffer_bytes`` (past that the sender is told ``busy`` and retries).

Credentials are bound to streams: a token (``tokens`` maps each token to fnmatch patterns of
the stream ids it may write) and a client certificate (its subject CN and DNS names are the
patterns, unless ``cert_streams="any"``) both have to allow a stream before its data is read.
GAP records may span at most ``max_gap_frames`` seqs and no record may name a seq more than
``max_seq_jump`` beyond what the stream has reached — a sender cannot claim as lost (and so
block) seqs it cannot have produced.

Any malformed input (bad CRC, oversize length, unknown record type, bad stream id, protocol
violation) ends that connection with an ``error`` message (preceded by the preamble if the
server had not sent it yet); nothing already acknowledged is affected, and nothing is ever
unpickled (``allow_pickle=False`` everywhere, JSON only).
"""

from __future__ import annotations

import collections
import fnmatch
import hmac
import logging
import queue
import socket
import ssl
import threading
import time
from pathlib import Path

import numpy as np

from ..container import RECORD_HEADER, ContainerError, RecordType, StreamReader, preamble
from . import wire
from .store import Store
from .wire import ProtocolError

log = logging.getLogger("sensorcodec.receiver")

# A hello on the wire: record header + at most MAX_CONTROL_BYTES of JSON + CRC.
MAX_HELLO_WIRE_BYTES = RECORD_HEADER.size + wire.MAX_CONTROL_BYTES + 4


def server_ssl_context(cert: str, key: str, client_ca: str = "") -> ssl.SSLContext:
    """TLS server context; with ``client_ca`` clients must present a certificate it signed."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(client_ca)
    return ctx


def cert_stream_patterns(cert: dict | None) -> tuple[str, ...]:
    """Stream-id patterns a client certificate names: its subject CN and DNS subjectAltNames."""
    if not cert:
        return ()
    names = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]
    names += [v for k, v in cert.get("subjectAltName", ()) if k == "DNS"]
    return tuple(dict.fromkeys(names))


def stream_allowed(stream_id: str, constraints: list[tuple[str, ...]]) -> bool:
    """True if every credential's pattern list has a pattern matching ``stream_id``."""
    return all(any(fnmatch.fnmatchcase(stream_id, pat) for pat in pats) for pats in constraints)


class ByteBudget:
    """Bytes all connections together may hold in memory; thread-safe."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.used = capacity, 0
        self._lock = threading.Lock()

    def resize(self, held: int, want: int) -> bool:
        """Change one holder's share from ``held`` to ``want`` bytes; False (unchanged) if over budget."""
        with self._lock:
            if want > held and self.used + want - held > self.capacity:
                return False
            self.used += want - held
            return True


def write_reconstruction(out_dir: Path, seq: int, header: dict, arr: np.ndarray) -> Path:
    """Write one decoded frame: PNG for images (Pillow), WAV for audio (soundfile), YUV4MPEG2
    ``.y4m`` (4:4:4, at the header's ``meta.fps`` — the source's ``fps=`` — or 25) for a video
    frame group, else ``.npy``."""
    modality = header.get("modality")
    if modality == "video" and arr.dtype == np.uint8 and arr.ndim == 4 and arr.shape[3] == 3:
        from ..video_io import write_y4m
        path = out_dir / f"{seq:012d}.y4m"
        path.write_bytes(write_y4m(arr, float((header.get("meta") or {}).get("fps") or 25.0)))
        return path
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
    soundfile is, ``.y4m`` for video frame groups, ``.npy`` otherwise. Decoding runs the cloud decoder (much slower than the
    device encoder), so it never back-pressures storage: when more than ``backlog`` segments are
    waiting, new ones are skipped (counted and logged; they are stored and can be decoded later
    from the store with ``Decoder.for_header(header).decode_frame(header, payload)``).
    """

    def __init__(self, out_dir: str, backlog: int = 256, threads: int = 1,
                 variant: str = "model") -> None:
        super().__init__(name="decoder", daemon=True)
        self.out = Path(out_dir)
        self.q: queue.Queue = queue.Queue(maxsize=backlog)
        self.threads = threads
        self.variant = variant                  # decoder graph where the model has it (codecs.py)
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
                    dec = self._decoders[key] = decoder_for_header(header, self.threads,
                                                                   self.variant)
                d = self.out / stream_id
                d.mkdir(parents=True, exist_ok=True)
                frames = [r for r in records if r.type == RecordType.FRAME]
                if hasattr(dec, "decode_frames"):   # the learned decoder: frames in parallel
                    arrays = dec.decode_frames(header, [r.payload for r in frames])
                else:
                    arrays = [dec.decode_frame(header, r.payload) for r in frames]
                for rec, array in zip(frames, arrays):
                    write_reconstruction(d, rec.seq, header, array)
                    self.written += 1
            except Exception as exc:
                log.error("decode failed for stream %s: %s", stream_id, exc)


class _Conn:
    """Per-connection state."""

    def __init__(self, sock, ip: str, peer: str, deadline: float) -> None:
        self.sock, self.ip, self.peer, self.deadline = sock, ip, peer, deadline
        self.watch = sock.dup()           # lets the reaper cut the connection, TLS or not
        self.authed = False
        self.cut = False
        self.preamble_sent = False
        self.held = 0                     # bytes reserved in the receiver's ByteBudget
        self.constraints: list[tuple[str, ...]] = []
        self.who = "anonymous"


class Receiver:
    """The TCP/TLS server; ``serve_forever`` in a thread or the main thread."""

    def __init__(self, host: str, port: int, store_dir: str, *, token: str = "",
                 tokens: dict[str, tuple[str, ...]] | None = None, token_streams: tuple[str, ...] = ("*",),
                 ssl_context: ssl.SSLContext | None = None, cert_streams: str = "cert",
                 max_record_bytes: int = 16 * 1024**2, max_segment_bytes: int = 64 * 1024**2,
                 max_connections: int = 64, max_connections_per_peer: int = 16,
                 max_handshakes: int = 32, max_handshakes_per_peer: int = 4,
                 handshake_timeout: float = 5.0, idle_timeout: float = 120.0,
                 segment_timeout: float = 120.0, max_buffer_bytes: int = 256 * 1024**2,
                 max_gap_frames: int = 1 << 24, max_seq_jump: int = 1 << 24,
                 file_max_bytes: int = 64 * 1024**2, decode_dir: str = "", decode_threads: int = 1,
                 decode_variant: str = "model", metrics=None) -> None:
        self.store = Store(store_dir, file_max_bytes)
        self.tokens = dict(tokens or {})
        if token:
            self.tokens[token] = tuple(token_streams)
        self.ssl_context, self.cert_streams = ssl_context, cert_streams
        self.max_record_bytes, self.max_segment_bytes = max_record_bytes, max_segment_bytes
        self.max_connections, self.max_connections_per_peer = max_connections, max_connections_per_peer
        self.max_handshakes, self.max_handshakes_per_peer = max_handshakes, max_handshakes_per_peer
        self.handshake_timeout, self.idle_timeout = handshake_timeout, idle_timeout
        self.segment_timeout = segment_timeout
        self.max_gap_frames, self.max_seq_jump = max_gap_frames, max_seq_jump
        self.budget = ByteBudget(max_buffer_bytes)
        self.metrics = metrics
        self._lock = threading.Lock()
        self._pending_by_ip: collections.Counter = collections.Counter()
        self._total_by_ip: collections.Counter = collections.Counter()
        self._pending = self._authed = 0
        self._conns: set[_Conn] = set()
        self._stop = threading.Event()
        self.sock = socket.create_server((host, port), reuse_port=False, backlog=128)
        self.address = self.sock.getsockname()[:2]
        self.decoder = (Decoder(decode_dir, threads=decode_threads, variant=decode_variant)
                        if decode_dir else None)
        if self.decoder:
            self.decoder.start()

    # -- admission ------------------------------------------------------------------------
    def _admit(self, ip: str) -> str:
        """Reserve a handshake slot for ``ip``; returns '' or the reason it is refused."""
        with self._lock:
            if self._pending >= self.max_handshakes:
                return "too_many_handshakes"
            if self._pending_by_ip[ip] >= self.max_handshakes_per_peer:
                return "too_many_handshakes_per_peer"
            if self._total_by_ip[ip] >= self.max_connections_per_peer:
                return "too_many_connections_per_peer"
            self._pending += 1
            self._pending_by_ip[ip] += 1
            self._total_by_ip[ip] += 1
            return ""

    def _promote(self, c: _Conn) -> None:
        """Handshake slot → authenticated slot (raises ProtocolError 'busy' when full)."""
        with self._lock:
            if self._authed >= self.max_connections:
                raise ProtocolError("busy", f"{self.max_connections} senders connected; retry later")
            self._release_handshake(c.ip)
            self._authed += 1
            c.authed = True

    def _release_handshake(self, ip: str) -> None:  # with self._lock held
        self._pending -= 1
        self._pending_by_ip[ip] -= 1
        if not self._pending_by_ip[ip]:
            del self._pending_by_ip[ip]

    def _release(self, ip: str, authed: bool) -> None:
        with self._lock:
            if authed:
                self._authed -= 1
            else:
                self._release_handshake(ip)
            self._total_by_ip[ip] -= 1
            if not self._total_by_ip[ip]:
                del self._total_by_ip[ip]

    def _leave(self, c: _Conn) -> None:
        with self._lock:
            self._conns.discard(c)
        self._release(c.ip, c.authed)
        self.budget.resize(c.held, 0)
        c.held = 0

    def connection_counts(self) -> dict:
        """Handshaking and authenticated connections now (for tests and metrics)."""
        with self._lock:
            return {"handshaking": self._pending, "authenticated": self._authed,
                    "buffered_bytes": self.budget.used}

    def serve_forever(self) -> None:
        """Accept connections until :meth:`shutdown`."""
        threading.Thread(target=self._reap, daemon=True, name="reaper").start()
        self.sock.settimeout(0.5)
        while not self._stop.is_set():
            try:
                conn, addr = self.sock.accept()
            except socket.timeout:
                continue
            except OSError as exc:
                if self._stop.is_set():
                    break
                log.error("accept failed: %s", exc)  # e.g. out of file descriptors: back off, keep serving
                self._count_reject("resources")
                time.sleep(0.1)
                continue
            why = self._admit(addr[0])
            if why:
                self._count_reject(why)
                conn.close()
                continue
            c = None
            try:
                c = _Conn(conn, addr[0], f"{addr[0]}:{addr[1]}", time.monotonic() + self.handshake_timeout)
                with self._lock:
                    self._conns.add(c)
                threading.Thread(target=self._handle, args=(c,), daemon=True, name=f"conn-{c.peer}").start()
            except (OSError, RuntimeError) as exc:  # out of file descriptors or threads: refuse, keep serving
                log.error("cannot serve a connection from %s: %s", addr[0], exc)
                self._count_reject("resources")
                for sock in (conn, getattr(c, "watch", None)):
                    if sock is not None:
                        sock.close()
                if c is not None:
                    with self._lock:
                        self._conns.discard(c)
                self._release(addr[0], False)

    def _reap(self, grace: float = 1.0) -> None:
        """Cut connections more than ``grace`` past their deadline (e.g. a TLS read trickled byte by byte)."""
        while not self._stop.wait(0.25):
            now = time.monotonic()
            with self._lock:
                late = [c for c in self._conns if now > c.deadline + grace and not c.cut]
            for c in late:
                c.cut = True
                log.warning("connection %s (%s) past its deadline: cut", c.peer, c.who)
                self._count_reject("deadline")
                _cut(c.watch)

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

    # -- one connection -------------------------------------------------------------------
    def _handle(self, c: _Conn) -> None:
        try:
            if self.ssl_context is not None:
                self._tls_handshake(c)
            self._session(c)
        except ProtocolError as exc:
            log.warning("connection %s (%s) rejected: %s", c.peer, c.who, exc)
            self._count_reject(exc.code)
            msg = wire.control({"type": "error", "code": exc.code, "message": exc.message})
            try:
                c.sock.settimeout(1.0)
                c.sock.sendall(msg if c.preamble_sent else preamble() + msg)
                _linger(c.sock)
            except (OSError, ValueError):
                pass
        except (OSError, ssl.SSLError) as exc:
            log.info("connection %s closed: %s", c.peer, exc)
            if isinstance(exc, ssl.SSLError):
                self._count_reject("tls")
        except Exception:
            log.exception("connection %s: unexpected error", c.peer)
        finally:
            for sock in (c.sock, c.watch):
                try:
                    sock.close()
                except OSError:
                    pass
            self._leave(c)

    def _tls_handshake(self, c: _Conn) -> None:
        """TLS handshake; the reaper cuts a peer that trickles it past the handshake deadline."""
        c.sock.settimeout(max(0.01, c.deadline - time.monotonic()))
        c.sock = self.ssl_context.wrap_socket(c.sock, server_side=True)
        if self.ssl_context.verify_mode == ssl.CERT_REQUIRED and self.cert_streams == "cert":
            pats = cert_stream_patterns(c.sock.getpeercert())
            c.constraints.append(pats)
            c.who = f"certificate {pats[0] if pats else '?'}"

    def _recv(self, c: _Conn, reader: StreamReader, what: str) -> list:
        left = c.deadline - time.monotonic()
        if left <= 0:
            raise ProtocolError("timeout", f"{what} not complete in time")
        c.sock.settimeout(left)
        try:
            data = c.sock.recv(1 << 16)
        except socket.timeout:
            raise ProtocolError("timeout", f"{what} not complete in time") from None
        if not data:
            raise ConnectionResetError("peer closed the connection")
        try:
            return reader.feed(data)
        except ContainerError as exc:
            raise ProtocolError("malformed", str(exc)) from None

    def _authenticate(self, c: _Conn, hello: dict) -> None:
        if self.tokens:
            given = hello.get("token", "").encode()
            match = None
            for tok, pats in self.tokens.items():  # compare with every token: no early exit
                if hmac.compare_digest(given, tok.encode()):
                    match = pats
            if match is None:
                raise ProtocolError("unauthorized", "missing or wrong token")
            c.constraints.append(match)
            if c.who == "anonymous":
                c.who = "token"

    def _check_stream(self, c: _Conn, stream_id: str) -> None:
        if not stream_allowed(stream_id, c.constraints):
            raise ProtocolError("forbidden", f"{c.who} may not write stream {stream_id!r}")

    def _session(self, c: _Conn) -> None:
        reader = StreamReader(max_payload=self.max_record_bytes)
        recs: list = []
        while not recs:
            recs = self._recv(c, reader, "hello")
            if not recs and reader.pending > MAX_HELLO_WIRE_BYTES:
                raise ProtocolError("too_large", f"hello larger than {wire.MAX_CONTROL_BYTES} bytes")
        hello = wire.parse_hello(recs.pop(0))
        self._authenticate(c, hello)
        welcome = {"type": "welcome", "proto": wire.PROTO}
        if hello.get("stream_id"):
            self._check_stream(c, hello["stream_id"])
            welcome["next_seq"] = self.store.next_seq(hello["stream_id"])
        self._promote(c)
        c.sock.sendall(preamble() + wire.control(welcome))
        c.preamble_sent = True
        if self.metrics:
            self.metrics.connections.inc(1, "ok")
        log.info("connection %s authenticated (%s, %s)", c.peer, c.who, hello.get("agent", "?"))
        asm = wire.SegmentAssembler(self.max_segment_bytes, self.max_gap_frames,
                                    on_header=lambda h: self._check_stream(c, h["stream_id"]))
        idle_deadline = time.monotonic() + self.idle_timeout
        in_segment = False
        while True:
            for rec in recs:
                seg = asm.feed(rec)
                if seg is not None:
                    c.deadline = float("inf")  # a slow fsync is not the sender's fault
                    self._commit(c, seg)
                    idle_deadline = time.monotonic() + self.idle_timeout
                    in_segment = False
            self._hold(c, reader.pending + asm.buffered)
            if not in_segment and (reader.pending or asm.buffered):
                in_segment = True  # the segment clock starts at its first byte
                c.deadline = time.monotonic() + self.segment_timeout
            elif not in_segment:
                c.deadline = idle_deadline
            recs = self._recv(c, reader, "segment" if in_segment else "next segment (idle)")

    def _hold(self, c: _Conn, want: int) -> None:
        if not self.budget.resize(c.held, want):
            raise ProtocolError("busy", f"receiver buffers full ({self.budget.capacity} bytes); retry later")
        c.held = want

    def _check_seqs(self, st, seg: wire.Segment) -> None:
        check_seqs(st, seg, self.max_seq_jump)

    def _commit(self, c: _Conn, seg: wire.Segment) -> None:
        stream_id = seg.stream_id
        stored, dups, _gaps = store_segment(self.store, seg, self.max_seq_jump, self.metrics, self.decoder)
        if dups:
            log.info("stream %s segment %d: %d duplicate frames ignored", stream_id, seg.segno, dups)
        c.sock.sendall(wire.control({"type": "ack", "segno": seg.segno, "stream_id": stream_id,
                                     "stored": stored, "duplicates": dups}))


def check_seqs(st, seg: wire.Segment, max_seq_jump: int) -> None:
    """No record may name a seq more than ``max_seq_jump`` beyond what the stream reached.

    Raises ProtocolError ``implausible_seq``."""
    reach = st.next_seq
    for rec in seg.records:
        a, b = wire.record_span(rec)
        if reach == 0 and not st.covered.ends:
            reach = a  # a stream new to this store starts where its sender is
        if b > reach + max_seq_jump:
            raise ProtocolError("implausible_seq", f"stream {seg.stream_id}: seq {b} is more than "
                                f"{max_seq_jump} beyond {reach}, the highest it has reached")
        reach = max(reach, b + 1)


def store_segment(store: Store, seg: wire.Segment, max_seq_jump: int, metrics=None,
                  decoder: "Decoder | None" = None) -> tuple[int, int, int]:
    """Check a verified segment's seqs, store it durably (fsync), count it and queue it for decoding.

    Every transport's commit step (TCP sessions, MQTT subscriptions); returns
    (frames stored, duplicate frames, GAP records stored). Raises ProtocolError for implausible
    seqs; OSError when the store cannot write (nothing may be acknowledged then).
    """
    records = seg.records
    t0 = time.perf_counter()
    st = store.stream(seg.stream_id)
    check_seqs(st, seg, max_seq_jump)
    stored, dups, gaps = st.commit(seg.header, records)
    m = metrics
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
    if decoder and stored:
        decoder.submit(seg.stream_id, seg.header, [r for r in records if r.type == RecordType.FRAME])
    return stored, dups, gaps

def _cut(sock: socket.socket) -> None:
    """Unblock a thread stuck reading ``sock`` (deadline passed)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _linger(sock, seconds: float = 0.5, limit: int = 64 << 20) -> None:
    """After an error reply: stop sending and discard input briefly, so that closing with unread
    data does not reset the connection before the peer has read the reply."""
    sock.shutdown(socket.SHUT_WR)
    end, seen = time.monotonic() + seconds, 0
    while seen < limit and (left := end - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data = sock.recv(1 << 16)
        except (socket.timeout, OSError):
            return
        if not data:
            return
        seen += len(data)
