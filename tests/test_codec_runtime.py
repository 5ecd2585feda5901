"""encoder_runtime: bundled models round-trip real data; the CLI's errors are one clear line."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from encoder_runtime import Decoder, Encoder, container
from encoder_runtime.bundle import default_model, list_model_names, load_bundle
from encoder_runtime.media import read_input

SAMPLES = Path(__file__).resolve().parent.parent / "encoder_runtime" / "samples"
MODELS = list_model_names()
IMAGE_MODELS = [n for n in MODELS if load_bundle(n, verify=False).modality == "image"]
AUDIO_MODELS = [n for n in MODELS if load_bundle(n, verify=False).modality == "audio"
                and load_bundle(n, verify=False).channels == 1]  # stereo: test_multichannel_audio.py


def cli(*args, check=False):
    return subprocess.run([sys.executable, "-m", "encoder_runtime.cli_codec", *map(str, args)],
                          capture_output=True, text=True)


def psnr(a, b):
    return 10 * np.log10(255 ** 2 / ((a.astype(float) - b.astype(float)) ** 2).mean())


def test_bundled_models_exist_and_fit_budget():
    assert len(IMAGE_MODELS) >= 4 and AUDIO_MODELS
    total = sum(p.stat().st_size for n in MODELS for p in load_bundle(n).path.iterdir())
    assert total <= 50e6  # 40 MB + issue 11's models (volume, video, hyperspectral, stereo: 7.7 MB)
    assert load_bundle(default_model("image")).manifest["macs_per_sample"]["folded"] <= 50


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_image_roundtrip_real_photo(name):
    img, _ = read_input(SAMPLES / "Kite.png")
    enc, dec = Encoder.load(name), Decoder.load(name)
    blob = enc.encode(img)
    out = Decoder.for_stream(blob).decode(blob)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert psnr(img, out) > 27
    assert np.array_equal(dec.decode(blob), out)


@pytest.mark.parametrize("shape", [(8, 8, 3), (13, 21, 3), (77, 130), (300, 451, 3)])
def test_any_image_size_pads_and_crops(shape):
    from skimage import data
    img = data.chelsea()[: shape[0], : shape[1]]
    if len(shape) == 2:
        img = img[:, :, 0]
    name = default_model("image")
    out = Decoder.load(name).decode(Encoder.load(name).encode(np.ascontiguousarray(img)))
    assert out.shape == img.shape


@pytest.mark.parametrize("name", AUDIO_MODELS)
def test_audio_roundtrip_real_speech(name):
    x, meta = read_input(SAMPLES / "speech_16k.wav")
    assert meta["rate_hz"] == 16000
    enc, dec = Encoder.load(name), Decoder.load(name)
    out = dec.decode(enc.encode(x))
    assert out.shape == x.shape and out.dtype == np.int16
    err = ((x.astype(float) - out) ** 2).sum()
    assert 10 * np.log10((x.astype(float) ** 2).sum() / err) > 5
    stereo = np.stack([x[:, 0], x[::-1, 0]], axis=1)
    assert dec.decode(enc.encode(stereo)).shape == stereo.shape
    f = (x[:, 0] / 32768.0).astype(np.float32)
    assert dec.decode(enc.encode(f)).dtype == np.float32


def test_encoder_is_local_tile_equals_crop():
    img, _ = read_input(SAMPLES / "ColdRipple.png")
    enc = Encoder.load(default_model("image"))
    full = enc.codes(img)
    tile = enc.codes(img[128:256, 64:320])
    assert np.array_equal(tile, full[:, :, 16:32, 8:40])


def test_stream_is_self_describing():
    img, _ = read_input(SAMPLES / "Kite.png")
    name = default_model("image")
    header, records = container.read_stream(Encoder.load(name).encode(img))
    assert header["bundle"]["name"] == name and header["coder"]
    assert header["transform"]["block"] == [8, 8] and header["latent"]["channels"] > 0
    assert [r.type for r in records] == [container.RecordType.FRAME]


def test_cli_encode_decode_info_models(tmp_path):
    out = tmp_path / "kite.scd"
    r = cli("encode", SAMPLES / "Kite.png", "-o", out)
    assert r.returncode == 0, r.stderr
    stats = json.loads(r.stdout)
    assert 0 < stats["bpp"] < 2
    r = cli("decode", out, "-o", tmp_path / "kite.png")
    assert r.returncode == 0, r.stderr
    r = cli("info", out, "--json")
    info = json.loads(r.stdout)
    assert info["records"][0]["seq"] == 0 and info["records"][0]["type"] == "FRAME"
    assert info["header"]["bundle"]["name"] and info["header"]["clock"]["wall_ns"] > 0
    r = cli("models", "--json")
    assert {m["name"] for m in json.loads(r.stdout)} == set(MODELS)
    r = cli("encode", SAMPLES / "speech_16k.wav", "-o", tmp_path / "s.scd")
    assert r.returncode == 0, r.stderr
    r = cli("decode", tmp_path / "s.scd", "-o", tmp_path / "s.wav")
    assert r.returncode == 0 and read_input(tmp_path / "s.wav")[1]["rate_hz"] == 16000


def _assert_clean_error(r, *words):
    assert r.returncode != 0
    assert "Traceback" not in r.stderr, r.stderr
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1 and line.startswith("sensor-codec: error:"), line
    for w in words:
        assert w in line, line


def test_cli_bad_inputs_give_one_line_errors(tmp_path):
    good = tmp_path / "k.scd"
    assert cli("encode", SAMPLES / "Kite.png", "-o", good).returncode == 0
    blob = good.read_bytes()
    (tmp_path / "trunc.scd").write_bytes(blob[: len(blob) // 2])
    _assert_clean_error(cli("decode", tmp_path / "trunc.scd", "-o", tmp_path / "x.png"), "truncated")
    bad = bytearray(blob)
    bad[len(bad) // 2] ^= 0xFF
    (tmp_path / "crc.scd").write_bytes(bytes(bad))
    _assert_clean_error(cli("decode", tmp_path / "crc.scd", "-o", tmp_path / "x.png"), "CRC")
    (tmp_path / "junk.scd").write_bytes(b"hello world, not a stream")
    _assert_clean_error(cli("info", tmp_path / "junk.scd"), "magic")
    _assert_clean_error(cli("encode", SAMPLES / "Kite.png", "-o", tmp_path / "a.scd",
                            "--model", AUDIO_MODELS[0]), "audio")
    (tmp_path / "doc.txt").write_text("text")
    _assert_clean_error(cli("encode", tmp_path / "doc.txt", "-o", tmp_path / "b.scd"), "unsupported")
    from PIL import Image
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(tmp_path / "tiny.png")
    _assert_clean_error(cli("encode", tmp_path / "tiny.png", "-o", tmp_path / "c.scd"), "too small")
    _assert_clean_error(cli("encode", SAMPLES / "Kite.png", "-o", tmp_path / "d.scd",
                            "--model", "no-such-model"), "not found")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nxxxx")
    _assert_clean_error(cli("encode", tmp_path / "broken.png", "-o", tmp_path / "e.scd"), "broken.png")
