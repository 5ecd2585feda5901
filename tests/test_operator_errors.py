"""Issue 14: what a first day with the tools breaks — clear, one-line failures instead of tracebacks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

import pytest

from encoder_runtime.daemon.config import ConfigError
from encoder_runtime.daemon.metrics import Registry, serve


def test_metrics_port_in_use_is_a_config_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"metrics: cannot serve on 127.0.0.1:{port}: .*--metrics"):
            serve(Registry("x"), "127.0.0.1", port)


def test_one_shipped_sensor_encode_unit():
    """One sensor-encode unit (the template sensor-export writes), validating its config before start,
    with no environment variable that nothing reads."""
    root = Path(__file__).resolve().parent.parent
    assert not (root / "packaging" / "systemd" / "sensor-encode.service").exists()
    unit = (root / "export" / "templates" / "sensor-encode.service.in").read_text()
    assert "ExecStartPre=/opt/sensorcodec/venv/bin/sensor-encode check-config" in unit
    assert "SENSORCODEC_BUNDLE" not in unit


def test_spool_gap_reasons_read_back_by_name(tmp_path):
    """Issue 13: a real spool's power-loss GAP reads back as SPOOL_LOST (was UNKNOWN), a salvaged
    segment's as SPOOL_CORRUPT, and docs/container-format.md names every reason."""
    import re

    from encoder_runtime.container import GapReason, RecordType
    from encoder_runtime.daemon.codecs import RawEncoder
    from encoder_runtime.daemon.spool import Spool, inspect_segment, reason_name

    enc = RawEncoder()
    header = {**enc.stream_header("s1"), "stream_id": "s1"}
    frame = enc.encode_frame(np.arange(64, dtype=np.uint8).reshape(8, 8))
    sp = Spool(tmp_path, "s1", segment_max_age=100)
    sp.open(header)
    for i in range(3):
        sp.append_frame(frame, i, i)
    (sp.dir / "active.scd.open").unlink()          # the unsynced active segment is lost with the power
    sp2 = Spool(tmp_path, "s1", segment_max_age=100)
    sp2.open(header)
    sp2.close()
    reasons = [r.gap()[2] for seg in sp2.sealed() for r in inspect_segment(seg.read()).records
               if r.type == RecordType.GAP]
    assert GapReason.SPOOL_LOST in reasons and GapReason.UNKNOWN not in reasons, reasons
    assert reason_name(7) == "spool_corrupt" and reason_name(8) == "spool_lost"
    doc = (Path(__file__).resolve().parents[1] / "docs" / "container-format.md").read_text()
    documented = {int(n): name for n, name in re.findall(r"^\| (\d+) \| ([A-Z_]+) \|", doc, re.M)}
    assert documented == {r.value: r.name for r in GapReason}


# --- item 4: check-config makes run's checks ------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "encoder_runtime" / "samples"


def encode_cli(*args: str, hide: tuple[str, ...] = (), tmp: Path | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
    """``sensor-encode ARGS`` as a subprocess; ``hide`` makes those top-level packages fail to
    import (as on a device where they are not installed)."""
    path = [str(REPO)]
    if hide:
        shadow = tmp / "hidden"
        for mod in hide:
            (shadow / mod).mkdir(parents=True, exist_ok=True)
            (shadow / mod / "__init__.py").write_text(f'raise ImportError("No module named {mod!r}")\n')
        path.insert(0, str(shadow))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    return subprocess.run([sys.executable, "-m", "encoder_runtime.daemon.encode_cli", *args],
                          capture_output=True, cwd=REPO, env=env, timeout=timeout)


def one_line_error(p: subprocess.CompletedProcess) -> str:
    text = p.stderr.decode()
    assert p.returncode == 2, (p.returncode, text)
    assert "Traceback" not in text, text
    return text.strip().splitlines()[-1]


def npy_dir(folder: Path, shape: tuple[int, ...]) -> Path:
    folder.mkdir(parents=True)
    np.save(folder / "a.npy", np.zeros(shape, np.int16))
    return folder


@pytest.mark.parametrize("case", ["unknown_model", "wrong_modality", "wrong_channels", "no_pillow",
                                  "no_soundfile", "no_paho"])
def test_check_config_rejects_what_run_rejects(case, tmp_path):
    """Each config used to pass check-config and fail in run; now both refuse it with the same line."""
    sink = ["--sink", "tcp://127.0.0.1:9"]
    args, hide, needle = {
        "unknown_model": (["--source", "synthetic:64x64x3", "--model", "nosuch"], (), "nosuch"),
        "wrong_modality": (["--source", "synthetic:64x64x3", "--model", "audio16k-8k"], (), "audio"),
        "wrong_channels": (["--source", f"dir:{npy_dir(tmp_path / 'imu', (256, 3))}", "--model", "imu6-l2c6"],
                           (), "6 channels"),
        "no_pillow": (["--source", f"dir:{SAMPLES},kind=image"], ("PIL",), "Pillow"),
        "no_soundfile": (["--source", f"dir:{SAMPLES},kind=audio"], ("soundfile",), "soundfile"),
        "no_paho": (["--source", "synthetic:64x64x3", "--sink", "mqtt://127.0.0.1:9/fleet"], ("paho",),
                    "paho-mqtt"),
    }[case]
    args = args + (sink if "--sink" not in args else [])
    checked = one_line_error(encode_cli("check-config", *args, hide=hide, tmp=tmp_path))
    assert needle in checked and "configuration error" in checked, checked
    ran = one_line_error(encode_cli("run", *args, "--spool", str(tmp_path / "spool"), hide=hide, tmp=tmp_path))
    assert ran == checked


def test_check_config_accepts_a_fitting_setup(tmp_path):
    p = encode_cli("check-config", "--source", f"dir:{SAMPLES},kind=image", "--sink", "tcp://127.0.0.1:9")
    assert p.returncode == 0, p.stderr.decode()
    assert json.loads(p.stdout)["encoder"]["model"] == "default"
