"""Issue 14: what a first day with the tools breaks — clear, one-line failures instead of tracebacks."""

from __future__ import annotations

import socket

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
