"""Speech machine-perception benchmark: recogniser word error rate (WER) against bitrate.

A machine listener (pocketsphinx en-us, :mod:`benchmarks.asr`) transcribes real English read speech
after each codec's round trip; the corpus WER is compared at equal bitrate. Data: the ``test`` split
of :func:`export.data.speech_clips` (LibriVox read speech, held out: never trained, tuned or
selected on); ``val`` is the split for model selection. See docs/evaluation.md.

Codecs (:mod:`benchmarks.speech_codecs`): clean (PCM16, 256 kbit/s), every bundled model with
modality audio (found through the bundle manifests; those with a decoder-side post-filter also
without it, family "ours, no postfilter", except with ``--quick``), Opus (opus-tools) at 6–32 kbit/s, resolution
reduction (8 kHz and 4 kHz PCM16, 8 kHz 8-bit μ-law) and bit-depth reduction (4/6/8-bit PCM).
Rate = payload bits / clip duration (kbit/s) summed over the split: ours "in a stream" (FRAME
records; the whole one-frame file in ``kbps_file``), Opus packet payloads (.opus file in
``kbps_file``). For each of our models the Opus WER at our rate is interpolated linearly in
log-bitrate on Opus's curve and the check "our WER <= Opus's WER at the same rate" is recorded.

API for model selection (the training helper)::

    from benchmarks.speech_perception import evaluate_codec
    evaluate_codec(roundtrip, "val")   # roundtrip(x int16 16 kHz) -> (decoded int16, payload bits)

Usage: ``python -m benchmarks.speech_perception [--split test] [--out benchmarks/results]``
(≈10 min on 2 busy cores). Writes ``speech_perception.json`` and ``speech_perception.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from benchmarks import speech_codecs as sc
from benchmarks.asr import RATE, corpus_wer, normalize, transcribe

OPUS_KBPS = (6, 8, 10, 12, 16, 24, 32)
RESULTS = Path(__file__).resolve().parent / "results"


def load_split(split: str, cache: Path | None = None) -> list[tuple[str, np.ndarray, str]]:
    """[(clip name, int16 samples, transcript)] of a transcribed speech split ('test' or 'val')."""
    import soundfile as sf
    from export import data
    clips = data.speech_clips(split, *([cache] if cache else []))
    out = []
    for path, text in clips:
        if text is None:
            raise ValueError(f"speech split {split!r}: {path.name} has no transcript; "
                             "use 'test' or 'val'")
        x, rate = sf.read(path, dtype="int16")
        if rate != RATE or x.ndim != 1:
            raise ValueError(f"{path}: expected mono {RATE} Hz, got {rate} Hz, shape {x.shape}")
        out.append((path.stem, x, text))
    return out


def evaluate_codec(roundtrip: Callable[[np.ndarray], tuple[np.ndarray, int]], split: str = "val",
                   clips: list[tuple[str, np.ndarray, str]] | None = None) -> dict:
    """Corpus WER and rate of ``roundtrip`` on a speech split.

    ``roundtrip(x)`` takes 1-D int16 16 kHz samples and returns (decoded samples, payload bits).
    Returns ``{"wer", "kbps", "seconds", "words", "clips", "per_clip": [{name, ref, hyp, bits}]}``
    where ``wer`` is total word edits / total reference words and ``kbps`` total bits / total
    duration / 1000. ``clips`` (from :func:`load_split`) avoids re-reading the files.
    """
    clips = clips if clips is not None else load_split(split)
    rows, bits, samples = [], 0, 0
    for name, x, ref in clips:
        y, b = roundtrip(x)
        y = np.asarray(y)
        if y.shape != x.shape:
            raise ValueError(f"roundtrip on {name}: decoded shape {y.shape} != input {x.shape}")
        hyp = transcribe(np.clip(np.round(y), -32768, 32767).astype(np.int16)
                         if y.dtype != np.int16 else y)
        rows.append({"name": name, "ref": ref, "hyp": hyp, "bits": int(b)})
        bits += int(b)
        samples += len(x)
    seconds = samples / RATE
    return {"wer": corpus_wer([(r["ref"], r["hyp"]) for r in rows]), "kbps": bits / seconds / 1000,
            "seconds": seconds, "words": sum(len(normalize(r["ref"])) for r in rows),
            "clips": len(rows), "per_clip": rows}


def clean(x: np.ndarray) -> tuple[np.ndarray, int]:
    """Identity round trip at PCM16 (256 kbit/s)."""
    return x, 16 * len(x)


def interp_log_rate(curve: list[tuple[float, float]], kbps: float) -> float | None:
    """WER at ``kbps`` interpolated linearly in log-bitrate on (kbps, wer) points; None outside."""
    pts = sorted(curve)
    for (r0, w0), (r1, w1) in zip(pts, pts[1:]):
        if r0 <= kbps <= r1:
            t = 0.0 if r1 == r0 else (math.log(kbps) - math.log(r0)) / (math.log(r1) - math.log(r0))
            return w0 + t * (w1 - w0)
    return None


def audio_models() -> list[str]:
    """Names of every bundled mono audio model (the stereo ones are not speech models)."""
    from encoder_runtime import list_models
    return [m["name"] for m in list_models()
            if m["modality"] == "audio" and m["sample"]["channels"] == 1]


def has_postfilter(model: str) -> bool:
    """True when the bundled model's manifest turns on a decoder-side post-filter."""
    from encoder_runtime.bundle import load_bundle
    return "postfilter" in load_bundle(model, verify=False).manifest


def conditions(models: list[str], quick: bool = False) -> list[tuple[str, str, Callable]]:
    """(family, label, roundtrip) for every benchmarked condition."""
    out: list[tuple[str, str, Callable]] = [("clean", "clean PCM16", clean)]
    out += [("ours", m, sc.OurCodec(m)) for m in models]
    out += [("ours, no postfilter", f"{m} no-pf", sc.OurCodec(m, postfilter=False))
            for m in models if not quick and has_postfilter(m)]
    if sc.opus_available():
        out += [("opus", f"opus {k}k", sc.opus(k)) for k in (OPUS_KBPS[:2] if quick else OPUS_KBPS)]
    out += [("resolution", "8 kHz PCM16", sc.resample(8000)),
            ("resolution", "4 kHz PCM16", sc.resample(4000)),
            ("resolution", "8 kHz mu-law", sc.resample(8000, mulaw=True))]
    out += [("bit depth", f"{b}-bit PCM", sc.bit_depth(b)) for b in ((4,) if quick else (4, 6, 8))]
    return out


def run(split: str, models: list[str], quick: bool = False) -> dict:
    """All conditions on ``split``; adds Opus-at-our-rate comparisons for our models."""
    clips = load_split(split)
    points = []
    for family, label, rt in conditions(models, quick):
        t0 = time.perf_counter()
        r = evaluate_codec(rt, split, clips)
        r.update(family=family, label=label, eval_seconds=time.perf_counter() - t0)
        if hasattr(rt, "file_bits"):
            r["kbps_file"] = rt.file_bits / r["seconds"] / 1000
        points.append(r)
        print(f"  {label:<16} {r['kbps']:8.2f} kbit/s  WER {100 * r['wer']:5.1f} %  "
              f"({r['eval_seconds']:.0f} s)", flush=True)
    opus_curve = [(p["kbps"], p["wer"]) for p in points if p["family"] == "opus"]
    comparisons = []
    for p in points:
        if p["family"] != "ours":
            continue
        o = interp_log_rate(opus_curve, p["kbps"])
        comparisons.append({"model": p["label"], "kbps": p["kbps"], "kbps_file": p.get("kbps_file"),
                            "wer": p["wer"], "opus_wer_at_same_kbps": o,
                            "pass": None if o is None else bool(p["wer"] <= o)})
    return {"split": split, "clips": len(clips), "seconds": sum(len(x) for _, x, _ in clips) / RATE,
            "words": sum(len(normalize(t)) for _, _, t in clips), "points": points,
            "ours_vs_opus": comparisons}


def environment() -> dict:
    """Machine, versions and thread count recorded with the results."""
    import onnxruntime
    import pocketsphinx
    import scipy
    opus_v = subprocess.run(["opusenc", "--version"], capture_output=True, text=True).stdout \
        .splitlines()[0] if sc.opus_available() else None
    return {"machine": platform.machine(), "processor": platform.processor(),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "scipy": scipy.__version__,
            "onnxruntime": onnxruntime.__version__,
            "pocketsphinx": getattr(pocketsphinx, "__version__", "5.1.1"),
            "opusenc": opus_v, "onnx_threads": 1, "recognizer_threads": 1}


def plot(result: dict, out: Path) -> None:
    """WER vs kbit/s (log x) per family; ours as large markers, clean as a horizontal line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = {"opus": "o-", "resolution": "s--", "bit depth": "^:"}
    for fam, style in styles.items():
        pts = sorted((p["kbps"], p["wer"]) for p in result["points"]
                     if p["family"] == fam and "mu-law" not in p["label"])
        if pts:
            ax.plot(*zip(*pts), style, label=fam)
    for p in result["points"]:
        if "mu-law" in p["label"]:
            ax.plot(p["kbps"], p["wer"], "D", label=p["label"])
    off = [p for p in result["points"] if p["family"] == "ours, no postfilter"]
    if off:
        ax.plot([p["kbps"] for p in off], [p["wer"] for p in off], "x", ms=9, color="grey",
                label="ours with the post-filter off")
    for p in result["points"]:
        if p["family"] == "ours":
            ax.plot(p["kbps"], p["wer"], "*", ms=14, label=f"ours: {p['label']} (in a stream)")
        elif p["family"] == "clean":
            ax.axhline(p["wer"], color="k", lw=0.8, label=f"clean PCM16 ({p['kbps']:.0f} kbit/s)")
    ax.set_xscale("log")
    ax.set_xlabel("kbit/s (payload bits / duration)")
    ax.set_ylabel("WER (pocketsphinx en-us)")
    ax.set_title(f"Speech machine perception: {result['split']} split, {result['clips']} clips, "
                 f"{result['seconds']:.1f} s")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write JSON + PNG."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.speech_perception",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="test", choices=("test", "val"),
                    help="speech split (default: test, the held-out one)")
    ap.add_argument("--models", nargs="*", default=None,
                    help="bundled audio models (default: every model with modality audio)")
    ap.add_argument("--quick", action="store_true", help="fewer Opus/bit-depth points (smoke run)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="output folder")
    args = ap.parse_args(argv)
    models = audio_models() if args.models is None else args.models
    known = set(audio_models())
    bad = [m for m in models if m not in known]
    if bad:
        print(f"error: --models {' '.join(bad)}: not a bundled audio model "
              f"(have: {', '.join(sorted(known))})", file=sys.stderr)
        return 2
    print(f"speech perception on split {args.split!r}; models: {', '.join(models) or 'none'}",
          flush=True)
    t0 = time.perf_counter()
    result = run(args.split, models, args.quick)
    result.update(environment=environment(), wall_seconds=time.perf_counter() - t0,
                  opus_rate="Opus packet payload bits (Ogg framing and header packets excluded); "
                            ".opus file size in kbps_file",
                  ours_rate="FRAME records of the stream (in a stream); whole one-frame file in "
                            "kbps_file")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speech_perception.json").write_text(json.dumps(result, indent=1) + "\n")
    plot(result, args.out / "speech_perception.png")
    for c in result["ours_vs_opus"]:
        o = c["opus_wer_at_same_kbps"]
        print(f"{c['model']}: {c['kbps']:.2f} kbit/s, WER {100 * c['wer']:.1f} % vs Opus "
              + (f"{100 * o:.1f} % -> {'PASS' if c['pass'] else 'FAIL'}" if o is not None
                 else "(outside Opus's measured rates)"))
    print(f"wrote {args.out / 'speech_perception.json'} and speech_perception.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
