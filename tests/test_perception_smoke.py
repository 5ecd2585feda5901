"""Smoke test of the machine-perception benchmark (benchmarks/perception.py --quick): it runs end to
end on tiny subsets, writes its JSON, and its numbers are sane (above chance, rates in range, the
codes that the rates are measured on are the per-image codes)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("perception_bench",
                                                  REPO / "benchmarks" / "perception.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_mosaic_roundtrip():
    bench = _bench()
    x = np.arange(1030 * 4 * 3, dtype=np.int64).reshape(1030, 4, 3) % 251
    x = x.astype(np.uint8)
    got = []
    for s, k, mos in bench.mosaics(x):
        assert mos.shape == (bench.MOSAIC * 4, bench.MOSAIC * 3)
        got.append(bench.unmosaic(mos, 4, 3)[:k])
    assert np.array_equal(np.concatenate(got), x)


def test_fashion_quick(tmp_path):
    bench = _bench()
    if not (bench.FMNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("dataset-fashion-mnist not installed (scripts/apt/perception.txt)")
    assert bench.main(["--quick", "--tasks", "fashion", "--no-plot", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "perception.json").read_text())
    rows = {r["method"]: r for r in res["fashion"]["rows"]}
    assert set(rows) == {"clean", "jpeg", "resolution", "ours-decoded", "ours-latents"}
    for r in rows.values():
        assert r["acc"] > 0.5, r                                  # 10 classes: chance is 0.1
    assert 0.05 < rows["ours-decoded"]["bpp"] < 8.0
    assert rows["ours-latents"]["bpp"] == rows["ours-decoded"]["bpp"]
    assert rows["ours-latents"]["input_dims"] < rows["clean"]["input_dims"]
    comp = res["fashion"]["compute"]
    model = rows["ours-latents"]["setting"]
    assert comp[model]["classifier_macs"] < comp["pixels"]["classifier_macs"]
    assert comp[model]["encoder_macs"] > 0


def test_imu_quick(tmp_path):
    bench = _bench()
    if not bench._imu_models(None):
        pytest.skip("no imu6-* bundle installed")
    try:
        from export.data import fetch_basic_motions
        fetch_basic_motions()
    except (Exception, SystemExit) as exc:  # no package index reachable
        pytest.skip(f"BasicMotions not available: {exc}")
    assert bench.main(["--quick", "--tasks", "imu", "--no-plot", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "perception.json").read_text())
    rows = {r["method"]: r for r in res["imu"]["rows"]}
    assert {"raw", "resolution", "bitdepth", "ours-decoded", "ours-latents"} <= set(rows)
    assert rows["raw"]["bits_per_sample"] == 16.0
    assert 0 < rows["ours-decoded"]["bits_per_sample"] < 16
    for r in rows.values():
        assert r["acc"] > 0.4, r                                  # 4 classes: chance is 0.25
