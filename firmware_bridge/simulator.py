"""A fake MCU that speaks the bridge protocol on a pty (or a TCP socket), with fault injection.

It behaves like the C firmware's example main: HELLO at boot (new random boot nonce, BOOT flag),
DATA frames at a fixed rate from a recording, TIMESYNC replies, CMD/ACK with duplicate
suppression. Faults for tests: bit flips, truncated frames, garbage bytes between frames, a reboot
after N frames, an unplug/replug (the pty is closed and a new one appears behind the same
symlink, like ``/dev/serial/by-id/...``).

Ground truth is kept exactly (:attr:`FakeMCU.stats`): how many DATA frames were generated,
written intact, destroyed on the wire (and which), lost while unplugged, and how many bad chunks
the host must see. Like a USB CDC device with DTR low, it transmits nothing until the host has
opened the port and sent its first frame; DATA generated meanwhile is counted as lost.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import os
import pathlib
import random
import select
import socket
import struct
import termios
import threading
import time
import tty
from typing import Any

import numpy as np

from firmware_bridge import frame as fr
from firmware_bridge import playback, reference, spec

KIND_OF_SOURCE = {"imu": spec.KIND_IMU, "audio": spec.KIND_AUDIO, "ecg": spec.KIND_TIMESERIES,
                  "camera": spec.KIND_CAMERA_TILE, "codes": spec.KIND_CODES}


class PtyTransport:
    """A pty pair; the host opens :attr:`path` (a stable symlink to the current slave)."""

    def __init__(self, link_path: str | None = None):
        self.link_path = link_path
        self.master = self.slave = -1
        self.path = ""
        self.plug()

    def plug(self) -> None:
        """Create a new pty (and point the symlink at it)."""
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        attrs = termios.tcgetattr(self.slave)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(self.slave, termios.TCSANOW, attrs)
        os.set_blocking(self.master, False)
        dev = os.ttyname(self.slave)
        if self.link_path:
            tmp = f"{self.link_path}.tmp{os.getpid()}"
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(dev, tmp)
            os.replace(tmp, self.link_path)
            self.path = self.link_path
        else:
            self.path = dev

    def unplug(self, drain_timeout: float = 1.0) -> None:
        """Wait until the host has read what was written, then close both ends."""
        deadline = time.monotonic() + drain_timeout
        while time.monotonic() < deadline and self.unread() > 0:
            time.sleep(0.002)
        for fd in (self.master, self.slave):
            if fd >= 0:
                os.close(fd)
        self.master = self.slave = -1

    def unread(self) -> int:
        """Bytes written to the host but not yet read by it."""
        if self.slave < 0:
            return 0
        buf = fcntl.ioctl(self.slave, termios.FIONREAD, b"\0\0\0\0")
        return struct.unpack("i", buf)[0]

    def fileno(self) -> int:
        return self.master

    def write(self, data: bytes, block: bool) -> bool:
        """Write all of ``data``; without ``block`` a full buffer drops the frame (returns False)."""
        view = memoryview(data)
        first = True
        while view:
            try:
                n = os.write(self.master, view)
            except BlockingIOError:
                if first and not block:
                    return False
                select.select([], [self.master], [], 0.05)
                continue
            first = False
            view = view[n:]
        return True

    def read(self) -> bytes:
        try:
            return os.read(self.master, 4096)
        except BlockingIOError:
            return b""
        except OSError as exc:  # EIO: nobody has the slave open
            if exc.errno == errno.EIO:
                return b""
            raise

    def close(self) -> None:
        self.unplug(0)
        if self.link_path and os.path.islink(self.link_path):
            os.unlink(self.link_path)


class TcpTransport:
    """A TCP server for ``socket://127.0.0.1:PORT``; one host connection at a time."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1"):
        self.srv = socket.create_server((host, port))
        self.srv.setblocking(False)
        self.port = self.srv.getsockname()[1]
        self.path = f"socket://{host}:{self.port}"
        self.conn: socket.socket | None = None

    def plug(self) -> None:
        pass

    def _accept(self) -> None:
        if self.conn is None:
            try:
                self.conn, _ = self.srv.accept()
                self.conn.setblocking(False)
                self.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except BlockingIOError:
                pass

    def unplug(self, drain_timeout: float = 1.0) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def fileno(self) -> int:
        self._accept()
        return self.conn.fileno() if self.conn is not None else self.srv.fileno()

    def write(self, data: bytes, block: bool) -> bool:
        if self.conn is None:
            return False
        try:
            if block:
                self.conn.setblocking(True)
                self.conn.sendall(data)
                self.conn.setblocking(False)
                return True
            n = self.conn.send(data)
            if n < len(data):
                self.conn.setblocking(True)
                self.conn.sendall(data[n:])
                self.conn.setblocking(False)
            return True
        except BlockingIOError:
            return False
        except OSError:
            self.unplug()
            return False

    def read(self) -> bytes:
        self._accept()
        if self.conn is None:
            return b""
        try:
            d = self.conn.recv(4096)
        except BlockingIOError:
            return b""
        except OSError:
            d = b""
        if not d:
            self.unplug()
        return d

    def close(self) -> None:
        self.unplug()
        self.srv.close()


def make_blocks(source: str, samples: int, seed: int = 0) -> tuple[int, list[np.ndarray], str]:
    """``(data kind, list of frame arrays, label)`` for a named source."""
    if source == "codes":
        rec = playback.ecg()
        m = reference.random_model(4, 1, (16,), seed=seed, x_max=256)
        x = rec.data[: len(rec.data) // 16 * 16]
        codes = reference.encode(x, **m)  # (4, P)
        per = max(1, samples // 4)
        blocks = [np.ascontiguousarray(codes[:, i:i + per]) for i in range(0, codes.shape[1] - per + 1, per)]
        return spec.KIND_CODES, blocks, rec.label + " -> int8 codes of a random 16->4 integer encoder"
    rec = playback.load(source)
    if rec.tiles:
        return KIND_OF_SOURCE[source], [rec.data[i] for i in range(len(rec.data))], rec.label
    n = max(1, samples)
    blocks = [np.ascontiguousarray(rec.data[i:i + n]) for i in range(0, len(rec.data) - n + 1, n)]
    return KIND_OF_SOURCE[source], blocks, rec.label


class FakeMCU:
    """The fake microcontroller; run it with :meth:`start` (thread) or :meth:`run` (foreground)."""

    def __init__(self, transport: PtyTransport | TcpTransport, source: str = "imu", *, rate: float = 100.0,
                 samples: int = 32, corrupt: float = 0.0, reboot_after: int | None = None,
                 max_frames: int | None = None, seed: int = 0, drift_ppm: float = 0.0,
                 t0_us: int = 0, schema_hash: int = spec.SCHEMA_HASH, block_writes: bool = True,
                 cmd_drop: int = 0):
        self.tr = transport
        self.kind, self.blocks, self.label = make_blocks(source, samples, seed)
        self.rate = rate
        self.corrupt = corrupt
        self.reboot_after = reboot_after
        self.max_frames = max_frames
        self.rng = random.Random(seed)
        self.drift = drift_ppm * 1e-6
        self.t0_us = t0_us
        self.schema_hash = schema_hash
        self.block_writes = block_writes
        self.cmd_drop = cmd_drop
        self.stats: collections.Counter = collections.Counter()
        self.destroyed: list[tuple[int, int]] = []  # (boot index, seq) of DATA frames lost on the wire
        self.lost_unplugged: list[tuple[int, int]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.RLock()
        self._dec = fr.FrameDecoder()
        self._host_seen = False
        self._acc_open = False  # bytes of a not-yet-delimited bad chunk are on the wire
        self._last_cmd: tuple[int, bytes] | None = None
        self._frames_since_boot = 0
        self.boot_index = -1
        self.streaming = True
        self._boot(first=True)

    # ------------------------------------------------------------------ clock, boot
    def now_us(self) -> int:
        """The MCU's free-running microsecond clock (32-bit)."""
        dt_ns = (time.monotonic_ns() - self._boot_ns) * (1.0 + self.drift)
        return (self.t0_us + int(dt_ns // 1000)) & 0xFFFFFFFF

    def _boot(self, first: bool = False) -> None:
        self.boot_index += 1
        self.nonce = self.rng.getrandbits(32)
        self._boot_ns = time.monotonic_ns()
        self.data_seq = 0
        self.ctl_seq = 0
        self._boot_flag_data = True
        self._frames_since_boot = 0
        self._last_cmd = None
        if not first:
            self.stats["reboots"] += 1
            self._raw(b"\x00")  # flush whatever half frame the reset cut off
            self._send_hello(boot=True)

    def _ctl(self, ftype: int, payload: bytes, flags: int = 0) -> None:
        b = fr.encode_frame(ftype, self.ctl_seq, self.now_us(), payload, flags)
        self.ctl_seq = (self.ctl_seq + 1) & 0xFFFF
        self._raw(b)

    def _send_hello(self, boot: bool = False) -> None:
        self._ctl(spec.T_HELLO, spec.PAYLOADS["HELLO"].pack(spec.VERSION, 0, spec.MAX_FRAME_DEFAULT,
                                                            self.schema_hash, self.nonce, 0x000100),
                  spec.F_BOOT if boot else 0)

    # ------------------------------------------------------------------ wire accounting
    def _raw(self, data: bytes, intact: bool = True) -> bool:
        """Write bytes and track which chunks the host will see as bad."""
        if not self._host_seen:
            return False
        if not self.tr.write(data, self.block_writes):
            self.stats["tx_dropped"] += 1
            return False
        # chunk accounting: a delimited non-empty chunk is bad unless it is exactly an intact frame
        pieces = data.split(b"\x00")
        for i, p in enumerate(pieces[:-1]):
            bad = self._acc_open or (p and not (intact and i == 0 and len(pieces) == 2))
            if bad and (p or self._acc_open):
                self.stats["bad_chunks"] += 1
            self._acc_open = False
        if pieces[-1]:
            self._acc_open = True
        return True

    def _send_data(self) -> None:
        blk = self.blocks[self.stats["data_generated"] % len(self.blocks)]
        flags = spec.F_BOOT if self._boot_flag_data else 0
        seq = self.data_seq
        wire = fr.encode_frame(spec.T_DATA, seq, self.now_us(), fr.data_payload(blk, self.kind), flags)
        self.data_seq = (self.data_seq + 1) & 0xFFFF
        self.stats["data_generated"] += 1
        self._frames_since_boot += 1
        if not self._host_seen:
            self.stats["data_before_host"] += 1
            self.lost_unplugged.append((self.boot_index, seq))
            return
        self._boot_flag_data = False
        if self.corrupt and self.rng.random() < self.corrupt:
            mode = self.rng.choice(("flip", "truncate", "garbage"))
            self.stats["corrupt_" + mode] += 1
            if mode == "garbage":  # junk before the frame; kills it unless the junk ends in 0x00
                self._raw(bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 48))), intact=False)
            else:
                if mode == "flip":
                    b = bytearray(wire)
                    b[self.rng.randrange(len(b) - 1)] ^= 1 << self.rng.randrange(8)
                    bad = bytes(b)
                else:
                    bad = wire[: self.rng.randrange(1, len(wire) - 1)] + b"\x00"
                self._raw(bad, intact=False)
                self._lost(seq)
                return
        merged = self._acc_open  # junk before this frame: both become one bad chunk
        if self._raw(wire) and not merged:
            self.stats["data_sent_intact"] += 1
        else:
            self._lost(seq)

    def _lost(self, seq: int) -> None:
        self.destroyed.append((self.boot_index, seq))
        self.stats["data_destroyed"] += 1

    def inject_garbage(self, data: bytes) -> None:
        """Write arbitrary bytes now (tests)."""
        with self._lock:
            self._raw(data, intact=False)

    # ------------------------------------------------------------------ host -> MCU
    def _poll_host(self, timeout: float) -> None:
        try:
            r, _, _ = select.select([self.tr.fileno()], [], [], max(0.0, timeout))
        except (OSError, ValueError):
            time.sleep(max(0.0, timeout))
            return
        if not r:
            return
        data = self.tr.read()
        if not data:
            return
        for f in self._dec.feed(data):
            self._on_host_frame(f)

    def _on_host_frame(self, f: fr.Frame) -> None:
        self.stats["host_frames"] += 1
        if not self._host_seen:
            self._host_seen = True
            self._raw(b"\x00")
        if f.type == spec.T_HELLO:
            self._send_hello(boot=self._frames_since_boot == 0)
        elif f.type == spec.T_HELLO_ACK:
            self.stats["hello_acks"] += 1
        elif f.type == spec.T_TIMESYNC:
            rx = self.now_us()
            t1 = spec.PAYLOADS["TIMESYNC"].unpack_from(f.payload, 0)[0]
            self._ctl(spec.T_TIMESYNC, spec.PAYLOADS["TIMESYNC"].pack(t1, rx))
            self.stats["timesyncs"] += 1
        elif f.type == spec.T_CMD:
            if self.cmd_drop > 0:
                self.cmd_drop -= 1
                self.stats["cmd_dropped"] += 1
                return
            if self._last_cmd is not None and self._last_cmd[0] == f.seq and f.flags & spec.F_RETRY:
                self.stats["cmd_duplicates"] += 1
                self._raw(self._last_cmd[1])
                return
            cmd = f.payload[0] if f.payload else -1
            status, extra, after = spec.ACK_STATUS["OK"], b"", None
            if cmd == spec.CMD["PING"]:
                extra = struct.pack("<I", self.nonce)
            elif cmd == spec.CMD["START"]:
                self.streaming = True
            elif cmd == spec.CMD["STOP"]:
                self.streaming = False
            elif cmd == spec.CMD["SET_RATE"] and len(f.payload) >= 5:
                self.rate = struct.unpack_from("<f", f.payload, 1)[0]
            elif cmd == spec.CMD["REBOOT"]:
                after = self._boot
            else:
                status = spec.ACK_STATUS["UNKNOWN_CMD"]
            ftype = spec.T_ACK if status == 0 else spec.T_NAK
            wire = fr.encode_frame(ftype, self.ctl_seq, self.now_us(),
                                   spec.PAYLOADS["ACK"].pack(f.seq, status) + extra)
            self.ctl_seq = (self.ctl_seq + 1) & 0xFFFF
            self._last_cmd = (f.seq, wire)
            self._raw(wire)
            self.stats["cmds"] += 1
            if after is not None:
                after()

    # ------------------------------------------------------------------ faults
    def reboot(self) -> None:
        """Reboot now (between frames)."""
        with self._lock:
            self._boot()

    def unplug(self, duration: float) -> None:
        """Close the port for ``duration`` s while the MCU keeps producing (those frames are lost)."""
        with self._lock:
            self.tr.unplug()
            self._host_seen = False
            self._acc_open = False
            self._dec.reset()
            self.stats["unplugs"] += 1
        end = time.monotonic() + duration
        while time.monotonic() < end and not self._stop.is_set():
            time.sleep(0.005)
        with self._lock:
            self.tr.plug()

    # ------------------------------------------------------------------ main loop
    def run(self) -> None:
        """Produce frames until stopped (or ``max_frames`` DATA frames were generated)."""
        period = 1.0 / self.rate if self.rate > 0 else 0.0
        nxt = time.monotonic()
        while not self._stop.is_set():
            if self.max_frames is not None and self.stats["data_generated"] >= self.max_frames:
                self._poll_host(0.01)
                continue
            now = time.monotonic()
            if period and now < nxt:
                with self._lock:
                    self._poll_host(min(nxt - now, 0.02))
                continue
            with self._lock:
                if self.streaming:
                    self._send_data()
                if self.reboot_after and self._frames_since_boot >= self.reboot_after:
                    self._boot()
                self._poll_host(0.0)
            if not self._host_seen and not period:
                self._poll_host(0.01)
            period = 1.0 / self.rate if self.rate > 0 else 0.0
            nxt = nxt + period if period and nxt > now - 0.1 else time.monotonic() + period

    def start(self) -> "FakeMCU":
        """Run in a daemon thread."""
        self._thread = threading.Thread(target=self.run, name="fake-mcu", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and close the transport."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.tr.close()

    def summary(self) -> dict[str, Any]:
        """Ground-truth counters as a plain dict."""
        d: dict[str, Any] = dict(self.stats)
        d.update(boot_nonce=self.nonce, label=self.label, path=self.tr.path)
        return d
