"""``sensor-export``: package a model for a deployment target.

    sensor-export --model NAME  --target rpi5 --out DIR
    sensor-export --bundle DIR  --target jetson-orin --out DIR [--variant int8] [--python 3.11]
    sensor-export --checkpoint runs/NAME/checkpoint.safetensors --target x86_64 --out DIR
    sensor-export --model NAME  --target cortex-m4 --out DIR     # C sources + model header + Makefile
    sensor-export --list-targets

Two steps, kept apart: (1) get a *runtime bundle* (a bundled model by name, or a bundle folder;
a training checkpoint is exported into a scratch bundle first), then (2) package it for the
target with :func:`export.targets.build_target_bundle`. A new source of runtime bundles only
adds an option and a branch in :func:`runtime_bundle`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from export.firmware_export import FIRMWARE_TARGET, build_firmware_bundle
from firmware_bridge.gen_header import HeaderError
from export.targets import (DEFAULT_CACHE_DIR, TARGETS, VARIANT_FILES, BundleError, PackagingError,
                            TargetError, build_target_bundle, get_target, resolve_model)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed so other front ends can extend it)."""
    p = argparse.ArgumentParser(
        prog="sensor-export",
        description="Package a sensorcodec model for a target board: verified bundle, ORT-format "
                    "encoder, offline wheelhouse, install.sh and a systemd unit.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", metavar="NAME", help="a bundled model (encoder_runtime/models/NAME)")
    src.add_argument("--bundle", metavar="DIR", type=Path, help="a runtime bundle folder")
    src.add_argument("--checkpoint", metavar="PATH", type=Path,
                     help="a training checkpoint (checkpoint.safetensors + checkpoint.json from "
                          "sensor-train): re-exported to a runtime bundle first (needs torch)")
    p.add_argument("--target", choices=sorted([*TARGETS, FIRMWARE_TARGET]), metavar="TARGET",
                   help="one of: " + ", ".join([*TARGETS, FIRMWARE_TARGET])
                        + f" ({FIRMWARE_TARGET}: firmware sources, model header and Makefile)")
    p.add_argument("--out", type=Path, metavar="DIR", help="output folder (must not exist, see --force)")
    p.add_argument("--variant", choices=sorted(VARIANT_FILES),
                   help="encoder variant to run by default (default: the target's choice)")
    p.add_argument("--python", metavar="X.Y", help="target Python version (default: the board's own)")
    p.add_argument("--no-wheelhouse", action="store_true",
                   help="skip the offline wheelhouse (the device then needs PyPI)")
    p.add_argument("--sensorcodec-wheel", type=Path, metavar="WHL",
                   help="use this sensorcodec wheel instead of building one from the source tree")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE_DIR, metavar="DIR",
                   help=f"wheel download cache (default {DEFAULT_CACHE_DIR})")
    p.add_argument("--encode-args", metavar="ARGS",
                   help="arguments of sensor-encode in the systemd unit "
                        "(default: --config /etc/sensor-encode/config.toml)")
    p.add_argument("--force", action="store_true", help="replace --out if it is a bundle already")
    p.add_argument("--list-targets", action="store_true", help="list the targets and exit")
    return p


@contextlib.contextmanager
def runtime_bundle(args: argparse.Namespace):
    """Yield the folder of the runtime bundle the arguments name (step 1)."""
    if args.bundle is not None:
        yield args.bundle
    elif args.model is not None:
        yield resolve_model(args.model)
    elif args.checkpoint is not None:
        with tempfile.TemporaryDirectory(prefix="sensor-export-") as scratch:
            yield bundle_from_checkpoint(args.checkpoint, Path(scratch))
    else:  # pragma: no cover - guarded by main()
        raise BundleError("no model given")


def bundle_from_checkpoint(checkpoint: Path, scratch: Path) -> Path:
    """Export a training checkpoint to a runtime bundle under ``scratch``; BundleError if unusable."""
    try:
        from export.onnx_export import write_bundle
        from export.train import codec_from_checkpoint
    except ImportError as e:  # torch/onnx are host-toolchain dependencies
        raise BundleError(f"--checkpoint needs the export toolchain (torch, onnx): {e}") from None
    try:
        codec, meta = codec_from_checkpoint(Path(checkpoint))
    except SystemExit as e:  # the trainer reports missing/corrupt checkpoints this way
        raise BundleError(str(e.code)) from None
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise BundleError(f"{checkpoint}: not a usable checkpoint ({e.__class__.__name__}: {e})") from None
    name = str((meta.get("args") or {}).get("name") or Path(checkpoint).parent.name or "model")
    card = {k: meta[k] for k in ("command", "hardware", "torch", "wall_time_s", "step") if k in meta}
    card["checkpoint"] = str(checkpoint)
    return write_bundle(codec, scratch / name, name, card=card)


def _list_targets() -> str:
    rows = []
    for t in TARGETS.values():
        rows.append(f"{t.name:12s} {t.arch:8s} py{t.python_version:5s} default {t.default_variant:4s}  "
                    f"{t.description}")
    rows.append(f"{FIRMWARE_TARGET:12s} {'thumbv7em':8s} {'(C)':7s} default int8  Cortex-M4 microcontroller: "
                f"portable C99 encoder kernel + model header + Makefile (arm-none-eabi-gcc)")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sensor-export``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_targets:
        print(_list_targets())
        return 0
    missing = [opt for opt, val in (("--model/--bundle/--checkpoint",
                                     args.model or args.bundle or args.checkpoint),
                                    ("--target", args.target), ("--out", args.out)) if not val]
    if missing:
        parser.error("missing " + ", ".join(missing))
    if args.target == FIRMWARE_TARGET:
        return _export_firmware(args)
    try:
        target = get_target(args.target)
        with runtime_bundle(args) as src:
            out = build_target_bundle(
                src, target, args.out, variant=args.variant, python_version=args.python,
                wheelhouse=not args.no_wheelhouse, sensorcodec_wheel=args.sensorcodec_wheel,
                cache_dir=args.cache, overwrite=args.force, encode_args=args.encode_args)
    except (BundleError, TargetError, PackagingError, FileExistsError) as e:
        print(f"sensor-export: error: {e}", file=sys.stderr)
        return 1
    t = json.loads((out / "manifest.json").read_text())["target"]
    wh = t.get("wheelhouse")
    size = sum(p.stat().st_size for p in (out / "wheelhouse").glob("*.whl")) if wh else 0
    print(f"sensor-export: wrote {out} for {t['name']} ({t['arch']}, Python {t['python']})")
    print(f"  default encoder: {t['default_variant']} ({t['default_encoder']}): "
          f"{t['default_variant_reason']}")
    print(f"  onnxruntime {t['onnxruntime']}; ORT format ({t['ort_format']['target_platform']}): "
          f"{', '.join(t['ort_format']['files'].values())}")
    if wh:
        print(f"  wheelhouse: {len(wh['wheels'])} wheels, {size / 1e6:.1f} MB")
    sw = t.get("sensorcodec_wheel") or {}
    kind = (f"native coders compiled in, {sw.get('abi')}" if sw.get("native")
            else f"pure Python: {sw.get('reason')}")
    print(f"  sensorcodec wheel: {sw.get('file')} ({kind})")
    print(f"  install on the device: copy the folder, then: sudo {out.name}/install.sh --sink tcp://HOST:7700")
    return 0


def _export_firmware(args: argparse.Namespace) -> int:
    try:
        with runtime_bundle(args) as src:
            out = build_firmware_bundle(src, args.out, overwrite=args.force)
    except (BundleError, HeaderError, FileExistsError, OSError, ValueError) as e:
        print(f"sensor-export: error: {e}", file=sys.stderr)
        return 1
    m = json.loads((out / "manifest.json").read_text())
    print(f"sensor-export: wrote {out} for {FIRMWARE_TARGET} (model {m['model']}, "
          f"{m['latent_channels']} channels, {m['macs_per_block']} MACs per block)")
    print(f"  build: make -C {out}    (arm-none-eabi-gcc; -> build/libsensorcodec_m4.a); see {out}/README.md")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
