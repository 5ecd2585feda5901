"""ONNX graphs for a trained codec and the runtime bundle that holds them.

The encoder graph is built from the integer parameters (docs/bundle-format.md), so it computes the
deployed arithmetic by construction: raw integer samples (channel-last) → Cast → Conv with
integer-valued float32 weights (every sum < 2**24, hence exact) → Mul by 2**-shift (exact) →
Round (half to even) → Clip → Cast int8. The decoder is traced from torch with dynamic sizes.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from .model import Codec, CodecConfig

OPSET = 17
ONNX_DTYPES = {"uint8": TensorProto.UINT8, "int16": TensorProto.INT16, "int8": TensorProto.INT8,
               "uint16": TensorProto.UINT16, "float32": TensorProto.FLOAT}


def integer_encoder_arrays(codec: Codec) -> dict[str, np.ndarray]:
    """weight int8, bias int32, shift int32 of the deployed encoder."""
    w, b, s = codec.encoder.integer_params()
    return {"weight": w.numpy().astype(np.int8), "bias": b.numpy().astype(np.int32),
            "shift": s.numpy().astype(np.int32)}


def _spatial_names(dims: int) -> list[str]:
    return ["T"] if dims == 1 else ["H", "W", "D"][:dims]


def encoder_graph(cfg: CodecConfig, arrays: dict[str, np.ndarray]) -> onnx.ModelProto:
    """fp32 encoder graph: (N, *spatial, C_in) integer samples → (N, C_lat, *latent) int8 codes."""
    d = cfg.dims
    sp = _spatial_names(d)
    x = helper.make_tensor_value_info("samples", ONNX_DTYPES[cfg.sample_dtype], ["N", *sp, "C"])
    y = helper.make_tensor_value_info("codes", TensorProto.INT8, ["N", cfg.latent_channels]
                                      + [f"{s}_lat" for s in sp])
    w = arrays["weight"].astype(np.float32)
    scale = step_scales(arrays)
    inits = [
        numpy_helper.from_array(interleaved_kernel(w), "weight"),
        numpy_helper.from_array(arrays["bias"].astype(np.float32), "bias"),
        numpy_helper.from_array(scale.reshape((1, -1) + (1,) * d), "step_scale"),
        numpy_helper.from_array(np.array(-cfg.code_max, np.float32), "lo"),
        numpy_helper.from_array(np.array(cfg.code_max, np.float32), "hi"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
    ]
    inits.append(interleave_shape(d))
    nodes = [
        helper.make_node("Cast", ["samples"], ["xf"], to=TensorProto.FLOAT),
        *interleave_nodes("xf", "xc"),
        helper.make_node("Conv", ["xc", "weight", "bias"], ["acc"], **conv_attrs(cfg)),
        *requantize_nodes("acc"),
    ]
    return finish_model(nodes, "sensorcodec_encoder", x, y, inits)


def step_scales(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Per-channel requantization factors 2**-shift (exact in float32)."""
    return np.ldexp(1.0, -arrays["shift"].astype(np.int64)).astype(np.float32)


def interleaved_kernel(w: np.ndarray) -> np.ndarray:
    """(C_lat, C_in, b, .., b) → (C_lat, 1, b, .., b·C_in) for channel-interleaved input.

    The graph reads channel-last samples without a Transpose: (N, S1..Sd, C) is viewed as a
    one-channel signal (N, 1, S1, .., Sd·C), and one block of b samples × C channels along the
    last axis is b·C contiguous values, so a stride-(b, .., b·C) convolution is the block
    transform.
    """
    moved = np.moveaxis(w, 1, -1)                       # (C_lat, b, .., b, C_in)
    return np.ascontiguousarray(moved.reshape(w.shape[:1] + (1,) + w.shape[2:-1]
                                              + (w.shape[-1] * w.shape[1],)))


def conv_attrs(cfg: CodecConfig) -> dict:
    """Kernel/stride of the interleaved block convolution."""
    k = [cfg.block] * (cfg.dims - 1) + [cfg.block * cfg.in_channels]
    return {"kernel_shape": k, "strides": k}


def interleave_shape(dims: int) -> onnx.TensorProto:
    """Reshape target (0 = copy) that folds the channel axis into the last spatial axis."""
    return numpy_helper.from_array(np.array([0] * (dims + 1) + [-1], np.int64), "interleave")


def interleave_nodes(x: str, out: str) -> list[onnx.NodeProto]:
    """(N, S1..Sd, C) → (N, 1, S1, .., Sd·C) without moving data."""
    return [helper.make_node("Unsqueeze", [x, "axis1"], [x + "_u"]),
            helper.make_node("Reshape", [x + "_u", "interleave"], [out])]


def requantize_nodes(acc: str) -> list[onnx.NodeProto]:
    """float accumulator → × 2**-shift → Round (half to even) → Clip → int8 ``codes``."""
    return [helper.make_node("Mul", [acc, "step_scale"], ["scaled"]),
            helper.make_node("Round", ["scaled"], ["rounded"]),
            helper.make_node("Clip", ["rounded", "lo", "hi"], ["clipped"]),
            helper.make_node("Cast", ["clipped"], ["codes"], to=TensorProto.INT8)]


def finish_model(nodes, name: str, x, y, inits) -> onnx.ModelProto:
    """Wrap nodes into a checked single-file model at our opset."""
    graph = helper.make_graph(nodes, name, [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="sensorcodec")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


class _DecoderForExport(torch.nn.Module):
    def __init__(self, codec: Codec) -> None:
        super().__init__()
        self.decoder = codec.decoder

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.decoder(codes)


def decoder_graph(codec: Codec) -> onnx.ModelProto:
    """Decoder traced from torch: (N, C_lat, *latent) float32 codes → (N, C_in, *spatial) float32."""
    cfg = codec.cfg
    sp = _spatial_names(cfg.dims)
    example = torch.zeros((1, cfg.latent_channels) + (4,) * cfg.dims)
    axes = {"codes": {0: "N", **{i + 2: f"{s}_lat" for i, s in enumerate(sp)}},
            "samples": {0: "N", **{i + 2: s for i, s in enumerate(sp)}}}
    buf = io.BytesIO()
    module = _DecoderForExport(codec).eval()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), buf, input_names=["codes"], output_names=["samples"],
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    model = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(model)
    return model


def folded_macs_per_sample(cfg: CodecConfig) -> float:
    """MACs per input sample position of the folded encoder (one block conv)."""
    return cfg.taps * cfg.latent_channels / cfg.block ** cfg.dims


def wpt_projection_macs_per_sample(cfg: CodecConfig) -> float:
    """MACs per sample position of the unfolded graph (Haar WPT as 2-tap stages + projection)."""
    wpt = cfg.in_channels * 2 * cfg.dims * cfg.levels       # each level: 2 taps per axis per output
    n, m = cfg.taps, cfg.latent_channels
    per_block = n * m if cfg.projection == "dense" else (n * n + n * m) / cfg.projection_groups
    return float(wpt + per_block / cfg.block ** cfg.dims)


def _mac_choice(cfg: CodecConfig) -> dict:
    """Both graphs' MAC counts and which one is deployed (the cheaper exact one)."""
    folded, unfolded = folded_macs_per_sample(cfg), wpt_projection_macs_per_sample(cfg)
    if unfolded < folded:  # only the folded integer graph is implemented; say so
        why = "folded (the unfolded graph would be cheaper but is not implemented for export)"
    else:
        why = "folded"
    return {"folded": folded, "wpt_plus_projection": unfolded, "deployed": why}


def sha256_bytes(data: bytes) -> str:
    """Hex sha256."""
    return hashlib.sha256(data).hexdigest()


def file_entry(data: bytes) -> dict:
    """A manifest ``files`` entry: the file's sha256 and size."""
    return {"sha256": sha256_bytes(data), "bytes": len(data)}


def write_manifest(folder: Path, manifest: dict) -> None:
    """Write a bundle's ``manifest.json`` (sorted keys, one-space indent, as every tool writes it)."""
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def add_bundle_files(folder: Path, manifest: dict, files: dict[str, bytes]) -> dict[str, dict]:
    """Write ``files`` into a bundle folder, record each one's entry in ``manifest["files"]`` and
    write the manifest; returns the new entries."""
    entries = {}
    for name, data in files.items():
        (folder / name).write_bytes(data)
        entries[name] = manifest["files"][name] = file_entry(data)
    write_manifest(folder, manifest)
    return entries


def write_bundle(codec: Codec, out_dir: Path, name: str, *, card: dict | None = None,
                 coder: str = "auto", sample_info: dict | None = None,
                 operating_point: dict | None = None, default: bool = False,
                 postfilter: dict | None = None, noise_fill: dict | None = None) -> Path:
    """Write a runtime bundle (manifest + encoder/decoder ONNX + integer params) to ``out_dir``;
    ``postfilter`` / ``noise_fill`` (audio) become the manifest's decoder-side post-filter and
    latent noise-fill fields."""
    cfg = codec.cfg
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    codec = codec.eval()
    arrays = integer_encoder_arrays(codec)
    files: dict[str, bytes] = {
        "encoder.onnx": encoder_graph(cfg, arrays).SerializeToString(),
        "decoder.onnx": decoder_graph(codec).SerializeToString(),
    }
    from .int8_graph import int8_encoder_graph
    files["encoder_int8.onnx"] = int8_encoder_graph(cfg, arrays).SerializeToString()
    npz = io.BytesIO()
    np.savez(npz, **arrays)
    files["encoder_int.npz"] = npz.getvalue()
    for fname, data in files.items():
        (out_dir / fname).write_bytes(data)
    from encoder_runtime.entropy import BUNDLE_CODER, DEFAULT_CODER
    coder_spec = {"default": BUNDLE_CODER if coder == "auto" else coder}
    if coder_spec["default"] != DEFAULT_CODER:
        coder_spec["fallback"] = DEFAULT_CODER
    layout = {1: "TC", 2: "HWC", 3: "DHWC"}[cfg.dims]
    manifest = {
        "format": "sensorcodec-bundle", "format_version": 1, "name": name,
        "modality": cfg.modality,
        "sample": {"dtype": cfg.sample_dtype, "layout": layout, "channels": cfg.in_channels,
                   **({"bits": int(cfg.extra["sample_bits"])} if cfg.extra.get("sample_bits")
                      else {}),
                   **(sample_info or {})},
        "transform": {"wavelet": "haar", "levels": cfg.levels, "dims": cfg.dims,
                      "block": [cfg.block] * cfg.dims, "folded": True, "padding": "edge"},
        "latent": {"channels": cfg.latent_channels, "code_max": cfg.code_max,
                   "rounding": "half_to_even", "weight_max": cfg.weight_max},
        "coder": coder_spec,
        "config": cfg.to_dict(),
        "macs_per_sample": _mac_choice(cfg),
        "files": {f: file_entry(b) for f, b in files.items()},
        "operating_point": operating_point or {},
        "default": default,
        "model_card": card or {},
    }
    if postfilter is not None:
        from encoder_runtime.postfilter import parse_postfilter
        manifest["postfilter"] = parse_postfilter(postfilter, f"{name} postfilter")
    if noise_fill is not None:
        from encoder_runtime.noisefill import parse_noise_fill
        manifest["noise_fill"] = parse_noise_fill(noise_fill, cfg.latent_channels,
                                                  f"{name} noise_fill")
    write_manifest(out_dir, manifest)
    return out_dir
