"""Joules per frame for every bundled model on every target: estimated (labelled), measured where a meter exists.

    python -m benchmarks.energy                  # → benchmarks/results/energy.{json,png}
    python -m benchmarks.energy --frames 10 --no-plot --out /tmp/e.json

For each bundled model (generic over ``list_model_names()``) and each encoder variant (fp32, int8),
``encoder_runtime.profile.profile`` runs the deployed graph at 1 thread on a real frame (a held-out
768×512 photo for image models, 3 s of the bundled speech sample for audio models, the first
held-out signal from ``export.train.load_training_arrays`` for other modalities, e.g. BasicMotions IMU) with
``--meter auto``: on a machine with a power meter (RAPL, Jetson INA3221, Pi 5 PMIC, INA2xx) the
host row is *measured*; otherwise it is the documented estimate with this machine's measured
latency. The other targets (x86_64, rpi4, rpi5, jetson-orin, cortex-m4) always use the estimate
model (``encoder_runtime/profile/estimate.py``, docs/energy-model.md) with the MACs counted from
the graph, the bytes moved (input + codes + weights) and a modelled latency. Every figure carries
its label (``kind`` measured|estimated, model, version, scope). The estimate is order-of-magnitude
(about 3× either way) and counts the encoder graph only, not the lossless coder.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.lossless import machine_info  # noqa: E402
from benchmarks.report import write_results  # noqa: E402
from encoder_runtime.bundle import list_model_names  # noqa: E402
from encoder_runtime.bundle import load_bundle as load_verified  # noqa: E402
from encoder_runtime.media import read_input  # noqa: E402
from encoder_runtime.profile import COEFFICIENTS, MODEL, VERSION, EstimateMeter, host_target, profile  # noqa: E402
from encoder_runtime.profile.runner import load_bundle  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
TARGETS = ("x86_64", "rpi4", "rpi5", "jetson-orin", "cortex-m4")
VARIANTS = {"fp32": "encoder.onnx", "int8": "encoder_int8.onnx"}


def real_frame(modality: str, channels: int, block: list[int], folder: Path) -> Path | None:
    """A real input frame as .npy, shaped (N, *spatial, C) for the graph, sizes multiple of block."""
    if modality == "image":
        img = None
        try:
            from export.data import DEFAULT_CACHE, image_paths
            if (DEFAULT_CACHE / ".derived").exists():
                img = read_input(image_paths("test")[0])[0]
        except ImportError:
            pass
        if img is None:
            img = read_input(REPO / "encoder_runtime" / "samples" / "Kite.png")[0]
        h, w = (img.shape[0] // block[0]) * block[0], (img.shape[1] // block[1]) * block[1]
        arr = img[None, :h, :w, :channels]
    elif modality == "audio":
        clip = "loop_amen_stereo_44k.wav" if channels == 2 else "speech_16k.wav"
        a, _ = read_input(REPO / "encoder_runtime" / "samples" / clip)
        a = a.reshape(len(a), -1)[:, :channels]
        n = (min(len(a), 48000) // block[0]) * block[0]
        arr = a[None, :n]
    else:
        try:
            from export.train import load_training_arrays
            sig = np.moveaxis(load_training_arrays(modality, "test")[0], 0, -1)   # (*spatial, C)
        except (ImportError, SystemExit, OSError, ValueError, KeyError, IndexError):
            return None
        crop = tuple(slice(0, (n // b) * b) for n, b in zip(sig.shape[:-1], block))
        arr = sig[crop][None]
    p = folder / f"{modality}.npy"
    np.save(p, np.ascontiguousarray(arr))
    return p


def main(argv: list[str] | None = None) -> int:
    """Run and write JSON (+ PNG)."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.energy", description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=40, help="frames per latency measurement")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS / "energy.json")
    args = ap.parse_args(argv)
    host = host_target()
    info = {**machine_info(), "host_target": host, "threads": 1}
    import onnxruntime
    info["onnxruntime"] = onnxruntime.__version__
    print(f"{info['cpu']} | host target {host} | ORT {info['onnxruntime']} | 1 thread | "
          f"estimate model {MODEL} v{VERSION}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in list_model_names():
            b = load_verified(name)
            frame = real_frame(b.modality, b.channels, b.block, Path(tmp))
            if frame is None:
                print(f"  {name}: modality {b.modality} has no real frame here; skipped")
                continue
            shape = list(np.load(frame, mmap_mode="r").shape)
            for variant, fname in VARIANTS.items():
                if fname not in b.manifest["files"]:
                    continue
                rep = profile(load_bundle(b.path, fname), {"samples": shape}, threads=1,
                              frames=args.frames, meter="auto", input_file=str(frame))
                bytes_moved = rep["bytes_in"] + rep["codes"]["raw_bytes"] + rep["initializer_bytes"]
                macs_prec = rep["macs"]["by_precision"] if "macs" in rep and isinstance(rep["macs"], dict) \
                    and "by_precision" in rep["macs"] else None
                if macs_prec is None:
                    from encoder_runtime.profile import count_macs
                    macs_prec = count_macs(b.file(fname), {"samples": shape}).macs_by_precision
                per_target = {}
                for t in TARGETS:
                    if t == host:
                        per_target[t] = rep["energy"]     # measured if a meter exists, else labelled estimate
                    else:
                        per_target[t] = EstimateMeter(t).estimate(macs_prec, bytes_moved, None, 1, host=host)
                positions = int(np.prod(shape[1:-1]))
                rows.append({"model": name, "variant": variant, "modality": b.modality, "shape": shape,
                             "macs_per_position": rep.get("macs_per_position"),
                             "macs_by_precision": macs_prec, "bytes_moved": bytes_moved,
                             "latency_ms_this_machine": rep["latency_ms"], "bits": rep["bits"],
                             "positions": positions, "energy": per_target})
                print(f"  {name:14s} {variant:4s} " + "  ".join(
                    f"{t} {e['gross_j_per_frame'] * 1e3 if 'gross_j_per_frame' in e else float('nan'):8.3f} mJ"
                    f"{'' if e['label']['kind'] == 'estimated' else '(m)'}"
                    for t, e in per_target.items()))
    result = {"benchmark": "energy", "command": "python -m benchmarks.energy", "machine": info,
              "estimate_model": {"model": MODEL, "version": VERSION, "coefficients": COEFFICIENTS,
                                 "doc": "docs/energy-model.md"},
              "units": "joules per frame (gross = incremental + idle power x latency); mJ in the printout",
              "scope_note": "encoder graph only (the lossless coder is not modelled); 1 thread",
              "rows": rows}
    write_results(result, args.out, None if args.no_plot else plot)
    return 0


def plot(result: dict, path: Path) -> None:
    """Grouped bars: incremental J per megapixel / per second of audio, per target, log scale."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = result["rows"]
    fig, ax = plt.subplots(figsize=(11, 4.5))
    width = 0.8 / len(TARGETS)
    labels = [f"{r['model']}\n{r['variant']}" for r in rows]
    for i, t in enumerate(TARGETS):
        vals = [r["energy"][t]["gross_j_per_frame"] for r in rows]
        kinds = [r["energy"][t]["label"]["kind"] for r in rows]
        bars = ax.bar(np.arange(len(rows)) + i * width, vals, width, label=t)
        for bar, k in zip(bars, kinds):
            if k == "measured":
                bar.set_hatch("//")
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(rows)) + 0.4 - width / 2)
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("J per frame (gross, estimated; hatched = measured)")
    ax.set_title("Encoder energy per frame (image: 768x512 RGB; audio: 3 s at 16 kHz); "
                 f"{MODEL} v{VERSION}, labelled estimates; other: one held-out signal", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
