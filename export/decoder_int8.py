"""Static int8 variant of an image bundle's decoder graph: ``decoder_int8.onnx``.

``python -m export.decoder_int8 [BUNDLE ...]`` (default: the default image model and
``rgb-c12-low``) writes ``decoder_int8.onnx`` next to ``decoder.onnx`` and records its sha256 in
the manifest; ``Decoder(..., variant="int8")`` / ``sensor-codec decode --decoder-variant int8``
run it. Steps:

1. ONNX Runtime's own fusions (level "extended": the erf-GELU becomes one ``Gelu`` node) on the
   fp32 graph, so quantize/dequantize pairs land around whole convolutions, not inside the GELU.
2. ``onnxruntime.quantization.quantize_static``: QDQ format, int8 weights per output channel,
   uint8 activations, ranges from a 99.99-percentile histogram of the activations on the codes of
   the TRAIN-split photos (never the held-out test photos). :data:`KEEP_FP32` convolutions (the
   linear skip path, the first refinement convolution) stay fp32.
3. Mixed precision where the uint8 copies cost PSNR (:func:`refine`): only convolutions read
   uint8 activations; the residual stream (block sums, the attention's inputs, DepthToSpace)
   stays fp32 for every other consumer, so rounding does not accumulate block after block; the
   GELU inputs' ranges start at :data:`GELU_FLOOR` (GELU is ~0 below it: finer steps where it
   is not flat); :data:`FP32_ACTIVATIONS` (the refinement output added to the image) get no
   uint8 copy at all.
4. The int8 weights are not stored: each is ``QuantizeLinear`` of the fp32 weight, referenced as
   ONNX external data at its byte offset inside the bundle's own ``decoder.onnx`` (as are the fp32
   tensors the two graphs share). ONNX Runtime folds the quantization when the session is built
   (the runtime passes the verified ``decoder.onnx`` bytes as that external file), so the file is
   ~0.1 MB instead of ~1.3 MB and runs as fast as the self-contained graph. Its metadata names
   the sha256 of that decoder.onnx; the runtime refuses a pair that does not match.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from encoder_runtime.bundle import default_model, load_bundle
from encoder_runtime.codec import DECODER_FILES, INT8_WEIGHTS_KEY

from .onnx_export import add_bundle_files, sha256_bytes

INT8_FILE, WEIGHTS_FILE = DECODER_FILES["int8"], DECODER_FILES["fp32"]
#: Convolutions left in fp32: the codes → WPT coefficients skip path and the refinement head
#: (inputs are the integer codes), and the three 1×1 convolutions before each DepthToSpace
#: upsampling (~4 % of the MACs; the per-layer sensitivity on train photos put their inputs and
#: outputs among the costliest uint8 copies).
KEEP_FP32 = ("/decoder/linear/Conv", "/decoder/head/Conv", "/decoder/ups.0/ups.0.0/Conv",
             "/decoder/ups.2/ups.2.0/Conv", "/decoder/ups.4/ups.4.0/Conv")
#: Chosen on train photos only (calibrate on half, PSNR on the other half): 99.99 lost the least.
PERCENTILE = 99.99
#: Lower end of every GELU input's uint8 range: |GELU(x)| < 1.6e-5 below it (chosen on train
#: photos: -4.5 lost less than -3 or -2 and than the calibrated ~-7..-33).
GELU_FLOOR = -4.5
#: Activations with no uint8 copy: the refinement output (±100 in pixel units: its uint8 step
#: would be ~0.8 grey level), added in fp32 to the skip path's image, and the head's output (the
#: first convolution after it then reads fp32: the costliest remaining copy on train photos).
FP32_ACTIVATIONS = ("/decoder/tail/Conv_output_0", "/decoder/head/Conv_output_0")
DEFAULT_BUNDLES = ("rgb-c12-low",)


def fused_fp32(decoder: bytes) -> onnx.ModelProto:
    """The fp32 decoder after ONNX Runtime's portable fusions (Gelu, ...), every tensor typed."""
    import onnxruntime as ort
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fused.onnx"
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        opts.optimized_model_filepath = str(path)
        opts.log_severity_level = 3
        ort.InferenceSession(decoder, opts, providers=["CPUExecutionProvider"])
        model = onnx.shape_inference.infer_shapes(onnx.load(path))
    typed = {v.name for v in (*model.graph.value_info, *model.graph.input, *model.graph.output)}
    for node in model.graph.node:       # contrib ops' outputs: the calibrator needs their type
        for out in node.output:
            if out not in typed:
                model.graph.value_info.append(
                    helper.make_tensor_value_info(out, TensorProto.FLOAT, None))
    return model


def quantize(decoder: bytes, calibration: list[np.ndarray],
             keep_fp32: tuple[str, ...] = KEEP_FP32, percentile: float = PERCENTILE) -> onnx.ModelProto:
    """Self-contained QDQ int8 decoder from fp32 ``decoder`` bytes and float32 code arrays."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(calibration)

        def get_next(self):
            x = next(self.items, None)
            return None if x is None else {"codes": np.asarray(x, np.float32)}

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(fused_fp32(decoder), src)
        quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"],
                        nodes_to_exclude=list(keep_fp32),
                        calibrate_method=CalibrationMethod.Percentile,
                        extra_options={"CalibPercentile": percentile,
                                       "CalibMaxIntermediateOutputs": 4})   # bounded memory
        return onnx.load(dst)


def _activation_pairs(model: onnx.ModelProto) -> list[tuple[onnx.NodeProto, onnx.NodeProto]]:
    """(QuantizeLinear, DequantizeLinear) of every quantized activation (not weights, not bias)."""
    g = model.graph
    made_by = {o: n for n in g.node for o in n.output}
    consts = {t.name for t in g.initializer}
    pairs = []
    for dq in g.node:
        q = made_by.get(dq.input[0]) if dq.op_type == "DequantizeLinear" else None
        if q is not None and q.op_type == "QuantizeLinear" and q.input[0] not in consts:
            pairs.append((q, dq))
    return pairs


def _floor_range(inits: dict[str, TensorProto], q: onnx.NodeProto, floor: float) -> None:
    """Raise the lower end of a uint8 activation range (scale, zero point of ``q``) to ``floor``."""
    scale = float(onnx.numpy_helper.to_array(inits[q.input[1]]))
    zero = int(onnx.numpy_helper.to_array(inits[q.input[2]]))
    lo, hi = max(-zero * scale, floor), (255 - zero) * scale
    if lo >= 0 or hi <= 0:
        return
    scale = (hi - lo) / 255
    zero = np.uint8(np.clip(np.round(-lo / scale), 0, 255))
    inits[q.input[1]].CopyFrom(onnx.numpy_helper.from_array(np.float32(scale), q.input[1]))
    inits[q.input[2]].CopyFrom(onnx.numpy_helper.from_array(np.array(zero, np.uint8), q.input[2]))


def refine(model: onnx.ModelProto, gelu_floor: float = GELU_FLOOR,
           fp32_activations: tuple[str, ...] = FP32_ACTIVATIONS) -> onnx.ModelProto:
    """Mixed precision on a QDQ decoder (in place): GELU input ranges from ``gelu_floor``; every
    consumer but a convolution reads the fp32 tensor instead of its uint8 copy, except where the
    tensor is a convolution's output (that convolution then writes uint8: ORT's QLinearConv);
    ``fp32_activations`` lose their copy altogether. Unused Q/DQ nodes and constants are dropped."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    made_by = {o: n for n in g.node for o in n.output}
    for q, dq in _activation_pairs(model):
        src = q.input[0]
        readers = [n for n in g.node if dq.output[0] in n.input]
        if any(n.op_type == "Gelu" for n in readers):
            _floor_range(inits, q, gelu_floor)
        conv_out = src in made_by and made_by[src].op_type == "Conv"
        for n in readers:
            if src in fp32_activations or (n.op_type != "Conv" and not conv_out):
                n.input[:] = [src if i == dq.output[0] else i for i in n.input]
    while True:                                         # drop what no longer has a reader
        read = {i for n in g.node for i in n.input} | {o.name for o in g.output}
        dead = [n for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                and not any(o in read for o in n.output)]
        if not dead:
            break
        for n in dead:
            g.node.remove(n)
    read = {i for n in g.node for i in n.input}
    for t in [t for t in g.initializer if t.name not in read]:
        g.initializer.remove(t)
    return model


def _external(tensor: TensorProto, offset: int, length: int) -> None:
    """Point ``tensor`` at ``length`` bytes at ``offset`` of the bundle's decoder.onnx."""
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    del tensor.external_data[:]
    for k, v in (("location", WEIGHTS_FILE), ("offset", str(offset)), ("length", str(length))):
        entry = tensor.external_data.add()
        entry.key, entry.value = k, v


def share_weights(model: onnx.ModelProto, decoder: bytes) -> int:
    """Replace the int8 weights by ``QuantizeLinear`` of the fp32 ones and point every fp32
    tensor also in ``decoder`` (exact bytes, found once) at it; returns the tensors shared."""
    fp32 = {t.name: t for t in onnx.load_from_string(decoder).graph.initializer}
    g = model.graph
    inits = {t.name: t for t in g.initializer}

    def offset(raw: bytes) -> int:
        return decoder.find(raw) if len(raw) >= 256 and decoder.count(raw) == 1 else -1

    quant_nodes, shared = [], 0
    for node in g.node:
        q = inits.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        zero = inits.get(node.input[2]) if q is not None and len(node.input) > 2 else None
        src = fp32.get(node.input[0].removesuffix("_quantized")) if q is not None else None
        if zero is None or zero.data_type != TensorProto.INT8 or src is None:
            continue                                    # not a per-channel int8 weight
        at = offset(src.raw_data)
        if at < 0:
            continue
        w = TensorProto(name=src.name + "_fp32", data_type=TensorProto.FLOAT, dims=src.dims)
        _external(w, at, len(src.raw_data))
        g.initializer.remove(q)
        g.initializer.append(w)
        axis = {a.name: a.i for a in node.attribute}.get("axis", 1)
        quant_nodes.append(helper.make_node("QuantizeLinear", [w.name, *node.input[1:3]],
                                            [q.name], name=q.name + "/from_fp32", axis=axis))
        shared += 1
    for t in g.initializer:
        if t.data_type == TensorProto.FLOAT and t.raw_data and (at := offset(t.raw_data)) >= 0:
            _external(t, at, len(t.raw_data))
            shared += 1
    for n in reversed(quant_nodes):
        g.node.insert(0, n)
    return shared


def int8_decoder(decoder: bytes, calibration: list[np.ndarray]) -> bytes:
    """``decoder_int8.onnx`` bytes (weights shared with ``decoder``) for one decoder graph."""
    model = refine(quantize(decoder, calibration))
    share_weights(model, decoder)
    model.producer_name = "sensorcodec"
    helper.set_model_props(model, {INT8_WEIGHTS_KEY: sha256_bytes(decoder)})
    model.doc_string = ("int8 QDQ decoder: export/decoder_int8.py; weights = QuantizeLinear of "
                        f"the fp32 tensors in {WEIGHTS_FILE} (external data)")
    return model.SerializeToString()


def calibration_codes(bundle_dir: Path | str, limit: int = 0) -> list[np.ndarray]:
    """The model's codes (float32) of the TRAIN-split photos framed like the test photos."""
    from encoder_runtime import Encoder
    from .data import train_photos_framed_like_test
    enc = Encoder.load(bundle_dir)
    return [enc.codes(img).astype(np.float32) for _, img in train_photos_framed_like_test(limit=limit)]


def write_int8_decoder(bundle_dir: Path | str, calibration: list[np.ndarray] | None = None,
                       make_default: bool = False) -> dict:
    """Write ``decoder_int8.onnx`` into an image bundle and its sha256 into the manifest;
    ``make_default``: also declare it the bundle's default decoder (``decoder.default``)."""
    bundle = load_bundle(bundle_dir)
    if bundle.modality != "image":
        raise ValueError(f"{bundle.path}: int8 decoders are made for image models; this is "
                         f"{bundle.modality!r}")
    if calibration is None:
        calibration = calibration_codes(bundle.path)
    data = int8_decoder(bundle.read_verified(WEIGHTS_FILE), calibration)
    manifest = json.loads(json.dumps(bundle.manifest))
    if make_default:
        manifest["decoder"] = {"default": "int8"}
    return add_bundle_files(bundle.path, manifest, {INT8_FILE: data})[INT8_FILE]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m export.decoder_int8",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("bundles", nargs="*",
                    help="image bundle folders or names (default: the default image model and "
                         + ", ".join(DEFAULT_BUNDLES) + ")")
    ap.add_argument("--make-default", action="store_true",
                    help="also make it the bundles' default decoder (manifest decoder.default; "
                         "for models whose held-out PSNR loss is within 0.05 dB, docs/models.md)")
    args = ap.parse_args(argv)
    names = args.bundles or list(dict.fromkeys([default_model("image"), *DEFAULT_BUNDLES]))
    for name in names:
        entry = write_int8_decoder(name, make_default=args.make_default)
        print(f"{name}: {INT8_FILE} {entry['bytes']} bytes, sha256 {entry['sha256'][:12]}…")
    return 0


if __name__ == "__main__":
    sys.exit(main())
