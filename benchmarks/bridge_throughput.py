"""Bridge throughput on a pty pair: how many Mbit/s of frames one host process decodes, and at
what CPU cost.

A fake MCU runs in a separate process (``sensor-bridge simulate``, 80 IMU samples = ~1 KB frames)
so only the receiving side is measured: a :class:`firmware_bridge.link.Link` (reader thread, COBS,
CRC, DATA parsing into numpy, bounded queue) plus a consumer thread draining it. CPU = this
process's user+sys time over the window; "cores" = CPU / wall (must stay <= 1). Runs:

* ``max``: the MCU sends as fast as it can (blocking writes), i.e. the link's ceiling;
* ``target``: throttled to ~2.4 Mbit/s (300 frames/s x ~1 KB), the issue's 2 Mbit/s goal + margin;
* ``baseline``: raw ``os.read`` of the same pty with no decoding (same process), for the ratio.

Writes benchmarks/results/bridge_throughput.json. Usage: python benchmarks/bridge_throughput.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import platform
import subprocess
import sys
import threading
import time
from typing import Iterator

import serial

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from a checkout without install
from firmware_bridge.link import DataEvent, Link

OUT = pathlib.Path(__file__).resolve().parent / "results" / "bridge_throughput.json"


@contextlib.contextmanager
def _simulator(rate: float, samples: int, seconds: float) -> Iterator[str]:
    """A fake MCU process on a pty for the duration of the block; yields the pty path."""
    env = dict(os.environ, PYTHONPATH=str(pathlib.Path(__file__).resolve().parents[1]))
    p = subprocess.Popen([sys.executable, "-m", "firmware_bridge.cli", "simulate", "--kind", "imu", "--samples",
                          str(samples), "--rate", str(rate), "--block", "--duration", str(seconds + 5)],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        yield p.stdout.readline().strip()
    finally:
        p.terminate()
        p.wait(10)


def _cpu_seconds(before: os.times_result, after: os.times_result) -> float:
    """This process's user + system CPU time between two ``os.times()``."""
    return (after.user - before.user) + (after.system - before.system)


def run_link(rate: float, samples: int, seconds: float) -> dict:
    """Receive through a Link for ``seconds``; returns throughput and CPU."""
    with _simulator(rate, samples, seconds) as path:
        link = Link(path, timesync_interval=1.0, queue_size=4096).start(wait_connected=5)
        got = {"n": 0}
        stop = threading.Event()

        def consume() -> None:
            while not stop.is_set():
                ev = link.get(0.1)
                if isinstance(ev, DataEvent):
                    got["n"] += 1

        th = threading.Thread(target=consume, daemon=True)
        th.start()
        time.sleep(0.5)  # warm-up
        c0, t0, cpu0 = link.counters(), time.monotonic(), os.times()
        time.sleep(seconds)
        c1, t1, cpu1 = link.counters(), time.monotonic(), os.times()
        stop.set()
        th.join(2)
        link.close()
    wall = t1 - t0
    cpu = _cpu_seconds(cpu0, cpu1)
    nbytes, frames = c1["bytes"] - c0["bytes"], c1["frames"] - c0["frames"]
    return {"rate_setting_fps": rate, "wall_s": round(wall, 3), "frames": frames, "bytes": nbytes,
            "frame_bytes_on_wire": round(nbytes / max(frames, 1), 1),
            "mbit_per_s": round(nbytes * 8 / wall / 1e6, 3), "frames_per_s": round(frames / wall, 1),
            "cpu_s": round(cpu, 3), "cores_used": round(cpu / wall, 3),
            "crc_errors": c1["crc_errors"], "lost_frames": c1["lost_frames"] - c0["lost_frames"],
            "lost_queue_full": c1.get("lost_queue_full", 0)}


def run_baseline(samples: int, seconds: float) -> dict:
    """Raw reads of the pty (no decoding): what the OS + pyserial read loop costs alone."""
    with _simulator(0, samples, seconds) as path:
        ser = serial.serial_for_url(path, timeout=0.05)
        from firmware_bridge import frame, spec  # noqa: PLC0415
        ser.write(frame.encode_frame(spec.T_HELLO, 0, 0, spec.PAYLOADS["HELLO"].pack(1, 0, 1024, spec.SCHEMA_HASH, 0, 0)))
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            ser.read(max(1, ser.in_waiting))
        n, t0, cpu0 = 0, time.monotonic(), os.times()
        while time.monotonic() - t0 < seconds:
            n += len(ser.read(min(max(1, ser.in_waiting), 1 << 16)))
        t1, cpu1 = time.monotonic(), os.times()
        ser.close()
    wall = t1 - t0
    cpu = _cpu_seconds(cpu0, cpu1)
    return {"mbit_per_s": round(n * 8 / wall / 1e6, 3), "cpu_s": round(cpu, 3), "cores_used": round(cpu / wall, 3)}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--samples", type=int, default=80, help="IMU samples per frame (80 -> ~1 KB frames)")
    ap.add_argument("--out", type=pathlib.Path, default=OUT)
    a = ap.parse_args(argv)
    res = {
        "benchmark": "bridge_throughput", "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "pyserial": serial.VERSION},
        "threads": "1 reader thread + 1 consumer thread (one process); fake MCU in a separate process",
        "baseline_raw_read": run_baseline(a.samples, a.seconds),
        "max": run_link(0, a.samples, a.seconds),
        "target": run_link(300, a.samples, a.seconds),
    }
    res["ratio_link_vs_raw_read"] = round(res["max"]["mbit_per_s"] / max(res["baseline_raw_read"]["mbit_per_s"], 1e-9), 3)
    res["goal"] = {"mbit_per_s": 2.0, "max_cores": 1.0,
                   "met": res["max"]["mbit_per_s"] >= 2.0 and res["target"]["cores_used"] <= 1.0
                   and res["max"]["cores_used"] <= 1.0}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))
    return 0 if res["goal"]["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
