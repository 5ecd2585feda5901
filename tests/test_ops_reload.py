"""Issue 14 items 5 and 10, with real processes and sockets: SIGHUP reloads the encoder's config
(a bad one is refused and the old one keeps running), a rejected token is said loudly and backed off,
a taken metrics port is one line and exit 2, and the receiver takes ``mqtt`` from its config file."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from encoder_runtime.daemon.faults import ReceiverProcess, python_env
from encoder_runtime.daemon.store import summarize

pytestmark = pytest.mark.timeout(120)


class LogTail:
    """Collects a child's stderr lines in a thread; :meth:`wait_for` blocks until one matches."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc, self.lines, self.cond = proc, [], threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in self.proc.stderr:
            with self.cond:
                self.lines.append(raw.decode(errors="replace").rstrip())
                self.cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 30.0, start: int = 0) -> int:
        """Index of the first line from ``start`` on matching ``pattern``."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i in range(start, len(self.lines)):
                    if re.search(pattern, self.lines[i]):
                        return i
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None and not self.cond.wait(0.2):
                    raise AssertionError(f"no line matching {pattern!r}:\n" + "\n".join(self.lines[-30:]))
                self.cond.wait(min(left, 0.2))


def daemon(module: str, args: list[str], stderr=subprocess.PIPE) -> subprocess.Popen:
    """``python -m encoder_runtime.daemon.<module> ARGS`` with this checkout on the path."""
    return subprocess.Popen([sys.executable, "-m", f"encoder_runtime.daemon.{module}", *args],
                            stdout=subprocess.PIPE, stderr=stderr, env=python_env())


def encoder(args: list[str]) -> tuple[subprocess.Popen, LogTail]:
    proc = daemon("encode_cli", args)
    return proc, LogTail(proc)


def stored_streams(store: Path) -> dict[str, int]:
    return {s["stream_id"]: s["frames"] for s in summarize(store)["streams"]}


def wait_stored(store: Path, stream: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while stored_streams(store).get(stream, 0) == 0:
        assert time.monotonic() < deadline, f"no frames of {stream} in {stored_streams(store)}"
        time.sleep(0.1)


CONFIG = """\
[source]
source = "synthetic:32x32x3,fps=20"
[encoder]
model = "{model}"
stream_id = "{stream}"
[spool]
spool = "{spool}"
segment_max_age = "100ms"
[sink]
sink = "tcp://127.0.0.1:{port}"
backoff_base = "50ms"
backoff_cap = "500ms"
"""


def test_sighup_reloads_and_refuses_a_bad_config(tmp_path):
    rx = ReceiverProcess(tmp_path / "store", tmp_path / "rx.log").start()
    cfg = tmp_path / "encode.toml"
    fill = dict(spool=tmp_path / "spool", port=rx.port)
    cfg.write_text(CONFIG.format(model="raw", stream="first", **fill))
    proc, log = encoder(["-c", str(cfg)])
    try:
        log.wait_for("sensor-encode started")
        wait_stored(rx.store, "first")
        # A model that does not exist: one error line, the old pipeline keeps streaming.
        cfg.write_text(CONFIG.format(model="nosuch", stream="second", **fill))
        mark = len(log.lines)
        proc.send_signal(signal.SIGHUP)
        i = log.wait_for("SIGHUP: new config rejected", start=mark)
        assert "nosuch" in log.lines[i] and "ERROR" in log.lines[i]
        before = stored_streams(rx.store)["first"]
        time.sleep(1.0)
        assert proc.poll() is None
        assert stored_streams(rx.store)["first"] > before, "the old config stopped streaming"
        # A valid new config: the pipeline restarts with it in the same process.
        cfg.write_text(CONFIG.format(model="raw", stream="second", **fill))
        proc.send_signal(signal.SIGHUP)
        log.wait_for("stream=second", start=i)
        wait_stored(rx.store, "second")
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(30)
        rx.stop()
    assert rc == 0, "\n".join(log.lines[-20:])
    assert not any("Traceback" in line for line in log.lines), "\n".join(log.lines)


def test_unit_template_reloads_with_sighup():
    unit = (Path(__file__).resolve().parents[1] / "export" / "templates" / "sensor-encode.service.in").read_text()
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit


def test_rejected_token_is_loud_and_backs_off(tmp_path):
    (tmp_path / "token").write_text("right-token\n")
    rx = ReceiverProcess(tmp_path / "store", tmp_path / "rx.log", "--token-file", str(tmp_path / "token")).start()
    cfg = tmp_path / "encode.toml"
    cfg.write_text(CONFIG.format(model="raw", stream="s1", spool=tmp_path / "spool", port=rx.port))
    proc, log = encoder(["-c", str(cfg), "--token", "wrong-token", "--backoff-base", "0.05s",
                         "--backoff-cap", "0.4s"])
    try:
        log.wait_for("sensor-encode started")
        time.sleep(3.0)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        rx.stop()
    refused = [line for line in log.lines if "unauthorized" in line]
    assert refused and all(" ERROR " in line and "token" in line for line in refused), "\n".join(log.lines)
    delays = [float(m.group(1)) for line in refused if (m := re.search(r"retrying in ([0-9.]+)s", line))]
    # Exponential and capped: 0.05, 0.1, 0.2, 0.4, 0.4, ... (about 9 attempts in 3 s, not hundreds).
    assert delays[:4] == [0.05, 0.1, 0.2, 0.4] and max(delays) == 0.4, delays
    assert delays == sorted(delays) and len(delays) <= 12, delays
    assert stored_streams(rx.store) == {}


@pytest.mark.parametrize("module", ["encode_cli", "receive_cli"])
def test_metrics_port_in_use_exits_2_with_one_line(module, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = {"encode_cli": ["--source", "synthetic:32x32x3,count=5", "--model", "raw", "--spool",
                               str(tmp_path / "spool"), "--sink", "tcp://127.0.0.1:9"],
                "receive_cli": ["--listen", "127.0.0.1:0", "--store", str(tmp_path / "store")]}[module]
        proc = daemon(module, args + ["--metrics", f"127.0.0.1:{port}"])
        _out, err = proc.communicate(timeout=60)
    text = err.decode()
    assert proc.returncode == 2, text
    assert "Traceback" not in text, text
    assert re.search(rf"configuration error: metrics: cannot serve on 127.0.0.1:{port}", text.strip().splitlines()[-1])


def test_receiver_takes_mqtt_from_its_config_file(tmp_path, mosquitto):
    """``mqtt`` in [receiver]: check-config validates it (a bad URL names the key) and run subscribes."""
    broker = mosquitto()
    cfg = tmp_path / "receiver.toml"
    cfg.write_text(f'[receiver]\nlisten = "127.0.0.1:0"\nstore = "{tmp_path / "store"}"\n'
                   f'mqtt = "mqtt://127.0.0.1:{broker}/fleet?group=g&client_id=rx-a&bogus=1"\n')

    def check_config() -> subprocess.CompletedProcess:
        proc = daemon("receive_cli", ["check-config", "-c", str(cfg)])
        out, err = proc.communicate(timeout=60)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    p = check_config()
    assert p.returncode == 2 and "mqtt: unknown URL parameter 'bogus'" in p.stderr.decode(), p.stderr.decode()
    cfg.write_text(cfg.read_text().replace("&bogus=1", ""))
    p = check_config()
    assert p.returncode == 0, p.stderr.decode()
    assert json.loads(p.stdout)["receiver"]["mqtt"] == f"mqtt://127.0.0.1:{broker}/fleet?group=g&client_id=rx-a"
    proc = daemon("receive_cli", ["-c", str(cfg)], stderr=subprocess.DEVNULL)
    try:
        status = json.loads(proc.stdout.readline())
    finally:
        proc.terminate()
        proc.wait(30)
    assert status["mqtt"] == {"topic": "$share/g/fleet/#", "client_id": "rx-a", "subscribed": True}
