"""Benchmark the shipping path on loopback: end-to-end vs encode-only, latency, RSS, stall.

    python benchmarks/daemon.py [--model default] [--frames 3000] [--duration 180] [--stall 30]
                                [--shape ""] [--out benchmarks/results/daemon.json]

Frames: the three bundled real 768×512 photos (``encoder_runtime/samples``), looped, read by the
``dir:`` source as ``.npy`` copies (raw frames, as a camera delivers them: PNG decoding is not
part of the shipping path). ``--shape HxWxC`` uses the synthetic test pattern instead. The model
is the bundled default image model (``rgb-c16``) unless ``--model`` names another (``raw`` =
the lossless debug codec the first run used).

Phases, all in one run so the ratio is against a baseline measured here and now:

1. encode-only: frames/s of ``Encoder.encode_frame`` in this process, one thread, same frames;
   measured before and after phase 2 (the faster one is kept: conservative on shared CPUs).
2. throughput: ``sensor-encode`` (a separate process, unpaced source) → loopback TCP → an
   in-process receiver that fsyncs; end-to-end frames/s; overhead = 1 - e2e / encode-only.
3. latency: the same at a paced rate (half the encode-only rate, capped at 30 fps); capture → stored
   (after fsync) latency per frame from the frame's wall-clock capture stamp; p50/p99.
4. RSS: the encoder's VmRSS sampled every second over ``--duration`` seconds (paced run).
5. stall (``--stall S``): a proxy stops forwarding for S seconds; checks the delivery invariant
   (every frame stored once or in a GAP; every stored frame decodes with the real decoder).

Writes the JSON and, with matplotlib, ``<out>.png``: RSS over time and the latency histogram.
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


def bench_frames(work: Path, shape: tuple | None) -> tuple[list[np.ndarray], str]:
    """The frames of the run and the ``--source`` URL that yields them in the same order."""
    if shape:
        src = SyntheticSource(shape)
        return [src.frame(i) for i in range(16)], "synthetic:" + "x".join(map(str, shape))
    from PIL import Image

    folder = work / "frames"
    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    for p in sorted((ROOT / "encoder_runtime" / "samples").glob("*.png")):
        arr = np.asarray(Image.open(p).convert("RGB"))
        np.save(folder / f"{p.stem}.npy", arr)
        frames.append(arr)
    return frames, f"dir:{folder},loop=1,kind=npy"


def encode_only(model: str, frames: list[np.ndarray], seconds: float = 4.0) -> tuple[float, int, float]:
    """Frames/s, mean payload bytes and CPU seconds per frame of encode_frame alone (one thread)."""
    enc = load_encoder(model, threads=1, modality="image")
    enc.encode_frame(frames[0])
    n, nbytes, t0, c0 = 0, 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        nbytes += len(enc.encode_frame(frames[n % len(frames)]))
        n += 1
    return n / (time.perf_counter() - t0), nbytes // max(n, 1), (time.process_time() - c0) / max(n, 1)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), seconds (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_encoder(work: Path, port: int, model: str, source: str, frames: int, tag: str,
                sample_rss: bool = False, extra: list[str] = (), stored=None) -> dict:
    """Run sensor-encode to completion; returns wall time, RSS samples and (with ``stored``, a
    callable giving the receiver's stored-frame count) CPU samples ``(frames_stored, cpu_s)``."""
    args = ["--source", source, "--model", model, "--sink", f"tcp://127.0.0.1:{port}",
            "--spool", str(work / f"spool-{tag}"), "--stream-id", tag, "--max-frames", str(frames),
            "--segment-max-age", "50ms", "--queue-size", "8", "--log-level", "warning", *extra]
    t0 = time.monotonic()
    p = spawn("encode_cli", args, work / f"{tag}.log")
    rss, cpu = [], []
    next_rss = 0.0
    while p.poll() is None:
        now = time.monotonic() - t0
        try:
            if sample_rss and now >= next_rss:
                rss.append((round(now, 1), rss_kib(p.pid)))
                next_rss += 1.0
            if stored is not None:
                cpu.append((stored(), cpu_seconds(p.pid)))
        except (OSError, ValueError, IndexError):
            pass
        time.sleep(0.05)
    if p.returncode != 0:
        raise RuntimeError(f"sensor-encode failed ({p.returncode}): {(work / f'{tag}.log').read_text()[-2000:]}")
    return {"wall_s": time.monotonic() - t0, "rss_kib": rss, "cpu": cpu}


def steady_cpu_per_frame(cpu: list[tuple[int, float]], total: int) -> float | None:
    """CPU seconds per frame between 10 % and 90 % of the frames stored (start-up and drain excluded)."""
    pts = [(n, c) for n, c in cpu if 0.1 * total <= n <= 0.9 * total]
    if len(pts) < 2 or pts[-1][0] == pts[0][0]:
        return None
    return (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0])


def pick_model(requested: str) -> str:
    """The requested model, else the bundled default image model (no silent fallback)."""
    from encoder_runtime.daemon.codecs import resolve_model

    return resolve_model(requested or "default", "image")


def loadavg() -> list[float]:
    """1/5/15-minute load averages (the CPUs are shared)."""
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def plot(result: dict, latencies_ms: np.ndarray, out: Path) -> None:
    """RSS over time and the capture → stored latency histogram, one PNG."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot", flush=True)
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    rss = result.get("rss", {}).get("series", [])
    if rss:
        ax1.plot([t for t, _ in rss], [r / 1024 for _, r in rss], lw=1.2)
        ax1.set_ylim(0, max(r for _, r in rss) / 1024 * 1.25)
    ax1.set_xlabel("seconds"), ax1.set_ylabel("sensor-encode RSS (MiB)")
    ax1.set_title(f"RSS, {result['model']} at {result.get('latency', {}).get('fps', '?')} frames/s "
                  f"({result.get('rss', {}).get('duration_s', 0):.0f} s)")
    if len(latencies_ms):
        ax2.hist(latencies_ms, bins=60, color="tab:orange")
        for q in (50, 99):
            v = float(np.percentile(latencies_ms, q))
            ax2.axvline(v, color="k", ls="--", lw=0.8)
            ax2.text(v, ax2.get_ylim()[1] * 0.9, f" p{q} {v:.0f} ms", fontsize=8)
    ax2.set_xlabel("capture → durably stored (ms)"), ax2.set_ylabel("frames")
    ax2.set_title(f"latency, paced runs ({len(latencies_ms)} frames, segment_max_age 50 ms)")
    fig.suptitle(f"sensor-encode → loopback TCP → sensor-receive (fsync), {result['frame_source']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="default", help="bundle name or directory (default: rgb-c16)")
    ap.add_argument("--shape", default="", help="HxWxC: synthetic frames instead of the bundled photos")
    ap.add_argument("--frames", type=int, default=1500, help="frames of each unpaced throughput round")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved encode-only / end-to-end rounds")
    ap.add_argument("--duration", type=float, default=180.0, help="seconds of the RSS run (600 = 10 minutes)")
    ap.add_argument("--stall", type=float, default=0.0, help="seconds of link stall to inject (0 = skip)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "daemon.json"))
    a = ap.parse_args(argv)
    import onnxruntime
    import zstandard

    model = pick_model(a.model)
    shape = _parse_shape(a.shape, "--shape") if a.shape else None
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"sensorcodec-bench-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    frames, source = bench_frames(work, shape)
    frame_desc = (f"synthetic {a.shape}" if shape else
                  f"{len(frames)} bundled real photos {frames[0].shape[1]}x{frames[0].shape[0]} (looped, .npy)")
    result: dict = {"machine": {"platform": platform.platform(), "machine": platform.machine(),
                                "cpus": os.cpu_count(), "python": platform.python_version(),
                                "onnxruntime": onnxruntime.__version__, "zstandard": zstandard.__version__,
                                "numpy": np.__version__, "loadavg_start": loadavg(),
                                "note": "shared host: other jobs run on the same CPUs"},
                    "model": model, "frame_source": frame_desc, "shape": list(frames[0].shape),
                    "threads": 1, "transport": "tcp loopback, fsync per segment",
                    "previous_run": "raw (lossless zstd stand-in) codec, 256x256 synthetic frames, "
                                    "10-minute RSS run: 53.3 -> 57.0 MiB (see git history of this file)"}
    print(f"model={model} frames={frame_desc} machine={platform.machine()} cpus={os.cpu_count()} "
          f"load={loadavg()}", flush=True)

    fps_enc, mean_bytes, cpu_enc = encode_only(model, frames)
    px = frames[0].shape[0] * frames[0].shape[1]
    result["encode_only_fps"] = round(fps_enc, 1)
    result["mean_payload_bytes"] = mean_bytes
    result["bits_per_pixel"] = round(mean_bytes * 8 / px, 4)
    print(f"encode-only: {fps_enc:.1f} frames/s, {mean_bytes} B/frame", flush=True)

    rx = TimedReceiver(work / "store")
    all_lat: list[float] = []
    try:
        # 2. throughput, unpaced: --rounds interleaved (encode-only, end-to-end) pairs, because the
        # CPUs are shared and both wall-clock and CPU time drift by tens of percent between minutes.
        rounds = []
        for r in range(a.rounds):
            tag = f"tput{r}"
            n0 = len(rx.stored_at)
            rx_cpu0 = time.process_time()
            tput = run_encoder(work, rx.port, model, source, a.frames, tag,
                               stored=lambda: len(rx.stored_at) - n0)
            rx_cpu = (time.process_time() - rx_cpu0) / a.frames
            at = rx.stored_at[n0:]
            # Steady state: from the first stored frame to the last (process start-up excluded).
            e2e = (len(at) - 1) / (max(at) - min(at)) if len(at) > 1 else 0.0
            verify_stream(work / "store", tag, decode=True, expect_count=a.frames, expect_model=model)
            enc_fps, _, enc_cpu = encode_only(model, frames, 3.0)
            base_fps = max(enc_fps, fps_enc)   # the faster of the two neighbours: conservative
            base_cpu = min(enc_cpu, cpu_enc)
            cpu_e2e = steady_cpu_per_frame(tput["cpu"], a.frames)
            rounds.append({"encode_only_fps": round(base_fps, 1), "e2e_fps": round(e2e, 1),
                           "overhead": round(1 - e2e / base_fps, 3),
                           "encode_only_cpu_ms": round(base_cpu * 1000, 3),
                           "sensor_encode_cpu_ms": round(cpu_e2e * 1000, 3) if cpu_e2e else None,
                           "cpu_overhead": round(cpu_e2e / base_cpu - 1, 3) if cpu_e2e else None,
                           "receiver_cpu_ms": round(rx_cpu * 1000, 3)})
            print(f"round {r}: encode-only {base_fps:.1f} frames/s ({base_cpu * 1000:.2f} ms CPU), end-to-end "
                  f"{e2e:.1f} frames/s (overhead {100 * (1 - e2e / base_fps):.1f} %); sensor-encode CPU/frame "
                  f"{rounds[-1]['sensor_encode_cpu_ms']} ms, receiver {rx_cpu * 1000:.3f} ms", flush=True)
            fps_enc, cpu_enc = enc_fps, enc_cpu

        def med(key):
            vals = [x[key] for x in rounds if x[key] is not None]
            return round(float(np.median(vals)), 3) if vals else None

        fps_enc = med("encode_only_fps")
        result["encode_only_fps"] = fps_enc
        result["throughput"] = {"frames_per_round": a.frames, "rounds": rounds,
                                "e2e_fps": med("e2e_fps"),
                                "e2e_mpix_per_s": round(med("e2e_fps") * px / 1e6, 1),
                                "overhead_vs_encode_only": med("overhead"),
                                "cpu_overhead_vs_encode_only": med("cpu_overhead"),
                                "sensor_encode_cpu_ms_per_frame": med("sensor_encode_cpu_ms"),
                                "encode_only_cpu_ms_per_frame": med("encode_only_cpu_ms"),
                                "receiver_cpu_ms_per_frame": med("receiver_cpu_ms"),
                                "goal": "overhead <= 0.10",
                                "note": "medians over interleaved rounds; overhead = 1 - e2e/encode-only "
                                        "(wall clock: sensor-encode, the in-process receiver and other jobs "
                                        "share 2 CPUs); cpu_overhead = sensor-encode process CPU per frame "
                                        "(all threads, 10-90 % of the run) / encode_frame CPU per frame - 1"}
        print(f"end-to-end (median of {a.rounds}): {result['throughput']['e2e_fps']} frames/s, overhead "
              f"{result['throughput']['overhead_vs_encode_only']}, CPU overhead "
              f"{result['throughput']['cpu_overhead_vs_encode_only']}", flush=True)

        # 3. latency at a sustainable rate
        rate = min(30.0, fps_enc / 2)
        paced = f"{source},fps={rate:.2f}"
        n_lat = max(60, int(rate * 20))
        n0 = len(rx.latencies)
        run_encoder(work, rx.port, model, paced, n_lat, "lat")
        lat = np.array(rx.latencies[n0:]) * 1000
        all_lat += list(lat)
        result["latency"] = {"fps": round(rate, 1), "frames": len(lat),
                             "p50_ms": round(float(np.percentile(lat, 50)), 1),
                             "p99_ms": round(float(np.percentile(lat, 99)), 1),
                             "max_ms": round(float(lat.max()), 1),
                             "segment_max_age_ms": 50,
                             "note": "capture stamp (sender wall clock) to after the receiver's fsync"}
        print(f"latency capture→stored at {rate:.1f} fps: p50 {result['latency']['p50_ms']} ms, "
              f"p99 {result['latency']['p99_ms']} ms", flush=True)

        # 4. RSS over --duration seconds, paced
        n_rss = int(rate * a.duration)
        n0 = len(rx.latencies)
        out = run_encoder(work, rx.port, model, paced, n_rss, "rss", sample_rss=True)
        rss_lat = np.array(rx.latencies[n0:]) * 1000
        all_lat += list(rss_lat)
        series = [(t, r) for t, r in out["rss_kib"] if r]
        rss = [r for _t, r in series]
        if rss:
            half = len(rss) // 2
            # Steady state: after the first 10 s (model load, arenas), before the last 3 s (shutdown frees).
            steady = rss[min(10, len(rss) - 1):max(min(10, len(rss) - 1) + 1, len(rss) - 3)]
            result["rss"] = {"duration_s": a.duration, "fps": round(rate, 1), "frames": n_rss,
                             "samples": len(rss), "start_kib": rss[min(2, len(rss) - 1)], "end_kib": steady[-1],
                             "max_kib": max(rss), "first_half_mean_kib": int(np.mean(rss[:half] or rss)),
                             "second_half_mean_kib": int(np.mean(rss[half:])),
                             "steady_min_kib": min(steady), "steady_max_kib": max(steady),
                             "steady_growth_kib": steady[-1] - steady[0],
                             "steady": "samples from 10 s to 3 s before exit",
                             "latency_p50_ms": round(float(np.percentile(rss_lat, 50)), 1),
                             "latency_p99_ms": round(float(np.percentile(rss_lat, 99)), 1),
                             "series": series}
            print(f"RSS over {a.duration:.0f}s: start {result['rss']['start_kib']} KiB, end {steady[-1]} KiB, "
                  f"max {max(rss)} KiB; steady {min(steady)}..{max(steady)} KiB", flush=True)

        # 5. stalled link
        if a.stall:
            proxy = FaultProxy(rx.port)
            n_st = int(rate * (a.stall + 10))
            holder: dict = {}
            th = threading.Thread(target=lambda: holder.update(run_encoder(
                work, proxy.port, model, paced, n_st, "stall",
                extra=["--ack-timeout", "5s", "--backoff-cap", "2s"])))
            th.start()
            time.sleep(4)
            proxy.stalled.set()
            time.sleep(a.stall)
            proxy.stalled.clear()
            t_release = time.monotonic()
            th.join()
            proxy.close()
            v = verify_stream(work / "store", "stall", decode=True, expect_count=n_st, expect_model=model)
            result["stall"] = {"stall_s": a.stall, "fps": round(rate, 1), "frames": n_st, "stored": v["frames"],
                               "gap_seqs": v["gap_seqs"], "recovered_in_s": round(time.monotonic() - t_release, 1),
                               "invariant": "ok (every seq stored once or in a GAP; all stored frames decode)"}
            print(f"stall {a.stall:.0f}s: {v['frames']}/{n_st} stored, {v['gap_seqs']} in gaps, invariant ok",
                  flush=True)
    finally:
        rx.close()
    result["machine"]["loadavg_end"] = loadavg()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {a.out}")
    plot(result, np.array(all_lat), Path(a.out).with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
