"""The static-int8 decoder variant (export/decoder_int8.py): bundled files, runtime, CLI, export."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from encoder_runtime import Decoder, Encoder
from encoder_runtime.bundle import default_model, list_model_names, load_bundle
from encoder_runtime.codec import DECODER_FILES, CodecError, _session
from encoder_runtime.media import read_input
from encoder_runtime.metrics import psnr_db

SAMPLES = Path(__file__).resolve().parent.parent / "encoder_runtime" / "samples"
INT8_MODELS = [n for n in list_model_names()
               if DECODER_FILES["int8"] in load_bundle(n, verify=False).manifest["files"]]


def _photo() -> np.ndarray:
    return np.ascontiguousarray(read_input(SAMPLES / "Kite.png")[0][:128, :192])


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return psnr_db(np.mean((a.astype(np.float64) - b) ** 2))


def test_default_image_model_has_an_int8_decoder():
    missing = {default_model("image"), "rgb-c12-low"} - set(INT8_MODELS)
    assert not missing, f"no decoder_int8.onnx in {missing}: python -m export.decoder_int8 {' '.join(missing)}"


def test_bundles_declaring_int8_decode_with_it_by_default():
    """decoder.default = "int8" (held-out loss within 0.05 dB, docs/models.md); fp32 stays selectable."""
    name = default_model("image")
    assert load_bundle(name).manifest.get("decoder") == {"default": "int8"}
    assert Decoder.load(name).variant == "int8"
    assert Decoder.load(name, variant="fp32").variant == "fp32"
    other = next(n for n in list_model_names() if n not in INT8_MODELS)
    assert Decoder.load(other).variant == "fp32"                    # no field: fp32
    blob = Encoder.load(name).encode(_photo())
    assert np.array_equal(Decoder.load(name).decode(blob),
                          Decoder.load(name, variant="int8").decode(blob))


def test_default_int8_decoder_stays_within_a_tenth_of_a_db_on_the_samples():
    """Full-size bundled photos (768×512): the int8 decoder loses ~0.05 dB (0.15 before the mixed
    precision of export/decoder_int8.refine), well under 0.1 dB."""
    name = default_model("image")
    imgs = [read_input(p)[0] for p in sorted(SAMPLES.glob("*.png"))]
    enc, dec = Encoder.load(name), {v: Decoder.load(name, variant=v) for v in ("fp32", "int8")}
    loss = [_psnr(dec["fp32"].decode(b), i) - _psnr(dec["int8"].decode(b), i)
            for i, b in ((i, enc.encode(i)) for i in imgs)]
    assert len(imgs) >= 3 and float(np.mean(loss)) < 0.1, loss


@pytest.mark.parametrize("field, message", [
    ({"default": "fp16"}, r"manifest.json: field 'decoder.default': expected one of 'fp32', 'int8'.*got 'fp16'"),
    ("int8", r"manifest.json: field 'decoder': expected an object such as \{\"default\": \"int8\"\}"),
    (None, r"manifest.json: field 'decoder.default' is 'int8' but decoder_int8.onnx is not in 'files'"),
])
def test_bad_decoder_default_names_the_field(tmp_path, field, message):
    import json
    import shutil
    from encoder_runtime.bundle import BundleError
    b = tmp_path / "m"
    shutil.copytree(load_bundle("rgb-c12-low").path, b)
    m = json.loads((b / "manifest.json").read_text())
    if field is None:
        del m["files"][DECODER_FILES["int8"]]
    else:
        m["decoder"] = field
    (b / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match=message):
        Decoder.load(b)


@pytest.mark.parametrize("name", INT8_MODELS)
def test_int8_decoder_is_compact_and_close_to_fp32(name):
    b = load_bundle(name)
    data = b.read_verified(DECODER_FILES["int8"])
    assert len(data) < 200_000          # the weights live in decoder.onnx (external data)
    external = [t for t in onnx.load_from_string(data).graph.initializer
                if t.data_location == onnx.TensorProto.EXTERNAL]
    assert len(external) >= 20 and all(t.external_data[0].value == DECODER_FILES["fp32"]
                                       for t in external)
    with pytest.raises(Exception):      # without decoder.onnx's bytes the graph cannot load
        _session(data, 1)
    img = _photo()
    blob = Encoder.load(name).encode(img)
    ref = Decoder.load(name, variant="fp32").decode(blob)
    got = Decoder.load(name, variant="int8").decode(blob)
    assert got.shape == img.shape and got.dtype == np.uint8
    assert not np.array_equal(got, ref)                              # another graph ran
    assert abs(_psnr(got, img) - _psnr(ref, img)) < 0.3              # and it is close


def test_variant_errors_name_the_problem():
    with pytest.raises(CodecError, match="unknown decoder variant 'fp16'"):
        Decoder.load(INT8_MODELS[0], variant="fp16")
    other = next(n for n in list_model_names() if n not in INT8_MODELS)
    with pytest.raises(CodecError, match=f"model '{other}' has no int8 decoder.*it has: fp32"):
        Decoder.load(other, variant="int8")


def test_cli_decoder_variant(tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "encoder_runtime.cli_codec", *map(str, args)],
                              capture_output=True, text=True)
    src = tmp_path / "kite.png"
    from PIL import Image
    Image.fromarray(_photo()).save(src)
    assert cli("encode", src, "-o", tmp_path / "k.scd").returncode == 0
    outs = {}
    for v in ("fp32", "int8"):
        r = cli("decode", tmp_path / "k.scd", "-o", tmp_path / f"{v}.png", "--decoder-variant", v)
        assert r.returncode == 0, r.stderr
        outs[v] = read_input(tmp_path / f"{v}.png")[0]
    assert not np.array_equal(outs["fp32"], outs["int8"])
    assert np.array_equal(outs["int8"], Decoder.load(default_model("image"), variant="int8")
                          .decode((tmp_path / "k.scd").read_bytes()))
    assert cli("decode", tmp_path / "k.scd", "-o", tmp_path / "d.png").returncode == 0
    assert np.array_equal(read_input(tmp_path / "d.png")[0], outs["int8"])    # the model's default


def test_export_shares_weights_without_changing_the_graph():
    """quantize → refine → share_weights gives the same outputs as the self-contained QDQ graph."""
    import onnxruntime as ort
    from export import decoder_int8 as d8
    name = "rgb-c12-low"
    fp32 = load_bundle(name).read_verified(DECODER_FILES["fp32"])
    codes = Encoder.load(name).codes(_photo()).astype(np.float32)
    model = d8.refine(d8.quantize(fp32, [codes]))
    whole = model.SerializeToString()
    assert d8.share_weights(model, fp32) >= 20
    shared = model.SerializeToString()
    assert len(shared) < len(whole) / 5
    a = ort.InferenceSession(whole, providers=["CPUExecutionProvider"]).run(None, {"codes": codes})[0]
    b = _session(shared, 1, external={DECODER_FILES["fp32"]: fp32}).run(None, {"codes": codes})[0]
    assert np.array_equal(a, b)
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Gelu"} <= ops
    kept = [n for n in model.graph.node if n.name in d8.KEEP_FP32]
    assert len(kept) == len(d8.KEEP_FP32) and all(n.op_type == "Conv" for n in kept)
    # mixed precision (refine): only convolutions read uint8 copies, except of a conv's output
    made_by = {o: n for n in model.graph.node for o in n.output}
    for n in model.graph.node:
        for i in n.input:
            dq = made_by.get(i)
            if n.op_type not in ("Conv", "QuantizeLinear") and dq is not None \
                    and dq.op_type == "DequantizeLinear" and dq.input[0] in made_by:
                src = made_by[made_by[dq.input[0]].input[0]]
                assert src.op_type == "Conv", f"{n.name} reads a uint8 copy of {src.name}"
    quantized = {made_by[i].input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"
                 for i in n.input[:1] if i in made_by}
    assert not quantized & set(d8.FP32_ACTIVATIONS)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer
             if t.data_location != onnx.TensorProto.EXTERNAL}
    gelu_in = [made_by[made_by[n.input[0]].input[0]] for n in model.graph.node if n.op_type == "Gelu"]
    assert gelu_in and all(-(float(inits[q.input[2]]) - 0.5) * inits[q.input[1]] >= d8.GELU_FLOOR
                           for q in gelu_in)                         # within half a step


def test_int8_decoder_made_for_another_decoder_onnx_is_refused(tmp_path):
    import hashlib
    import json
    import shutil
    from encoder_runtime.bundle import BundleError
    from encoder_runtime.codec import INT8_WEIGHTS_KEY
    name = INT8_MODELS[0]
    b = tmp_path / name
    shutil.copytree(load_bundle(name).path, b)
    model = onnx.load(b / DECODER_FILES["int8"])
    onnx.helper.set_model_props(model, {INT8_WEIGHTS_KEY: "0" * 64})
    data = model.SerializeToString()
    (b / DECODER_FILES["int8"]).write_bytes(data)
    m = json.loads((b / "manifest.json").read_text())
    m["files"][DECODER_FILES["int8"]] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (b / "manifest.json").write_text(json.dumps(m))
    dec = Decoder.load(b, variant="int8")
    with pytest.raises(BundleError, match="remake it: python -m export.decoder_int8"):
        dec.decode(Encoder.load(b).encode(_photo()))


def test_receiver_decode_variant_falls_back_to_fp32():
    """sensor-receive's decode_variant = "int8": the int8 graph where the model has one, else fp32."""
    from encoder_runtime import container
    from encoder_runtime.daemon.codecs import decoder_for_header
    from encoder_runtime.daemon.config import ReceiveConfig
    other = next(n for n in list_model_names()
                 if n not in INT8_MODELS and load_bundle(n, verify=False).modality == "image")
    for name, want in ((INT8_MODELS[0], "int8"), (other, "fp32")):
        header, _ = container.read_stream(Encoder.load(name).encode(_photo()))
        assert decoder_for_header(header, 2, "int8").variant == want
        assert decoder_for_header(header, 2, "fp32").variant == "fp32"
        assert decoder_for_header(header, 2).variant == want         # "model": the manifest's
    assert ReceiveConfig().decode_variant == "model"
