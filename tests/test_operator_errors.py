"""Issue 14: what a first day with the tools breaks — clear, one-line failures instead of tracebacks."""

from __future__ import annotations

import socket

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
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    assert not (root / "packaging" / "systemd" / "sensor-encode.service").exists()
    unit = (root / "export" / "templates" / "sensor-encode.service.in").read_text()
    assert "ExecStartPre=/opt/sensorcodec/venv/bin/sensor-encode check-config" in unit
    assert "SENSORCODEC_BUNDLE" not in unit


def test_spool_gap_reasons_read_back_by_name(tmp_path):
    """Issue 13: a real spool's power-loss GAP reads back as SPOOL_LOST (was UNKNOWN), a salvaged
    segment's as SPOOL_CORRUPT, and docs/container-format.md names every reason."""
    import re
    from pathlib import Path

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
