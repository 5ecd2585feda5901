"""Receiver hardening (issue 13): fault injection against a real ``sensor-receive`` process.

* credentials are bound to streams; a sender cannot erase or pre-empt another stream with GAP or
  junk FRAME records, nor claim seqs it cannot have produced; non-loopback listens need auth;
* a damaged store is quarantined, never truncated past the newest file's unacknowledged tail;
* an unauthenticated flood cannot starve a mutual-TLS sender; a trickling sender is cut at the
  segment deadline; many connections cannot buffer beyond ``max_buffer_bytes``;
* every server reply starts with the preamble; a hello may share a packet with a large record.
"""

from __future__ import annotations

import json
import select
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from encoder_runtime.container import RECORD_HEADER, Record, RecordType, StreamReader, gap_record, header_record, preamble
from encoder_runtime.daemon import wire
from encoder_runtime.daemon.faults import python_env
from test_daemon_e2e import SHAPE, Rx, _certs, encoder, verify_stream, wait_exit

pytestmark = pytest.mark.timeout(180)
HEADER = {"codec": "raw-zstd", "stream_id": "victim", "format": 1}


def _end(segno: int) -> Record:
    return Record(RecordType.END, 0, json.dumps({"segno": segno}).encode())


def _talk(port: int, data: bytes, *, source: str = "127.0.0.1", timeout: float = 5) -> list[dict]:
    """Send ``data`` (preamble + hello + ...), read until the server closes; the control replies."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0)) as s:
        s.sendall(data)
        buf = b""
        try:
            while chunk := s.recv(65536):
                buf += chunk
        except (socket.timeout, ConnectionResetError):
            pass
    return [wire.parse_control(r) for r in StreamReader(wire.MAX_CONTROL_BYTES).feed(buf)] if buf else []


def _hello(token: str, **extra) -> bytes:
    return preamble() + wire.control({"type": "hello", "proto": 1, "token": token, **extra})


def _codes(replies: list[dict]) -> list[str]:
    return [r.get("code") or r["type"] for r in replies]


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


# -- item 1: hijack -------------------------------------------------------------------------
def test_credentials_are_bound_to_streams_and_gaps_must_be_plausible(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("# token  streams\ntok-a s1\ntok-v victim other-*\n")
    r = Rx(tmp_path, "--tokens-file", str(tokens)).start()
    try:
        seg = header_record(HEADER).encode()
        # Another sender's credential cannot name, erase or pre-empt the victim's stream.
        assert _codes(_talk(r.port, _hello("tok-a", stream_id="victim"))) == ["forbidden"]
        erase = seg + gap_record(0, 0, 2**64 - 1, 0).encode() + _end(0).encode()
        assert _codes(_talk(r.port, _hello("tok-a") + erase)) == ["welcome", "forbidden"]
        junk = seg + b"".join(Record(RecordType.FRAME, i, b"junk").encode() for i in range(200)) + _end(1).encode()
        assert _codes(_talk(r.port, _hello("tok-a") + junk)) == ["welcome", "forbidden"]
        assert _codes(_talk(r.port, _hello("nope") + junk)) == ["unauthorized"]
        # Even the stream's own credential cannot claim seqs no sender can have produced.
        assert _codes(_talk(r.port, _hello("tok-v") + erase)) == ["welcome", "implausible_gap"]
        far = seg + Record(RecordType.FRAME, 0, b"a").encode() + Record(RecordType.FRAME, 2**40, b"b").encode()
        assert _codes(_talk(r.port, _hello("tok-v") + far + _end(2).encode())) == ["welcome", "implausible_seq"]
        assert not any((r.store / "victim").glob("*.scd"))
        # The real sender of the stream stores everything, and the welcome tells it where the stream is.
        p = encoder(tmp_path, f"tcp://127.0.0.1:{r.port}", "--source", f"synthetic:{SHAPE}", "--max-frames", "30",
                    "--token", "tok-v", stream="victim")
        assert wait_exit(p, 90, tmp_path / "enc.log") == 0
        assert verify_stream(r.store, "victim", expect_count=30)["frames"] == 30
        welcome = _talk(r.port, _hello("tok-v", stream_id="victim"), timeout=1)[0]
        assert welcome == {"type": "welcome", "proto": 1, "next_seq": 30}
        assert _talk(r.port, _hello("tok-v", stream_id="other-1"), timeout=1)[0]["next_seq"] == 0
    finally:
        r.stop()


def test_non_loopback_listen_requires_auth(tmp_path):
    def check(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "encoder_runtime.daemon.receive_cli", "check-config",
                               "--store", str(tmp_path / "store"), *args], capture_output=True, text=True,
                              env=python_env(), timeout=60)

    res = check("--listen", "0.0.0.0:7700")
    assert res.returncode == 2 and "allow_anonymous" in res.stderr and "not a loopback" in res.stderr
    assert check("--listen", "0.0.0.0:7700", "--allow-anonymous").returncode == 0
    assert check("--listen", "0.0.0.0:7700", "--token", "t").returncode == 0
    assert check("--listen", "127.0.0.1:7700").returncode == 0  # the loopback default stays open
    bad = tmp_path / "tokens"
    bad.write_text("lonely-token\n")
    res = check("--listen", "0.0.0.0:7700", "--tokens-file", str(bad))
    assert res.returncode == 2 and f"{bad}:1" in res.stderr


# -- item 3: store damage --------------------------------------------------------------------
def _ls(store: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "encoder_runtime.daemon.receive_cli", "ls", str(store), "--json"],
                         capture_output=True, text=True, env=python_env(), timeout=60, check=True).stdout
    return json.loads(out)["streams"][0]


def _flip_middle_frame(path: Path) -> int:
    """Flip one bit in the payload of a middle FRAME (not the last) of a store file; returns its seq."""
    from encoder_runtime.container import PREAMBLE, scan_records

    data = bytearray(path.read_bytes())
    res = scan_records(bytes(data), offset=PREAMBLE.size)
    frames, pos = [], PREAMBLE.size
    for rec in res.records:
        if rec.type == RecordType.FRAME:
            frames.append((pos, rec))
        pos += rec.size
    assert len(frames) >= 2, f"{path} holds {len(frames)} frame(s); the test needs one with a successor"
    pos, rec = frames[min(len(frames) // 2, len(frames) - 2)]  # valid records follow it: not a torn tail
    data[pos + RECORD_HEADER.size + len(rec.payload) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    return rec.seq


def test_bit_flips_in_acknowledged_data_are_quarantined_not_truncated(tmp_path):
    r = Rx(tmp_path, "--file-max-bytes", "5KiB").start()
    try:
        p = encoder(tmp_path, f"tcp://127.0.0.1:{r.port}", "--source", f"synthetic:{SHAPE},fps=100",
                    "--max-frames", "80")  # paced: ~10 frames a segment, several store files
        assert wait_exit(p, 90, tmp_path / "enc.log") == 0
    finally:
        r.stop()
    sdir = r.store / "s1"
    files = sorted(sdir.glob("*.scd"))
    assert len(files) >= 2, "the test needs an older and a newest store file"
    lost = {_flip_middle_frame(files[0]), _flip_middle_frame(files[-1])}
    damaged = {f.name: f.read_bytes() for f in (files[0], files[-1])}
    s = _ls(r.store)  # reading the damaged store as it is: the loss is visible
    assert s["frames"] == 80 - len(lost) and len(s["damaged"]) == 2
    assert sorted(seq for a, b in s["missing"] for seq in range(a, b + 1)) == sorted(lost)
    r.start()  # recovery on the next start keeps every record that verifies
    r.stop()
    s = _ls(r.store)
    assert s["frames"] == 80 - len(lost) and s["damaged"] == []
    assert sorted(seq for a, b in s["missing"] for seq in range(a, b + 1)) == sorted(lost)
    kept = {p.name.split(".scd")[0] + ".scd": p.read_bytes() for p in (sdir / "quarantine").iterdir()}
    assert kept == damaged, "the damaged originals are kept byte for byte"
    log = r.log.read_text()
    assert "damaged" in log and "unacknowledged tail" not in log
    # A torn append at the end of the newest file is the only thing cut — and it is kept too.
    newest = sorted(sdir.glob("*.scd"))[-1]
    torn = Record(RecordType.FRAME, 10**6, b"t" * 100).encode()[:-7]
    newest.write_bytes(newest.read_bytes() + torn)
    r.start()
    r.stop()
    assert _ls(r.store)["frames"] == 80 - len(lost)
    assert "unacknowledged tail" in r.log.read_text()
    assert any(p.read_bytes() == torn for p in (sdir / "quarantine").glob("*.tail.*.bad"))


# -- item 8: connection exhaustion -------------------------------------------------------------
class Flood(threading.Thread):
    """Keep opening silent connections from 127.0.0.2 (as fast as the receiver takes them)."""

    def __init__(self, port: int, hold: int = 800) -> None:
        super().__init__(daemon=True)
        self.port, self.hold, self.opened = port, hold, 0
        self.stop = threading.Event()

    def run(self) -> None:
        socks: list[socket.socket] = []
        while not self.stop.is_set():
            try:
                socks.append(socket.create_connection(("127.0.0.1", self.port), timeout=1,
                                                      source_address=("127.0.0.2", 0)))
                self.opened += 1
            except OSError:
                time.sleep(0.01)
            time.sleep(0.005)  # ~150 connections/s, each held ~5 s: more than a handshake timeout's worth
            while len(socks) > self.hold:
                socks.pop(0).close()
        for s in socks:
            s.close()


def test_unauthenticated_flood_does_not_starve_a_mutual_tls_sender(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl CLI not available")
    c = _certs(tmp_path)
    r = Rx(tmp_path, "--tls-cert", c["server.pem"], "--tls-key", c["server.key"], "--tls-client-ca", c["ca.pem"],
           "--handshake-timeout", "5s").start()
    flood = Flood(r.port)
    flood.start()
    try:
        time.sleep(1.0)
        ctx = ssl.create_default_context(cafile=c["ca.pem"])
        ctx.load_cert_chain(c["client.pem"], c["client.key"])
        for _ in range(5):  # every authenticated hello is welcomed while the flood goes on
            with socket.create_connection(("127.0.0.1", r.port), timeout=10) as raw, \
                    ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(_hello("", stream_id="s1"))
                assert wire.parse_control(StreamReader(wire.MAX_CONTROL_BYTES).feed(s.recv(4096))[0])["type"] == "welcome"
        t0 = time.monotonic()
        p = encoder(tmp_path, f"tls://127.0.0.1:{r.port}", "--source", f"synthetic:{SHAPE}", "--max-frames", "20",
                    "--tls-ca", c["ca.pem"], "--tls-cert", c["client.pem"], "--tls-key", c["client.key"])
        assert wait_exit(p, 60, tmp_path / "enc.log") == 0
        elapsed = time.monotonic() - t0
        assert flood.is_alive() and flood.opened > 50
        verify_stream(r.store, "s1", expect_count=20)
        # Another certificate's stream is refused (the certificate names s1 only).
        p = encoder(tmp_path, f"tls://127.0.0.1:{r.port}", "--source", f"synthetic:{SHAPE}", "--max-frames", "5",
                    "--tls-ca", c["ca.pem"], "--tls-cert", c["client.pem"], "--tls-key", c["client.key"],
                    stream="s2")
        time.sleep(3)
        p.kill()
        p.wait()
        assert "forbidden" in (tmp_path / "enc.log").read_text() and not any((r.store / "s2").glob("*.scd"))
    finally:
        flood.stop.set()
        flood.join()
        r.stop()
    print(f"flood: {flood.opened} connections from 127.0.0.2; mutual-TLS sender done in {elapsed:.1f} s")
    assert elapsed < 45


def test_trickling_and_hoarding_senders_are_cut(tmp_path):
    r = Rx(tmp_path, "--token", "t", "--segment-timeout", "2s", "--max-buffer-bytes", "8MiB",
           "--max-connections-per-peer", "64", "--max-handshakes-per-peer", "64").start()
    try:
        # 1 byte per 0.5 s after a valid start: the segment deadline ends it.
        with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
            s.sendall(_hello("t") + header_record({**HEADER, "stream_id": "slow"}).encode())
            t0 = time.monotonic()
            buf = b""
            frame = Record(RecordType.FRAME, 0, b"x" * 64).encode()
            try:
                for b in frame:
                    s.sendall(bytes([b]))
                    time.sleep(0.5)
                    s.settimeout(0.01)
                    try:
                        if not (chunk := s.recv(65536)) and buf:
                            break
                        buf += chunk
                    except socket.timeout:
                        pass
            except (BrokenPipeError, ConnectionResetError):
                pass
            cut_after = time.monotonic() - t0
        assert b'"timeout"' in buf and cut_after < 5
        # 24 authenticated connections each pushing an endless segment: the budget caps memory.
        base = _rss_bytes(r.proc.pid)
        peak = base
        endless = memoryview(Record(RecordType.FRAME, 1, b"\0" * (1 << 20)).encode() * 64)
        replies: list[bytes] = []

        def hog(i: int) -> None:
            got = b""
            with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
                s.sendall(_hello("t") + header_record({**HEADER, "stream_id": f"hog{i}"}).encode())
                try:
                    for k in range(0, len(endless), 1 << 16):
                        s.sendall(endless[k:k + (1 << 16)])
                        while select.select([s], [], [], 0)[0] and (data := s.recv(65536)):
                            got += data
                        if b'"error"' in got:
                            break
                except OSError:
                    pass
            replies.append(got)

        hogs = [threading.Thread(target=hog, args=(i,)) for i in range(24)]
        for h in hogs:
            h.start()
        while any(h.is_alive() for h in hogs):
            peak = max(peak, _rss_bytes(r.proc.pid))
            time.sleep(0.02)
        busy = sum(b'"busy"' in rep for rep in replies)
        assert r.proc.poll() is None and busy >= 16, replies
        print(f"trickle cut after {cut_after:.1f} s; 24 hoarders: RSS {base / 2**20:.0f} → peak "
              f"{peak / 2**20:.0f} MiB, {busy} told busy")
        assert peak - base < 64 * 2**20
        # And a well-behaved sender still gets through afterwards.
        p = encoder(tmp_path, f"tcp://127.0.0.1:{r.port}", "--source", f"synthetic:{SHAPE}", "--max-frames", "10",
                    "--token", "t")
        assert wait_exit(p, 60, tmp_path / "enc.log") == 0
        verify_stream(r.store, "s1", expect_count=10)
    finally:
        r.stop()


# -- item 11: protocol nits ---------------------------------------------------------------------
def test_replies_start_with_the_preamble_and_hello_may_share_a_packet(tmp_path):
    r = Rx(tmp_path, "--token", "t").start()
    try:
        assert _codes(_talk(r.port, _hello("wrong"))) == ["unauthorized"]  # parses: preamble first
        big = Record(RecordType.FRAME, 0, bytes(range(256)) * 400).encode()  # 100 KiB, same sendall
        seg = header_record({**HEADER, "stream_id": "s9"}).encode() + big + _end(7).encode()
        replies = _talk(r.port, _hello("t") + seg, timeout=2)
        assert _codes(replies) == ["welcome", "ack"] and replies[1]["segno"] == 7 and replies[1]["stored"] == 1
        # Before the hello nothing big is buffered, and a data record is no hello.
        assert _codes(_talk(r.port, preamble() + big)) == ["too_large"]
        assert _codes(_talk(r.port, preamble() + Record(RecordType.FRAME, 0, b"x").encode())) == ["malformed"]
        p = encoder(tmp_path, f"tcp://127.0.0.1:{r.port}", "--source", f"synthetic:{SHAPE}", "--max-frames", "5",
                    "--token", "wrong")
        time.sleep(3)
        p.kill()
        p.wait()
        log = (tmp_path / "enc.log").read_text()
        assert "unauthorized" in log and "bad magic" not in log
    finally:
        r.stop()
