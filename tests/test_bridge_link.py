"""The link on real ptys and sockets against the fake MCU and the C example firmware: faults,
exact loss accounting, reconnects, commands, bounded memory, the source adapter and the CLI."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import serial

from firmware_bridge import cli, frame, spec
from firmware_bridge.link import CommandTimeout, DataEvent, GapEvent, Link
from firmware_bridge.simulator import FakeMCU, PtyTransport, TcpTransport
from firmware_bridge.source import SerialFrameSource, open_source


def _drain(link: Link, until, timeout: float = 10.0) -> tuple[list, list]:
    data, gaps = [], []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ev = link.get(0.05)
        if isinstance(ev, DataEvent):
            data.append(ev)
        elif isinstance(ev, GapEvent):
            gaps.append(ev)
        if until():
            break
    return data, gaps


def _wait(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end and not cond():
        time.sleep(0.01)
    assert cond()


@pytest.fixture
def pty_mcu(tmp_path):
    made = []

    def make(**kw):
        mcu = FakeMCU(PtyTransport(str(tmp_path / "ttyMCU")), kw.pop("source", "imu"), **kw)
        made.append(mcu)
        return mcu
    yield make
    for m in made:
        m.stop()


def test_loop_url_roundtrip():
    with Link("loop://", timesync_interval=0) as link:
        _wait(lambda: link.connected)
        arr = np.arange(12, dtype=np.int16).reshape(2, 6)
        ser = link._ser
        for seq in (0, 1, 3):  # 2 is lost
            ser.write(frame.encode_frame(spec.T_DATA, seq, 100 * seq, frame.data_payload(arr, spec.KIND_IMU)))
        data, gaps = _drain(link, lambda: link.counters()["data_frames"] >= 3 and link.counters()["queue_len"] == 0, 5)
    assert [d.seq for d in data] == [0, 1, 3] and np.array_equal(data[0].array, arr)
    assert [(g.first, g.last, g.reason) for g in gaps] == [(2, 2, "serial_loss")]


def test_faults_counted_exactly_on_pty(pty_mcu):
    """Bit flips, truncated frames and garbage bytes: every loss is counted, no more, no less."""
    mcu = pty_mcu(rate=0, corrupt=0.2, max_frames=600, seed=7, source="ecg").start()
    with Link(mcu.tr.path, timesync_interval=0.2) as link:
        _wait(lambda: mcu.stats["data_generated"] >= 600, 20)
        mcu.corrupt = 0.0
        mcu.max_frames = 610  # end on intact frames so the last loss is seen
        data, gaps = _drain(link, lambda: mcu.stats["data_generated"] >= 610 and link.counters()["queue_len"] == 0
                              and link.counters()["data_frames"] == mcu.stats["data_sent_intact"])
        c = link.counters()
    s = mcu.stats
    assert s["corrupt_flip"] and s["corrupt_truncate"] and s["corrupt_garbage"]
    sent = s["data_generated"] - s["data_before_host"]
    assert len(data) == s["data_sent_intact"]
    assert c["lost_frames"] == sum(g.count for g in gaps) == s["data_destroyed"] == sent - len(data)
    assert c["crc_errors"] + c["framing_errors"] == s["bad_chunks"]
    seqs = sorted([d.seq for d in data] + [q for g in gaps for q in range(g.first, g.last + 1)])
    assert seqs == list(range(seqs[0], seqs[0] + sent))  # data + gaps tile the sequence exactly
    assert c["rx_buffered"] <= link.decoder.limit
    assert c["timesyncs"] >= 1 and c["clock_source"] == "timesync"


def test_reboot_and_unplug_replug(pty_mcu):
    mcu = pty_mcu(rate=400, seed=3).start()
    with Link(mcu.tr.path, timesync_interval=0.2) as link:
        _wait(lambda: link.counters()["data_frames"] > 50)
        mcu.reboot()
        _wait(lambda: link.counters()["reboots"] == 1)
        n = link.counters()["data_frames"]
        _wait(lambda: link.counters()["data_frames"] > n + 20)
        before = mcu.stats["data_generated"]
        mcu.unplug(0.3)  # pty closed, then a new pty behind the same symlink
        _wait(lambda: link.counters()["reconnects"] == 1)
        n = link.counters()["data_frames"]
        _wait(lambda: link.counters()["data_frames"] > n + 20)
        mcu._stop.set()
        time.sleep(0.2)
        data, gaps = _drain(link, lambda: link.counters()["queue_len"] == 0, 5)
        c = link.counters()
    lost_unplugged = mcu.stats["data_before_host"]
    first_seen = data[0].seq
    assert c["reboots"] == 1 and c["disconnects"] == 1 and c["reconnects"] == 1
    assert c["lost_frames"] == sum(g.count for g in gaps) > 0, (c, dict(mcu.stats))
    # everything generated after the host first connected is either delivered or in a gap
    initial_loss = mcu.stats["data_generated"] - len(data) - c["lost_frames"]
    assert 0 < initial_loss <= lost_unplugged  # only frames made before the very first connect are unseen
    assert [d.seq for d in data] == sorted({d.seq for d in data})  # monotonic across reboot and replug
    assert mcu.stats["data_generated"] > before
    assert c["crc_errors"] == 0 and c["framing_errors"] == 0


def test_socket_url_unplug(tmp_path):
    mcu = FakeMCU(TcpTransport(0), "imu", rate=300, seed=5).start()
    try:
        with Link(mcu.tr.path, timesync_interval=0.2) as link:
            _wait(lambda: link.counters()["data_frames"] > 30)
            mcu.unplug(0.2)
            _wait(lambda: link.counters()["reconnects"] >= 1)
            _wait(lambda: link.counters()["gaps"] >= 1)
            c = link.counters()
        assert c["lost_frames"] >= 1 and c["disconnects"] >= 1
    finally:
        mcu.stop()


def test_commands_acknowledged_and_retried(pty_mcu):
    mcu = pty_mcu(rate=50, cmd_drop=2).start()
    with Link(mcu.tr.path, baudrate=115200) as link:
        _wait(lambda: link.counters().get("hellos", 0) >= 1)
        extra = link.command(spec.CMD["PING"], tries=5)  # two tries dropped by the MCU, third acked
        assert int.from_bytes(extra, "little") == mcu.nonce
        c = link.counters()
        assert c["cmd_retries"] == 2 and c["cmd_ok"] == 1
        link.command(spec.CMD["STOP"])
        assert not mcu.streaming
        mcu.cmd_drop = 100
        with pytest.raises(CommandTimeout):
            link.command(spec.CMD["START"], tries=3, timeout=0.05)


def test_schema_mismatch_refused(pty_mcu):
    mcu = pty_mcu(rate=100, schema_hash=0x12345678).start()
    with Link(mcu.tr.path) as link:
        _wait(lambda: link.counters().get("schema_mismatch", 0) >= 1)
        time.sleep(0.2)
        c = link.counters()
        assert c["schema_ok"] is False and "schema mismatch" in c["last_error"]
        assert link.get(0.1) is None  # DATA refused, not delivered


def test_queue_bounded_and_overflow_is_a_gap(pty_mcu):
    mcu = pty_mcu(rate=0, max_frames=400).start()
    with Link(mcu.tr.path, queue_size=16, timesync_interval=0) as link:
        _wait(lambda: link.counters()["data_frames"] >= 400 - mcu.stats["data_before_host"])
        assert link.counters()["queue_len"] <= 16
        data, gaps = _drain(link, lambda: link.counters()["queue_len"] == 0, 5)
        c = link.counters()
    assert c["lost_queue_full"] > 0 and all(g.reason == "queue_full" for g in gaps)
    assert len(data) + sum(g.count for g in gaps) == c["data_frames"]


def test_serial_frame_source_items(pty_mcu):
    mcu = pty_mcu(rate=500, source="camera", corrupt=0.1, seed=2).start()
    items = []
    with open_source("serial:" + mcu.tr.path, idle_timeout=2.0) as src:
        for it in src:
            items.append(it)
            if len(items) >= 80:
                break
        c = src.counters()
    arrays = [a for _, _, _, a, g in items if a is not None]
    gaps = [g for _, _, _, a, g in items if g is not None]
    assert arrays and arrays[0].shape == (8, 8, 3) and arrays[0].dtype == np.uint8 and src.last_kind == "camera_tile"
    assert gaps and all(a is None for _, _, _, a, g in items if g is not None)
    seqs = [s for s, *_ in items]
    assert seqs == sorted(seqs)
    assert all(isinstance(t, int) and t > 0 for _, t, w, _, _ in items for t in (t, w))
    assert c["lost_frames"] >= len(gaps)
    with pytest.raises(ValueError, match="serial:URL"):
        open_source("file:/x")
    with pytest.raises(ValueError, match="unknown DATA kinds"):
        SerialFrameSource("loop://", kinds={"video"})


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no host C compiler")
def test_c_example_firmware_over_pty():
    """The C example main (host HAL) on a pty master; the Link opens the slave like a real port."""
    fw = pathlib.Path(__file__).resolve().parents[1] / "firmware_bridge" / "firmware"
    subprocess.run(["make", "-s", "-C", str(fw), "build/host/sc_example"], check=True, timeout=120)
    master, slave = os.openpty()
    import tty
    tty.setraw(slave)
    proc = subprocess.Popen([str(fw / "build/host/sc_example"), "0", "500"], stdin=master, stdout=master)
    try:
        with Link(os.ttyname(slave), timesync_interval=0.1) as link:
            _wait(lambda: link.counters().get("hellos", 0) >= 1, 10)
            link.command(spec.CMD["PING"])
            data, _ = _drain(link, lambda: link.counters()["data_frames"] >= 100, 10)
            c = link.counters()
    finally:
        proc.terminate()
        proc.wait(5)
        os.close(master)
        os.close(slave)
    assert c["schema_ok"] and c["crc_errors"] == 0 and c["cmd_ok"] == 1 and c["timesyncs"] >= 1
    assert data[0].array.shape == (4, 4) and data[0].array.dtype == np.int8


def test_cli_help_and_errors(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    assert cli.main(["monitor", "nosuch://x"]) == 2
    assert cli.main(["monitor", "/dev/does-not-exist", "--duration", "0.3", "--interval", "0.1"]) == 1
    assert "error: could not open /dev/does-not-exist" in capsys.readouterr().err
    assert cli.main(["simulate", "--corrupt", "2"]) == 2


def test_cli_simulate_and_monitor_processes(tmp_path):
    link = tmp_path / "ttySIM"
    sim = subprocess.Popen([sys.executable, "-m", "firmware_bridge.cli", "simulate", "--kind", "ecg", "--rate", "300",
                            "--link", str(link), "--duration", "6", "--json"], stdout=subprocess.PIPE, text=True)
    try:
        path = sim.stdout.readline().strip()
        assert path == str(link)
        out = subprocess.run([sys.executable, "-m", "firmware_bridge.cli", "monitor", path, "--duration", "2",
                              "--interval", "0.5", "--json"], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        import json
        last = json.loads(out.stdout.strip().splitlines()[-1])
        assert last["frames"] > 100 and last["schema_ok"] is True and last["crc_errors"] == 0
    finally:
        sim.terminate()
        sim.wait(10)
