"""The text-page decoder variant (export/text_variant.py): bundled files, runtime, CLI, receiver."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from encoder_runtime import Decoder, Encoder
from encoder_runtime.bundle import BundleError, default_model, list_model_names, load_bundle
from encoder_runtime.codec import DECODER_FILES, CodecError, _session
from encoder_runtime.media import read_input

SAMPLES = Path(__file__).resolve().parent.parent / "encoder_runtime" / "samples"
TEXT = DECODER_FILES["text"]
TEXT_MODELS = [n for n in list_model_names() if TEXT in load_bundle(n, verify=False).manifest["files"]]
SMALL = "rgb-c12-low"  # the scratch bundles below are copies of this one


def _photo() -> np.ndarray:
    return np.ascontiguousarray(read_input(SAMPLES / "Kite.png")[0][:128, :192])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """A copy of a bundled model whose text variant is its own decoder, fp16-stored."""
    from export.text_variant import write_text_decoder
    b = tmp_path_factory.mktemp("tv") / SMALL
    shutil.copytree(load_bundle(SMALL).path, b)
    (b / TEXT).unlink(missing_ok=True)
    write_text_decoder(b, load_bundle(b).read_verified(DECODER_FILES["fp32"]), {"note": "test"})
    return b


def test_default_image_model_has_a_text_decoder():
    assert default_model("image") in TEXT_MODELS, \
        f"no {TEXT} in {default_model('image')}: python -m export.text_variant MODEL RUN --install RUN"


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_bundled_text_decoder_decodes_the_same_stream(name):
    """Listed with sha256 (load_bundle verifies it), fp16-stored, and another decoder of the same
    codes: same shape, other pixels, and closer to a rendered text page than the generic one."""
    b = load_bundle(name)
    assert b.manifest["files"][TEXT]["bytes"] < 0.6 * b.manifest["files"][DECODER_FILES["fp32"]]["bytes"]
    card = b.manifest["model_card"]["text_decoder"]
    assert {"command", "steps", "val_cer"} <= card.keys() and "--decoder-steps 1.0" in card["command"]
    from benchmarks import doc_perception as dp
    name_, sha = dp.TEST_TEXT
    page = dp.render_page(dp.read_text(name_, sha), "DejaVu Sans", 16, name_).image[:256, :384]
    blob = Encoder.load(name).encode(np.ascontiguousarray(page))
    ref = Decoder.load(name, variant="fp32").decode(blob)
    got = Decoder.load(name, variant="text").decode(blob)
    assert got.shape == ref.shape == page.shape and got.dtype == np.uint8
    err = {k: np.mean((v.astype(float) - page) ** 2) for k, v in (("fp32", ref), ("text", got))}
    assert err["text"] < err["fp32"], err


def test_fp16_storage_halves_the_file_and_keeps_the_output(scratch):
    b = load_bundle(scratch)
    fp32, half = b.read_verified(DECODER_FILES["fp32"]), b.read_verified(TEXT)
    assert len(half) < 0.6 * len(fp32)
    codes = Encoder(b).codes(_photo()).astype(np.float32)
    a = _session(fp32, 1).run(None, {"codes": codes})[0]
    h = _session(half, 1).run(None, {"codes": codes})[0]
    assert 0 < np.abs(a - h).max() < 0.5  # fp16 weights: another graph, sub-level differences
    blob = Encoder(b).encode(_photo())
    diff = Decoder(b, variant="text").decode(blob).astype(int) - Decoder(b, variant="fp32").decode(blob)
    assert np.abs(diff).max() <= 1


def test_text_decoder_is_sha_checked(scratch, tmp_path):
    b = tmp_path / SMALL
    shutil.copytree(scratch, b)
    data = bytearray((b / TEXT).read_bytes())
    data[-1] ^= 1
    (b / TEXT).write_bytes(bytes(data))
    with pytest.raises(BundleError, match="decoder_text.onnx: sha256 .* does not match"):
        load_bundle(b)                                   # checked when the bundle loads
    dec = Decoder(load_bundle(b, verify=False), variant="text")
    blob = Encoder(load_bundle(b, verify=False)).encode(_photo())
    with pytest.raises(BundleError, match="decoder_text.onnx: sha256 .* does not match"):
        dec.decode(blob)                                 # and the bytes the session is built from


def test_missing_text_variant_is_a_clear_error():
    other = next(n for n in list_model_names()
                 if n not in TEXT_MODELS and load_bundle(n, verify=False).modality == "image")
    with pytest.raises(CodecError, match=f"model '{other}' has no text decoder "
                                         r"\(decoder_text.onnx is not in .*manifest.json\).*it has: fp32"):
        Decoder.load(other, variant="text")
    with pytest.raises(CodecError, match=r"unknown decoder variant 'ocr' \(fp32, int8, text\)"):
        Decoder.load(other, variant="ocr")


def test_run_with_another_encoder_is_refused():
    from export.text_variant import check_same_encoder
    with pytest.raises(SystemExit, match="encoder_int.npz sha256 .* differs"):
        check_same_encoder(load_bundle("rgb-c16"), load_bundle("rgb-c16-mid"))


def test_cli_and_receiver_decoder_variant_text(tmp_path):
    """sensor-codec decode --decoder-variant text; sensor-receive's decode_variant = "text" runs it
    where the stream's model has one, else the model's default decoder."""
    from PIL import Image

    from encoder_runtime import container
    from encoder_runtime.daemon.codecs import decoder_for_header
    name = default_model("image")
    src = tmp_path / "kite.png"
    Image.fromarray(_photo()).save(src)
    cli = [sys.executable, "-m", "encoder_runtime.cli_codec"]
    r = subprocess.run([*cli, "encode", src, "-o", tmp_path / "k.scd"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([*cli, "decode", tmp_path / "k.scd", "-o", tmp_path / "t.png",
                        "--decoder-variant", "text"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    blob = (tmp_path / "k.scd").read_bytes()
    assert np.array_equal(read_input(tmp_path / "t.png")[0], Decoder.load(name, variant="text").decode(blob))
    header, _ = container.read_stream(blob)
    assert decoder_for_header(header, 1, "text").variant == "text"
    header, _ = container.read_stream(Encoder.load(SMALL).encode(_photo()))
    assert SMALL not in TEXT_MODELS                                  # the model's default decoder
    assert decoder_for_header(header, 1, "text").variant == Decoder.load(SMALL).variant
