"""Rate–distortion benchmark: bundled models vs JPEG / WebP / AVIF on held-out photos; audio vs
PCM and Opus. One command: ``python -m benchmarks.rd`` (needs ``python -m export.data fetch``).

Writes benchmarks/results/rd_images.json + .png and rd_audio.json. Every codec sees the same
held-out frames (never trained, tuned or initialised on). Rates are whole-file bytes: for our
codec the complete container stream (header included), for the others the complete file.
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
from pathlib import Path

import numpy as np

from encoder_runtime import Decoder, Encoder, container
from encoder_runtime.bundle import list_models

RESULTS = Path(__file__).resolve().parent / "results"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 10 * math.log10(255.0 ** 2 / max(mse, 1e-12))


def bd_rate(ref: list[tuple[float, float]], test: list[tuple[float, float]]) -> float:
    """Bjøntegaard delta rate (%) of ``test`` vs ``ref``; points are (rate, psnr)."""
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


def pillow_point(images: list[np.ndarray], fmt: str, quality: int) -> tuple[float, float]:
    from PIL import Image
    bits, pixels, ps = 0, 0, []
    for img in images:
        buf = io.BytesIO()
        kw = {"quality": quality}
        if fmt == "AVIF":
            kw["speed"] = 6
        Image.fromarray(img).save(buf, fmt, **kw)
        bits += 8 * buf.tell()
        pixels += img.shape[0] * img.shape[1]
        buf.seek(0)
        ps.append(psnr(img, np.asarray(Image.open(buf).convert("RGB"))))
    return bits / pixels, float(np.mean(ps))


def our_point(images: list[np.ndarray], name: str, in_stream: bool = False) -> tuple[float, float]:
    """(bpp, mean PSNR). File rate = whole one-frame stream; in-stream rate = the FRAME record
    alone (a stream sends its header once, so each further frame costs only its record)."""
    enc, dec = Encoder.load(name), Decoder.load(name)
    bits, pixels, ps = 0, 0, []
    for img in images:
        blob = enc.encode(img)
        if in_stream:
            _, recs = container.read_stream(blob)
            bits += 8 * sum(r.size for r in recs)
        else:
            bits += 8 * len(blob)
        pixels += img.shape[0] * img.shape[1]
        ps.append(psnr(img, dec.decode(blob)))
    return bits / pixels, float(np.mean(ps))


def run_images(images: list[np.ndarray], names: list[str]) -> dict:
    from PIL import features
    curves: dict[str, list] = {}
    curves["ours"] = sorted(our_point(images, n) + (n,) for n in names)
    curves["ours (in a stream)"] = sorted(our_point(images, n, True) + (n,) for n in names)
    curves["JPEG (libjpeg-turbo)"] = sorted(pillow_point(images, "JPEG", q) + (f"q{q}",)
                                            for q in (10, 20, 30, 50, 75, 90))
    curves["WebP"] = sorted(pillow_point(images, "WEBP", q) + (f"q{q}",)
                            for q in (5, 20, 40, 60, 80, 95))
    if features.check("avif"):
        curves["AVIF"] = sorted(pillow_point(images, "AVIF", q) + (f"q{q}",)
                                for q in (20, 40, 60, 80))
    pts = {k: [(r, p) for r, p, _ in v] for k, v in curves.items()}
    bd = {f"{o} vs {k}": bd_rate(pts[k], pts[o]) for o in ("ours", "ours (in a stream)")
          for k in pts if not k.startswith("ours")}
    jpeg_at = {}
    for r, p, n in curves["ours"]:  # JPEG rate needed for our PSNR (interpolated in log rate)
        jr = np.array([x for x, _ in pts["JPEG (libjpeg-turbo)"]])
        jp = np.array([y for _, y in pts["JPEG (libjpeg-turbo)"]])
        jpeg_at[n] = float(np.exp(np.interp(p, jp, np.log(jr)))) if jp.min() <= p <= jp.max() else None
    return {"curves": {k: [{"bpp": r, "psnr_db": p, "setting": n} for r, p, n in v]
                       for k, v in curves.items()},
            "bd_rate_percent": bd, "jpeg_bpp_at_our_psnr": jpeg_at}


def plot_images(result: dict, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 5))
    for k, pts in result["curves"].items():
        ours = k.startswith("ours")
        ax.plot([p["bpp"] for p in pts], [p["psnr_db"] for p in pts], "o-" if ours else ".--",
                label=k, lw=2 if ours else 1)
    ax.set_xscale("log")
    ax.set_xlabel("bits per pixel (whole file)")
    ax.set_ylabel("PSNR (dB, RGB)")
    ax.set_title(f"Held-out photos ({result['frames']} × 768×512)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def snr(ref: np.ndarray, out: np.ndarray) -> float:
    r, o = ref.astype(np.float64), out.astype(np.float64)
    return 10 * math.log10(max((r ** 2).sum(), 1e-9) / max(((r - o) ** 2).sum(), 1e-9))


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-images", type=int, default=0)
    ap.add_argument("--skip-audio", action="store_true")
    args = ap.parse_args(argv)
    from PIL import Image
    import onnxruntime
    import PIL
    from export import data as datasets
    datasets.fetch()
    images = [np.asarray(Image.open(p).convert("RGB")) for p in datasets.image_paths("test")]
    if args.max_images:
        images = images[: args.max_images]
    models = list_models()
    env = {"machine": platform.machine(), "processor": platform.processor(), "python": platform.python_version(),
           "onnxruntime": onnxruntime.__version__, "pillow": PIL.__version__, "threads": 1}
    RESULTS.mkdir(exist_ok=True)
    img_names = [m["name"] for m in models if m["modality"] == "image"]
    res = run_images(images, img_names)
    res.update(frames=len(images), env=env)
    (RESULTS / "rd_images.json").write_text(json.dumps(res, indent=1))
    plot_images(res, RESULTS / "rd_images.png")
    print(json.dumps({"bd_rate_percent": res["bd_rate_percent"],
                      "ours": res["curves"]["ours"]}, indent=1))
    if not args.skip_audio:
        import soundfile as sf
        groups: dict[str, list[np.ndarray]] = {"speech": [], "wideband": []}
        for p in datasets.audio_paths("test"):
            x, _ = sf.read(p, dtype="int16")
            groups["wideband" if p.name.startswith("wideband") else "speech"].append(x)
        aud = [m["name"] for m in models if m["modality"] == "audio"]
        ares = {"env": env, "groups": run_audio(groups, aud)}
        (RESULTS / "rd_audio.json").write_text(json.dumps(ares, indent=1))
        print(json.dumps(ares["groups"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
