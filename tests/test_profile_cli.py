"""sensor-profile end to end on real ONNX Runtime sessions: bundles, --onnx, meters, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from encoder_runtime.profile.cli import main

C_LAT, BLOCK = 12, 8


def block_encoder(path: Path, channels: int = 3) -> None:
    """Bundle-style encoder: uint8 (N,H,W,C) -> one 8x8 stride-8 conv -> int8-valued float codes."""
    rng = np.random.default_rng(0)
    w = rng.integers(-3, 4, size=(C_LAT, channels, BLOCK, BLOCK)).astype(np.float32)
    b = rng.integers(-50, 50, size=C_LAT).astype(np.float32)
    nodes = [
        helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["xf"], ["xc"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["xc", "w", "b"], ["acc"], strides=[BLOCK, BLOCK], name="block"),
        helper.make_node("Mul", ["acc", "scale"], ["s"]),
        helper.make_node("Round", ["s"], ["r"]),
        helper.make_node("Clip", ["r", "lo", "hi"], ["code"]),
    ]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b"),
             numpy_helper.from_array(np.float32(2.0 ** -6), "scale"),
             numpy_helper.from_array(np.float32(-127), "lo"), numpy_helper.from_array(np.float32(127), "hi")]
    g = helper.make_graph(nodes, "enc", [helper.make_tensor_value_info("x", TensorProto.UINT8, ["N", "H", "W", channels])],
                          [helper.make_tensor_value_info("code", TensorProto.FLOAT, None)], inits)
    path.write_bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())


def hand_macs(h: int, w: int, channels: int = 3) -> int:
    return (h // BLOCK) * (w // BLOCK) * C_LAT * channels * BLOCK * BLOCK


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bundle") / "rgb-c12"
    d.mkdir()
    block_encoder(d / "encoder.onnx")
    manifest = {"format": "sensorcodec-bundle", "format_version": 1, "name": "rgb-c12", "modality": "image",
                "sample": {"dtype": "uint8", "layout": "HWC", "channels": 3, "rate_hz": None},
                "transform": {"wavelet": "haar", "levels": 3, "dims": 2, "block": [8, 8], "folded": True},
                "latent": {"channels": C_LAT, "code_max": 127, "rounding": "half_to_even"},
                "coder": {"default": "zstd19"}, "files": {}, "macs_per_sample": {"folded": 36.0}}
    (d / "manifest.json").write_text(json.dumps(manifest))
    return d


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    skimage_data = pytest.importorskip("skimage.data")
    img = skimage_data.astronaut()[:504, :496]  # 512x512x3 uint8 photo, cropped to 63x62 blocks
    p = tmp_path_factory.mktemp("img") / "astronaut.npy"
    np.save(p, img)
    return p


def run(capsys, *argv) -> tuple[int, dict | str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    if rc == 0 and "--json" in argv:
        return rc, json.loads(out), err
    return rc, out, err


def assert_labelled(energy: dict) -> None:
    lab = energy["label"]
    assert lab["kind"] in ("measured", "estimated")
    keys = {"source", "rail", "scope", "sample_rate_hz"} if lab["kind"] == "measured" else \
        {"model", "version", "coefficients"}
    assert keys <= set(lab), lab
    for k in ("gross_j_per_frame", "incremental_j_per_frame"):
        assert energy[k] > 0


def test_bundle_json_with_real_photo(capsys, bundle, photo):
    rc, r, err = run(capsys, "--bundle", bundle, "--input", photo, "--shape", "1x504x496x3", "--frames", 5,
                     "--meter", "estimate", "--json")
    assert rc == 0, err
    assert r["macs"]["total"] == hand_macs(504, 496) == 63 * 62 * 12 * 192
    assert r["macs"]["per_op"][0]["name"] == "block" and r["macs"]["by_precision"] == {"fp32": r["macs"]["total"]}
    assert r["macs_per_position"] == 36.0  # = the manifest's macs_per_sample.folded
    assert r["parameters"] == C_LAT * 3 * 64 + C_LAT
    assert r["bytes_in"] == 504 * 496 * 3
    assert r["codes"]["shape"] == [1, C_LAT, 63, 62] and r["codes"]["int8_valued"]
    assert 0 < r["bytes_out"] < r["codes"]["raw_bytes"]  # a photo's codes compress
    assert r["bits"] == 8 * r["bytes_out"]
    assert r["bits_per_position"] == pytest.approx(r["bits"] / (504 * 496))
    assert r["latency_ms"]["p50"] > 0 and r["latency_ms"]["p99"] >= r["latency_ms"]["p50"]
    assert r["frames_per_s"] > 0 and r["input"]["source"] == "file:astronaut.npy"
    assert_labelled(r["energy"])
    assert r["energy"]["label"]["kind"] == "estimated" and r["energy"]["label"]["target"] == "x86_64"


def test_bundle_default_shape_and_text_output(capsys, bundle):
    rc, out, err = run(capsys, "--bundle", bundle, "--frames", 3, "--meter", "estimate:rpi5")
    assert rc == 0, err
    assert f"{hand_macs(512, 768):,}" in out and "1x512x768x3" in out
    assert "ESTIMATED model sensorcodec-energy-linear v1, target rpi5" in out


def test_target_uses_its_default_graph_and_shows_modelled_figures(capsys):
    """--target rpi5 profiles the int8 graph the board runs and prints its modelled latency/energy."""
    rc, out, err = run(capsys, "--model", "rgb-c16", "--frames", 2, "--target", "rpi5")
    assert rc == 0, err
    assert "int8 18,874,368" in out  # all MACs in int8: encoder_int8.onnx, not the fp32 graph
    line = next(ln for ln in out.splitlines() if ln.startswith("on rpi5"))
    assert "ms/frame (modelled)" in line and "mJ/frame" in line and "ESTIMATED" in line
    rc, r, err = run(capsys, "--model", "rgb-c16", "--frames", 2, "--target", "rpi4", "--json")
    assert rc == 0, err
    assert r["model"]["onnx"].endswith("/encoder.onnx") and r["energy"]["label"]["target"] == "rpi4"


def test_target_default_graphs_match_sensor_export():
    """The profiler's per-board graph is the variant sensor-export installs as the board's default."""
    from encoder_runtime.profile.estimate import DEFAULT_GRAPH
    from export.targets import TARGETS, VARIANT_FILES

    for name, graph in DEFAULT_GRAPH.items():
        if name in TARGETS:
            assert VARIANT_FILES[TARGETS[name].default_variant] == graph, name


def test_model_name_resolution_error(capsys):
    rc, out, err = run(capsys, "--model", "no-such-model")
    assert rc == 2 and "no model named 'no-such-model'" in err and len(err.strip().splitlines()) == 1


def test_onnx_measured_on_fake_jetson(capsys, tmp_path):
    p = tmp_path / "enc.onnx"
    block_encoder(p, channels=4)
    dev = tmp_path / "root/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1"
    dev.mkdir(parents=True)
    for f, v in {"name": "ina3221", "in1_label": "VDD_IN", "in1_input": 5000, "curr1_input": 1200,
                 "in2_label": "VDD_SOC", "in2_input": 5000, "curr2_input": 300}.items():
        (dev / f).write_text(f"{v}\n")
    rc, r, err = run(capsys, "--onnx", p, "--shape", "1x64x64x4", "--frames", 5, "--meter", "auto",
                     "--sysfs-root", tmp_path / "root", "--json")
    assert rc == 0, err
    e = r["energy"]
    assert e["label"]["kind"] == "measured" and e["label"]["source"] == "jetson-ina3221-hwmon"
    assert e["label"]["rail"] == "VDD_IN" and e["label"]["scope"] == "module-input"
    assert e["seconds"] >= 2.0 and e["idle_seconds"] >= 2.0
    assert e["idle_w"] == pytest.approx(6.0) and e["gross_j_per_frame"] == pytest.approx(6.0 * e["seconds"] / e["frames"])
    assert abs(e["incremental_j_per_frame"]) < 1e-6 * e["gross_j_per_frame"]  # constant fake power
    assert r["macs"]["total"] == hand_macs(64, 64, 4)
    assert r["bits_per_input_value"] > 0 and "bits_per_position" not in r  # no bundle: layout unknown


def test_auto_without_meter_is_labelled_estimate(capsys, tmp_path):
    p = tmp_path / "enc.onnx"
    block_encoder(p)
    (tmp_path / "root").mkdir()
    rc, r, err = run(capsys, "--onnx", p, "--shape", "2x16x24x3", "--frames", 3, "--sysfs-root", tmp_path / "root",
                     "--json")
    assert rc == 0, err
    assert_labelled(r["energy"])
    assert r["energy"]["label"]["kind"] == "estimated" and "no energy meter found" in r["energy"]["label"]["why_estimated"]
    assert r["macs"]["total"] == 2 * hand_macs(16, 24)


@pytest.mark.parametrize("argv,msg", [
    (["--onnx", "{d}/missing.onnx"], "ONNX file not found"),
    (["--onnx", "{p}", "--shape", "1xAx3"], "bad shape '1xAx3'"),
    (["--onnx", "{p}", "--shape", "1x16x16"], "expected rank 4"),
    (["--onnx", "{p}", "--shape", "1x16x16x5"], "dim 3 is fixed at 3"),
    (["--onnx", "{p}"], "dynamic dims"),
    (["--onnx", "{p}", "--shape", "1x16x16x3", "--meter", "wattmeter"], "unknown meter 'wattmeter'"),
    (["--onnx", "{p}", "--shape", "1x16x16x3", "--meter", "rapl", "--sysfs-root", "{d}"], "no powercap zones"),
    (["--onnx", "{p}", "--shape", "1x16x16x3", "--meter", "estimate:vax"], "unknown target 'vax'"),
    (["--onnx", "{p}", "--shape", "1x16x16x3", "--frames", "0", "--meter", "estimate"], "--frames must be >= 1"),
    (["--onnx", "{p}", "--shape", "1x16x16x3", "--energy-seconds", "0.5"], "--energy-seconds must be >= 2"),
    (["--bundle", "{d}"], "manifest.json not found"),
    (["--onnx", "{d}/garbage.onnx", "--shape", "1x16x16x3"], "not a readable ONNX model"),
])
def test_errors_are_one_line_and_nonzero(capsys, tmp_path, argv, msg):
    p = tmp_path / "enc.onnx"
    block_encoder(p)
    (tmp_path / "garbage.onnx").write_bytes(b"\x0a\xff\xff\xff\xff")
    rc, out, err = run(capsys, *[a.format(d=tmp_path, p=p) for a in argv])
    assert rc == 2 and out == ""
    assert msg in err and err.startswith("sensor-profile: error: ") and len(err.strip().splitlines()) == 1


def test_runs_as_module(tmp_path):
    p = tmp_path / "enc.onnx"
    block_encoder(p)
    res = subprocess.run([sys.executable, "-m", "encoder_runtime.profile.cli", "--onnx", str(p), "--shape",
                          "1x32x32x3", "--frames", "3", "--meter", "estimate:cortex-m4", "--json"],
                         capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[1])
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert r["macs"]["total"] == hand_macs(32, 32) and r["energy"]["label"]["target"] == "cortex-m4"
    bad = subprocess.run([sys.executable, "-m", "encoder_runtime.profile.cli", "--onnx", str(p)],
                         capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[1])
    assert bad.returncode == 2 and "dynamic dims" in bad.stderr
