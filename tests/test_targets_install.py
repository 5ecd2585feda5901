"""A target bundle with its wheelhouse installs offline with its own install.sh and encodes.

Runs natively for the x86_64 target (this machine), with a Python of the target's version.
The first run downloads the x86_64 wheels from PyPI into data/cache/arm/wheels; later runs
resolve from that cache with no network.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from export.emulation import write_toy_bundle
from export.targets import build_target_bundle, get_target

pytestmark = pytest.mark.slow


def _python(version: str) -> str | None:
    for exe in (shutil.which(f"python{version}"), getattr(sys, "_base_executable", None), sys.executable):
        if exe and subprocess.run([exe, "-c", f"import sys, venv; assert '%d.%d' % sys.version_info[:2] == '{version}'"],
                                  capture_output=True).returncode == 0:
            return exe
    return None


def test_x86_64_bundle_installs_offline_and_encodes(tmp_path):
    target = get_target("x86_64")
    py = _python(target.python_version)
    if py is None:
        pytest.skip(f"no Python {target.python_version} with venv on this machine")
    src = write_toy_bundle(tmp_path / "toy")
    out = build_target_bundle(src, target, tmp_path / "bundle")
    t = json.loads((out / "manifest.json").read_text())["target"]
    wheels = set(t["wheelhouse"]["wheels"])
    for project in ("onnxruntime-", "numpy-", "zstandard-", "pyserial-", "sensorcodec-", "pip-"):
        assert any(w.startswith(project) for w in wheels), project
    # An image model's device reads PNG/JPEG from dir:/file: sources: Pillow comes along; torch never.
    assert any(w.lower().startswith("pillow-") for w in wheels) and not any(w.startswith("torch") for w in wheels)
    assert t["onnxruntime"] and t["wheelhouse"]["onnxruntime"] == t["onnxruntime"]

    prefix = tmp_path / "opt"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PIP_NO_INDEX": "1",
           "PIP_CONFIG_FILE": "/dev/null"}
    proc = subprocess.run(["bash", str(out / "install.sh"), "--prefix", str(prefix), "--python", py,
                           "--no-systemd"], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok: onnxruntime" in proc.stdout
    assert "ok: sensor-encode check-config" in proc.stdout
    assert (prefix / "bundle" / "manifest.json").is_file()
    assert not list((prefix / "bundle").rglob("*.whl"))
    # The device gets the runtime tools, not the host toolchain's.
    assert (prefix / "venv" / "bin" / "sensor-encode").exists()
    assert not (prefix / "venv" / "bin" / "sensor-train").exists()
    # The installed runtime encodes a real image with the installed bundle.
    check = ("import json, sys, numpy as np, onnxruntime as ort, encoder_runtime\n"
             "b = sys.argv[1]; m = json.load(open(b + '/manifest.json'))\n"
             "s = ort.InferenceSession(b + '/' + m['target']['default_encoder'])\n"
             "x = np.load(sys.argv[2])['x']\n"
             "print(s.run(None, {'samples': x})[0].tobytes().hex())\n")
    import numpy as np
    import onnxruntime as ort
    import skimage.data

    x = np.ascontiguousarray(skimage.data.astronaut()[None, :128, :128])
    np.savez(tmp_path / "x.npz", x=x)
    proc = subprocess.run([str(prefix / "venv" / "bin" / "python"), "-c", check, str(prefix / "bundle"),
                           str(tmp_path / "x.npz")], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    ref = ort.InferenceSession(str(src / "encoder.onnx")).run(None, {"samples": x})[0]
    assert proc.stdout.strip() == ref.tobytes().hex()
    # Re-running the installer (an update) works and is offline too.
    proc = subprocess.run(["bash", str(out / "install.sh"), "--prefix", str(prefix), "--python", py,
                           "--no-systemd"], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # A bundle for another machine is refused with a clear message.
    arm = build_target_bundle(src, "rpi4", tmp_path / "arm", wheelhouse=False)
    proc = subprocess.run(["bash", str(arm / "install.sh"), "--prefix", str(tmp_path / "x")],
                          capture_output=True, text=True, env=env)
    assert proc.returncode != 0
    assert "this bundle is for aarch64 (rpi4) but this machine is x86_64" in proc.stderr
