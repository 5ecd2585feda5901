"""Issue 14: a fleet on MQTT 5 shared subscriptions, receivers on one shared store.

* Several processes committing overlapping segments of one stream into one store folder store
  every seq exactly once (the store's per-stream ``flock`` + catch-up).
* ``MqttReceiver.handle`` applies the TCP path's checks to MQTT payloads: malformed, oversize,
  implausible GAPs and topic/stream mismatches are rejected (kept in ``_rejected/``), a
  redelivered segment is a duplicate.
* The fleet: a real mosquitto, 3 ``sensor-receive --mqtt`` replicas in one shared-subscription
  group on one store, 20 ``sensor-encode`` processes publishing to ``fleet/<stream>``; one replica
  is killed with SIGKILL mid-run and restarted with its client id (its persistent session gets
  back what it had not acknowledged). Every frame of every stream is stored exactly once.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from encoder_runtime.container import GapReason, Record, RecordType, gap_record, header_record, preamble
from encoder_runtime.daemon import faults
from encoder_runtime.daemon.faults import ReceiverProcess, python_env, spawn
from encoder_runtime.daemon.store import Store, summarize

pytestmark = pytest.mark.timeout(180)

SENSORS, FRAMES, FPS, REPLICAS = 20, 60, 10, 3


def _segment(stream: str, seqs: range, segno: int = 0, gap: tuple[int, int] | None = None) -> bytes:
    """A sealed segment as the spool writes it: preamble, HEADER, FRAMEs (and a GAP), END."""
    recs = [header_record({"codec": "raw-zstd", "stream_id": stream})]
    recs += [Record(RecordType.FRAME, s, f"frame {s}".encode()) for s in seqs]
    if gap:
        recs.append(gap_record(gap[0], gap[0], gap[1], GapReason.QUEUE_FULL))
    recs.append(Record(RecordType.END, seqs.stop, json.dumps({"segno": segno}).encode()))
    return preamble() + b"".join(r.encode() for r in recs)


def test_store_shared_by_processes_stores_each_seq_once(tmp_path):
    """4 processes commit the same 300 seqs (in different orders, overlapping segments) into
    one store: every seq once, no duplicates, every file parses."""
    store = tmp_path / "store"
    code = textwrap.dedent(f"""
        import random, sys
        from encoder_runtime.container import Record, RecordType
        from encoder_runtime.daemon.store import Store
        i = int(sys.argv[1])
        st = Store({str(store)!r}).stream("s")
        starts = list(range(0, 300, 5)) + list(range(2, 300, 7))
        random.Random(i).shuffle(starts)
        for a in starts:
            st.commit({{"codec": "raw-zstd", "stream_id": "s"}},
                      [Record(RecordType.FRAME, s, b"x%d" % s) for s in range(a, min(a + 6, 300))])
    """)
    early = Store(store)  # opened before the stream exists (a replica started before the others wrote)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(i)], env=python_env(), stderr=subprocess.PIPE)
             for i in range(4)]
    for p in procs:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()[-2000:]
    s = summarize(store)["streams"][0]
    assert (s["frames"], s["duplicates"], s["missing"], s["damaged"]) == (300, 0, [], [])
    assert s["seq_ranges"] == [[0, 299]]
    assert early.next_seq("s") == 300  # what a TCP hello's welcome reports
    # A fresh process sees the same index (and would store nothing more).
    assert Store(store).stream("s").commit({"codec": "raw-zstd", "stream_id": "s"},
                                           [Record(RecordType.FRAME, 7, b"x7")]) == (0, 1, 0)


def test_torn_tail_left_by_a_killed_writer_is_cut_by_the_next(tmp_path):
    """A writer killed mid-append (half a record, never acknowledged) does not poison the shared
    file: the next writer cuts the tail into quarantine/ before it appends; nothing is lost."""
    hdr = {"codec": "raw-zstd", "stream_id": "s"}
    frames = lambda a, b: [Record(RecordType.FRAME, s, b"f%d" % s) for s in range(a, b)]  # noqa: E731
    a, b = Store(tmp_path).stream("s"), Store(tmp_path).stream("s")  # two writers (flock per open file)
    assert a.commit(hdr, frames(0, 5)) == (5, 0, 0)
    newest = a.files()[-1]
    with open(newest, "ab") as f:
        f.write(frames(5, 6)[0].encode()[:9])  # the killed writer's half record
    assert b.commit(hdr, frames(3, 10)) == (5, 2, 0)  # b saw a's 0..4 (catch-up), stores 5..9
    assert a.commit(hdr, frames(8, 13)) == (3, 2, 0)  # and a sees b's
    s = summarize(tmp_path)["streams"][0]
    assert (s["frames"], s["duplicates"], s["seq_ranges"], s["damaged"]) == (13, 0, [[0, 12]], [])
    assert s["quarantined"] == [f"{newest.name}.tail.0.bad"]


def test_mqtt_payload_checks_match_the_tcp_path(tmp_path):
    from encoder_runtime.daemon.mqtt_receiver import MqttReceiver, parse_subscribe_url
    from encoder_runtime.daemon.config import ConfigError

    pytest.importorskip("paho.mqtt.client")
    store = Store(tmp_path / "store")
    rx = MqttReceiver("mqtt://127.0.0.1:1/fleet?group=g&client_id=r0", store, max_segment_bytes=64 * 1024,
                      max_gap_frames=1000)
    assert rx.topic == "$share/g/fleet/#"
    assert rx.handle("fleet/cam0", _segment("cam0", range(0, 10))) == "stored"
    assert rx.handle("fleet/cam0", _segment("cam0", range(0, 10))) == "duplicate"  # redelivery
    assert rx.handle("fleet/cam0", _segment("cam0", range(10, 12), gap=(12, 20))) == "stored"
    assert rx.handle("fleet/cam1", _segment("cam0", range(30, 31))) == "rejected"  # topic names cam1
    assert rx.handle("fleet/cam0", b"not a segment") == "rejected"
    assert rx.handle("fleet/cam0", _segment("cam0", range(21, 22), gap=(22, 5000))) == "rejected"
    assert rx.handle("fleet/cam0", _segment("cam0", range(21, 22))[:-5]) == "rejected"  # cut END
    big = _segment("cam0", range(0, 1)) + b"\0" * (70 * 1024)
    assert rx.handle("fleet/cam0", big) == "rejected"
    assert rx.counts == {"stored": 12, "duplicates": 10, "rejected": 5, "messages": 8}
    kept = sorted(p.name for p in rx.rejected_dir.iterdir())
    assert [re.sub(r"^\d+T\d+-|-[0-9a-f]{8}\.seg$", "", k) for k in kept].count("malformed") == 2, kept
    assert any("-forbidden-" in k for k in kept) and any("-implausible_gap-" in k for k in kept)
    s = summarize(store.root)
    assert [x["stream_id"] for x in s["streams"]] == ["cam0"]  # _rejected/ is no stream
    assert s["streams"][0]["frames"] == 12 and s["streams"][0]["duplicates"] == 0
    for bad in ("http://h/x", "mqtt://h:1/x?group=a/b", "mqtt://h:1/x?nope=1", "mqtt://h:1/x/#"):
        with pytest.raises(ConfigError):
            parse_subscribe_url(bad)


class Replica(ReceiverProcess):
    """One ``sensor-receive --mqtt`` process (a TCP listener on a free port as well); kill/stop as
    for any receiver process."""

    def __init__(self, tmp: Path, store: Path, broker: int, name: str) -> None:
        self.url = f"mqtt://127.0.0.1:{broker}/fleet?group=fleet&client_id={name}"
        self.store, self.log, self.name = store, tmp / f"{name}.log", name
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Replica":
        self.proc = spawn("receive_cli", ["--listen", "127.0.0.1:0", "--store", str(self.store), "--mqtt",
                                          self.url, "--log-level", "debug"], self.log)
        status = json.loads(self.proc.stdout.readline() or b"{}")
        assert status.get("mqtt", {}).get("subscribed"), self.log.read_text()[-3000:]
        return self

    def stored_segments(self) -> int:
        return len(re.findall(r"frames stored, \d+ duplicates", self.log.read_text()))


def _frames_stored(store: Path) -> int:
    return sum(s["frames"] for s in summarize(store)["streams"])


def test_fleet_of_20_sensors_3_replicas_one_killed(tmp_path, mosquitto):
    pytest.importorskip("paho.mqtt.client")
    # Queues of offline persistent sessions must not overflow (mosquitto's default is 1000).
    broker = mosquitto("max_queued_messages 100000\nmax_inflight_messages 20\n")
    store = tmp_path / "store"
    replicas = [Replica(tmp_path, store, broker, f"rx{i}").start() for i in range(REPLICAS)]
    t0 = time.monotonic()
    encoders = []
    try:
        for i in range(SENSORS):
            sid = f"sensor{i:02d}"
            encoders.append(spawn("encode_cli", [
                "--model", "raw", "--source", f"synthetic:8x8x1,fps={FPS}", "--max-frames", str(FRAMES),
                "--sink", f"mqtt://127.0.0.1:{broker}/fleet/{sid}", "--stream-id", sid,
                "--spool", str(tmp_path / "spool" / sid), "--segment-max-age", "100ms",
                "--backoff-base", "0.1s", "--backoff-cap", "1s"], tmp_path / f"{sid}.log"))
        total = SENSORS * FRAMES
        # Kill replica 1 with SIGKILL once it has stored some segments and the fleet is mid-run.
        victim = replicas[1]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (victim.stored_segments() < 5 or _frames_stored(store) < total // 4):
            time.sleep(0.1)
        before = _frames_stored(store)
        assert victim.stored_segments() >= 5 and before < total, (before, victim.log.read_text()[-2000:])
        victim.proc.kill()
        victim.proc.wait()
        killed_at = victim.log.stat().st_size
        time.sleep(1.0)  # the fleet goes on; the broker queues the dead member's share in its session
        victim.start()  # same client id: the persistent session (and what it had not acked) is back
        assert "session present: True" in victim.log.read_text()
        for i, p in enumerate(encoders):
            try:
                assert p.wait(max(1.0, deadline + 30 - time.monotonic())) == 0, (tmp_path / f"sensor{i:02d}.log").read_text()[-2000:]
            except subprocess.TimeoutExpired:
                raise AssertionError(f"sensor{i:02d} did not finish: {(tmp_path / f'sensor{i:02d}.log').read_text()[-2000:]}")
        # Every segment the broker acknowledged reaches the store; poll until all are there.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _frames_stored(store) < total:
            time.sleep(0.2)
        elapsed = time.monotonic() - t0
    finally:
        for p in encoders:
            if p.poll() is None:
                p.kill()
                p.wait()
        for r in replicas:
            r.stop()
    summary = summarize(store)
    assert len(summary["streams"]) == SENSORS
    for s in summary["streams"]:
        assert (s["frames"], s["duplicates"], s["missing"], s["gaps"], s["damaged"]) == (FRAMES, 0, [], [], []), s
        faults.verify_stream(store, s["stream_id"], expect_count=FRAMES)  # every frame decodes
    shares = [r.stored_segments() for r in replicas]
    assert all(n > 0 for n in shares), shares  # the group split the load
    after = victim.log.read_text()[killed_at:]
    resumed = len(re.findall(r"frames stored, \d+ duplicates", after))
    assert resumed > 0, "the restarted replica got nothing back from its session"
    print(f"fleet: {SENSORS} sensors x {FRAMES} frames, {REPLICAS} replicas, rx1 killed at {before}/{total} "
          f"stored frames; segments stored per replica {shares} (rx1: {resumed} after its restart, "
          f"{after.count('redelivered message')} redelivered unacknowledged); {elapsed:.1f} s")


def test_tls_passwords_and_topic_acls(tmp_path, mosquitto):
    """mqtts:// with a private CA and passwords on both sides; the broker's topic ACLs plus the
    receiver's topic/stream binding decide who writes which stream."""
    import shutil

    from test_daemon_e2e import _certs

    pytest.importorskip("paho.mqtt.client")
    if not (shutil.which("openssl") and shutil.which("mosquitto_passwd")):
        pytest.skip("openssl / mosquitto_passwd not available")
    c = _certs(tmp_path)
    pw = tmp_path / "passwd"
    pw.touch()
    for user, secret in (("rx", "rx-pw"), ("cam0", "cam0-pw")):
        subprocess.run(["mosquitto_passwd", "-b", str(pw), user, secret], check=True)
    (tmp_path / "acl").write_text("user rx\ntopic read fleet/#\nuser cam0\ntopic write fleet/cam0\n")
    # (mosquitto started as root would switch to its own user, which cannot read tmp_path)
    port = mosquitto(f"user root\npassword_file {pw}\nacl_file {tmp_path / 'acl'}\n"
                     f"certfile {c['server.pem']}\nkeyfile {c['server.key']}\n")
    store = tmp_path / "store"
    rx = spawn("receive_cli", ["--listen", "127.0.0.1:0", "--store", str(store), "--mqtt",
                               f"mqtts://rx:rx-pw@127.0.0.1:{port}/fleet?group=g&client_id=tls0&ca={c['ca.pem']}"],
               tmp_path / "rx.log")
    try:
        status = json.loads(rx.stdout.readline() or b"{}")
        assert status.get("mqtt", {}).get("subscribed"), (tmp_path / "rx.log").read_text()[-2000:]

        def send(stream: str, topic: str, n: int) -> None:
            p = spawn("encode_cli", ["--model", "raw", "--source", "synthetic:8x8x1", "--max-frames", str(n),
                                     "--sink", f"mqtts://cam0:cam0-pw@127.0.0.1:{port}/{topic}", "--tls-ca",
                                     c["ca.pem"], "--stream-id", stream, "--spool", str(tmp_path / "spool" / stream),
                                     "--segment-max-age", "100ms"], tmp_path / f"{stream}.log")
            assert p.wait(60) == 0, (tmp_path / f"{stream}.log").read_text()[-2000:]

        send("cam0", "fleet/cam0", 20)  # allowed
        send("cam1", "fleet/cam1", 5)   # the broker's ACL drops it (cam0 may only write fleet/cam0)
        send("cam9", "fleet/cam0", 5)   # the ACL lets it through; the receiver's topic binding rejects it
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (_frames_stored(store) >= 20 and "cam9" in
                                                    (tmp_path / "rx.log").read_text()):
            time.sleep(0.2)
    finally:
        rx.terminate()
        rx.wait(10)
    s = summarize(store)["streams"]
    assert [(x["stream_id"], x["frames"], x["duplicates"]) for x in s] == [("cam0", 20, 0)]
    assert "forbidden: topic 'fleet/cam0' may not carry stream 'cam9'" in (tmp_path / "rx.log").read_text()
    assert any("-forbidden-" in f.name for f in (store / "_rejected").iterdir())
