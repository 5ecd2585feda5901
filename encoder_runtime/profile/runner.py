"""Profile one encoder graph: MACs, parameters, bytes in/out, bits, latency, frames/s and joules.

:func:`profile` is what ``sensor-profile`` prints.  The target is an ONNX file or a model bundle
(docs/bundle-format.md); a model NAME resolves to ``encoder_runtime/models/NAME``.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import Sequence

import numpy as np

from .energy import Meter, measure_energy
from .estimate import host_target
from .macs import ShapeError, _numpy_dtype, count_macs, resolve_input_shapes
from .meters import EstimateMeter, open_meter
from .onnx_graph import load_graph

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
# default frame shapes (channel-last, batch 1) when a bundle's encoder has dynamic dims
DEFAULT_FRAMES = {"image": (512, 768), "audio": (48000,), "timeseries": (1024,), "volume": (64, 64, 64),
                  "video": (16, 288, 384)}  # video: 16 frames (T, H, W)


class BundleError(ValueError):
    """A bundle folder or its manifest is missing or malformed."""


@dataclass
class Target:
    """What to profile: the ONNX file, and the bundle manifest if it came from one."""

    onnx_path: Path
    manifest: dict | None = None
    bundle_dir: Path | None = None
    name: str | None = None


def resolve_model(name: str, models_dir: Path = MODELS_DIR) -> Path:
    """Bundle folder of a named model (BundleError listing the known names)."""
    d = models_dir / name
    if not (d / "manifest.json").is_file():
        known = sorted(p.name for p in models_dir.glob("*") if (p / "manifest.json").is_file()) \
            if models_dir.is_dir() else []
        raise BundleError(f"no model named {name!r} in {models_dir} "
                          f"(known: {', '.join(known) if known else 'none installed'})")
    return d


def load_bundle(bundle_dir: str | Path, graph: str = "encoder.onnx") -> Target:
    """Read a bundle's manifest and locate its encoder graph."""
    d = Path(bundle_dir)
    mf = d / "manifest.json"
    if not mf.is_file():
        raise BundleError(f"bundle {d}: manifest.json not found")
    try:
        manifest = json.loads(mf.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"bundle {d}: manifest.json is not valid JSON ({exc})") from None
    if manifest.get("format") != "sensorcodec-bundle":
        raise BundleError(f"bundle {d}: manifest.json field 'format' is {manifest.get('format')!r}, "
                          "expected 'sensorcodec-bundle'")
    p = d / graph
    if not p.is_file():
        raise BundleError(f"bundle {d}: {graph} not found")
    return Target(p, manifest, d, manifest.get("name") or d.name)


def parse_shape(text: str) -> tuple[str | None, tuple[int, ...]]:
    """``1x512x768x3``, ``1,512,768,3`` or ``name=1x3x64x64`` -> (name or None, dims)."""
    name, _, dims = text.rpartition("=")
    parts = [p for p in dims.replace(",", "x").replace("*", "x").split("x") if p.strip()]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise ShapeError(f"bad shape {text!r}: expected dims like 1x512x768x3 (or name=1x512x768x3)") from None
    if not shape or any(s <= 0 for s in shape):
        raise ShapeError(f"bad shape {text!r}: dims must be positive integers")
    return (name or None), shape


def _default_bundle_shape(manifest: dict, dims: Sequence) -> tuple[int, ...] | None:
    modality = manifest.get("modality")
    frame = DEFAULT_FRAMES.get(modality)
    channels = (manifest.get("sample") or {}).get("channels")
    if frame is None or not channels:
        return None
    block = (manifest.get("transform") or {}).get("block") or [1] * len(frame)
    if len(block) != len(frame):
        block = [block[0]] * len(frame)
    frame = tuple(-(-f // b) * b for f, b in zip(frame, block))
    shape = (1, *frame, int(channels))
    return shape if dims is None or len(dims) == len(shape) else None


def _input_data(sess, shapes: dict, input_file: str | None, seed: int = 0) -> tuple[dict, str]:
    inputs = sess.get_inputs()
    if input_file:
        p = Path(input_file)
        if not p.is_file():
            raise FileNotFoundError(f"input file not found: {p}")
        arr = np.load(p, allow_pickle=False)
        if len(inputs) != 1:
            raise ShapeError("--input works for single-input graphs only")
        i = inputs[0]
        want = shapes[i.name]
        if arr.ndim == len(want) - 1:
            arr = arr[None]
        if tuple(arr.shape) != tuple(want):
            raise ShapeError(f"input file {p}: shape {'x'.join(map(str, arr.shape))} does not match "
                             f"the profiled shape {'x'.join(map(str, want))} (pass --shape to match)")
        return {i.name: arr.astype(_numpy_dtype(i.type), copy=False)}, f"file:{p.name}"
    rng = np.random.default_rng(seed)
    feeds = {}
    for i in inputs:
        dt = np.dtype(_numpy_dtype(i.type))
        if np.issubdtype(dt, np.integer):
            info = np.iinfo(dt)
            feeds[i.name] = rng.integers(info.min, int(info.max) + 1, size=shapes[i.name], dtype=dt)
        else:
            feeds[i.name] = rng.standard_normal(shapes[i.name]).astype(dt)
    return feeds, f"random(seed={seed}; uniform over the integer range, or standard normal)"


def _coder(manifest: dict | None):
    """(name, encode function) of the bundle's default coder, else zstd level 19."""
    name = ((manifest or {}).get("coder") or {}).get("default")
    try:
        from encoder_runtime.entropy import get_coder  # written elsewhere; optional here
    except ImportError:
        get_coder = None
    why = "no encoder_runtime.entropy.get_coder" if get_coder is None else "no default coder in manifest"
    if get_coder is not None and name:
        try:
            return name, get_coder(name).encode
        except Exception as exc:  # unknown name or coder unavailable: count bits with zstd, say why
            why = f"get_coder({name!r}) failed: {exc}"
    import zstandard

    cctx = zstandard.ZstdCompressor(level=19)
    return f"zstd-19 ({why})", lambda codes: cctx.compress(np.ascontiguousarray(codes).tobytes())


def _codes(out: np.ndarray) -> tuple[np.ndarray, bool]:
    """int8 codes from the encoder output; False if the output is not int8-valued."""
    if out.dtype == np.int8:
        return out, True
    r = np.rint(out) if np.issubdtype(out.dtype, np.floating) else out
    ok = bool(np.all(r == out)) and bool(np.all((r >= -128) & (r <= 127)))
    return (np.clip(r, -128, 127).astype(np.int8) if ok else out), ok


def _machine(sysfs_root: str | Path) -> dict:
    import onnxruntime as ort

    gov = Path(sysfs_root) / "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"
    try:
        governor = gov.read_text().strip()
    except OSError:
        governor = None
    return {"platform": platform.platform(), "machine": platform.machine(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "onnxruntime": ort.__version__,
            "cpu_governor": governor, "host_target": host_target(sysfs_root)}


def profile(target: Target, shapes: dict | Sequence[int] | None = None, *, threads: int = 1, frames: int = 100,
            meter: str = "auto", sysfs_root: str | Path = "/", input_file: str | None = None,
            energy_seconds: float = 2.0, rpi5_command: list[str] | None = None,
            rpi5_fixture: str | None = None, warmup: int = 5) -> dict:
    """Profile ``target`` and return the report dict (what ``sensor-profile --json`` prints)."""
    import onnxruntime as ort

    if frames < 1:
        raise ValueError(f"--frames must be >= 1, got {frames}")
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    # open the meter first: a bad --meter fails before any work
    m = open_meter(meter, sysfs_root, rpi5_command=rpi5_command, rpi5_fixture=rpi5_fixture)

    graph = load_graph(target.onnx_path)
    declared = [(v.name, v.dims) for v in graph.real_inputs()]
    if shapes is None and target.manifest is not None and len(declared) == 1:
        try:
            resolve_input_shapes(declared, None)
        except ShapeError:
            default = _default_bundle_shape(target.manifest, declared[0][1])
            if default is not None:
                shapes = {declared[0][0]: default}
    resolved = resolve_input_shapes(declared, shapes)
    macs = count_macs(target.onnx_path, resolved)

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(target.onnx_path), so, providers=["CPUExecutionProvider"])
    feeds, input_source = _input_data(sess, resolved, input_file)

    for _ in range(warmup):
        outputs = sess.run(None, feeds)
    times = np.empty(frames)
    for k in range(frames):
        t0 = time.perf_counter()
        outputs = sess.run(None, feeds)
        times[k] = time.perf_counter() - t0
    out0 = np.asarray(outputs[0])
    codes, int8_valued = _codes(out0)
    coder_name, encode = _coder(target.manifest)
    t0 = time.perf_counter()
    payload = encode(codes)
    coder_s = time.perf_counter() - t0

    bytes_in = int(sum(a.nbytes for a in feeds.values()))
    bits = 8 * len(payload)
    n_values = sum(a.size for a in feeds.values())
    report: dict = {
        "tool": "sensor-profile", "report_version": 1,
        "model": {"name": target.name, "onnx": str(target.onnx_path),
                  "bundle": str(target.bundle_dir) if target.bundle_dir else None},
        "machine": _machine(sysfs_root),
        "threads": threads, "frames_timed": frames,
        "input": {"shapes": {k: list(v) for k, v in resolved.items()},
                  "dtypes": {k: str(a.dtype) for k, a in feeds.items()}, "source": input_source},
        "macs": {"total": macs.total_macs, "per_op": [vars(o) for o in macs.per_op],
                 "by_op_type": macs.macs_by_op_type, "by_precision": macs.macs_by_precision,
                 "other_ops": macs.other_ops, "unsupported": macs.unsupported,
                 "method": "ORT node profile shapes, output elements x weight fan-in"},
        "parameters": macs.parameters,
        "initializer_bytes": macs.initializer_bytes,
        "bytes_in": bytes_in,
        "codes": {"shape": list(out0.shape), "dtype": str(out0.dtype), "int8_valued": int8_valued,
                  "raw_bytes": int(codes.nbytes)},
        "coder": coder_name,
        "bytes_out": len(payload),
        "bits": bits,
        "bits_per_input_value": bits / n_values,
        "latency_ms": {"p50": float(np.percentile(times, 50) * 1e3), "p99": float(np.percentile(times, 99) * 1e3),
                       "mean": float(times.mean() * 1e3)},
        "frames_per_s": float(frames / times.sum()),
        "coder_ms": coder_s * 1e3,
    }
    if target.manifest is not None and len(resolved) == 1:
        shape = next(iter(resolved.values()))
        positions = prod(shape[:-1])  # bundles are channel-last: (N, *spatial, C)
        report["bits_per_position"] = bits / positions
        report["macs_per_position"] = macs.total_macs / positions
    if isinstance(m, EstimateMeter):
        bytes_moved = bytes_in + int(out0.nbytes) + macs.initializer_bytes
        report["energy"] = m.estimate(macs.macs_by_precision, bytes_moved, float(np.median(times)), threads,
                                      host=host_target(sysfs_root))
    else:
        assert isinstance(m, Meter)
        try:
            res = measure_energy(m, lambda: sess.run(None, feeds), seconds=energy_seconds)
        finally:
            m.close()
        report["energy"] = res.to_dict()
    return report
