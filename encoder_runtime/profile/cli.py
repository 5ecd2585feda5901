"""``sensor-profile``: MACs, parameters, bytes, bits, latency, frames/s and labelled joules per frame.

    sensor-profile --model NAME | --bundle DIR | --onnx FILE [--shape 1x512x768x3] [--threads N]
                   [--target TARGET] [--frames N] [--meter auto|rapl|jetson|rpi5|ina219:URL|estimate[:TARGET]]
                   [--sysfs-root PATH] [--input frame.npy] [--json]

Run as ``python -m encoder_runtime.profile.cli``.  Exit status 0 on success, 2 on a bad input
(one line on stderr naming the problem).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from .energy import MeterError
from .estimate import COEFFICIENTS, DEFAULT_GRAPH, EstimateError
from .macs import ShapeError
from .onnx_graph import OnnxFormatError
from .runner import BundleError, Target, load_bundle, parse_shape, profile, resolve_model


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for docs and tests)."""
    p = argparse.ArgumentParser(prog="sensor-profile", description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="bundled model name (encoder_runtime/models/NAME)")
    src.add_argument("--bundle", help="bundle folder with manifest.json")
    src.add_argument("--onnx", help="an ONNX encoder graph")
    p.add_argument("--graph", default=None,
                   help="which graph of the bundle to profile (default: the --target's default graph, "
                        "else encoder.onnx; e.g. encoder_int8.onnx)")
    p.add_argument("--target", choices=sorted(COEFFICIENTS), metavar="TARGET",
                   help="model latency and energy on this board (one of: " + ", ".join(sorted(COEFFICIENTS))
                        + "): profiles the graph the board runs by default and, with --meter auto, "
                          "uses the labelled estimate for that board")
    p.add_argument("--shape", action="append", default=[],
                   help="input shape, e.g. 1x512x768x3 or name=1x512x768x3 (repeat per input)")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    p.add_argument("--frames", type=int, default=100, help="frames timed for latency (default 100)")
    p.add_argument("--meter", default="auto",
                   help="auto|rapl|jetson|rpi5|ina219:URL|estimate[:TARGET] (default auto)")
    p.add_argument("--sysfs-root", default="/", help="root below which sys/ and proc/ are read (default /)")
    p.add_argument("--energy-seconds", type=float, default=2.0,
                   help="measured-meter window, and idle window before it (default 2.0, minimum 2)")
    p.add_argument("--rpi5-command", help="command printing pmic_read_adc output "
                                          "(default 'vcgencmd pmic_read_adc')")
    p.add_argument("--rpi5-fixture", help="file holding pmic_read_adc output (instead of running a command)")
    p.add_argument("--input", help=".npy frame to feed (default: seeded random data)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


def _shapes(items: list[str]):
    if not items:
        return None
    parsed = [parse_shape(s) for s in items]
    if len(parsed) == 1 and parsed[0][0] is None:
        return parsed[0][1]
    if any(n is None for n, _ in parsed):
        raise ShapeError("with several --shape options, name each input: --shape name=1x3x64x64")
    return {n: s for n, s in parsed}


def _energy_line(e: dict) -> str:
    lab = e["label"]
    if lab["kind"] == "measured":
        return (f"{e['incremental_j_per_frame'] * 1e3:.4g} mJ/frame incremental, "
                f"{e['gross_j_per_frame'] * 1e3:.4g} mJ/frame gross  [MEASURED {lab['source']} rail {lab['rail']}, "
                f"scope {lab['scope']}, {lab['sample_rate_hz']} Hz, idle {e['idle_w']:.3g} W subtracted]")
    return (f"{e['incremental_j_per_frame'] * 1e3:.4g} mJ/frame incremental, "
            f"{e['gross_j_per_frame'] * 1e3:.4g} mJ/frame gross  [ESTIMATED model {lab['model']} v{lab['version']}, "
            f"target {lab['target']}, latency {lab['latency_source']}]")


def _target_line(e: dict) -> str | None:
    """The modelled per-frame figures on another board, when the energy is an estimate for it."""
    lab = e["label"]
    if lab["kind"] != "estimated" or lab["latency_source"].startswith("measured"):
        return None
    t = e["latency_s"]
    return (f"on {lab['target']:<9} latency {t * 1e3:.4g} ms/frame (modelled), {1 / t:.4g} frames/s, "
            f"{e['incremental_j_per_frame'] * 1e3:.4g} mJ/frame incremental  [ESTIMATED]")


def format_report(r: dict) -> str:
    """Human-readable report."""
    lines = [f"model        {r['model']['name'] or r['model']['onnx']}",
             f"input        {', '.join(k + ' ' + 'x'.join(map(str, v)) for k, v in r['input']['shapes'].items())}"
             f"  ({r['input']['source']})",
             f"MACs/frame   {r['macs']['total']:,}  "
             + ", ".join(f"{k} {v:,}" for k, v in r['macs']['by_precision'].items())]
    for o in r["macs"]["per_op"]:
        lines.append(f"  {o['name']:<28} {o['op_type']:<14} {o['macs']:>14,}  {o['precision']}")
    lines += [f"parameters   {r['parameters']:,}",
              f"bytes in     {r['bytes_in']:,}",
              f"bytes out    {r['bytes_out']:,}  ({r['bits']:,} bits, {r['bits_per_input_value']:.4g} bits/value, "
              f"coder {r['coder']})",
              f"latency      p50 {r['latency_ms']['p50']:.4g} ms, p99 {r['latency_ms']['p99']:.4g} ms "
              f"(this machine, {r['threads']} thread(s), {r['frames_timed']} frames)",
              f"frames/s     {r['frames_per_s']:.4g}",
              f"energy       {_energy_line(r['energy'])}"]
    on_target = _target_line(r["energy"])
    if on_target:
        lines.append(on_target)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sensor-profile``; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its message
        return int(exc.code or 0)
    try:
        graph = args.graph or (DEFAULT_GRAPH[args.target] if args.target else "encoder.onnx")
        meter = args.meter
        if args.target and meter == "auto":
            meter = f"estimate:{args.target}"
        if args.energy_seconds < 2.0:
            raise ValueError(f"--energy-seconds must be >= 2 (measurement protocol), got {args.energy_seconds}")
        if args.onnx:
            from pathlib import Path

            if not Path(args.onnx).is_file():
                raise FileNotFoundError(f"ONNX file not found: {args.onnx}")
            target = Target(Path(args.onnx), name=Path(args.onnx).stem)
        else:
            target = load_bundle(resolve_model(args.model) if args.model else args.bundle, graph)
        report = profile(target, _shapes(args.shape), threads=args.threads, frames=args.frames,
                         meter=meter, sysfs_root=args.sysfs_root, input_file=args.input,
                         energy_seconds=args.energy_seconds,
                         rpi5_command=args.rpi5_command.split() if args.rpi5_command else None,
                         rpi5_fixture=args.rpi5_fixture)
    except (FileNotFoundError, ShapeError, MeterError, EstimateError, OnnxFormatError, BundleError,
            ValueError) as exc:
        print(f"sensor-profile: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
