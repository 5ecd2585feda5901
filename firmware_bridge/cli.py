"""``sensor-bridge``: watch a microcontroller link, or play a fake MCU on a pty.

    sensor-bridge monitor URL [--duration S] [--json]       live counters (frames/s, CRC errors, gaps, clock)
    sensor-bridge simulate [--kind imu|audio|ecg|camera|codes] [--rate HZ] [--corrupt P]
                           [--reboot-after N] [--link PATH | --tcp PORT]   prints the device path

URL is anything ``serial.serial_for_url`` opens: /dev/ttyACM0, /dev/serial/by-id/..., loop://,
socket://host:port, rfc2217://host:port.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from typing import Any

from firmware_bridge import playback, spec
from firmware_bridge.link import Link


def _fmt(c: dict[str, Any], fps: float, bps: float) -> str:
    off = c.get("clock_offset_us")
    offs = "-" if off is None else f"{off / 1e6:+.6f}s({c['clock_source']})"
    return (f"{fps:8.1f} frames/s {bps * 8 / 1e6:7.3f} Mbit/s  frames={c['frames']} crc={c['crc_errors']} "
            f"framing={c['framing_errors']} gaps={c['gaps']} lost={c['lost_frames']} reboots={c['reboots']} "
            f"reconnects={c['reconnects']} clock_offset={offs} {'connected' if c['connected'] else 'DISCONNECTED'}")


def cmd_monitor(a: argparse.Namespace) -> int:
    """Open the link, drain it, print counters every interval."""
    try:
        import serial  # noqa: PLC0415
        serial.serial_for_url(a.url, do_not_open=True)  # rejects unknown URL schemes up front
        link = Link(a.url, a.baudrate, timesync_interval=a.timesync)
    except (ValueError, serial.SerialException) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    link.start()
    t0 = time.monotonic()
    last_t, last_frames, last_bytes = t0, 0, 0
    try:
        while not stop.is_set():
            end = min(last_t + a.interval, t0 + a.duration) if a.duration else last_t + a.interval
            while time.monotonic() < end and not stop.is_set():
                link.get(timeout=min(0.1, max(0.0, end - time.monotonic())))
            now = time.monotonic()
            c = link.counters()
            dt = max(now - last_t, 1e-9)
            fps, bps = (c["frames"] - last_frames) / dt, (c["bytes"] - last_bytes) / dt
            last_t, last_frames, last_bytes = now, c["frames"], c["bytes"]
            if a.json:
                print(json.dumps(dict(c, frames_per_s=round(fps, 2), bits_per_s=round(bps * 8, 1)), default=str), flush=True)
            else:
                print(_fmt(c, fps, bps), flush=True)
            if a.duration and now - t0 >= a.duration:
                break
    finally:
        link.close()
    c = link.counters()
    if c.get("connects", 0) == 0:
        print(f"error: could not open {a.url}: {c['last_error']}", file=sys.stderr)
        return 1
    return 0


def cmd_simulate(a: argparse.Namespace) -> int:
    """Run a fake MCU until interrupted (or --duration)."""
    from firmware_bridge.simulator import FakeMCU, PtyTransport, TcpTransport  # noqa: PLC0415
    try:
        tr = TcpTransport(a.tcp) if a.tcp is not None else PtyTransport(a.link)
        mcu = FakeMCU(tr, a.kind, rate=a.rate, samples=a.samples, corrupt=a.corrupt, reboot_after=a.reboot_after,
                      max_frames=a.frames, seed=a.seed, drift_ppm=a.drift_ppm, block_writes=a.block)
    except (playback.PlaybackError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(tr.path, flush=True)
    print(f"fake MCU: {a.kind} ({mcu.label}), {a.rate} frames/s, boot nonce {mcu.nonce:#010x}, "
          f"schema {spec.SCHEMA_HASH:#010x}", file=sys.stderr, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    mcu.start()
    t0 = time.monotonic()
    while not stop.is_set() and (not a.duration or time.monotonic() - t0 < a.duration):
        stop.wait(0.1)
    mcu.stop()
    if a.json:
        print(json.dumps(mcu.summary(), default=str), flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for docs and tests)."""
    ap = argparse.ArgumentParser(prog="sensor-bridge", description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("monitor", help="live link counters")
    m.add_argument("url", help="serial URL or device path")
    m.add_argument("--baudrate", type=int, default=921600)
    m.add_argument("--duration", type=float, default=0.0, help="stop after S seconds (0: until Ctrl-C)")
    m.add_argument("--interval", type=float, default=1.0, help="seconds between reports")
    m.add_argument("--timesync", type=float, default=1.0, help="seconds between TIMESYNC requests (0: off)")
    m.add_argument("--json", action="store_true", help="one JSON object per report")
    m.set_defaults(func=cmd_monitor)
    s = sub.add_parser("simulate", help="fake MCU on a pty (prints its path)")
    s.add_argument("--kind", default="imu", choices=["imu", "audio", "ecg", "camera", "codes"],
                   help="imu: synthetic; ecg/audio: real ECG (PyWavelets); camera: real photo tiles; "
                        "codes: int8 codes of the real ECG")
    s.add_argument("--rate", type=float, default=100.0, help="DATA frames per second (0: as fast as possible)")
    s.add_argument("--samples", type=int, default=32, help="samples per DATA frame")
    s.add_argument("--corrupt", type=float, default=0.0, help="probability a frame is damaged (flip/truncate/garbage)")
    s.add_argument("--reboot-after", type=int, default=None, help="reboot every N DATA frames")
    s.add_argument("--frames", type=int, default=None, help="stop producing after N DATA frames")
    s.add_argument("--duration", type=float, default=0.0, help="exit after S seconds (0: until Ctrl-C)")
    s.add_argument("--drift-ppm", type=float, default=0.0, help="MCU clock rate error")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--link", default=None, help="also make this symlink to the pty (stable across unplugs)")
    s.add_argument("--tcp", type=int, default=None, help="serve socket://127.0.0.1:PORT instead of a pty (0: any port)")
    s.add_argument("--block", action="store_true", help="block when the host does not read (default: drop, like a UART)")
    s.add_argument("--json", action="store_true", help="print a JSON summary at exit")
    s.set_defaults(func=cmd_simulate)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``sensor-bridge``."""
    a = build_parser().parse_args(argv)
    if getattr(a, "rate", 1.0) < 0 or getattr(a, "corrupt", 0.0) < 0 or getattr(a, "corrupt", 0.0) > 1:
        print("error: --rate must be >= 0 and --corrupt within [0, 1]", file=sys.stderr)
        return 2
    return a.func(a)


if __name__ == "__main__":
    sys.exit(main())
