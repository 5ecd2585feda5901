"""Benchmark the shipping path on loopback: end-to-end vs encode-only, latency, RSS, stall.

    python benchmarks/daemon.py [--model M] [--frames 600] [--shape 256x256x3] [--duration 60]
                                [--stall 30] [--out benchmarks/results/daemon.json]

Phases, all in one run so the ratio is against a baseline measured here and now:

1. encode-only: frames/s of ``Encoder.encode_frame`` in this process, one thread.
2. throughput: ``sensor-encode`` (a separate process, unpaced synthetic source) → loopback TCP →
   an in-process receiver that fsyncs; end-to-end frames/s; overhead = 1 - e2e / encode-only.
3. latency: the same at a paced rate (half the encode-only rate, capped at 30 fps); capture → stored
   (after fsync) latency per frame from the frame's wall-clock capture stamp; p50/p99.
4. RSS: the encoder's VmRSS sampled every second over ``--duration`` seconds (paced run).
5. stall (``--stall S``): a proxy stops forwarding for S seconds; checks the delivery invariant.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from encoder_runtime.container import RecordType  # noqa: E402
from encoder_runtime.daemon.codecs import load_encoder  # noqa: E402
from encoder_runtime.daemon.faults import FaultProxy, free_port, spawn, verify_stream  # noqa: E402
from encoder_runtime.daemon.receiver import Receiver  # noqa: E402
from encoder_runtime.daemon.sources import SyntheticSource, _parse_shape  # noqa: E402
from encoder_runtime.daemon.store import StreamStore  # noqa: E402


class TimedReceiver:
    """An in-process receiver that records, per stored frame, capture → durably-stored latency."""

    def __init__(self, store: Path) -> None:
        self.latencies: list[float] = []
        self.stored_at: list[float] = []
        lat, at = self.latencies, self.stored_at
        orig = StreamStore.commit

        def commit(self_, header, records):
            out = orig(self_, header, records)
            now = time.time_ns()
            for r in records:
                if r.type == RecordType.FRAME:
                    lat.append((now - r.t_wall_ns) / 1e9)
                    at.append(now / 1e9)
            return out

        StreamStore.commit = commit
        self.rx = Receiver("127.0.0.1", 0, str(store))
        self.port = self.rx.address[1]
        threading.Thread(target=self.rx.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.rx.shutdown()


def rss_kib(pid: int) -> int:
    """Resident set size of a process in KiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def encode_only(model: str, shape: tuple, seconds: float = 3.0) -> tuple[float, int]:
    """Frames/s and mean payload bytes of encode_frame alone (one thread)."""
    enc = load_encoder(model, threads=1)
    src = SyntheticSource(shape)
    frames = [src.frame(i) for i in range(16)]
    enc.encode_frame(frames[0])
    n, nbytes, t0 = 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        nbytes += len(enc.encode_frame(frames[n % 16]))
        n += 1
    return n / (time.perf_counter() - t0), nbytes // max(n, 1)


def run_encoder(work: Path, port: int, model: str, source: str, frames: int, tag: str,
                sample_rss: bool = False, extra: list[str] = ()) -> dict:
    """Run sensor-encode to completion; returns wall time and RSS samples."""
    args = ["--source", source, "--model", model, "--sink", f"tcp://127.0.0.1:{port}",
            "--spool", str(work / f"spool-{tag}"), "--stream-id", tag, "--max-frames", str(frames),
            "--segment-max-age", "50ms", "--queue-size", "8", "--log-level", "warning", *extra]
    t0 = time.monotonic()
    p = spawn("encode_cli", args, work / f"{tag}.log")
    rss = []
    while p.poll() is None:
        if sample_rss:
            try:
                rss.append((round(time.monotonic() - t0, 1), rss_kib(p.pid)))
            except (OSError, ValueError):
                pass
        time.sleep(1.0 if sample_rss else 0.05)
    if p.returncode != 0:
        raise RuntimeError(f"sensor-encode failed ({p.returncode}): {(work / f'{tag}.log').read_text()[-2000:]}")
    return {"wall_s": time.monotonic() - t0, "rss_kib": rss}


def pick_model(requested: str) -> str:
    """The requested model, the bundled default, or raw."""
    if requested:
        return requested
    try:
        from encoder_runtime.daemon.demo import default_model
        return default_model()
    except Exception:
        return "raw"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="")
    ap.add_argument("--shape", default="256x256x3")
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of the RSS run (600 = 10 minutes)")
    ap.add_argument("--stall", type=float, default=0.0, help="seconds of link stall to inject (0 = skip)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "daemon.json"))
    a = ap.parse_args(argv)
    import onnxruntime
    import zstandard

    model, shape = pick_model(a.model), _parse_shape(a.shape, "--shape")
    shape_s = "x".join(map(str, shape))
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"sensorcodec-bench-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    result: dict = {"machine": {"platform": platform.platform(), "machine": platform.machine(),
                                "cpus": os.cpu_count(), "python": platform.python_version(),
                                "onnxruntime": onnxruntime.__version__, "zstandard": zstandard.__version__,
                                "numpy": np.__version__},
                    "model": model, "shape": shape, "threads": 1, "transport": "tcp loopback, fsync per segment"}
    print(f"model={model} shape={shape_s} machine={platform.machine()} cpus={os.cpu_count()}", flush=True)

    fps_enc, mean_bytes = encode_only(model, shape)
    result["encode_only_fps"] = round(fps_enc, 1)
    result["mean_payload_bytes"] = mean_bytes
    print(f"encode-only: {fps_enc:.1f} frames/s, {mean_bytes} B/frame", flush=True)

    rx = TimedReceiver(work / "store")
    try:
        # 2. throughput, unpaced
        n0 = len(rx.stored_at)
        run_encoder(work, rx.port, model, f"synthetic:{shape_s}", a.frames, "tput")
        at = rx.stored_at[n0:]
        lat = rx.latencies[n0:]
        # Steady state: from the first stored frame to the last (process start-up excluded).
        e2e_fps = (len(at) - 1) / (max(at) - min(at)) if len(at) > 1 else 0.0
        # Re-measure the baseline right after (shared CPUs drift); keep the faster one (conservative).
        fps_enc = max(fps_enc, encode_only(model, shape)[0])
        result["encode_only_fps"] = round(fps_enc, 1)
        result["throughput"] = {"frames": len(at), "e2e_fps": round(e2e_fps, 1),
                                "overhead_vs_encode_only": round(1 - e2e_fps / fps_enc, 3)}
        print(f"end-to-end: {e2e_fps:.1f} frames/s (overhead {100 * (1 - e2e_fps / fps_enc):.1f} % "
              f"vs encode-only)", flush=True)
        verify_stream(work / "store", "tput", decode=False, expect_count=a.frames)

        # 3. latency at a sustainable rate
        rate = min(30.0, fps_enc / 2)
        n_lat = max(60, int(rate * 10))
        n0 = len(rx.latencies)
        run_encoder(work, rx.port, model, f"synthetic:{shape_s},fps={rate:.2f}", n_lat, "lat")
        lat = np.array(rx.latencies[n0:]) * 1000
        result["latency"] = {"fps": round(rate, 1), "frames": len(lat),
                             "p50_ms": round(float(np.percentile(lat, 50)), 1),
                             "p99_ms": round(float(np.percentile(lat, 99)), 1),
                             "segment_max_age_ms": 50}
        print(f"latency capture→stored at {rate:.1f} fps: p50 {result['latency']['p50_ms']} ms, "
              f"p99 {result['latency']['p99_ms']} ms", flush=True)

        # 4. RSS over --duration seconds, paced
        n_rss = int(rate * a.duration)
        out = run_encoder(work, rx.port, model, f"synthetic:{shape_s},fps={rate:.2f}", n_rss, "rss",
                          sample_rss=True)
        rss = [r for _t, r in out["rss_kib"] if r]
        if rss:
            half = len(rss) // 2
            result["rss"] = {"duration_s": a.duration, "frames": n_rss, "samples": len(rss),
                             "start_kib": rss[min(2, len(rss) - 1)], "end_kib": rss[-1], "max_kib": max(rss),
                             "first_half_mean_kib": int(np.mean(rss[:half] or rss)),
                             "second_half_mean_kib": int(np.mean(rss[half:]))}
            print(f"RSS over {a.duration:.0f}s: start {result['rss']['start_kib']} KiB, end {rss[-1]} KiB, "
                  f"max {max(rss)} KiB", flush=True)

        # 5. stalled link
        if a.stall:
            proxy = FaultProxy(rx.port)
            n_st = int(rate * (a.stall + 10))
            holder: dict = {}
            th = threading.Thread(target=lambda: holder.update(run_encoder(
                work, proxy.port, model, f"synthetic:{shape_s},fps={rate:.2f}", n_st, "stall",
                extra=["--ack-timeout", "5s", "--backoff-cap", "2s"])))
            th.start()
            time.sleep(4)
            proxy.stalled.set()
            time.sleep(a.stall)
            proxy.stalled.clear()
            t_release = time.monotonic()
            th.join()
            proxy.close()
            v = verify_stream(work / "store", "stall", decode=True, expect_count=n_st)
            result["stall"] = {"stall_s": a.stall, "frames": n_st, "stored": v["frames"],
                               "gap_seqs": v["gap_seqs"], "recovered_in_s": round(time.monotonic() - t_release, 1),
                               "invariant": "ok"}
            print(f"stall {a.stall:.0f}s: {v['frames']}/{n_st} stored, {v['gap_seqs']} in gaps, invariant ok",
                  flush=True)
    finally:
        rx.close()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
