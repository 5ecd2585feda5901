"""Rate–distortion on held-out hyperspectral cubes: the bundled spectral models vs per-band JPEG 2000
and JPEG XL (lossy at several rates) and lossless sizes (per-band JPEG 2000 / JPEG XL, zstd-19).

``python -m benchmarks.hyperspectral_rd`` → ``benchmarks/results/hyperspectral_rd.json`` + ``.png``.

Held-out data (export/hyperspectral_data.py, never trained on), 12-bit samples, 32 bands of 10 Å:
``test`` = four 40×40 frames of the MUSE Abell 478 cube at 8270–9350 Å (the models trained on its
4750–7950 Å frames: held out by wavelength), and ``test_udf`` = the MUSE Hubble Ultra Deep Field
cube (two 30×30 frames; held out by source cube, but noise-dominated: per-sample SNR < 1).
Rates are bits per sample (one band value of one pixel) of the whole file — ours: a one-frame
stream with its header, and the FRAME record alone ("in a stream"); baselines: the sum of the 32
per-band files. PSNR is on the 12-bit range (peak 4095) of the pooled MSE; SAM is the mean
spectral angle (degrees) per pixel between original and decoded spectra, in flux (sample − offset
of zero flux); "mean-band" is the distortion of sending nothing but each band's mean.
12-bit bands go to the baselines as 16-bit images shifted left by 4 (lossless: as they are); the
per-band coders are benchmarks/volume_rd.py's per-slice ones (OpenJPEG via Pillow, cjxl/djxl).
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Callable

import numpy as np

from benchmarks.rd import RESULTS, _tool_version, bd_rate, jxl_available
from benchmarks.report import write_results
from benchmarks.volume_rd import j2k, jxl, per_slice
from encoder_runtime import Decoder, Encoder, container
from encoder_runtime.ladder import ladder
from encoder_runtime.metrics import psnr_db, spectral_angle_deg

BITS = 12
JXL_DISTANCES = (0.1, 0.3, 0.6, 1.0, 1.5, 2.5, 4.0, 6.0, 9.0, 14.0)
J2K_BPS = (0.05, 0.1, 0.2, 0.35, 0.5, 0.8, 1.2, 1.8, 2.5)      # target bits per sample


def per_band(cube: np.ndarray, codec: Callable, lossless: bool = False) -> tuple[int, np.ndarray]:
    """Each band (last axis) of an H×W×B 12-bit cube as its own file (benchmarks/volume_rd.py's
    per-slice coding): total bytes and the decoded cube."""
    return per_slice(cube, BITS, codec, lossless)


def quality(cubes: list[np.ndarray], outs: list[np.ndarray], offset: float) -> dict:
    """PSNR (12-bit peak, pooled MSE) and mean SAM (degrees) of decoded cubes."""
    err = sum(float(((c.astype(np.float64) - o) ** 2).sum()) for c, o in zip(cubes, outs))
    mse = err / sum(c.size for c in cubes)
    sam = float(np.mean([spectral_angle_deg(c, o, offset) for c, o in zip(cubes, outs)]))
    return {"psnr_db": psnr_db(mse, 2 ** BITS - 1), "sam_deg": sam, "mse": mse}


def _point(cubes: list[np.ndarray], code: Callable, setting: str, offset: float) -> dict:
    sizes, outs = zip(*(code(c) for c in cubes))
    samples = sum(c.size for c in cubes)
    return {"bits_per_sample": 8 * sum(sizes) / samples, **quality(cubes, list(outs), offset),
            "setting": setting}


def ours(name: str, cubes: list[np.ndarray], offset: float) -> tuple[dict, dict]:
    """(whole-file point, in-stream point) of a bundled model (int8 encoder graph)."""
    enc, dec = Encoder.load(name, variant="int8"), Decoder.load(name)
    frame_bytes, file_bytes, outs = 0, 0, []
    for c in cubes:
        blob = enc.encode(c)
        _, recs = container.read_stream(blob)
        frame_bytes += sum(r.size for r in recs)
        file_bytes += len(blob)
        outs.append(dec.decode(blob))
    samples = sum(c.size for c in cubes)
    q = quality(cubes, outs, offset)
    f = {"bits_per_sample": 8 * file_bytes / samples, **q, "setting": name}
    return f, dict(f, bits_per_sample=8 * frame_bytes / samples)


def lossless_sizes(cubes: list[np.ndarray]) -> dict:
    """Bits per sample of lossless per-band JPEG 2000 / JPEG XL and zstd-19 of the raw cube."""
    import zstandard
    samples = sum(c.size for c in cubes)
    out = {"zstd-19 (raw uint16 cube)": sum(8 * len(zstandard.ZstdCompressor(level=19).compress(
        np.ascontiguousarray(c).tobytes())) for c in cubes) / samples}
    coders = {"JPEG 2000 lossless (per band)": j2k(None, BITS)}
    if jxl_available():
        coders["JPEG XL lossless (per band)"] = jxl(0.0)
    for label, codec in coders.items():
        res = [per_band(c, codec, lossless=True) for c in cubes]
        assert all(np.array_equal(c, o) for c, (_, o) in zip(cubes, res)), label
        out[label] = sum(8 * n for n, _ in res) / samples
    return out


def run(cubes: list[np.ndarray], names: list[str], offset: float) -> dict:
    curves: dict[str, list[dict]] = {"ours": [], "ours (in a stream)": []}
    for n in names:
        f, s = ours(n, cubes, offset)
        curves["ours"].append(f)
        curves["ours (in a stream)"].append(s)
    curves["JPEG 2000 (per band)"] = [_point(cubes, lambda c, r=r: per_band(c, j2k(r, BITS)), f"{r} bps",
                                             offset) for r in J2K_BPS]
    if jxl_available():
        curves["JPEG XL (per band)"] = [_point(cubes, lambda c, d=d: per_band(c, jxl(d)), f"d {d}",
                                               offset) for d in JXL_DISTANCES]
    pts = {k: [(p["bits_per_sample"], p["psnr_db"]) for p in v] for k, v in curves.items()}
    bd = {f"{o} vs {k}": bd_rate(pts[k], pts[o]) for o in ("ours", "ours (in a stream)")
          for k in pts if not k.startswith("ours")}
    means = [np.broadcast_to(c.reshape(-1, c.shape[-1]).mean(0), c.shape) for c in cubes]
    return {"bits": BITS, "cubes": [list(c.shape) for c in cubes], "curves": curves,
            "bd_rate_psnr_pct": bd, "mean_band_reference": quality(cubes, means, offset),
            "lossless_bits_per_sample": lossless_sizes(cubes)}


def plot(result: dict, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    result = result["sets"]["test"]
    for key, pts in result["curves"].items():
        pts = sorted(pts, key=lambda p: p["bits_per_sample"])
        x = [p["bits_per_sample"] for p in pts]
        style = "o-" if key.startswith("ours") else ".--"
        axes[0].plot(x, [p["psnr_db"] for p in pts], style, label=key)
        axes[1].plot(x, [p["sam_deg"] for p in pts], style, label=key)
    ref = result["mean_band_reference"]
    axes[0].axhline(ref["psnr_db"], color="grey", lw=0.8, label="band means only")
    axes[1].axhline(ref["sam_deg"], color="grey", lw=0.8)
    for ax, lab in zip(axes, ("PSNR (dB, 12-bit peak)", "mean spectral angle (°)")):
        ax.set_xscale("log")
        ax.set_xlabel("bits per sample")
        ax.set_ylabel(lab)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("held-out MUSE Abell 478 frames at 8270–9350 Å (4 × 40×40×32, 12-bit)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.parse_args(argv)
    import onnxruntime
    import PIL
    from export import hyperspectral_data as hs
    names = [n for n, _ in ladder("hyperspectral")]
    sets = {}
    for split in ("test", "test_udf"):
        cubes = [np.load(p, allow_pickle=False) for p in hs.frame_paths(split)]
        sets[split] = run(cubes, names, float(hs.OFFSET))
        print(split, json.dumps(sets[split]["bd_rate_psnr_pct"]))
    result = {"machine": {"machine": platform.machine(), "processor": platform.processor(),
                          "python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
                          "pillow": PIL.__version__, "cjxl": _tool_version("cjxl"), "threads": 1},
              "data": "mpdaf 3.6 MUSE cubes: test = Abell 478 (minicube.fits) frames 11-14, "
                      "test_udf = subcub_mosaic.fits; export/hyperspectral_data.py",
              "sets": sets}
    write_results(result, RESULTS / "hyperspectral_rd.json", plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
