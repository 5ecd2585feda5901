"""sensor-profile on every bundled model: MACs equal the hand count, energy always labelled."""

import json
import subprocess
import sys

import numpy as np
import pytest

from encoder_runtime.bundle import list_model_names, load_bundle

MODELS = list_model_names()


def hand_count(manifest: dict, shape: list[int]) -> int:
    """MACs of the folded block encoder: output positions × channels × taps per output."""
    t, lat = manifest["transform"], manifest["latent"]
    block = t["block"]
    spatial = shape[1:1 + t["dims"]]
    positions = shape[0] * int(np.prod([s // b for s, b in zip(spatial, block)]))
    taps = manifest["sample"]["channels"] * int(np.prod(block))
    return positions * lat["channels"] * taps


@pytest.mark.parametrize("variant", ["encoder.onnx", "encoder_int8.onnx"])
@pytest.mark.parametrize("name", MODELS)
def test_profile_macs_equal_hand_count(name, variant):
    b = load_bundle(name)
    m = b.manifest
    shape = ([1, 64, 96, 3] if m["modality"] == "image"
             else [1, 16, 32, 48, m["sample"]["channels"]] if m["transform"]["dims"] == 3
             else [1, 32, 48, m["sample"]["channels"]] if m["modality"] == "hyperspectral"
             else [1, 1024, m["sample"]["channels"]])
    out = subprocess.run([sys.executable, "-m", "encoder_runtime.profile.cli", "--onnx",
                          str(b.path / variant), "--shape", ",".join(map(str, shape)),
                          "--frames", "3", "--meter", "estimate", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    passes = 2 if (variant == "encoder_int8.onnx" and m["sample"]["dtype"] in ("int16", "uint16")) else 1
    assert rep["macs"]["total"] == passes * hand_count(m, shape)
    energy = json.dumps(rep.get("energy", {}))
    assert '"kind": "estimated"' in energy or '"kind": "measured"' in energy
