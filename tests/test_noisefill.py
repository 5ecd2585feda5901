"""Decoder-side latent noise fill (zero codes → seeded uniform noise before the decoder graph):
settings checks, what it changes, and that exported bundles turn it on and off."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from encoder_runtime import Decoder, Encoder
from encoder_runtime.bundle import BundleError, load_bundle
from encoder_runtime.media import read_input
from encoder_runtime.noisefill import apply, fill_zeros, parse_noise_fill

SAMPLES = Path(__file__).resolve().parent.parent / "encoder_runtime" / "samples"


@pytest.mark.parametrize("spec, field", [
    ([], "'noise_fill'"), ({"kind": "gauss", "width": 0.5}, "noise_fill.kind"),
    ({"kind": "uniform_zero"}, "noise_fill.width"),
    ({"kind": "uniform_zero", "width": 1.5}, "noise_fill.width"),
    ({"kind": "uniform_zero", "width": True}, "noise_fill.width"),
    ({"kind": "uniform_zero", "width": [0.5, 0.5]}, "list of 3"),
    ({"kind": "uniform_zero", "width": 0.5, "seed": -1}, "noise_fill.seed")])
def test_bad_settings_name_the_field(spec, field):
    with pytest.raises(BundleError, match=field.replace(".", r"\.")):
        parse_noise_fill(spec, 3, "m.json")


def test_fill_touches_only_zero_codes_within_their_width():
    rng = np.random.default_rng(1)
    codes = rng.integers(-2, 3, size=(2, 3, 500)).astype(np.int8)
    spec = parse_noise_fill({"kind": "uniform_zero", "width": [1.0, 0.25, 0.0], "seed": 4}, 3)
    assert spec["width"] == [1.0, 0.25, 0.0]
    y = apply(spec, codes)
    assert y.dtype == np.float32 and y.shape == codes.shape
    assert np.array_equal(y, apply(spec, codes))                      # deterministic
    assert not np.array_equal(y, fill_zeros(codes, spec["width"], seed=5))
    nz = codes != 0
    assert np.array_equal(y[nz], codes[nz].astype(np.float32))        # non-zero codes kept
    for c, w in enumerate(spec["width"]):
        z = y[:, c][codes[:, c] == 0]
        assert np.all(np.abs(z) <= w / 2) and (w == 0 or z.std() > 0.2 * w)
    assert apply(None, codes) is codes
    with pytest.raises(ValueError, match="C = 2"):
        fill_zeros(codes, [1.0, 1.0])


def test_exported_audio_bundle_carries_the_noise_fill(tmp_path, tiny_audio_codec):
    torch = pytest.importorskip("torch")
    from export.onnx_export import write_bundle
    from export.train import fill_zero_codes
    spec = {"kind": "uniform_zero", "width": 0.8, "seed": 3}
    path = write_bundle(tiny_audio_codec(), tmp_path / "b", "untrained-audio", noise_fill=spec,
                        sample_info={"rate_hz": 16000})
    bundle = load_bundle(path)
    assert bundle.manifest["noise_fill"] == {**spec, "width": [0.8] * 4}
    x = read_input(SAMPLES / "speech_16k.wav")[0][:8000, 0]
    blob = Encoder(bundle).encode(x)
    codes = Decoder(bundle).codes(blob)
    assert (codes == 0).any()
    on, off = Decoder(bundle).decode(blob), Decoder(bundle, noise_fill=False).decode(blob)
    assert not np.array_equal(on, off) and np.array_equal(on, Decoder(bundle).decode(blob))
    assert np.array_equal(off, Decoder(bundle, postfilter=False).decode(blob))  # one off switch
    t = torch.tensor(codes, dtype=torch.float32)
    filled = fill_zero_codes(t, 0.8)
    assert torch.equal(filled[t != 0], t[t != 0]) and filled[t == 0].abs().max() <= 0.4
    with pytest.raises(BundleError, match="noise_fill.width"):
        write_bundle(tiny_audio_codec(), tmp_path / "c", "bad", noise_fill={"kind": "uniform_zero"})
