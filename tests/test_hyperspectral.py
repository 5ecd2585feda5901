"""Hyperspectral cubes: the MUSE data path (FITS reader, binning to 32 bands, 12-bit samples), the
spectral-angle metric, sensor-train on cubes, and the bundled spectral models end to end
(sensor-codec on .npy cubes, the daemon's file source). Uses the two bundled held-out frames
(encoder_runtime/samples/hsi_*.npy), so CI fetches nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from encoder_runtime import Decoder, Encoder
from encoder_runtime.codec import CodecError
from encoder_runtime.daemon.config import ConfigError
from encoder_runtime.daemon.sources import open_source
from encoder_runtime.ladder import ladder
from encoder_runtime.metrics import spectral_angle_deg
from export import hyperspectral_data as hs

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "encoder_runtime" / "samples"
CUBES = sorted(SAMPLES.glob("hsi_*.npy"))
MODELS = [n for n, _ in ladder("hyperspectral")]


def _fits(cards: dict, data: np.ndarray, extname: str) -> bytes:
    """A two-HDU FITS file (empty primary + one image extension) written by hand."""
    def header(items: dict) -> bytes:
        lines = [f"{k:<8}= {v:>20}" if not isinstance(v, str) else f"{k:<8}= '{v}'"
                 for k, v in items.items()] + ["END"]
        text = "".join(f"{ln:<80}" for ln in lines)
        return text.encode("ascii").ljust(-(-len(text) // 2880) * 2880, b" ")
    prim = header({"SIMPLE": "T", "BITPIX": 8, "NAXIS": 0})
    ext = header({"XTENSION": "IMAGE", "BITPIX": -32, "NAXIS": 3, "NAXIS1": data.shape[2],
                  "NAXIS2": data.shape[1], "NAXIS3": data.shape[0], "EXTNAME": extname, **cards})
    raw = data.astype(">f4").tobytes()
    return prim + ext + raw.ljust(-(-len(raw) // 2880) * 2880, b"\0")


def test_fits_reader_and_binning_to_32_band_frames():
    rng = np.random.default_rng(0)
    cube = rng.normal(20.0, 5.0, size=(8 * 70, 3, 4)).astype(np.float32)   # 70 binned bands
    stat = np.ones((2, 2, 2), np.float32)
    blob = _fits({}, cube, "DATA")
    got, cards = hs.read_fits_cube(blob[:2880] + blob[2880:] + _fits({}, stat, "STAT")[2880:])
    assert got.shape == cube.shape and np.array_equal(got, cube.astype(np.float64))
    assert cards["EXTNAME"] == "DATA"
    with pytest.raises(SystemExit, match="EXTNAME=VAR"):
        hs.read_fits_cube(blob, "VAR")
    frames = hs.cube_frames(got)
    assert len(frames) == 3 and all(f.shape == (3, 4, hs.BANDS) and f.dtype == np.uint16
                                    for f in frames)
    binned = got.reshape(70, 8, 3, 4).mean(1)
    want_last = np.clip(np.round(binned[-32:] * hs.SCALE) + hs.OFFSET, 0, 4095).transpose(1, 2, 0)
    assert np.array_equal(frames[-1], want_last)            # last frame ends at the last band
    assert np.allclose(hs.flux(frames[0]), binned[:32].transpose(1, 2, 0), atol=0.5 / hs.SCALE)


def test_spectral_angle():
    a = np.array([[[1.0, 0.0], [3.0, 4.0]]]) + 10
    assert spectral_angle_deg(a, a, offset=10) == 0.0
    assert spectral_angle_deg(a, 2 * (a - 10) + 10, offset=10) == pytest.approx(0.0, abs=1e-6)
    b = np.array([[[0.0, 1.0], [-4.0, 3.0]]]) + 10
    assert spectral_angle_deg(a, b, offset=10) == pytest.approx(90.0)
    assert spectral_angle_deg(np.zeros((2, 3)), np.zeros((2, 3))) == 0.0


def test_bundled_samples_are_held_out_frames():
    """The bundled cubes are held-out frames, byte for byte (manifest sha256), and no training
    frame is in a test split."""
    from encoder_runtime.bundle import sha256_file
    files = json.loads((REPO / "data" / "manifest.json").read_text())["hyperspectral"]["files"]
    want = ["test/abell478_12.npy", "test_udf/udf_00.npy", "test_udf/udf_01.npy"]
    assert [sha256_file(p) for p in CUBES] == [files[f"hyperspectral/{w}"]["sha256"] for w in want]
    train = {f.split("/")[-1] for f in files if "/train/" in f}
    test = {f.split("/")[-1] for f in files if "/test" in f}
    assert len(train) == 10 and len(test) == 6 and not train & test


def test_sensor_train_on_own_cubes(tmp_path):
    """A few real steps on a folder of .npy cubes (the bundled frames), held-out metrics included."""
    from export.train import main
    data = tmp_path / "cubes"
    data.mkdir()
    for p in CUBES:
        (data / p.name).write_bytes(p.read_bytes())
    rc = main(["--modality", "hyperspectral", "--data", str(data), "--latent", "4", "--steps", "3",
               "--batch", "2", "--crop", "16", "--decoder-width", "16", "--decoder-blocks", "1",
               "--device", "cpu", "--out", str(tmp_path / "runs"), "--name", "t"])
    assert rc == 0
    m = json.loads((tmp_path / "runs" / "t" / "bundle" / "manifest.json").read_text())
    assert m["modality"] == "hyperspectral" and m["sample"]["bits"] == 12
    assert m["sample"]["dtype"] == "uint16" and m["sample"]["channels"] == 32
    met = m["model_card"]["metrics"]
    assert met["bits_per_sample"] > 0 and 0 < met["sam_deg_mean"] <= 90 and met["psnr_db"] > 30


def test_sensor_train_rejects_wrong_band_count(tmp_path):
    from export.train import main
    (tmp_path / "a.npy").write_bytes(b"")
    np.save(tmp_path / "a.npy", np.zeros((16, 16, 8), np.uint16))
    np.save(tmp_path / "b.npy", np.zeros((16, 16, 8), np.uint16))
    with pytest.raises(SystemExit, match="expected signals with 32 channels"):
        main(["--modality", "hyperspectral", "--data", str(tmp_path), "--steps", "1"])


needs_models = pytest.mark.skipif(len(MODELS) < 2, reason="needs the bundled hyperspectral models")


@needs_models
@pytest.mark.parametrize("name", MODELS)
def test_bundled_model_round_trip(name):
    cube = np.load(CUBES[0])
    enc, dec = Encoder.load(name), Decoder.load(name)
    blob = enc.encode(cube)
    out = dec.decode(blob)
    assert out.shape == cube.shape and out.dtype == np.uint16 and out.max() <= 4095
    assert 8 * len(blob) / cube.size < 2.0                 # well below 12 bits per sample
    odd = np.ascontiguousarray(cube[:17, :11])             # not a multiple of the 2×2 block
    assert dec.decode(enc.encode(odd)).shape == odd.shape
    with pytest.raises(CodecError, match="12-bit"):
        enc.encode(np.full_like(cube, 4096))


@needs_models
def test_sensor_codec_cli_on_npy_cubes(tmp_path):
    src = tmp_path / "cube.npy"
    src.write_bytes(CUBES[0].read_bytes())

    def codec(*args):
        return subprocess.run([sys.executable, "-m", "encoder_runtime.cli_codec", *args],
                              capture_output=True, text=True, cwd=REPO, timeout=300)
    for q in ("1", "2"):
        p = codec("encode", str(src), "--modality", "hyperspectral", "-q", q, "-o",
                  str(tmp_path / f"c{q}.scd"))
        assert p.returncode == 0, p.stderr
    assert (tmp_path / "c1.scd").stat().st_size < (tmp_path / "c2.scd").stat().st_size
    p = codec("decode", str(tmp_path / "c2.scd"), "-o", str(tmp_path / "back.npy"))
    assert p.returncode == 0, p.stderr
    back = np.load(tmp_path / "back.npy")
    assert back.shape == (40, 40, 32) and back.dtype == np.uint16


@needs_models
def test_daemon_file_source_names_the_modality(tmp_path):
    src = open_source(f"dir:{SAMPLES},kind=npy,modality=hyperspectral")
    frames = [item.array for item in src]
    assert src.modality == "hyperspectral" and len(frames) == 3
    from encoder_runtime.daemon.codecs import resolve_model
    assert resolve_model("default", src.modality) in MODELS
    assert resolve_model("quality:1", src.modality) == MODELS[0]
    with pytest.raises(ConfigError, match="modality= is for .npy frames"):
        open_source(f"file:{SAMPLES / 'Kite.png'},modality=hyperspectral")
