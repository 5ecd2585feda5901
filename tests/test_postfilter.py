"""Decoder-side audio post-filter (spectral noise floor): settings checks, what it changes on real
speech, and that bundles / the CLI turn it on and off."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from encoder_runtime import Decoder, Encoder
from encoder_runtime.bundle import BundleError, list_models, load_bundle
from encoder_runtime.media import read_input
from encoder_runtime.postfilter import N_FFT, apply, parse_postfilter, spectral_floor

SAMPLES = Path(__file__).resolve().parent.parent / "encoder_runtime" / "samples"
FILTERED = [m["name"] for m in list_models() if m["modality"] == "audio"
            and m["sample"]["channels"] == 1
            and "postfilter" in load_bundle(m["name"], verify=False).manifest]


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    x, meta = read_input(SAMPLES / "speech_16k.wav")
    assert meta["rate_hz"] == 16000
    return x[:, 0].astype(np.float64)


def band_db(x: np.ndarray, lo: int, hi: int) -> float:
    """Mean power (dB) of x between lo and hi Hz."""
    f = np.fft.rfftfreq(len(x), 1 / 16000)
    p = np.abs(np.fft.rfft(x)) ** 2
    return 10 * np.log10(p[(f >= lo) & (f < hi)].mean() + 1e-30)


@pytest.mark.parametrize("spec, field", [
    ([], "'postfilter'"), ({"kind": "gate", "floor_db": 30}, "postfilter.kind"),
    ({"kind": "spectral_floor"}, "postfilter.floor_db"),
    ({"kind": "spectral_floor", "floor_db": -3}, "postfilter.floor_db"),
    ({"kind": "spectral_floor", "floor_db": True}, "postfilter.floor_db"),
    ({"kind": "spectral_floor", "floor_db": 30, "seed": 1.5}, "postfilter.seed")])
def test_bad_settings_name_the_field(spec, field):
    with pytest.raises(BundleError, match=field.replace(".", r"\.")):
        parse_postfilter(spec, "m.json")


def test_floor_fills_holes_and_keeps_loud_bins(speech):
    x = speech.copy()
    hole = slice(8000, 16000)                     # 0.5 s of digital silence inside speech
    x[hole] = 0.0
    y = spectral_floor(x, floor_db=35.0, seed=0)
    assert y.shape == x.shape
    assert np.array_equal(y, spectral_floor(x, floor_db=35.0, seed=0))      # deterministic
    assert not np.array_equal(y, spectral_floor(x, floor_db=35.0, seed=1))
    filled = y[hole][N_FFT:-N_FFT]
    level = 10 * np.log10(np.mean(filled ** 2))
    loud = 10 * np.log10(np.mean(speech ** 2))
    assert loud - 55 < level < loud - 20          # a noise floor, well under the speech
    assert band_db(filled, 4000, 7000) > band_db(np.full_like(filled, 1e-3), 4000, 7000) + 40
    # where the signal is above the floor it is left (nearly) alone: < 1 % error energy
    err = np.sum((y - x) ** 2) - np.sum((y[hole] - x[hole]) ** 2)
    assert err < 0.01 * np.sum(speech ** 2)
    assert np.allclose(spectral_floor(x, floor_db=120.0), x, atol=0.05)   # floor far below
    stereo = apply({"kind": "spectral_floor", "floor_db": 35.0, "seed": 0}, np.stack([x, x], 1))
    assert stereo.shape == (len(x), 2) and np.array_equal(stereo[:, 0], y)


@pytest.mark.skipif(not FILTERED, reason="no bundled audio model has a postfilter")
def test_bundle_postfilter_on_and_off(speech, tmp_path):
    name = FILTERED[0]
    x = speech.astype(np.int16)
    blob = Encoder.load(name).encode(x)
    on, off = Decoder.load(name).decode(blob), Decoder.load(name, postfilter=False).decode(blob)
    assert on.dtype == off.dtype == np.int16 and on.shape == off.shape == x.shape
    assert not np.array_equal(on, off) and np.array_equal(on, Decoder.load(name).decode(blob))
    snr = lambda y: 10 * np.log10(np.sum(speech ** 2) / np.sum((y - speech) ** 2))  # noqa: E731
    assert snr(on) > snr(off) - 1.0               # the floor costs (almost) no SNR
    (tmp_path / "s.scd").write_bytes(blob)
    for flag, want in (([], on), (["--no-postfilter"], off)):
        r = subprocess.run([sys.executable, "-m", "encoder_runtime.cli_codec", "decode",
                            str(tmp_path / "s.scd"), "-o", str(tmp_path / "s.wav"), *flag],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert np.array_equal(read_input(tmp_path / "s.wav")[0][:, 0], want)


def test_exported_audio_bundle_carries_the_postfilter(speech, tmp_path, tiny_audio_codec):
    from export.onnx_export import write_bundle
    spec = {"kind": "spectral_floor", "floor_db": 33.0, "seed": 7}
    path = write_bundle(tiny_audio_codec(), tmp_path / "b", "untrained-audio", postfilter=spec,
                        sample_info={"rate_hz": 16000})
    bundle = load_bundle(path)
    assert bundle.manifest["postfilter"] == spec
    x = speech[:8000].astype(np.int16)
    blob = Encoder(bundle).encode(x)
    on, off = Decoder(bundle).decode(blob), Decoder(bundle, postfilter=False).decode(blob)
    assert not np.array_equal(on, off)
    with pytest.raises(BundleError, match="floor_db"):
        write_bundle(tiny_audio_codec(), tmp_path / "c", "bad", postfilter={"kind": "spectral_floor"})
