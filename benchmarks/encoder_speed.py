"""Encoder speed at one thread on held-out 768×512 photos, entropy coding included.

    python -m benchmarks.encoder_speed                 # full run → benchmarks/results/encoder_speed.{json,png}
    python -m benchmarks.encoder_speed --quick --no-plot --out /tmp/s.json   # smoke run

Rows (all 1 thread, same frames, same process, passes interleaved across rows):

* ``ours/<model>/native``: ``Encoder.encode_frame`` with its default backend (validation, the native
  integer kernel ``encoder_runtime._scencoder``, the bundle's default lossless coder, frame packing)
  for every bundled image model, when the extension is built; ``ours/<model>/<variant>``: the same
  with the ONNX backend, fp32 and int8 graphs; ``graph`` rows time ``Encoder.codes`` only (no
  entropy coding).
* ``ctx-ac/<default model>/<variant>``, ``rans/...``: the same with the native ``ctx-ac`` or
  ``rans`` coder instead of the bundle's default (when the extension is built).
* ``torch/<model>``: the torch integer simulation (``BlockEncoder.codes``, float64) + the same coder.
* ``jpeg-q75`` (Pillow, libjpeg-turbo), ``webp-q75`` (method 4) and ``webp-q75-m0``, ``avif-q75-s10``
  (speed 10, max_threads 1): the classic encoders, the baseline being JPEG q75.
* ``walloc-style``: CDF 9/7 WPT J=3 (``export.wavelets``) + dense 1×1 to 12 channels in torch
  float32, rounded to int8, + our default coder (projection weights are fixed random: speed only).
* decoder MP/s (``Decoder.decode_codes``, ONNX, 1 thread) per image model.

Headline MP/s use the thread's CPU time (the machine is shared; wall-clock swings with other load),
wall-clock MP/s are in the JSON too. Ratios are against JPEG q75 measured in the same passes.
MACs/pixel are counted from the deployed graphs with ``encoder_runtime.profile.count_macs``.

The ``profile`` section explains where an encode's time goes (coder, graph, ORT per-node times)
and times *experimental* graphs with the same integer arithmetic, built in memory only (not
bundled): Conv fed float NCHW, and space-to-depth + MatMul / MatMulInteger formulations, each
checked for bit-exactness against the deployed codes. ``psnr_change`` compares the float model
(same kernel without weight quantization, hard rounding) with the deployed integer model, both
decoded by the bundle's decoder, for every bundle whose training checkpoint is present.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.lossless import machine_info  # noqa: E402
from benchmarks.report import write_results  # noqa: E402
from encoder_runtime import Decoder, Encoder, entropy  # noqa: E402
from encoder_runtime.bundle import default_model, list_model_names, load_bundle  # noqa: E402
from encoder_runtime.media import read_input  # noqa: E402
from encoder_runtime.metrics import psnr_db, snr_db  # noqa: E402
from encoder_runtime.native_encoder import NativeEncoderUnavailable, isa as native_isa  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
BASELINE = "jpeg-q75"


# --------------------------------------------------------------------------------------------
# data and helpers

def held_out_photos(limit: int = 0) -> tuple[list[np.ndarray], str]:
    """768×512 held-out photos: the fetched test split, else the bundled samples."""
    paths: list[Path] = []
    source = "encoder_runtime/samples"
    try:
        from export.data import DEFAULT_CACHE, image_paths
        if (DEFAULT_CACHE / ".derived").exists():
            paths = image_paths("test")
            source = "export.data test split (held out)"
    except ImportError:
        pass
    if not paths:
        paths = sorted((REPO / "encoder_runtime" / "samples").glob("*.png"))
    imgs = [read_input(p)[0] for p in paths]
    imgs = [np.ascontiguousarray(i) for i in imgs if i.ndim == 3 and i.shape[2] == 3]
    return (imgs[:limit] if limit else imgs), source


def image_models() -> list[str]:
    """Bundled image models (generic over whatever is bundled)."""
    return [n for n in list_model_names() if load_bundle(n, verify=False).modality == "image"]


def _pass(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall s, thread CPU s) of one call."""
    w0, c0 = time.perf_counter(), time.thread_time()
    fn()
    return time.perf_counter() - w0, time.thread_time() - c0


def ort_session(model, threads: int = 1, profile_prefix: str | None = None):
    """A CPU session (path or ModelProto), ``threads`` intra-op threads, sequential."""
    import onnxruntime as ort
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    o.log_severity_level = 3
    if profile_prefix:
        o.enable_profiling = True
        o.profile_file_prefix = profile_prefix
    src = str(model) if isinstance(model, (str, Path)) else model.SerializeToString()
    return ort.InferenceSession(src, o, providers=["CPUExecutionProvider"])


def torch_encoder_from_bundle(name: str):
    """export.model.BlockEncoder whose integer parameters are the bundle's (kernel = w·2**-shift)."""
    import torch
    from export.model import BlockEncoder, CodecConfig
    b = load_bundle(name)
    z = np.load(b.file("encoder_int.npz"))
    enc = BlockEncoder(CodecConfig(**b.manifest["config"]))
    w = torch.tensor(z["weight"], dtype=torch.float64)
    s = torch.pow(2.0, -torch.tensor(z["shift"], dtype=torch.float64)).view(-1, *[1] * (w.dim() - 1))
    with torch.no_grad():
        enc.kernel.copy_((w * s).float())
    return enc.eval()


def pillow_encoder(fmt: str, **opts) -> Callable[[np.ndarray], bytes]:
    """Encode an RGB array with Pillow (conversion from numpy included)."""
    from PIL import Image

    def run(img: np.ndarray) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, fmt, **opts)
        return buf.getvalue()
    return run


def walloc_style(coder, channels: int = 12) -> tuple[Callable, Callable]:
    """(full, graph-only) WaLLoC-style encoders: CDF 9/7 WPT J=3 + dense 1×1, torch float32."""
    import torch
    from export.wavelets import wpt_analysis
    g = torch.Generator().manual_seed(0)
    proj = torch.randn(channels, 3 * 64, 1, 1, generator=g) / 8.0

    @torch.no_grad()
    def graph(img: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.asarray(img) if img.flags.writeable else img.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1.0
        y = torch.nn.functional.conv2d(wpt_analysis(x, "bior4.4", 3, 2), proj)
        return torch.round(y * 16.0).clamp(-127, 127).to(torch.int8).numpy()

    return (lambda img: coder.encode(np.ascontiguousarray(graph(img)[0]))), graph


def walloc_macs_per_pixel(channels: int = 12) -> dict:
    """Analytic MACs/pixel of the WaLLoC-style encoder as implemented (filters padded to dec_len)."""
    import pywt
    taps = pywt.Wavelet("bior4.4").dec_len                 # 10 (9/7 zero-padded)
    wpt = 3 * 2 * taps * 3                                  # J levels × 2 axes × taps × 3 colours
    proj = 3 * 64 * channels / 64
    return {"wpt": wpt, "projection": proj, "total": wpt + proj,
            "note": f"separable {taps}-tap analysis per axis per level (each level keeps the sample "
                    "count), dense 1x1 192->12 at 1/64 resolution"}


# --------------------------------------------------------------------------------------------
# timing

def time_rows(rows: dict[str, Callable[[np.ndarray], object]], frames: list[np.ndarray],
              repeats: int, slow_s: float = 3.0) -> dict[str, dict]:
    """Median MP/s per row over ``repeats`` interleaved passes (each pass: every frame once)."""
    mp = sum(f.shape[0] * f.shape[1] for f in frames) / 1e6
    outs = {k: [fn(f) for f in frames] for k, fn in rows.items()}      # warm-up + sizes
    t: dict[str, list[tuple[float, float]]] = {k: [] for k in rows}
    for rnd in range(repeats):
        for k, fn in rows.items():
            if rnd >= 3 and t[k][0][0] > slow_s:
                continue
            t[k].append(_pass(lambda: [fn(f) for f in frames]))
    res = {}
    for k in rows:
        cpu = statistics.median(x[1] for x in t[k])
        wall = statistics.median(x[0] for x in t[k])
        o = outs[k]
        nbytes = sum(len(x) for x in o) if isinstance(o[0], (bytes, bytearray)) else None
        res[k] = {"mps": mp / cpu, "mps_wall": mp / wall, "ms_per_frame": cpu * 1e3 / len(frames),
                  "passes": len(t[k]),
                  "bpp": (nbytes * 8 / (mp * 1e6)) if nbytes is not None else None}
    return res


# --------------------------------------------------------------------------------------------
# MACs

def macs_per_pixel(name: str, h: int = 512, w: int = 768) -> dict:
    """MACs/pixel of the deployed fp32 and int8 encoder graphs (and the decoder), from the graph."""
    from encoder_runtime.profile import count_macs
    b = load_bundle(name)
    out = {}
    for key, fname, shape in (("encoder_fp32", "encoder.onnx", {"samples": [1, h, w, 3]}),
                              ("encoder_int8", "encoder_int8.onnx", {"samples": [1, h, w, 3]}),
                              ("decoder", "decoder.onnx",
                               {"codes": [1, b.latent_channels, h // b.block[0], w // b.block[1]]})):
        if fname not in b.manifest["files"]:
            continue
        r = count_macs(b.file(fname), shape)
        out[key] = {"macs_per_pixel": r.total_macs / (h * w), "by_op_type": r.macs_by_op_type,
                    "by_precision": r.macs_by_precision, "parameters": r.parameters}
    out["manifest_folded"] = b.manifest.get("macs_per_sample", {}).get("folded")
    return out


# --------------------------------------------------------------------------------------------
# profile: where the time goes, and faster exact graphs (experiments, in memory only)

def s2d_graph(name: str, mode: str):
    """Space-to-depth + MatMul encoder graph with the deployed arithmetic (2-D image models).

    ``mode``: "fp32" (Cast → MatMul float), "u8u8" (MatMulInteger, weights + 128 as uint8 with
    zero point 128: exact), "u8s8" (MatMulInteger with int8 weights: fast but on x86 without
    AVX-VNNI MLAS uses saturating 16-bit pair sums, so it is NOT exact).
    """
    from onnx import TensorProto as T
    from onnx import helper, numpy_helper
    b = load_bundle(name)
    z = np.load(b.file("encoder_int.npz"))
    w, bias, shift = z["weight"], z["bias"], z["shift"]
    c, cin, bh, bw = w.shape
    taps = cin * bh * bw
    wm = w.transpose(2, 3, 1, 0).reshape(taps, c)          # rows in (ky, kx, c) = memory order
    cmax = float(b.manifest["latent"]["code_max"])
    init = [numpy_helper.from_array(np.array(v, np.int64), k) for k, v in
            (("i0", [0]), ("i1", [1]), ("i2", [2]), ("bh", [bh]), ("bw", [bw]), ("m1", [-1]),
             ("row", [bw * cin]), ("flat", [-1, taps]))]
    init += [numpy_helper.from_array(np.ldexp(1.0, -shift.astype(np.int64)).astype(np.float32), "sc"),
             numpy_helper.from_array(np.float32(-cmax), "lo"), numpy_helper.from_array(np.float32(cmax), "hi")]
    n = helper.make_node
    nodes = [n("Shape", ["samples"], ["shp"]),
             n("Gather", ["shp", "i0"], ["N"], axis=0), n("Gather", ["shp", "i1"], ["H"], axis=0),
             n("Gather", ["shp", "i2"], ["W"], axis=0),
             n("Div", ["H", "bh"], ["hb"]), n("Div", ["W", "bw"], ["wb"]),
             n("Concat", ["m1", "bh", "wb", "row"], ["s1"], axis=0),
             n("Reshape", ["samples", "s1"], ["r1"]),           # (N·hb, bh, wb, bw·C)
             n("Transpose", ["r1"], ["t1"], perm=[0, 2, 1, 3]),  # (N·hb, wb, bh, bw·C)
             n("Reshape", ["t1", "flat"], ["blocks"])]           # (N·hb·wb, taps) uint8
    if mode == "fp32":
        init += [numpy_helper.from_array(wm.astype(np.float32), "wm"),
                 numpy_helper.from_array(bias.astype(np.float32), "bias")]
        nodes += [n("Cast", ["blocks"], ["bf"], to=T.FLOAT), n("MatMul", ["bf", "wm"], ["a0"]),
                  n("Add", ["a0", "bias"], ["acc"])]
    else:
        wq = (wm.astype(np.int16) + 128).astype(np.uint8) if mode == "u8u8" else wm.astype(np.int8)
        wz = np.uint8(128) if mode == "u8u8" else np.int8(0)
        init += [numpy_helper.from_array(wq, "wm"), numpy_helper.from_array(bias.astype(np.int32), "bias"),
                 numpy_helper.from_array(np.uint8(0), "xz"), numpy_helper.from_array(np.array(wz), "wz")]
        nodes += [n("MatMulInteger", ["blocks", "wm", "xz", "wz"], ["a0"]), n("Add", ["a0", "bias"], ["ai"]),
                  n("Cast", ["ai"], ["acc"], to=T.FLOAT)]
    nodes += [n("Mul", ["acc", "sc"], ["s"]), n("Round", ["s"], ["r"]), n("Clip", ["r", "lo", "hi"], ["cl"]),
              n("Cast", ["cl"], ["q"], to=T.INT8),
              n("Concat", ["N", "hb", "wb", "m1"], ["s3"], axis=0), n("Reshape", ["q", "s3"], ["q4"]),
              n("Transpose", ["q4"], ["codes"], perm=[0, 3, 1, 2])]
    x = helper.make_tensor_value_info("samples", T.UINT8, ["N", "H", "W", cin])
    y = helper.make_tensor_value_info("codes", T.INT8, ["N", c, "H_lat", "W_lat"])
    m = helper.make_model(helper.make_graph(nodes, f"s2d_{mode}", [x], [y], init),
                          opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def nchw_float_graph(name: str):
    """The deployed fp32 graph minus Cast/Transpose: float32 NCHW input."""
    import onnx
    m = onnx.load(str(load_bundle(name).file("encoder.onnx")))
    g = m.graph
    conv = next(nd for nd in g.node if nd.op_type == "Conv")
    keep = [nd for nd in g.node if nd.op_type not in ("Cast", "Transpose") or nd.output[0] == "codes"]
    conv.input[0] = "x_nchw"
    x = onnx.helper.make_tensor_value_info("x_nchw", onnx.TensorProto.FLOAT, ["N", 3, "H", "W"])
    del g.node[:]
    g.node.extend(keep)
    del g.input[:]
    g.input.extend([x])
    return m


def transpose_first_graph(name: str):
    """The deployed fp32 graph with Transpose moved before Cast (transposes uint8, not float32)."""
    import onnx
    m = onnx.load(str(load_bundle(name).file("encoder.onnx")))
    nodes = list(m.graph.node)
    cast, tr = nodes[0], nodes[1]
    assert cast.op_type == "Cast" and tr.op_type == "Transpose", "unexpected deployed graph"
    tr.input[0], tr.output[0], cast.input[0], cast.output[0] = "samples", "xt", "xt", "xc"
    del m.graph.node[:]
    m.graph.node.extend([tr, cast] + nodes[2:])
    return m


def qlinearconv_graph(name: str, weights: str):
    """QLinearConv encoder: uint8 NHWC → Transpose → QLinearConv → uint8 codes + 128.

    Same arithmetic: x_scale = y_scale = 1, per-channel w_scale = 2**-shift, int32 bias; MLAS
    requantizes with a float multiply and round-to-nearest-even. ``weights`` "u8" (w + 128 with
    zero point 128) or "s8". The caller maps the uint8 output to codes: clip(y - 128, ±code_max).
    """
    from onnx import TensorProto as T
    from onnx import helper, numpy_helper
    b = load_bundle(name)
    z = np.load(b.file("encoder_int.npz"))
    w, bias, shift = z["weight"], z["bias"], z["shift"]
    c = w.shape[0]
    if weights == "u8":
        wq, wz = (w.astype(np.int16) + 128).astype(np.uint8), np.full(c, 128, np.uint8)
    else:
        wq, wz = w.astype(np.int8), np.zeros(c, np.int8)
    init = [numpy_helper.from_array(wq, "w"), numpy_helper.from_array(np.float32(1), "xs"),
            numpy_helper.from_array(np.uint8(0), "xz"),
            numpy_helper.from_array(np.ldexp(1.0, -shift.astype(np.int64)).astype(np.float32), "ws"),
            numpy_helper.from_array(wz, "wz"), numpy_helper.from_array(np.float32(1), "ys"),
            numpy_helper.from_array(np.uint8(128), "yz"), numpy_helper.from_array(bias.astype(np.int32), "b")]
    nodes = [helper.make_node("Transpose", ["samples"], ["xt"], perm=[0, 3, 1, 2]),
             helper.make_node("QLinearConv", ["xt", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], ["y"],
                              kernel_shape=list(b.block), strides=list(b.block))]
    x = helper.make_tensor_value_info("samples", T.UINT8, ["N", "H", "W", w.shape[1]])
    y = helper.make_tensor_value_info("y", T.UINT8, ["N", c, "H_lat", "W_lat"])
    m = helper.make_model(helper.make_graph(nodes, f"qlinearconv_{weights}", [x], [y], init),
                          opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def ort_node_times(model, feed: dict, runs: int = 20) -> dict[str, float]:
    """Median per-node kernel time (µs) from ORT's profiler."""
    with tempfile.TemporaryDirectory() as d:
        s = ort_session(model, profile_prefix=str(Path(d) / "p"))
        for _ in range(runs):
            s.run(None, feed)
        trace = json.loads(Path(s.end_profiling()).read_text())
    per: dict[str, list[float]] = {}
    for ev in trace:
        if ev.get("cat") == "Node" and ev["name"].endswith("_kernel_time"):
            key = f"{ev['args'].get('op_name', '?')}:{ev['name'][:-12]}"
            per.setdefault(key, []).append(float(ev["dur"]))
    return {k: statistics.median(v) for k, v in per.items()}


class _QOut:
    """Session wrapper mapping QLinearConv's uint8 output (codes + 128) to int8 codes."""

    def __init__(self, sess, cmax: int) -> None:
        self.sess, self.cmax = sess, cmax

    def run(self, _names, feed):
        y = self.sess.run(None, feed)[0]
        return [np.clip(y.view(np.int8) ^ np.int8(-128), -self.cmax, self.cmax)]


def profile_encoder(name: str, frames: list[np.ndarray], repeats: int) -> dict:
    """Breakdown of one model's encode, plus experimental exact graphs."""
    b = load_bundle(name)
    enc = {v: Encoder(b, variant=v, backend="onnx") for v in ("fp32", "int8")}
    native = Encoder(b, backend="auto")
    img = frames[0]
    batch = img[None]
    ref = enc["fp32"].codes(img)
    coder = enc["fp32"].coder
    flat = np.ascontiguousarray(ref[0])
    xf = np.ascontiguousarray(batch.transpose(0, 3, 1, 2)).astype(np.float32)
    sess_dep = {v: ort_session(b.file(f)) for v, f in (("fp32", "encoder.onnx"), ("int8", "encoder_int8.onnx"))}
    import onnx
    layout_ops = [n.op_type for n in onnx.load(str(b.file("encoder.onnx"))).graph.node]
    experiments: dict = {}
    exp_sess: dict = {}
    exact: dict = {}
    if "Transpose" in layout_ops:  # layout experiments only apply to the old NCHW-transpose graph
        experiments = {"s2d-matmul-fp32": s2d_graph(name, "fp32"), "s2d-matmulinteger-u8u8": s2d_graph(name, "u8u8"),
                       "s2d-matmulinteger-u8s8": s2d_graph(name, "u8s8")}
        experiments["transpose-uint8-then-cast"] = transpose_first_graph(name)
        exp_sess = {k: ort_session(m) for k, m in experiments.items()}
        cmax = int(b.manifest["latent"]["code_max"])
        for wq in ("u8", "s8"):
            experiments[f"qlinearconv-{wq} (+ numpy y-128, clip)"] = qlinearconv_graph(name, wq)
            qs = ort_session(experiments[f"qlinearconv-{wq} (+ numpy y-128, clip)"])
            exp_sess[f"qlinearconv-{wq} (+ numpy y-128, clip)"] = _QOut(qs, cmax)
        nchw = ort_session(nchw_float_graph(name))
        exact = {k: int((s.run(None, {"samples": batch})[0] != ref).sum()) for k, s in exp_sess.items()}
        exact["conv-fed-float-nchw"] = int((nchw.run(None, {"x_nchw": xf})[0] != ref).sum())
    rows: dict[str, Callable] = {
        BASELINE: pillow_encoder("JPEG", quality=75),
        "encode_frame fp32 (deployed)": lambda f: enc["fp32"].encode_frame(f),
        "encode_frame int8 (deployed)": lambda f: enc["int8"].encode_frame(f),
        "graph int8 into encode_frame's reused buffer": lambda f: enc["int8"]._codes_into_buffer(f[None]),
        f"encode_frame {native.backend} (default backend)": lambda f: native.encode_frame(f),
        f"{native.backend} encoder into encode_frame's reused buffer": (
            lambda f: native._codes_into_buffer(f[None])),
        "graph fp32 (deployed, Encoder.codes)": lambda f: enc["fp32"].codes(f),
        "graph int8 (deployed, Encoder.codes)": lambda f: enc["int8"].codes(f),
        "session.run fp32 only": lambda f: sess_dep["fp32"].run(None, {"samples": f[None]}),
        f"coder {coder.name} only": lambda f: coder.encode(flat),
    }
    if "Transpose" in layout_ops:
        rows["conv-fed-float-nchw (graph, input prepared)"] = lambda f: nchw.run(None, {"x_nchw": xf})
        rows["numpy uint8 NHWC -> float32 NCHW"] = (
            lambda f: np.ascontiguousarray(f[None].transpose(0, 3, 1, 2)).astype(np.float32))
    for k, s in exp_sess.items():
        rows[f"{k} (graph)"] = (lambda s: lambda f: s.run(None, {"samples": f[None]}))(s)
    for cname in entropy.available_coders():
        if cname in ("zstd19", "jpegls"):
            continue
        c = entropy.get_coder(cname)
        rows[f"coder {cname} only"] = (lambda c: lambda f: c.encode(flat))(c)
    timing = time_rows(rows, [img] * 4, repeats)
    rates = {}
    for cname in entropy.available_coders():
        if cname == "jpegls":
            continue
        blob = entropy.get_coder(cname).encode(flat)
        rates[cname] = len(blob) * 8 / (img.shape[0] * img.shape[1])
    coder_s = 1 / timing[f"coder {coder.name} only"]["mps"]
    projected = {k: 1 / (1 / timing[f"{k} (graph)"]["mps"] + coder_s) for k in experiments if exact[k] == 0}
    jpeg = timing[BASELINE]["mps"]
    for r in timing.values():
        r["ratio_vs_jpeg_q75_same_passes"] = r["mps"] / jpeg
    projected = {k: {"mps": v, "ratio_vs_jpeg_q75_same_passes": v / jpeg} for k, v in projected.items()}
    nodes = {"fp32 deployed": ort_node_times(b.file("encoder.onnx"), {"samples": batch}),
             "int8 deployed": ort_node_times(b.file("encoder_int8.onnx"), {"samples": batch})}
    if "Transpose" in layout_ops:
        nodes.update({k: ort_node_times(experiments[e], {"samples": batch}) for k, e in (
            ("s2d-matmulinteger-u8u8", "s2d-matmulinteger-u8u8"),
            ("transpose-uint8-then-cast", "transpose-uint8-then-cast"),
            ("qlinearconv-u8", "qlinearconv-u8 (+ numpy y-128, clip)"))})
    return {"model": name, "frame": list(img.shape), "timing_mps": timing,
            "mismatching_codes_vs_deployed": exact, "codes_per_frame": int(ref.size),
            "coder_bpp_on_these_codes": rates,
            "projected_encode_mps_with_default_coder": projected, "projection_coder": coder.name,
            "ort_node_kernel_us_median": nodes}


# --------------------------------------------------------------------------------------------
# PSNR change: float model vs the deployed integer model

def matching_checkpoints(names: list[str]) -> dict[str, Path]:
    """bundle name → training checkpoint whose integer parameters equal the bundle's."""
    from export.train import checkpoints_for_bundles
    return checkpoints_for_bundles(names)


def psnr_change(names: list[str], photos: list[np.ndarray], clips: list[np.ndarray]) -> dict:
    """PSNR (images) / SNR (audio) of the integer model minus that of the float model."""
    import torch
    from export.train import codec_from_checkpoint
    res = {}
    for name, ck in matching_checkpoints(names).items():
        b = load_bundle(name)
        codec, _ = codec_from_checkpoint(ck)
        dec = Decoder(b)
        enc = Encoder(b, variant="int8")
        cm = codec.cfg.code_max
        data = photos if b.modality == "image" else clips
        if not data:
            continue
        per = []
        changed = total = 0
        for a in data:
            x = a[None] if b.modality == "image" else a[None, :, None]
            pad = [(0, 0)] + [(0, (-s) % k) for s, k in zip(x.shape[1:-1], b.block)] + [(0, 0)]
            x = np.pad(x, pad, mode="edge")
            xt = torch.from_numpy(np.moveaxis(x, -1, 1).astype(np.float32))
            codec.encoder.qat = False
            with torch.no_grad():
                yf = torch.round(codec.encoder.analysis(xt)).clamp(-cm, cm).numpy()
            codec.encoder.qat = True
            yi = enc.codes(a).astype(np.float32)
            changed += int((yf != yi).sum())
            total += yi.size
            ref = np.moveaxis(x, -1, 1).astype(np.float64)
            crop = tuple(slice(0, s) for s in ref.shape)
            peak = 255.0 if b.modality == "image" else 32767.0
            outs = []
            for y in (yf, yi):
                r = dec.decode_codes(y.astype(np.float32))[crop].astype(np.float64)
                r = np.clip(np.round(r), 0, 255) if b.modality == "image" else np.clip(np.round(r), -32768, 32767)
                mse = float(((r - ref) ** 2).mean())
                outs.append(psnr_db(mse, peak) if b.modality == "image"
                            else snr_db((ref ** 2).mean(), mse))
            per.append(outs)
        p = np.array(per)
        metric = "psnr_db" if b.modality == "image" else "snr_db"
        res[name] = {"checkpoint": str(ck.relative_to(REPO)), "metric": metric, "frames": len(per),
                     "float_model": float(p[:, 0].mean()), "integer_model": float(p[:, 1].mean()),
                     "change_db": float(p[:, 1].mean() - p[:, 0].mean()),
                     "max_abs_change_per_frame_db": float(np.abs(p[:, 1] - p[:, 0]).max()),
                     "codes_changed_fraction": changed / total}
    return res


# --------------------------------------------------------------------------------------------

def versions() -> dict:
    """Versions of everything timed."""
    import onnxruntime
    import PIL
    from PIL import features
    out = {"onnxruntime": onnxruntime.__version__, "pillow": PIL.__version__}
    for lib in ("libjpeg_turbo", "webp", "avif"):
        try:
            out[lib] = features.version(lib)
        except Exception:  # optional features
            out[lib] = None
    try:
        import torch
        out["torch"] = torch.__version__
        out["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return out


def plot(result: dict, path: Path) -> None:
    """Bars: encoder MP/s (entropy coding included) and graph-only, JPEG q75 as the line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = result["encoders"]
    names = sorted(rows, key=lambda k: rows[k]["mps"])
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(names) + 1.5))
    colors = ["tab:blue" if k.startswith("ours") else "tab:green" if k.startswith(("torch", "walloc"))
              else "tab:gray" for k in names]
    ax.barh(names, [rows[k]["mps"] for k in names], color=colors)
    ax.axvline(rows[BASELINE]["mps"], color="k", ls="--", lw=1, label="JPEG q75 (1.0×)")
    ax.axvline(1.5 * rows[BASELINE]["mps"], color="r", ls=":", lw=1, label="goal 1.5× JPEG q75")
    ax.set_xlabel("MP/s, 1 thread, CPU time (768×512 held-out photos); 'graph' rows exclude entropy coding")
    ax.legend(loc="lower right")
    ax.set_title("Encoder speed (" + result["machine"]["cpu"][:50] + ")", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write JSON (+ PNG)."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.encoder_speed", description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7, help="interleaved passes per row (median)")
    ap.add_argument("--frames", type=int, default=0, help="use the first N photos (default all)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 frames, 3 repeats, default model only")
    ap.add_argument("--no-decoder", action="store_true")
    ap.add_argument("--no-psnr", action="store_true")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS / "encoder_speed.json")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch
    torch.set_num_threads(1)
    repeats = 3 if args.quick else args.repeats
    photos, source = held_out_photos(2 if args.quick else args.frames)
    models = image_models()
    if args.quick:
        models = [default_model("image")]
    info = {**machine_info(), **versions(), "threads": 1, "timer": "thread CPU time (wall in *_wall)"}
    try:
        info["native_encoder_isa"] = native_isa()
    except NativeEncoderUnavailable as exc:
        info["native_encoder_isa"] = f"unavailable: {exc}"
    print(f"{info['cpu']} | {info['cores']} cores | ORT {info['onnxruntime']} | Pillow {info['pillow']} "
          f"| torch {info.get('torch')} | 1 thread | {len(photos)} photos {photos[0].shape} from {source}")

    default_coder = entropy.get_coder(entropy.DEFAULT_CODER)
    rows: dict[str, Callable] = {
        BASELINE: pillow_encoder("JPEG", quality=75),
        "webp-q75": pillow_encoder("WEBP", quality=75),
        "webp-q75-m0": pillow_encoder("WEBP", quality=75, method=0),
    }
    from PIL import features
    if features.check("avif"):
        rows["avif-q75-s10"] = pillow_encoder("AVIF", quality=75, speed=10, max_threads=1)
    w_full, w_graph = walloc_style(default_coder)
    rows["walloc-style (cdf97 J=3 + 1x1->12, torch fp32)"] = w_full
    rows["walloc-style graph"] = w_graph
    for n in models:
        if Encoder.load(n).backend == "native":
            e = Encoder.load(n, backend="native")
            rows[f"ours/{n}/native"] = e.encode_frame
            rows[f"ours/{n}/native graph"] = e.codes
        for v in ("fp32", "int8"):
            e = Encoder.load(n, variant=v, backend="onnx")
            rows[f"ours/{n}/{v}"] = e.encode_frame
            rows[f"ours/{n}/{v} graph"] = e.codes
        te, coder = torch_encoder_from_bundle(n), Encoder.load(n).coder

        def torch_full(img, te=te, coder=coder):
            with torch.no_grad():
                x = torch.from_numpy(img).permute(2, 0, 1)[None].double()
                return coder.encode(te.codes(x)[0].to(torch.int8).numpy())
        rows[f"torch/{n} (int simulation)"] = torch_full
    for native in ("ctx-ac", "rans"):  # the native coders instead of the default one, when built
        if native in entropy.available_coders():
            n = default_model("image")
            for v in ("fp32", "int8"):
                rows[f"{native}/{n}/{v}"] = Encoder.load(n, variant=v, coder=native,
                                                         backend="onnx").encode_frame
            e = Encoder.load(n, coder=native)
            if e.backend == "native":
                rows[f"{native}/{n}/native"] = e.encode_frame
    t0 = time.perf_counter()
    enc = time_rows(rows, photos, repeats, slow_s=5.0)
    base = enc[BASELINE]
    for k, r in enc.items():
        r["ratio_vs_jpeg_q75"] = r["mps"] / base["mps"]
        r["ratio_vs_jpeg_q75_wall"] = r["mps_wall"] / base["mps_wall"]
        r["entropy_coding"] = not k.endswith("graph")
    print(f"timed {len(rows)} rows in {time.perf_counter() - t0:.0f} s")
    for k, r in sorted(enc.items(), key=lambda kv: -kv[1]["mps"]):
        bpp = f"{r['bpp']:.3f} bpp" if r["bpp"] is not None else ""
        print(f"  {k:52s} {r['mps']:8.1f} MP/s  {r['ratio_vs_jpeg_q75']:5.2f}x JPEG  (wall {r['mps_wall']:.1f}) {bpp}")

    result: dict = {"benchmark": "encoder_speed", "command": "python -m benchmarks.encoder_speed",
                    "machine": info, "frames": {"count": len(photos), "shape": list(photos[0].shape),
                                                "source": source}, "repeats": repeats,
                    "baseline": BASELINE, "encoders": enc,
                    "macs_per_pixel": {n: macs_per_pixel(n) for n in models},
                    "walloc_style_macs_per_pixel": walloc_macs_per_pixel()}
    ours = {k: r for k, r in enc.items() if k.startswith("ours/") and r["entropy_coding"]}
    best = max(ours, key=lambda k: ours[k]["mps"])
    result["fastest_rgb_with_entropy"] = {"row": best, "mps": ours[best]["mps"],
                                          "ratio_vs_jpeg_q75": ours[best]["ratio_vs_jpeg_q75"],
                                          "meets_1.0x": ours[best]["ratio_vs_jpeg_q75"] >= 1.0,
                                          "meets_goal_1.5x": ours[best]["ratio_vs_jpeg_q75"] >= 1.5}
    print(f"fastest RGB variant with entropy coding: {best} {ours[best]['ratio_vs_jpeg_q75']:.2f}x JPEG q75")
    dm = default_model("image")
    row = next(f"ours/{dm}/{b}" for b in ("native", "fp32") if f"ours/{dm}/{b}" in enc)
    result["default_encoder"] = {"row": row, "mps": enc[row]["mps"],
                                 "ms_per_frame": enc[row]["ms_per_frame"],
                                 "ratio_vs_jpeg_q75": enc[row]["ratio_vs_jpeg_q75"],
                                 "meets_goal_1.5x": enc[row]["ratio_vs_jpeg_q75"] >= 1.5}
    print(f"default Encoder ({row}): {enc[row]['ratio_vs_jpeg_q75']:.2f}x JPEG q75 end to end")

    if not args.no_decoder:
        drows = {}
        for n in models:
            d = Decoder.load(n, threads=1)
            e = Encoder.load(n)
            codes = {id(p): e.codes(p) for p in photos[:2]}
            drows[f"decoder/{n}"] = (lambda d, codes: lambda p: d.decode_codes(codes[id(p)]))(d, codes)
        dec = time_rows(drows, photos[:2], 3, slow_s=1e9)
        for n in models:
            dec[f"decoder/{n}"]["macs_per_pixel"] = result["macs_per_pixel"][n].get("decoder", {}).get("macs_per_pixel")
        result["decoders"] = dec
        for k, r in dec.items():
            print(f"  {k:52s} {r['mps']:8.2f} MP/s decode")

    prof_model = default_model("image") if default_model("image") in models else best.split("/")[1]
    result["profile"] = profile_encoder(prof_model, photos, repeats)
    p = result["profile"]
    print(f"profile ({prof_model}):")
    for k, r in p["timing_mps"].items():
        print(f"  {k:52s} {r['mps']:8.1f} MP/s  {r['ratio_vs_jpeg_q75_same_passes']:5.2f}x JPEG")
    print(f"  mismatching codes vs deployed: {p['mismatching_codes_vs_deployed']} of {p['codes_per_frame']}")
    if p["projected_encode_mps_with_default_coder"]:  # graph experiments, if any are exact
        print(f"  projected encode MP/s with {p['projection_coder']}: "
              + ", ".join(f"{k} {v['mps']:.0f} ({v['ratio_vs_jpeg_q75_same_passes']:.2f}x JPEG)" for k, v in
                          p["projected_encode_mps_with_default_coder"].items()))
    if not args.no_psnr and not args.quick:
        clips = []
        for f in sorted((REPO / "encoder_runtime" / "samples").glob("*.wav")):
            a, _ = read_input(f)
            clips.append(a if a.ndim == 1 else a[:, 0])
        result["psnr_change"] = psnr_change(list_model_names(), photos, clips)
        if not result["psnr_change"] and args.out.exists():   # no training checkpoints here
            prev = json.loads(args.out.read_text()).get("psnr_change")
            if prev:
                result["psnr_change"] = prev
                result["psnr_change_source"] = (f"kept from the previous {args.out.name}: no "
                                                "matching training checkpoints on this machine")
                print(result["psnr_change_source"])
        for n, r in result["psnr_change"].items():
            print(f"  {n}: float {r['float_model']:.3f} dB, integer {r['integer_model']:.3f} dB, "
                  f"change {r['change_db']:+.4f} dB ({r['metric']}, {r['frames']} frames)")
    write_results(result, args.out, None if args.no_plot else plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
