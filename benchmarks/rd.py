"""Rate–distortion benchmark: bundled models vs JPEG / WebP / AVIF / JPEG 2000 / JPEG XL on held-out
photos (PSNR and MS-SSIM, BD-rates); audio vs PCM and Opus. One command: ``python -m benchmarks.rd``
(needs ``python -m export.data fetch``; JPEG XL needs Debian ``libjxl-tools``, see scripts/apt/rd.txt,
and is skipped when ``cjxl``/``djxl`` are absent; JPEG 2000 and AVIF when Pillow lacks them).

Writes benchmarks/results/rd_images.json + .png and rd_audio.json. Every codec sees the same
held-out frames (never trained, tuned or initialised on). Rates are whole-file bytes: for our
codec the complete container stream (header included), for the others the complete file. Ours is
also reported "in a stream": the FRAME record alone, which is what each further frame of a stream
costs once the header has been sent.

Quality per point is the mean over images of the per-image value: PSNR (dB, on RGB), MS-SSIM
(5-scale, mean of the R, G, B values; see benchmarks/metrics.py) and MS-SSIM in dB
(−10·log10(1 − MS-SSIM), averaged per image in dB). BD-rates are computed on PSNR and on MS-SSIM dB.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from benchmarks.metrics import ms_ssim, msssim_db, psnr
from encoder_runtime import Decoder, Encoder, container
from encoder_runtime.bundle import list_models
from encoder_runtime.metrics import snr_db

RESULTS = Path(__file__).resolve().parent / "results"

JPEG_Q = (10, 20, 30, 50, 75, 90)
WEBP_Q = (5, 20, 40, 60, 80, 95)
AVIF_Q = (20, 40, 60, 80)
J2K_RATIOS = (400, 240, 160, 96, 60, 40, 24, 16)   # compression ratios vs 24-bit RGB: 0.06 … 1.5 bpp
JXL_DISTANCES = (0.7, 1.0, 1.5, 2.5, 4.0, 6.0, 9.0, 13.0, 18.0)


def bd_rate(ref: list[tuple[float, float]], test: list[tuple[float, float]]) -> float:
    """Bjøntegaard delta rate (%) of ``test`` vs ``ref``; points are (rate, quality in dB)."""
    if len(ref) < 2 or len(test) < 2:
        return float("nan")
    r1, p1 = np.log(np.array([r for r, _ in ref])), np.array([p for _, p in ref])
    r2, p2 = np.log(np.array([r for r, _ in test])), np.array([p for _, p in test])
    deg1, deg2 = min(3, len(ref) - 1), min(3, len(test) - 1)
    f1, f2 = np.polyfit(p1, r1, deg1), np.polyfit(p2, r2, deg2)
    lo, hi = max(p1.min(), p2.min()), min(p1.max(), p2.max())
    if hi <= lo:
        return float("nan")
    i1 = np.polyval(np.polyint(f1), hi) - np.polyval(np.polyint(f1), lo)
    i2 = np.polyval(np.polyint(f2), hi) - np.polyval(np.polyint(f2), lo)
    return float((math.exp((i2 - i1) / (hi - lo)) - 1) * 100)


def _point(images: list[np.ndarray], codec: Callable[[np.ndarray], tuple[int, np.ndarray]],
           setting: str) -> dict:
    """Run ``codec(img) -> (file bytes, decoded)`` on every image; one RD point (means per image)."""
    bits, pixels, ps, ms, msdb = 0, 0, [], [], []
    for img in images:
        nbytes, dec = codec(img)
        bits += 8 * nbytes
        pixels += img.shape[0] * img.shape[1]
        ps.append(psnr(img, dec))
        m = ms_ssim(img, dec)
        ms.append(m)
        msdb.append(msssim_db(m))
    return {"bpp": bits / pixels, "psnr_db": float(np.mean(ps)), "msssim": float(np.mean(ms)),
            "msssim_db": float(np.mean(msdb)), "setting": setting}


def pillow_codec(fmt: str, **kw) -> Callable[[np.ndarray], tuple[int, np.ndarray]]:
    from PIL import Image

    def run(img: np.ndarray) -> tuple[int, np.ndarray]:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, fmt, **kw)
        n = buf.tell()
        buf.seek(0)
        return n, np.asarray(Image.open(buf).convert("RGB"))
    return run


def jxl_codec(distance: float) -> Callable[[np.ndarray], tuple[int, np.ndarray]]:
    """libjxl reference CLI (cjxl/djxl), default effort 7, lossy VarDCT at a butteraugli distance."""
    from PIL import Image

    def run(img: np.ndarray) -> tuple[int, np.ndarray]:
        with tempfile.TemporaryDirectory() as td:
            src, jxl, back = Path(td) / "in.png", Path(td) / "x.jxl", Path(td) / "back.png"
            Image.fromarray(img).save(src)
            subprocess.run(["cjxl", str(src), str(jxl), "-d", f"{distance:g}", "-e", "7",
                            "--num_threads=1", "--quiet"], check=True, capture_output=True)
            subprocess.run(["djxl", str(jxl), str(back), "--num_threads=1", "--quiet"], check=True,
                           capture_output=True)
            return jxl.stat().st_size, np.asarray(Image.open(back).convert("RGB"))
    return run


def our_points(images: list[np.ndarray], name: str) -> tuple[dict, dict]:
    """(whole-file point, in-stream point) for one bundled model, from one encode per image.
    File rate = whole one-frame stream; in-stream rate = the FRAME record alone (a stream sends its
    header once, so each further frame costs only its record). Quality is the same for both."""
    enc, dec = Encoder.load(name), Decoder.load(name)
    frame_bits = 0

    def run(img: np.ndarray) -> tuple[int, np.ndarray]:
        nonlocal frame_bits
        blob = enc.encode(img)
        _, recs = container.read_stream(blob)
        frame_bits += 8 * sum(r.size for r in recs)
        return len(blob), dec.decode(blob)

    f = _point(images, run, name)
    pixels = sum(img.shape[0] * img.shape[1] for img in images)
    return f, dict(f, bpp=frame_bits / pixels)


def jxl_available() -> bool:
    return bool(shutil.which("cjxl") and shutil.which("djxl"))


def bd_tables(curves: dict[str, list[dict]]) -> tuple[dict, dict]:
    """BD-rates of ours (file and in-stream) vs every other curve, on PSNR and on MS-SSIM dB, and the
    common quality range each one integrates over."""
    bd: dict[str, dict[str, float]] = {"psnr_db": {}, "msssim_db": {}}
    overlap: dict[str, dict[str, list[float]]] = {"psnr_db": {}, "msssim_db": {}}
    for metric in bd:
        pts = {k: [(p["bpp"], p[metric]) for p in v] for k, v in curves.items()}
        for o in ("ours", "ours (in a stream)"):
            for k in pts:
                if k.startswith("ours"):
                    continue
                bd[metric][f"{o} vs {k}"] = bd_rate(pts[k], pts[o])
                lo = max(min(q for _, q in pts[k]), min(q for _, q in pts[o]))
                hi = min(max(q for _, q in pts[k]), max(q for _, q in pts[o]))
                overlap[metric][f"{o} vs {k}"] = [lo, hi]
    return bd, overlap


def run_images(images: list[np.ndarray], names: list[str]) -> dict:
    from PIL import features
    curves: dict[str, list[dict]] = {}
    skipped: dict[str, str] = {}
    timing: dict[str, float] = {}

    def add(key: str, pts: list[dict]) -> None:
        curves[key] = sorted(pts, key=lambda p: p["bpp"])

    t = time.perf_counter()
    ours = [our_points(images, n) for n in names]
    add("ours", [f for f, _ in ours])
    add("ours (in a stream)", [s for _, s in ours])
    timing["ours"] = time.perf_counter() - t
    specs: list[tuple[str, Callable, list, str | None]] = [
        ("JPEG (libjpeg-turbo)", lambda q: pillow_codec("JPEG", quality=q), [(q, f"q{q}") for q in JPEG_Q], None),
        ("WebP", lambda q: pillow_codec("WEBP", quality=q), [(q, f"q{q}") for q in WEBP_Q],
         None if features.check("webp") else "Pillow built without WebP"),
        ("AVIF", lambda q: pillow_codec("AVIF", quality=q, speed=6), [(q, f"q{q}") for q in AVIF_Q],
         None if features.check("avif") else "Pillow built without AVIF"),
        # OpenJPEG through Pillow: CDF 9/7 (irreversible), ICT colour transform, one quality layer
        # rate-controlled to a compression ratio; .jp2 file
        ("JPEG 2000 (OpenJPEG)", lambda r: pillow_codec("JPEG2000", quality_mode="rates", quality_layers=[r],
                                                        irreversible=True, mct=1),
         [(r, f"ratio {r}:1") for r in J2K_RATIOS],
         None if features.check("jpg_2000") else "Pillow built without OpenJPEG (jpg_2000)"),
        ("JPEG XL (libjxl)", jxl_codec, [(d, f"d{d:g}") for d in JXL_DISTANCES],
         None if jxl_available() else "cjxl/djxl not found (Debian libjxl-tools)"),
    ]
    for key, make, settings, why in specs:
        if why:
            skipped[key] = why
            print(f"rd: skipping {key}: {why}", file=sys.stderr)
            continue
        t = time.perf_counter()
        add(key, [_point(images, make(v), label) for v, label in settings])
        timing[key] = time.perf_counter() - t
    bd, overlap = bd_tables(curves)
    jpeg_at = {}
    jr = np.array([p["bpp"] for p in curves["JPEG (libjpeg-turbo)"]])
    jp = np.array([p["psnr_db"] for p in curves["JPEG (libjpeg-turbo)"]])
    for p in curves["ours"]:  # JPEG rate needed for our PSNR (interpolated in log rate)
        q = p["psnr_db"]
        jpeg_at[p["setting"]] = float(np.exp(np.interp(q, jp, np.log(jr)))) if jp.min() <= q <= jp.max() else None
    return {"curves": curves, "bd_rate_percent": bd["psnr_db"], "bd_rate_percent_msssim_db": bd["msssim_db"],
            "bd_overlap_db": overlap,
            "jpeg_bpp_at_our_psnr": jpeg_at, "skipped": skipped, "seconds": timing,
            "metrics": {"psnr_db": "mean over images of per-image PSNR on RGB (peak 255)",
                        "msssim": "mean over images of 5-scale MS-SSIM (Wang et al. 2003, 11x11 Gaussian "
                                  "sigma 1.5, K=(0.01,0.03)), computed per R/G/B channel and averaged "
                                  "(not luma); benchmarks/metrics.py",
                        "msssim_db": "mean over images of -10*log10(1 - MS-SSIM)",
                        "bd_rate": "Bjontegaard delta rate (%) of ours vs each codec: cubic fit of log rate "
                                   "vs quality, integrated over the common quality range; negative = "
                                   "fewer bits than that codec",
                        "bd_overlap_db": "the common quality range [lo, hi] (dB) each BD-rate integrates over"}}


def plot_images(result: dict, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    for ax, key, label in ((axes[0], "psnr_db", "PSNR (dB, RGB)"),
                           (axes[1], "msssim_db", "MS-SSIM (dB) = −10·log10(1 − MS-SSIM), mean of R,G,B")):
        for k, pts in result["curves"].items():
            ours = k.startswith("ours")
            ax.plot([p["bpp"] for p in pts], [p[key] for p in pts],
                    ("o-" if k == "ours" else "o:") if ours else ".--", label=k, lw=2 if ours else 1)
        ax.set_xscale("log")
        ax.set_xlabel("bits per pixel (whole file; in-stream = FRAME record only)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_title(f"PSNR, held-out photos ({result['frames']} × 768×512)")
    axes[1].set_title("MS-SSIM (5-scale)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def snr(ref: np.ndarray, out: np.ndarray) -> float:
    r, o = ref.astype(np.float64), out.astype(np.float64)
    return snr_db((r ** 2).sum(), ((r - o) ** 2).sum())


def opus_point(clips: list[np.ndarray], kbps: float) -> dict | None:
    if not shutil.which("opusenc") or not shutil.which("opusdec"):
        return None
    import soundfile as sf
    bits, samples, snrs = 0, 0, []
    with tempfile.TemporaryDirectory() as td:
        for i, x in enumerate(clips):
            wav, opus, back = (Path(td) / f"{i}.wav", Path(td) / f"{i}.opus", Path(td) / f"{i}b.wav")
            sf.write(wav, x, 16000, subtype="PCM_16")
            subprocess.run(["opusenc", "--quiet", "--bitrate", f"{kbps:g}", "--hard-cbr", str(wav),
                            str(opus)], check=True)
            subprocess.run(["opusdec", "--quiet", "--rate", "16000", str(opus), str(back)], check=True)
            y, _ = sf.read(back, dtype="int16")
            y = y[: len(x)] if y.ndim == 1 else y[: len(x), 0]
            # Opus has a fixed pre-skip handled by opusdec; align by cross-correlation just in case
            bits += 8 * opus.stat().st_size
            samples += len(x)
            snrs.append(snr(x, np.pad(y, (0, len(x) - len(y)))))
    return {"kbps": bits / samples * 16, "snr_db": float(np.mean(snrs))}


def run_audio(groups: dict[str, list[np.ndarray]], names: list[str]) -> dict:
    out: dict = {}
    for gname, clips in groups.items():
        rows = []
        for n in names:
            enc, dec = Encoder.load(n), Decoder.load(n)
            bits, samples, snrs = 0, 0, []
            for x in clips:
                blob = enc.encode(x)
                bits += 8 * len(blob)
                samples += len(x)
                snrs.append(snr(x, dec.decode(blob)))
            kbps = bits / samples * 16.0
            row = {"model": n, "kbps": kbps, "snr_db": float(np.mean(snrs)),
                   "compression_vs_pcm16": 256.0 / kbps}
            opus = opus_point(clips, max(6.0, round(kbps)))
            if opus:
                row["opus_same_bitrate"] = opus
            rows.append(row)
        out[gname] = {"clips": len(clips), "seconds": sum(len(c) for c in clips) / 16000, "points": rows}
    return out


def _tool_version(tool: str) -> str | None:
    if not shutil.which(tool):
        return None
    r = subprocess.run([tool, "--version"], capture_output=True, text=True)
    return (r.stdout or r.stderr).splitlines()[0].strip() if (r.stdout or r.stderr) else "present"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-images", type=int, default=0)
    ap.add_argument("--skip-audio", action="store_true")
    args = ap.parse_args(argv)
    from PIL import Image, features
    import onnxruntime
    import PIL
    from export import data as datasets
    datasets.fetch()
    images = [np.asarray(Image.open(p).convert("RGB")) for p in datasets.image_paths("test")]
    if args.max_images:
        images = images[: args.max_images]
    models = list_models()
    env = {"machine": platform.machine(), "processor": platform.processor(), "python": platform.python_version(),
           "onnxruntime": onnxruntime.__version__, "pillow": PIL.__version__, "threads": 1,
           "pillow_features": {f: features.version(f) for f in ("libjpeg_turbo", "webp", "avif", "jpg_2000")},
           "cjxl": _tool_version("cjxl")}
    RESULTS.mkdir(exist_ok=True)
    img_names = [m["name"] for m in models if m["modality"] == "image"]
    res = run_images(images, img_names)
    res.update(frames=len(images), env=env)
    (RESULTS / "rd_images.json").write_text(json.dumps(res, indent=1))
    plot_images(res, RESULTS / "rd_images.png")
    print(json.dumps({k: res[k] for k in ("bd_rate_percent", "bd_rate_percent_msssim_db", "skipped", "seconds")}
                     | {"ours": res["curves"]["ours"]}, indent=1))
    if not args.skip_audio:
        import soundfile as sf
        groups: dict[str, list[np.ndarray]] = {"speech": [], "wideband": []}
        for p in datasets.audio_paths("test"):
            x, _ = sf.read(p, dtype="int16")
            groups["wideband" if p.name.startswith("wideband") else "speech"].append(x)
        aud = [m["name"] for m in models if m["modality"] == "audio"
               and m["sample"]["channels"] == 1]  # stereo: benchmarks/multichannel_audio.py
        ares = {"env": env, "groups": run_audio(groups, aud)}
        (RESULTS / "rd_audio.json").write_text(json.dumps(ares, indent=1))
        print(json.dumps(ares["groups"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
