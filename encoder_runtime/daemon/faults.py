"""Fault injection and verification helpers for the shipping path (tests, benchmark, demo).

- :class:`FaultProxy`: a loopback TCP proxy that can stall (stop forwarding, keep the
  connection open), corrupt bytes in flight, or cut every connection.
- :func:`verify_stream`: checks the delivery invariant on a receiver store — every sequence
  number from 0 to the highest is covered exactly once by a stored frame or a GAP, and every
  stored frame decodes.
- :func:`free_port`, :func:`spawn`: process helpers for loopback tests.
- :class:`ReceiverProcess`, :func:`encoder_process`: a killable ``sensor-receive`` and a
  ``sensor-encode`` with test-friendly timings (fault tests, the soak benchmark).
- :class:`SmallDisk`: a small tmpfs (disk-full and tiny-spool faults), where mounting is allowed.
- :func:`flip_byte`: corrupt one byte of a file in place.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..container import RecordType
from .spool import reason_name
from .store import RangeSet, iter_stream


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FaultProxy:
    """Forward ``127.0.0.1:listen_port`` → ``target`` with switchable faults."""

    def __init__(self, target_port: int, listen_port: int = 0, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.sock = socket.create_server(("127.0.0.1", listen_port))
        self.port = self.sock.getsockname()[1]
        self.stalled = threading.Event()
        self._corrupt = {"up": 0, "down": 0}
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._closed = False
        self.bytes_up = 0
        self.corrupted = 0
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    def corrupt_next(self, n: int = 1, direction: str = "up") -> None:
        """Flip one byte in each of the next ``n`` chunks going ``up`` (to the target) or ``down``."""
        with self._lock:
            self._corrupt[direction] += n

    def cut(self) -> None:
        """Reset every open connection."""
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                c.close()
            except OSError:
                pass

    def close(self) -> None:
        """Stop the proxy."""
        self._closed = True
        self.sock.close()
        self.cut()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _maybe_corrupt(self, data: bytes, direction: str) -> bytes:
        with self._lock:
            if self._corrupt[direction] <= 0 or len(data) < 16:
                return data
            self._corrupt[direction] -= 1
            self.corrupted += 1
        b = bytearray(data)
        b[len(b) // 2] ^= 0x5A
        return bytes(b)

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        pairs = {client: (upstream, "up"), upstream: (client, "down")}
        try:
            while not self._closed:
                if self.stalled.is_set():
                    time.sleep(0.05)  # hold everything; the peers see a silent link
                    continue
                ready, _, _ = select.select(list(pairs), [], [], 0.1)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    dst, direction = pairs[s]
                    if direction == "up":
                        self.bytes_up += len(data)
                    dst.sendall(self._maybe_corrupt(data, direction))
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                try:
                    s.close()
                except OSError:
                    pass


def verify_stream(store: str | Path, stream_id: str, *, decode: bool = True,
                  expect_count: int | None = None, expect_model: str | None = None,
                  allow_missing: bool = False) -> dict:
    """Check the delivery invariant for one stream; raises AssertionError with the reason.

    Every stored FRAME is decoded with the decoder its stream header names
    (``Decoder.for_header(header).decode_frame(header, payload)`` for the learned codec);
    byte-identical payloads (a looped sample folder) are decoded once — decoding is
    deterministic. Returns ``{"frames", "gap_seqs", "highest", "gaps", "models", "decoded"}``
    where ``models`` are the bundle names (or codec ids) in the stream headers and ``decoded``
    maps seq → reconstruction shape. With ``expect_count`` the seq space must be exactly
    ``0 .. expect_count - 1``; with ``expect_model`` every header must name that bundle. With
    ``allow_missing`` seqs neither stored nor in a GAP are returned as ``"missing"`` (ranges)
    instead of failing (the soak explains each one), and ``"frame_seqs"`` is the stored set.
    """
    import hashlib

    from .codecs import decoder_for_header

    covered, frames, frame_seqs = RangeSet(), 0, RangeSet()
    gap_seqs, gaps = 0, []
    decoders: dict[str, object] = {}
    shapes: dict[bytes, tuple] = {}
    models: set[str] = set()
    decoded: dict[int, tuple] = {}
    for header, rec in iter_stream(store, stream_id):
        model = (header.get("bundle") or {}).get("name") or header.get("codec", "?")
        models.add(model)
        if expect_model is not None:
            assert model == expect_model, f"seq {rec.seq}: stream header names model {model!r}, not {expect_model!r}"
        if rec.type == RecordType.FRAME:
            assert rec.seq not in covered, f"seq {rec.seq} stored twice"
            covered.add(rec.seq, rec.seq)
            frame_seqs.add(rec.seq, rec.seq)
            frames += 1
            if decode:
                key = json.dumps({k: v for k, v in header.items() if k != "clock"}, sort_keys=True)
                digest = hashlib.sha1(key.encode() + b"\0" + bytes(rec.payload)).digest()
                if digest not in shapes:
                    dec = decoders.get(key) or decoders.setdefault(key, decoder_for_header(header))
                    arr = dec.decode_frame(header, rec.payload)
                    assert arr.size > 0, f"seq {rec.seq} decoded to an empty array"
                    shapes[digest] = arr.shape
                decoded[rec.seq] = shapes[digest]
        else:
            a, b, reason = rec.gap()
            assert covered.uncovered(a, b) == [(a, b)], f"gap {a}..{b} overlaps stored data"
            covered.add(a, b)
            gap_seqs += b - a + 1
            gaps.append((a, b, reason_name(rec.payload[16] if len(rec.payload) > 16 else 0).upper()))
    highest = covered.ends[-1] if covered.ends else -1
    missing = covered.uncovered(0, highest) if highest >= 0 else []
    assert allow_missing or not missing, f"seqs neither stored nor in a GAP: {missing[:10]}"
    if expect_count is not None:
        assert highest == expect_count - 1, f"highest seq {highest}, expected {expect_count - 1}"
    return {"frames": frames, "gap_seqs": gap_seqs, "highest": highest, "gaps": gaps,
            "models": sorted(models), "decoded": decoded, "missing": missing,
            "frame_seqs": frame_seqs}


def python_env() -> dict:
    """Environment for child processes: this checkout first on PYTHONPATH."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def spawn(module: str, args: list[str], log_path: str | Path | None = None,
          extra_env: dict | None = None, **kw) -> subprocess.Popen:
    """Start ``python -m encoder_runtime.daemon.<module> args`` (stderr to ``log_path``)."""
    err = open(log_path, "ab") if log_path else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", f"encoder_runtime.daemon.{module}", *args],
                            stdout=subprocess.PIPE, stderr=err, env=python_env() | (extra_env or {}), **kw)


def wait_listening(port: int, timeout: float = 20.0) -> None:
    """Block until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


class ReceiverProcess:
    """A ``sensor-receive`` process on a fixed loopback port that can be killed and restarted."""

    def __init__(self, store: str | Path, log_path: str | Path, *extra: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.store, self.log, self.extra = Path(store), Path(log_path), list(extra)
        self.proc: subprocess.Popen | None = None

    def start(self) -> "ReceiverProcess":
        """Start it and wait until it listens."""
        self.proc = spawn("receive_cli", ["--listen", f"127.0.0.1:{self.port}", "--store", str(self.store),
                                          *self.extra], self.log)
        line = self.proc.stdout.readline()
        if b"listening" not in line:
            raise RuntimeError(f"sensor-receive did not start: {self.log.read_text()[-2000:]}")
        return self

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """``kill -9`` (no cleanup at all)."""
        if self.alive():
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def encoder_process(spool: str | Path, port: int, stream: str, log_path: str | Path, *args: str,
                    model: str = "raw", env: dict | None = None) -> subprocess.Popen:
    """A ``sensor-encode`` shipping to ``tcp://127.0.0.1:port`` with short timings for tests."""
    base = ["--model", model, "--sink", f"tcp://127.0.0.1:{port}", "--spool", str(spool), "--stream-id", stream,
            "--segment-max-age", "100ms", "--backoff-base", "0.05s", "--backoff-cap", "0.5s",
            "--connect-timeout", "2s"]
    return spawn("encode_cli", base + list(args), log_path, extra_env=env)


class SmallDisk:
    """A tmpfs of ``size`` bytes mounted on ``path`` (needs root); :attr:`error` says why not."""

    def __init__(self, path: str | Path, size: int) -> None:
        self.path, self.size = Path(path), size
        self.mounted = False
        self.error = ""

    def __enter__(self) -> "SmallDisk":
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size}", "tmpfs", str(self.path)],
                                 capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.error = f"mount failed: {exc}"
            return self
        self.mounted = res.returncode == 0
        self.error = "" if self.mounted else f"mount -t tmpfs failed: {res.stderr.strip() or res.returncode}"
        return self

    def __exit__(self, *exc) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True, timeout=20)
            self.mounted = False


def flip_byte(path: str | Path, offset: int, mask: int = 0x5A) -> None:
    """XOR one byte of a file in place (``offset`` from the start; negative from the end)."""
    with open(path, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        pos = offset if offset >= 0 else size + offset
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ mask]))
