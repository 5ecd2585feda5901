"""One-command demo: ``python -m encoder_runtime.daemon.demo [--frames 200] [--fps 20] [--audio]``.

Starts ``sensor-receive`` and ``sensor-encode`` on loopback with the bundled default model
(``rgb-c16`` for images, ``audio16k-8k`` with ``--audio``) and the bundled real samples
(``encoder_runtime/samples/``: three 768×512 photos, looped; or the WAV files cut into 100 ms
chunks), prints live frames/s, bitrate, compression ratio and capture→stored latency once a
second, exits after ``--frames`` frames are acknowledged and prints a summary: every frame
stored exactly once, every stored frame decoded with the real decoder, and the quality of the
reconstructions against the original samples (PSNR for images, SNR for audio).

Needs only the runtime (``pip install -e '.[media]'``: numpy, onnxruntime, zstandard, Pillow,
soundfile).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from ..metrics import psnr_db, snr_db
from .faults import free_port, spawn, verify_stream

PKG = Path(__file__).resolve().parents[1]
SAMPLES = PKG / "samples"
IMAGE_EXT = (".png", ".jpg", ".jpeg")
AUDIO_EXT = (".wav", ".flac")
AUDIO_CHUNK = 1600  # samples per frame: 100 ms at 16 kHz


def default_model(modality: str = "image") -> str:
    """The bundled default model for ``modality`` (raises if none is bundled)."""
    from encoder_runtime.daemon.codecs import resolve_model

    return resolve_model("default", modality)


def sample_files(modality: str = "image") -> list[Path]:
    """The bundled real sample files of one modality, sorted by name (the order the source reads)."""
    ext = IMAGE_EXT if modality == "image" else AUDIO_EXT
    files = sorted(p for p in SAMPLES.glob("*") if p.suffix.lower() in ext) if SAMPLES.is_dir() else []
    if not files:
        raise FileNotFoundError(f"no bundled {modality} samples in {SAMPLES}")
    return files


def sample_frames(dest: Path, modality: str = "image") -> Path:
    """A folder holding (links to) the bundled samples of one modality only."""
    dest.mkdir(parents=True, exist_ok=True)
    for p in sample_files(modality):
        (dest / p.name).symlink_to(p)
    return dest


def original_frames(modality: str, chunk: int = AUDIO_CHUNK) -> list[np.ndarray]:
    """What the ``dir:`` source yields for one pass over the samples (to score reconstructions)."""
    from .sources import read_frames_from_file

    out: list[np.ndarray] = []
    for p in sample_files(modality):
        out.extend(read_frames_from_file(p, chunk))
    return out


def _scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def histogram_quantile(metrics: dict[str, float], name: str, q: float) -> float:
    """Quantile from Prometheus buckets, linearly interpolated inside the bucket (as PromQL does)."""
    buckets = sorted((float(k.split('le="')[1].rstrip('"}').replace("+Inf", "inf")), v)
                     for k, v in metrics.items() if k.startswith(name + "_bucket"))
    total = buckets[-1][1] if buckets else 0
    if not total:
        return float("nan")
    rank, lo, below = q * total, 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return lo
            inside = count - below
            return lo + (le - lo) * ((rank - below) / inside if inside else 1.0)
        lo, below = le, count
    return float("nan")


def quality(store: Path, stream: str, modality: str, frames: int, limit: int = 64) -> dict:
    """Decode the stored frames of the first pass over the samples (at most ``limit``) and compare
    them with the originals: mean PSNR over the photos, or the SNR of all the audio scored."""
    from encoder_runtime.daemon.codecs import decoder_for_header
    from encoder_runtime.container import RecordType

    from .store import iter_stream

    originals = original_frames(modality)
    want = min(limit, len(originals), frames)
    psnrs, sig, err, n, decoder = [], 0.0, 0.0, 0, None
    for header, rec in iter_stream(store, stream):
        if rec.type != RecordType.FRAME or rec.seq >= want:
            continue
        decoder = decoder or decoder_for_header(header)
        got = decoder.decode_frame(header, rec.payload).astype(np.float64)
        ref = originals[rec.seq].astype(np.float64)
        e2 = float(np.sum((got - ref) ** 2))
        psnrs.append(psnr_db(e2 / ref.size))
        sig, err, n = sig + float(np.sum(ref ** 2)), err + e2, n + 1
    if modality == "image":
        return {"psnr_db": round(float(np.mean(psnrs)), 2) if psnrs else None, "frames_scored": n}
    return {"snr_db": round(snr_db(sig, err), 2) if n and err else None, "frames_scored": n}


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns 0 when every frame arrived once and decodes."""
    ap = argparse.ArgumentParser(prog="python -m encoder_runtime.daemon.demo",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=200, help="stop after this many frames (default 200)")
    ap.add_argument("--fps", type=float, default=None,
                    help="capture rate, 0 = as fast as possible (default 20 for images, real time for audio)")
    ap.add_argument("--audio", action="store_true",
                    help="stream the bundled WAV files (100 ms chunks) with the default audio model")
    ap.add_argument("--model", default="default",
                    help="bundle name or directory (default: the bundled default for the modality)")
    ap.add_argument("--decode", metavar="DIR", default="",
                    help="also have sensor-receive write reconstructions to DIR (PNG / WAV)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (spool, store, logs)")
    a = ap.parse_args(argv)
    modality = "audio" if a.audio else "image"
    fps = a.fps if a.fps is not None else (16000 / AUDIO_CHUNK if a.audio else 20.0)
    try:
        model = default_model(modality) if a.model in ("", "default") else a.model
        files = sample_files(modality)
    except Exception as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="sensorcodec-demo-"))
    samples = sample_frames(work / "samples", modality)
    rx_port, metrics_port, rx_metrics_port = free_port(), free_port(), free_port()
    what = "photos" if modality == "image" else f"WAV files, {AUDIO_CHUNK}-sample chunks"
    print(f"demo: model {model} ({modality}), {len(files)} bundled {what} "
          f"({', '.join(p.name for p in files)}) looped at {fps:g} frames/s"
          f"\n      work folder {work}", flush=True)
    rx_args = ["--listen", f"127.0.0.1:{rx_port}", "--store", str(work / "store"),
               "--metrics", f"127.0.0.1:{rx_metrics_port}"]
    if a.decode:
        rx_args += ["--decode", a.decode]
    rx = spawn("receive_cli", rx_args, work / "receive.log")
    rx.stdout.readline()
    source = f"dir:{samples},loop=1,fps={fps:g}" + (f",chunk={AUDIO_CHUNK}" if a.audio else "")
    enc = spawn("encode_cli", ["--source", source, "--model", model,
                               "--sink", f"tcp://127.0.0.1:{rx_port}", "--spool", str(work / "spool"),
                               "--stream-id", "demo", "--max-frames", str(a.frames), "--segment-max-age", "50ms",
                               "--metrics", f"127.0.0.1:{metrics_port}"], work / "encode.log")
    rc = 1
    try:
        last, last_t, m, rm = None, time.monotonic(), {}, {}
        first_ack = None  # (time, frames) of the first reading with frames stored: start-up excluded
        print(f"{'time':>6} {'stored':>7} {'frames/s':>9} {'kbit/s':>9} {'ratio':>7} {'p50 ms':>7} {'p99 ms':>7}",
              flush=True)
        t_start = time.monotonic()
        next_print = time.monotonic() + 1.0
        while enc.poll() is None:
            time.sleep(0.05)
            if time.monotonic() < next_print:
                continue
            next_print += 1.0
            try:
                m, rm = _scrape(metrics_port), _scrape(rx_metrics_port)
            except OSError:
                continue
            now = time.monotonic()
            acked = m.get("sensor_encode_frames_acked_total", 0)
            enc_bytes = m.get("sensor_encode_bytes_encoded_total", 0)
            raw_bytes = m.get("sensor_encode_bytes_raw_total", 0)
            if first_ack is None and acked:
                first_ack = (now, acked)
            if last is not None:
                dt = now - last_t
                rate = (acked - last[0]) / dt
                kbps = (enc_bytes - last[1]) * 8 / dt / 1000
                ratio = raw_bytes / enc_bytes if enc_bytes else float("nan")
                p50 = histogram_quantile(rm, "sensor_receive_capture_to_stored_seconds", 0.5) * 1000
                p99 = histogram_quantile(rm, "sensor_receive_capture_to_stored_seconds", 0.99) * 1000
                print(f"{now - t_start:6.1f} {acked:7.0f} {rate:9.1f} {kbps:9.1f} {ratio:7.1f} {p50:7.0f} {p99:7.0f}",
                      flush=True)
            last, last_t = (acked, enc_bytes), now
        t_end = time.monotonic()
        elapsed = t_end - t_start
        steady = (t_end - first_ack[0], a.frames - first_ack[1]) if first_ack and a.frames > first_ack[1] \
            else (elapsed, a.frames)
        if enc.returncode != 0:
            print(f"demo: sensor-encode exited with {enc.returncode}; see {work / 'encode.log'}:\n"
                  + (work / "encode.log").read_text()[-2000:], file=sys.stderr)
            return 1
        try:
            rm = _scrape(rx_metrics_port)
        except OSError:
            pass
        print(f"demo: verifying the store (decoding every stored frame with the {model} decoder)...", flush=True)
        res = verify_stream(work / "store", "demo", expect_count=a.frames)
        from .store import summarize

        s = summarize(work / "store")["streams"][0]
        q = quality(work / "store", "demo", modality, res["frames"])
        first = original_frames(modality)[0]
        # the last metrics scrape can predate the first frame of a short run: fall back to frame size
        raw_per_frame = (m.get("sensor_encode_bytes_raw_total", 0)
                         / max(1, m.get("sensor_encode_frames_encoded_total", 1))) or first.nbytes
        per_frame = s["payload_bytes"] / max(1, res["frames"])
        unit = first.shape[0] * first.shape[1] if modality == "image" else first.shape[0]
        summary = {
            "model": model, "modality": modality, "frames": res["frames"], "gap_seqs": res["gap_seqs"],
            "stored_once": True, "all_decode": True, "elapsed_s": round(elapsed, 1),
            "frames_per_s": round(steady[1] / steady[0], 1),
            "kbit_per_s": round(per_frame * steady[1] * 8 / steady[0] / 1000, 1),
            "bytes_per_frame": round(per_frame), "compression_ratio": round(raw_per_frame / per_frame, 1),
            ("bits_per_pixel" if modality == "image" else "bits_per_sample"): round(per_frame * 8 / unit, 3),
            "capture_to_stored_ms": {
                "p50": round(histogram_quantile(rm, "sensor_receive_capture_to_stored_seconds", 0.5) * 1000, 1),
                "p99": round(histogram_quantile(rm, "sensor_receive_capture_to_stored_seconds", 0.99) * 1000, 1)},
            **q,
        }
        print(f"demo: {res['frames']} frames stored exactly once, {res['gap_seqs']} in gaps, all decode; "
              f"{summary['frames_per_s']} frames/s, {summary['kbit_per_s']} kbit/s, "
              f"{summary['bytes_per_frame']} B/frame ({summary['compression_ratio']}:1), "
              f"latency p50 {summary['capture_to_stored_ms']['p50']} ms / p99 "
              f"{summary['capture_to_stored_ms']['p99']} ms, "
              + (f"PSNR {q['psnr_db']} dB" if modality == "image" else f"SNR {q['snr_db']} dB"))
        print(json.dumps(summary))
        if a.decode:
            print(f"demo: reconstructions in {a.decode}/demo/")
        rc = 0
    finally:
        if enc.poll() is None:
            enc.terminate()
            enc.wait(10)
        rx.terminate()
        rx.wait(10)
        if not a.keep and rc == 0:
            shutil.rmtree(work, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
