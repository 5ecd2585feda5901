"""Rate–distortion on held-out 3-D MRI volumes: the bundled volume models vs per-slice JPEG 2000
and JPEG XL (lossy, several rates) and lossless sizes (per-slice JPEG XL / JPEG 2000, zstd-19).

``python -m benchmarks.volume_rd`` → ``benchmarks/results/volume_rd.json`` + ``.png``.

Held-out data (export/volume_data.py, never trained on): 8-bit Colin27 T1 for the ``volume``
models — by default its central 64 axial slices (181×217×64, through the ventricles; ``--slices 0``
= all 181, which takes ~3× longer) — and the 12-bit diffusion b0 (128×128×10) for ``volume16``. PSNR is on the
data's bit depth (peak 255 or 4095) over the whole volume; rates are bits per voxel of the whole
file (ours: a one-frame stream with its header; baselines: the sum of the per-slice files).
Slices are the last (axial) axis. 12-bit slices are handed to the baselines as 16-bit images
shifted left by 4 (lossless, uses their full range) and shifted back after decoding.
"""

from __future__ import annotations

import argparse
import io
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from benchmarks.rd import RESULTS, _tool_version, bd_rate, jxl_available
from benchmarks.report import write_results
from encoder_runtime import Decoder, Encoder, container
from encoder_runtime.ladder import ladder

KINDS = {"volume": ("u8", 8), "volume16": ("u12", 12)}
JXL_DISTANCES = (0.5, 1.0, 2.0, 4.0, 7.0, 12.0, 20.0)
J2K_BPV = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)     # target bits per voxel


def psnr_bits(ref: np.ndarray, out: np.ndarray, bits: int) -> float:
    mse = float(((ref.astype(np.float64) - out.astype(np.float64)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10((2 ** bits - 1) ** 2 / mse)


def _slice_image(s: np.ndarray, shift: int):
    """A slice as a Pillow image: 8-bit 'L', or 16-bit 'I;16' (12-bit data shifted left)."""
    from PIL import Image
    if s.dtype == np.uint8:
        return Image.fromarray(np.ascontiguousarray(s))
    return Image.fromarray(np.ascontiguousarray(s.astype(np.uint16) << shift))


def _slice_back(img, dtype, shift: int) -> np.ndarray:
    a = np.asarray(img).astype(np.int64)
    if dtype == np.uint8:
        return a.astype(np.uint8)
    half = (1 << shift) >> 1
    return np.clip((a + half) >> shift, 0, 4095).astype(np.uint16)


def per_slice(vol: np.ndarray, bits: int, codec: Callable, lossless: bool = False
              ) -> tuple[int, np.ndarray]:
    """Code each axial slice with ``codec(image) -> (bytes, decoded image)``; total bytes, volume.
    Lossy 12-bit slices are shifted to 16 bits, lossless ones are coded as they are."""
    shift = 0 if lossless or bits == 8 else 16 - bits
    total, out = 0, np.empty_like(vol)
    for z in range(vol.shape[2]):
        n, img = codec(_slice_image(vol[:, :, z], shift))
        total += n
        out[:, :, z] = _slice_back(img, vol.dtype, shift)
    return total, out


def j2k(bpv: float | None, bits: int) -> Callable:
    """OpenJPEG through Pillow: a rate target (compression ratio vs the container's bits), or
    lossless (reversible 5/3) with ``bpv=None``."""
    from PIL import Image
    container = 8 if bits == 8 else 16

    def run(img):
        buf = io.BytesIO()
        kw = {} if bpv is None else {"quality_mode": "rates", "quality_layers": [container / bpv],
                                     "irreversible": True}
        img.save(buf, "JPEG2000", **kw)
        n = buf.tell()
        buf.seek(0)
        return n, Image.open(buf)
    return run


def jxl(distance: float) -> Callable:
    """libjxl's cjxl/djxl at a butteraugli distance (0 = lossless), effort 7, one thread."""
    from PIL import Image

    def run(img):
        with tempfile.TemporaryDirectory() as td:
            src, f, back = Path(td) / "s.png", Path(td) / "s.jxl", Path(td) / "b.png"
            img.save(src)
            subprocess.run(["cjxl", str(src), str(f), "-d", f"{distance:g}", "-e", "7",
                            "--num_threads=1", "--quiet"], check=True, capture_output=True)
            subprocess.run(["djxl", str(f), str(back), "--num_threads=1", "--quiet"], check=True,
                           capture_output=True)
            with Image.open(back) as im:
                im.load()
                return f.stat().st_size, im.copy()
    return run


def _point(vols: list[np.ndarray], bits: int, code: Callable, setting: str) -> dict:
    nbits, voxels, err = 0, 0, 0.0
    for v in vols:
        n, out = code(v)
        nbits += 8 * n
        voxels += v.size
        err += float(((v.astype(np.float64) - out) ** 2).sum())
    mse = err / voxels
    return {"bits_per_voxel": nbits / voxels, "psnr_db": float(10 * np.log10((2 ** bits - 1) ** 2 / mse))
            if mse else float("inf"), "setting": setting}


def our_points(vols: list[np.ndarray], bits: int, name: str) -> tuple[dict, dict]:
    """(whole-file point, in-stream point) of a bundled model (int8 encoder graph), one encode per
    volume: the file is a one-frame stream with its header; in a stream each further frame costs
    only its FRAME record (the header is sent once)."""
    enc, dec = Encoder.load(name, variant="int8"), Decoder.load(name)
    frame_bits = 0

    def run(v):
        nonlocal frame_bits
        blob = enc.encode(v)
        frame_bits += 8 * sum(r.size for r in container.read_stream(blob)[1])
        return len(blob), dec.decode(blob)
    f = _point(vols, bits, run, name)
    return f, dict(f, bits_per_voxel=frame_bits / sum(v.size for v in vols))


def lossless_sizes(vols: list[np.ndarray], bits: int) -> dict:
    """Bits per voxel of lossless per-slice JPEG XL / JPEG 2000 and zstd-19 of the raw volume."""
    import zstandard
    voxels = sum(v.size for v in vols)
    out = {"zstd-19 (raw volume)": sum(8 * len(zstandard.ZstdCompressor(level=19).compress(
        np.ascontiguousarray(v).tobytes())) for v in vols) / voxels}
    j2k_sizes = [per_slice(v, bits, j2k(None, bits), lossless=True) for v in vols]
    assert all(np.array_equal(v, o) for v, (_, o) in zip(vols, j2k_sizes))
    out["JPEG 2000 lossless (per slice)"] = sum(8 * n for n, _ in j2k_sizes) / voxels
    if jxl_available():
        sizes = [per_slice(v, bits, jxl(0.0), lossless=True) for v in vols]
        assert all(np.array_equal(v, o) for v, (_, o) in zip(vols, sizes))
        out["JPEG XL lossless (per slice)"] = sum(8 * n for n, _ in sizes) / voxels
    return out


def run_kind(modality: str, vols: list[np.ndarray], names: list[str]) -> dict:
    _, bits = KINDS[modality]
    pts = [our_points(vols, bits, n) for n in names]
    curves: dict[str, list[dict]] = {"ours": [f for f, _ in pts],
                                     "ours (in a stream)": [s for _, s in pts]}
    curves["JPEG 2000 (per slice)"] = [_point(vols, bits, lambda v, r=r: per_slice(v, bits, j2k(r, bits)),
                                              f"{r} bpv") for r in J2K_BPV]
    if jxl_available():
        curves["JPEG XL (per slice)"] = [_point(vols, bits, lambda v, d=d: per_slice(v, bits, jxl(d)),
                                                f"d {d}") for d in JXL_DISTANCES]
    pts = {k: [(p["bits_per_voxel"], p["psnr_db"]) for p in v] for k, v in curves.items()}
    bd = {f"{o} vs {k}": bd_rate(pts[k], pts[o]) for o in ("ours", "ours (in a stream)")
          for k in pts if not k.startswith("ours")}
    return {"bits": bits, "volumes": [list(v.shape) for v in vols], "curves": curves,
            "bd_rate_psnr_pct": bd, "lossless_bits_per_voxel": lossless_sizes(vols, bits)}


def plot(result: dict, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(result["kinds"]), figsize=(6 * len(result["kinds"]), 4.5))
    for ax, (modality, r) in zip(np.atleast_1d(axes), result["kinds"].items()):
        for k, pts in r["curves"].items():
            ax.plot([p["bits_per_voxel"] for p in pts], [p["psnr_db"] for p in pts],
                    "o-" if k.startswith("ours") else ".--", label=k)
        ax.set_xscale("log")
        ax.set_xlabel("bits per voxel")
        ax.set_ylabel(f"PSNR ({r['bits']}-bit peak), dB")
        ax.set_title(f"{modality}: held-out {' + '.join('×'.join(map(str, s)) for s in r['volumes'])}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=RESULTS / "volume_rd.json")
    ap.add_argument("--slices", type=int, default=64,
                    help="8-bit: the central N axial slices of each held-out volume (0 = all)")
    args = ap.parse_args(argv)
    import onnxruntime
    import PIL
    from export.volume_data import volume_arrays
    result = {"machine": {"machine": platform.machine(), "processor": platform.processor(),
                          "python": platform.python_version(), "threads": 1,
                          "onnxruntime": onnxruntime.__version__, "pillow": PIL.__version__,
                          "cjxl": _tool_version("cjxl")},
              "data": "held-out test split of export/volume_data.py (by subject)",
              "u8_central_slices": args.slices or "all", "kinds": {}}
    for modality, (kind, _) in KINDS.items():
        names = [n for n, _ in ladder(modality)]
        if not names:
            continue
        vols = [a[0] for a in volume_arrays(kind, "test")]
        if kind == "u8" and args.slices:
            vols = [np.ascontiguousarray(v[:, :, (v.shape[2] - args.slices) // 2:][:, :, :args.slices])
                    for v in vols]
        result["kinds"][modality] = run_kind(modality, vols, names)
        print(modality, result["kinds"][modality]["bd_rate_psnr_pct"], flush=True)
    write_results(result, args.out, plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
