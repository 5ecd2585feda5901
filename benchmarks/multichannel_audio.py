"""Stereo audio coded jointly vs per channel, FLAC and Opus, on held-out real stereo clips.

One command: ``python -m benchmarks.multichannel_audio`` (needs the data cache, see
``export/stereo_data.py``; Opus needs Debian ``opus-tools``, scripts/apt/rd.txt).

Clips: the 8 held-out stereo 44.1 kHz sonic-pi samples (47.5 s; never trained, tuned or
initialised on). Each clip is one frame. Codecs:

* ours, joint: the bundled stereo models (one projection mixes both channels);
* ours, per channel: mono models of the same kind, trained on the same stereo training split
  (each channel a mono signal; same steps, decoder size and λ schedule), run on each channel as a
  batch item — the baseline bundles in ``benchmarks/baselines/``;
* FLAC (libsndfile, lossless size) and Opus stereo at the joint models' bitrates and at a few
  fixed ones (``opusenc --bitrate``, packet payload bits; waveform SNR undersells a perceptual
  codec).

Rate: kbit/s of the FRAME records (what a stream pays per frame; whole-file rates are in the
JSON as ``kbps_file``). Quality: SNR in dB over both channels of a clip, mean over clips.
BD-rates on (kbit/s, SNR). Writes benchmarks/results/multichannel_audio.json + .png.

Model selection: ``--split val --joint DIR ...`` runs candidate bundles (and the baselines) on the
validation part of the train files instead (``multichannel_audio_val.json``, no Opus), so that
runs are chosen without looking at the test clips.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from benchmarks.rd import bd_rate, snr
from benchmarks.speech_codecs import ogg_packets, opus_available
from encoder_runtime import Decoder, Encoder, container
from encoder_runtime.bundle import list_models, load_bundle

RESULTS = Path(__file__).resolve().parent / "results"
BASELINES = Path(__file__).resolve().parent / "baselines"
RATE = 44100
OPUS_KBPS = (24, 32, 48, 64, 96, 128, 160)
Roundtrip = Callable[[np.ndarray], tuple[np.ndarray, int, int]]  # x → (y, stream bits, file bits)


def joint_models() -> list[str]:
    """Bundled audio models that code 2 channels jointly."""
    return [m["name"] for m in list_models()
            if m["modality"] == "audio" and int(m["sample"]["channels"]) == 2]


def baseline_models() -> list[Path]:
    """The per-channel mono 44.1 kHz baseline bundles."""
    return sorted(p for p in BASELINES.glob("audio44k-*") if (p / "manifest.json").is_file())


def ours(model: str | Path) -> Roundtrip:
    """Round trip through one of our bundles: a one-frame stream per clip."""
    enc, dec = Encoder.load(model), Decoder.load(model)

    def run(x: np.ndarray) -> tuple[np.ndarray, int, int]:
        blob = enc.encode(x, meta={"rate_hz": RATE})
        _, recs = container.read_stream(blob)
        frames = sum(r.size for r in recs if r.type == container.RecordType.FRAME)
        return dec.decode(blob), 8 * frames, 8 * len(blob)

    return run


def opus_stereo(kbps: float) -> Roundtrip:
    """Opus (stereo) round trip at ``opusenc --bitrate kbps``."""
    import soundfile as sf

    def run(x: np.ndarray) -> tuple[np.ndarray, int, int]:
        with tempfile.TemporaryDirectory() as td:
            wav, enc, back = Path(td) / "in.wav", Path(td) / "c.opus", Path(td) / "out.wav"
            sf.write(wav, x, RATE, subtype="PCM_16")
            subprocess.run(["opusenc", "--quiet", "--bitrate", f"{kbps:g}", str(wav), str(enc)],
                           check=True)
            subprocess.run(["opusdec", "--quiet", "--rate", str(RATE), str(enc), str(back)],
                           check=True)
            data = enc.read_bytes()
            y, _ = sf.read(back, dtype="int16", always_2d=True)
        y = np.pad(y[: len(x)], ((0, max(0, len(x) - len(y))), (0, 0)))
        return y, 8 * sum(len(p) for p in ogg_packets(data)[2:]), 8 * len(data)

    return run


def flac_kbps(clips: list[np.ndarray]) -> float:
    """Lossless reference: FLAC (libsndfile, default level) kbit/s over all clips."""
    import soundfile as sf
    bits = 0
    for x in clips:
        buf = io.BytesIO()
        sf.write(buf, x, RATE, subtype="PCM_16", format="FLAC")
        bits += 8 * len(buf.getvalue())
    return bits / (sum(len(x) for x in clips) / RATE) / 1000


def point(clips: list[np.ndarray], codec: Roundtrip) -> dict:
    """kbit/s (stream, file) and SNR (mean and pooled over clips) of one codec setting."""
    stream, file_bits, snrs, sig, err = 0, 0, [], 0.0, 0.0
    t0 = time.perf_counter()
    for x in clips:
        y, sb, fb = codec(x)
        stream, file_bits = stream + sb, file_bits + fb
        snrs.append(snr(x, y))
        d = x.astype(np.float64) - y
        sig, err = sig + float((x.astype(np.float64) ** 2).sum()), err + float((d ** 2).sum())
    seconds = sum(len(x) for x in clips) / RATE
    return {"kbps": stream / seconds / 1000, "kbps_file": file_bits / seconds / 1000,
            "snr_db": float(np.mean(snrs)), "snr_db_pooled": float(10 * np.log10(sig / err)),
            "snr_db_per_clip": [round(s, 3) for s in snrs],
            "seconds": round(time.perf_counter() - t0, 2)}


def _curve(rows: list[dict]) -> list[tuple[float, float]]:
    return sorted((r["kbps"], r["snr_db"]) for r in rows)


def run(clips: list[np.ndarray], joint_bundles: list[str | Path] | None = None,
        opus: bool = True) -> dict:
    """Every codec on ``clips`` (each (N, 2) int16); ``joint_bundles`` replace the bundled joint
    models."""
    joint = [{"model": load_bundle(n).manifest["name"], "bundle": str(n),
              "macs_per_sample": load_bundle(n).manifest["macs_per_sample"]["folded"],
              **point(clips, ours(n))} for n in joint_bundles or joint_models()]
    per_channel = [{"model": p.name, "bundle": str(p.relative_to(BASELINES.parent.parent)),
                    **point(clips, ours(p))} for p in baseline_models()]
    opus_rows = []
    if opus and opus_available():
        rates = sorted({round(r["kbps"]) for r in joint} | set(OPUS_KBPS))
        opus_rows = [{"bitrate_kbps": k, **point(clips, opus_stereo(k))} for k in rates]
    bd = {"joint_vs_per_channel": bd_rate(_curve(per_channel), _curve(joint))}
    if opus_rows:
        bd["joint_vs_opus_snr"] = bd_rate(_curve(opus_rows), _curve(joint))
    return {"joint": joint, "per_channel": per_channel, "opus": opus_rows,
            "flac_kbps": flac_kbps(clips), "pcm_kbps": 2 * 16 * RATE / 1000,
            "bd_rate_percent": bd}


def plot(res: dict, out: Path) -> None:
    import matplotlib
    import matplotlib.ticker
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for key, label, style in (("joint", "ours, joint stereo", "o-"),
                              ("per_channel", "ours, mono per channel", "s--"),
                              ("opus", "Opus stereo (waveform SNR)", "^:")):
        pts = _curve(res[key])
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label)
    ax.axvline(res["flac_kbps"], color="grey", lw=0.8)
    ax.text(res["flac_kbps"], ax.get_ylim()[0], " FLAC (lossless)", rotation=90, va="bottom",
            fontsize=8, color="grey")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xticks([25, 50, 100, 200, 500])
    ax.set_xlabel("kbit/s (stereo, 44.1 kHz)")
    ax.set_ylabel("SNR (dB, mean over clips)")
    what = "held-out stereo clips" if res.get("split", "test") == "test" else "validation clips"
    ax.set_title(f"{what} ({res['clips']} files, {res['duration_s']:.1f} s)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-clips", type=int, default=0, help="(smoke) use only the first N clips")
    ap.add_argument("--split", choices=("test", "val"), default="test",
                    help="val: the train files' validation part, for choosing among runs")
    ap.add_argument("--joint", nargs="+", metavar="BUNDLE",
                    help="joint stereo bundles (names or folders) instead of the bundled ones")
    args = ap.parse_args(argv)
    import onnxruntime
    import soundfile as sf
    from export.stereo_data import stereo_paths
    paths = stereo_paths(args.split)[: args.max_clips or None]
    clips = [sf.read(p, dtype="int16", always_2d=True)[0] for p in paths]
    res = run(clips, args.joint, opus=args.split == "test")
    res.update(split=args.split, clips=len(clips), files=[p.stem for p in paths],
               duration_s=sum(len(x) for x in clips) / RATE,
               env={"machine": platform.machine(), "processor": platform.processor(),
                    "python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
                    "libsndfile": sf.__libsndfile_version__, "threads": 1,
                    "opusenc": _opus_version()})
    RESULTS.mkdir(exist_ok=True)
    stem = "multichannel_audio" + ("_val" if args.split == "val" else "")
    (RESULTS / f"{stem}.json").write_text(json.dumps(res, indent=1))
    plot(res, RESULTS / f"{stem}.png")
    print(json.dumps({k: res[k] for k in ("bd_rate_percent", "flac_kbps")} | {
        k: [(r.get("model", r.get("bitrate_kbps")), round(r["kbps"], 1), round(r["snr_db"], 2))
            for r in res[k]] for k in ("joint", "per_channel", "opus")}, indent=1))
    return 0


def _opus_version() -> str | None:
    if not opus_available():
        return None
    r = subprocess.run(["opusenc", "--version"], capture_output=True, text=True)
    return (r.stdout or r.stderr).splitlines()[0].strip()


if __name__ == "__main__":
    sys.exit(main())
