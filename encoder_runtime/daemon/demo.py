"""One-command demo: ``python -m encoder_runtime.daemon.demo [--frames 200] [--fps 20]``.

Starts ``sensor-receive`` and ``sensor-encode`` on loopback with the bundled default model and
the bundled sample frames (``encoder_runtime/samples/``; scikit-image's sample photos if none are
bundled), prints live frames/s, bitrate and capture→acknowledged latency once a second, then
checks the received store (every frame stored once, every frame decodes) and exits.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from .faults import free_port, spawn, verify_stream

PKG = Path(__file__).resolve().parents[1]


def default_model() -> str:
    """The bundled default image model (raises if the codec or a bundle is missing)."""
    from encoder_runtime.daemon.codecs import resolve_model

    return resolve_model("default", "image")


def sample_frames(dest: Path) -> Path:
    """A folder of real sample images: the bundled ones, or scikit-image's photos."""
    bundled = PKG / "samples"
    images = sorted(p for p in bundled.glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg")) \
        if bundled.is_dir() else []
    dest.mkdir(parents=True, exist_ok=True)
    if images:  # the bundled folder also holds audio: link the images only
        for p in images:
            (dest / p.name).symlink_to(p)
        return dest
    import numpy as np
    from skimage import data

    for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field"):
        try:
            img = getattr(data, name)()
        except Exception:
            continue
        if img.ndim == 3 and img.shape[2] == 3:
            np.save(dest / f"{name}.npy", img[: img.shape[0] // 64 * 64, : img.shape[1] // 64 * 64])
    return dest


def _scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def histogram_quantile(metrics: dict[str, float], name: str, q: float) -> float:
    """Approximate quantile from Prometheus buckets (upper bound of the bucket holding it)."""
    buckets = sorted((float(k.split('le="')[1].rstrip('"}').replace("+Inf", "inf")), v)
                     for k, v in metrics.items() if k.startswith(name + "_bucket"))
    total = buckets[-1][1] if buckets else 0
    for le, count in buckets:
        if total and count >= q * total:
            return le
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns 0 when every frame arrived and decodes."""
    ap = argparse.ArgumentParser(prog="python -m encoder_runtime.daemon.demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=200, help="stop after this many frames (default 200)")
    ap.add_argument("--fps", type=float, default=20.0, help="capture rate (0 = as fast as possible)")
    ap.add_argument("--model", default="", help="bundle name or directory (default: the bundled default)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (spool, store)")
    a = ap.parse_args(argv)
    try:
        model = a.model or default_model()
    except Exception as exc:
        print(f"demo: no learned model available ({exc}); using the raw pass-through codec", file=sys.stderr)
        model = "raw"
    work = Path(tempfile.mkdtemp(prefix="sensorcodec-demo-"))
    samples = sample_frames(work / "samples")
    rx_port, metrics_port = free_port(), free_port()
    print(f"demo: model {model}\n      frames from {samples} ({len(list(samples.iterdir()))} images, looped)"
          f"\n      work folder {work}")
    rx = spawn("receive_cli", ["--listen", f"127.0.0.1:{rx_port}", "--store", str(work / "store")],
               work / "receive.log")
    rx.stdout.readline()
    enc = spawn("encode_cli", ["--source", f"dir:{samples},loop=1,fps={a.fps}", "--model", model,
                               "--sink", f"tcp://127.0.0.1:{rx_port}", "--spool", str(work / "spool"),
                               "--stream-id", "demo", "--max-frames", str(a.frames), "--segment-max-age", "100ms",
                               "--metrics", f"127.0.0.1:{metrics_port}"], work / "encode.log")
    rc = 1
    try:
        last, last_t = None, time.monotonic()
        print(f"{'time':>6} {'acked':>7} {'frames/s':>9} {'kbit/s':>9} {'ratio':>7} {'p50 ms':>7} {'p99 ms':>7}")
        t_start = time.monotonic()
        while enc.poll() is None:
            time.sleep(1.0)
            try:
                m = _scrape(metrics_port)
            except OSError:
                continue
            now = time.monotonic()
            acked = m.get("sensor_encode_frames_acked_total", 0)
            enc_bytes = m.get("sensor_encode_bytes_encoded_total", 0)
            raw_bytes = m.get("sensor_encode_bytes_raw_total", 0)
            if last is not None:
                dt = now - last_t
                fps = (acked - last[0]) / dt
                kbps = (enc_bytes - last[1]) * 8 / dt / 1000
                ratio = raw_bytes / enc_bytes if enc_bytes else float("nan")
                p50 = histogram_quantile(m, "sensor_encode_capture_to_ack_seconds", 0.5) * 1000
                p99 = histogram_quantile(m, "sensor_encode_capture_to_ack_seconds", 0.99) * 1000
                print(f"{now - t_start:6.1f} {acked:7.0f} {fps:9.1f} {kbps:9.1f} {ratio:7.1f} {p50:7.0f} {p99:7.0f}",
                      flush=True)
            last, last_t = (acked, enc_bytes), now
        if enc.returncode != 0:
            print(f"demo: sensor-encode exited with {enc.returncode}; see {work / 'encode.log'}", file=sys.stderr)
            return 1
        res = verify_stream(work / "store", "demo", expect_count=a.frames)
        from .store import summarize

        s = summarize(work / "store")["streams"][0]
        print(f"demo: {res['frames']} frames stored once each ({s['payload_bytes']} payload bytes), "
              f"{res['gap_seqs']} in gaps, all decode")
        print(json.dumps({k: s[k] for k in ("stream_id", "frames", "seq_ranges", "codecs")}))
        rc = 0
    finally:
        if enc.poll() is None:
            enc.terminate()
        rx.terminate()
        rx.wait(10)
        if not a.keep and rc == 0:
            shutil.rmtree(work, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
