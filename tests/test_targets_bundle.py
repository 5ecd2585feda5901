"""Target descriptions, target bundles (without wheelhouse: no network) and their bad inputs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import skimage.data

from export import export_cli
from export.emulation import write_toy_bundle
from export.targets import (TARGETS, BundleError, TargetError, build_target_bundle, get_target,
                            read_source_bundle, render_template)


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    return write_toy_bundle(tmp_path_factory.mktemp("src") / "toy")


def _tiles(n: int = 4, size: int = 64) -> np.ndarray:
    img = skimage.data.astronaut()
    return np.stack([img[i * 96:i * 96 + size, i * 80:i * 80 + size] for i in range(n)])


def _codes(model: Path, frames: np.ndarray) -> np.ndarray:
    s = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return s.run(None, {"samples": frames})[0]


def test_targets_describe_boards():
    assert set(TARGETS) == {"x86_64", "rpi4", "rpi5", "jetson-orin", "aarch64"}
    for t in TARGETS.values():
        assert t.default_variant in ("fp32", "int8") and len(t.variant_reason) > 40
        assert any(p.startswith("manylinux_2_28_") for p in t.platforms)
        assert any(p.startswith("manylinux2014_") for p in t.platforms)  # zstandard
        assert t.arch in ("x86_64", "aarch64") and t.platforms[0].endswith(t.arch)
    assert get_target("rpi5").python_version == "3.11" and get_target("rpi5").default_variant == "int8"
    assert get_target("rpi4").default_variant == "fp32"
    jet = get_target("jetson-orin")
    assert jet.python_version == "3.10" and jet.onnxruntime == "onnxruntime<=1.23.2"
    assert jet.with_python("3.11").onnxruntime == "onnxruntime"
    assert get_target("rpi5").with_python("3.10").onnxruntime == "onnxruntime<=1.23.2"
    assert get_target("x86_64").ort_target_platform == "amd64"
    assert get_target("rpi4").ort_target_platform == "arm"
    with pytest.raises(TargetError, match="python 3.8"):
        get_target("rpi5").with_python("3.8")


def test_unknown_target_lists_known():
    with pytest.raises(TargetError) as e:
        get_target("rpi3")
    for name in TARGETS:
        assert name in str(e.value)


def test_toy_bundle_is_integer_exact(toy):
    """The toy encoder computes docs/bundle-format.md's integer formula in both graphs."""
    frames = _tiles()
    p = np.load(toy / "encoder_int.npz")
    w, b, s = p["weight"].astype(np.int64), p["bias"].astype(np.int64), p["shift"]
    n, h, wd, c = frames.shape
    blocks = frames.reshape(n, h // 8, 8, wd // 8, 8, c).astype(np.int64)
    acc = np.einsum("nyixjc,kcij->nkyx", blocks, w) + b[None, :, None, None]
    ref = np.clip(np.round(acc / 2.0 ** s[None, :, None, None]), -127, 127).astype(np.int8)
    assert np.array_equal(_codes(toy / "encoder.onnx", frames), ref)
    assert np.array_equal(_codes(toy / "encoder_int8.onnx", frames), ref)


@pytest.mark.parametrize("target", ["rpi4", "x86_64"])
def test_target_bundle_without_wheelhouse(toy, tmp_path, target):
    out = build_target_bundle(toy, target, tmp_path / target, wheelhouse=False)
    m = read_source_bundle(out)  # a target bundle is still a valid runtime bundle
    t = m["target"]
    tgt = get_target(target)
    assert t["name"] == target and t["arch"] == tgt.arch and t["python"] == tgt.python_version
    assert t["default_variant"] == tgt.default_variant == "fp32"
    assert t["default_encoder"] == "encoder.onnx" and t["default_variant_reason"] == tgt.variant_reason
    # No dependency wheels: only the (device) sensorcodec wheel, whose dependencies come from PyPI.
    assert t["wheelhouse"] is None
    assert [p.name.split("-")[0] for p in (out / "wheelhouse").iterdir()] == ["sensorcodec"]
    # the target's architecture, with the native ctx-ac coder (tests/test_native_wheel.py)
    (whl,) = (out / "wheelhouse").iterdir()
    assert t["sensorcodec_wheel"] == {"file": whl.name, "native": True, "abi": "cp311-abi3",
                                      "modules": ["encoder_runtime._scencoder", "encoder_runtime._sclossless"]}
    assert whl.name.endswith(f"-cp311-abi3-manylinux2014_{tgt.arch}.whl")
    assert t["ort_format"]["target_platform"] == tgt.ort_target_platform
    assert t["source_bundle"]["manifest_sha256"]
    for f in ("encoder.onnx", "encoder_int8.onnx", "encoder_int.npz", "install.sh",
              "sensor-encode.service", "ort/encoder.ort", "ort/encoder_int8.ort"):
        assert f in m["files"], f
    # ORT-format models load (even the arm-optimised ones, here on x86) and give the same codes.
    frames = _tiles()
    ref = _codes(out / "encoder.onnx", frames)
    for rel in t["ort_format"]["files"].values():
        assert np.array_equal(_codes(out / rel, frames), ref), rel
    # SHA256SUMS covers every file; install.sh is valid bash and executable.
    listed = {ln.split("  ", 1)[1] for ln in (out / "SHA256SUMS").read_text().splitlines()}
    assert listed == {p.relative_to(out).as_posix() for p in out.rglob("*")
                      if p.is_file() and p.name != "SHA256SUMS"}
    if shutil.which("sha256sum"):
        subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=out, check=True)
    subprocess.run(["bash", "-n", str(out / "install.sh")], check=True)
    assert (out / "install.sh").stat().st_mode & 0o111


def test_default_variant_int8_and_fallback(toy, tmp_path):
    out = build_target_bundle(toy, "rpi5", tmp_path / "rpi5", wheelhouse=False)
    t = json.loads((out / "manifest.json").read_text())["target"]
    assert (t["default_variant"], t["default_encoder"]) == ("int8", "encoder_int8.onnx")
    assert "dot-product" in t["default_variant_reason"]
    # A bundle without an int8 graph falls back to fp32 and says why.
    fp32_only = tmp_path / "fp32only"
    shutil.copytree(toy, fp32_only)
    man = json.loads((fp32_only / "manifest.json").read_text())
    del man["files"]["encoder_int8.onnx"]
    (fp32_only / "encoder_int8.onnx").unlink()
    (fp32_only / "manifest.json").write_text(json.dumps(man))
    out2 = build_target_bundle(fp32_only, "rpi5", tmp_path / "rpi5b", wheelhouse=False)
    t2 = json.loads((out2 / "manifest.json").read_text())["target"]
    assert t2["default_variant"] == "fp32" and "no int8 graph" in t2["default_variant_reason"]
    assert set(t2["ort_format"]["files"]) == {"fp32"}
    with pytest.raises(TargetError, match="encoder_int8.onnx"):
        build_target_bundle(fp32_only, "rpi5", tmp_path / "x", wheelhouse=False, variant="int8")
    # An explicit choice is recorded as such.
    out3 = build_target_bundle(toy, "rpi5", tmp_path / "rpi5c", wheelhouse=False, variant="fp32")
    t3 = json.loads((out3 / "manifest.json").read_text())["target"]
    assert t3["default_variant"] == "fp32" and "explicitly" in t3["default_variant_reason"]


def test_systemd_unit_verifies(toy, tmp_path):
    out = build_target_bundle(toy, "rpi4", tmp_path / "b", wheelhouse=False)
    unit = (out / "sensor-encode.service").read_text()
    for line in ("Type=notify", "WatchdogSec=30s", "Restart=always", "User=sensorcodec",
                 "ProtectSystem=strict", "ReadWritePaths=/var/lib/sensor-encode", "NotifyAccess=main",
                 "ExecStart=/opt/sensorcodec/venv/bin/sensor-encode --config"):
        assert line in unit, line
    assert "PrivateDevices" not in unit.replace("Not PrivateDevices", "")
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed")
    # What install.sh --prefix does: point the unit at an existing executable, then verify.
    exe = tmp_path / "prefix" / "venv" / "bin" / "sensor-encode"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    udir = tmp_path / "units"
    udir.mkdir()
    (udir / "sensor-encode.service").write_text(unit.replace("/opt/sensorcodec", str(tmp_path / "prefix")))
    proc = subprocess.run(["systemd-analyze", "verify", str(udir / "sensor-encode.service")],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr


def test_bad_source_bundles(toy, tmp_path):
    with pytest.raises(BundleError, match="not a folder"):
        build_target_bundle(tmp_path / "nope", "rpi5", tmp_path / "o1", wheelhouse=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BundleError, match="manifest.json is missing"):
        build_target_bundle(empty, "rpi5", tmp_path / "o2", wheelhouse=False)
    bad_json = tmp_path / "badjson"
    bad_json.mkdir()
    (bad_json / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        read_source_bundle(bad_json)
    corrupt = tmp_path / "corrupt"
    shutil.copytree(toy, corrupt)
    data = bytearray((corrupt / "encoder.onnx").read_bytes())
    data[-5] ^= 0xFF
    (corrupt / "encoder.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"encoder.onnx: sha256 .* does not match the manifest"):
        build_target_bundle(corrupt, "rpi5", tmp_path / "o3", wheelhouse=False)
    assert not (tmp_path / "o3").exists()
    missing = tmp_path / "missing"
    shutil.copytree(toy, missing)
    (missing / "encoder_int.npz").unlink()
    with pytest.raises(BundleError, match=r"encoder_int.npz: listed in the manifest but missing"):
        read_source_bundle(missing)
    with pytest.raises(TargetError, match="known targets"):
        build_target_bundle(toy, "pi-zero", tmp_path / "o4", wheelhouse=False)
    build_target_bundle(toy, "rpi4", tmp_path / "o5", wheelhouse=False)
    with pytest.raises(FileExistsError, match="--force"):
        build_target_bundle(toy, "rpi4", tmp_path / "o5", wheelhouse=False)
    build_target_bundle(toy, "rpi4", tmp_path / "o5", wheelhouse=False, overwrite=True)
    # no stray staging folders left beside the output
    assert sorted(p.name for p in tmp_path.glob(".o*")) == []


def test_template_placeholders_must_all_be_filled():
    with pytest.raises(Exception, match="no value for"):
        render_template("sensor-encode.service.in", {"TARGET": "rpi5"})


def test_cli(toy, tmp_path, capsys):
    assert export_cli.main(["--list-targets"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in TARGETS)
    rc = export_cli.main(["--bundle", str(toy), "--target", "rpi5", "--out", str(tmp_path / "o"),
                          "--no-wheelhouse"])
    out = capsys.readouterr().out
    assert rc == 0 and "int8" in out and (tmp_path / "o" / "manifest.json").is_file()
    # existing output without --force
    rc = export_cli.main(["--bundle", str(toy), "--target", "rpi5", "--out", str(tmp_path / "o"),
                          "--no-wheelhouse"])
    assert rc == 1 and "--force" in capsys.readouterr().err
    # unknown model / corrupt bundle: exit 1 with the reason
    assert export_cli.main(["--model", "no-such-model", "--target", "rpi5", "--out",
                            str(tmp_path / "p"), "--no-wheelhouse"]) == 1
    assert "model 'no-such-model' not found" in capsys.readouterr().err
    # unknown target: argparse lists the choices, exit 2
    with pytest.raises(SystemExit) as e:
        export_cli.main(["--bundle", str(toy), "--target", "rpi3", "--out", str(tmp_path / "q")])
    assert e.value.code == 2 and "rpi5" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        export_cli.main(["--target", "rpi5"])
    assert e.value.code == 2 and "missing" in capsys.readouterr().err


def test_wheel_declares_tomli_for_python_310(tmp_path):
    """Jetson images run Python 3.10, where tomllib is missing: the wheel must pull in tomli there."""
    import zipfile

    from export.targets import build_sensorcodec_wheel

    whl = build_sensorcodec_wheel(tmp_path)
    with zipfile.ZipFile(whl) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        requires = [line for line in zf.read(meta).decode().splitlines() if line.startswith("Requires-Dist:")]
    tomli = [r for r in requires if r.split(":", 1)[1].strip().startswith("tomli")]
    assert tomli and "python_version" in tomli[0] and "3.11" in tomli[0], requires


def test_no_wheelhouse_install_fails_loudly_offline(toy, tmp_path):
    """An install of a --no-wheelhouse bundle says it needs PyPI and fails with a clear message offline."""
    out = build_target_bundle(toy, "x86_64", tmp_path / "b", wheelhouse=False)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": "/dev/null"}
    proc = subprocess.run(["bash", str(out / "install.sh"), "--prefix", str(tmp_path / "opt"), "--no-systemd",
                           "--python", sys.executable, "--force"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "installing the" in proc.stdout and "from PyPI" in proc.stdout
    assert "pip could not install the dependencies from PyPI" in proc.stderr


def test_device_wheel_has_runtime_only(tmp_path):
    """A device wheel carries the runtime and the bridge, not the toolchain, its entry points or the models."""
    import zipfile

    from export.targets import build_sensorcodec_wheel

    whl = build_sensorcodec_wheel(tmp_path, device=True)
    with zipfile.ZipFile(whl) as zf:
        names = zf.namelist()
        eps = zf.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert any(n.startswith("encoder_runtime/daemon/") for n in names)
    assert any(n.startswith("firmware_bridge/") for n in names)
    assert not any(n.startswith(("export/", "encoder_runtime/models/", "encoder_runtime/samples/")) for n in names)
    assert "sensor-encode" in eps and "sensor-codec" in eps
    assert not any(tool in eps for tool in ("sensor-train", "sensor-export", "sensor-data"))
    assert whl.stat().st_size < 1_000_000, whl.stat().st_size
