"""Does the stable-ABI device wheel cost speed? ``ctx-ac`` and ``rans`` from the x86_64 wheel vs
the same sources built the usual way.

Builds, from this source tree, (a) the extension exactly as ``pip install -e .`` does
(``setup.py build_ext`` in a scratch copy: the interpreter's CFLAGS + ``-O2 -std=c99``) and
(b) the ``cp311-abi3`` x86_64 device wheel's extension (``export.native_wheel``), loads both in
this process and times each coder's encode and decode on one real frame of every bundled model
(``benchmarks.lossless.bundled_model_codes``), interleaved, thread CPU time, median of
``--repeats`` passes. Checks the bytes are identical first. Writes
``benchmarks/results/wheel_speed.json`` and a bar chart ``wheel_speed.png``.

    python -m benchmarks.wheel_speed [--repeats 15] [--out benchmarks/results/wheel_speed.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from benchmarks.lossless import REPO, bundled_model_codes, machine_info


def _load(path: Path, tag: str):
    """The extension module at ``path`` under a private name (both builds live side by side)."""
    spec = importlib.util.spec_from_file_location("encoder_runtime._sclossless", path)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    mod.TAG = tag
    return mod


def build_both(work: Path) -> dict[str, Path]:
    """{"setup.py build_ext": .so, "cp311-abi3 wheel": .so} built from this source tree."""
    from export.native_wheel import build_native_wheel

    src = work / "src"
    src.mkdir()
    shutil.copy2(REPO / "setup.py", src / "setup.py")
    for pkg in ("encoder_runtime", "firmware_bridge"):
        shutil.copytree(REPO / pkg, src / pkg, ignore=shutil.ignore_patterns("*.so", "__pycache__",
                                                                             "models", "samples"))
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=src, check=True,
                   capture_output=True)
    (ext,) = (src / "encoder_runtime").glob("_sclossless.cpython-*.so")
    whl = build_native_wheel("x86_64", work / "wheel", REPO)
    with zipfile.ZipFile(whl) as zf:
        zf.extract("encoder_runtime/_sclossless.abi3.so", work / "wheel")
    return {"setup.py build_ext": ext, whl.name: work / "wheel" / "encoder_runtime" / "_sclossless.abi3.so"}


CODERS = {"ctx-ac": ("encode", "decode"), "rans": ("rans_encode", "rans_decode")}
"""Coder -> (encode, decode) functions of encoder_runtime._sclossless."""


def measure(mods: Sequence, frames: dict[str, np.ndarray], repeats: int) -> list[dict]:
    """Median M codes/s (thread CPU time) of encode and decode per module and coder, passes
    interleaved; SystemExit if the builds write different bytes."""
    args = [(f.tobytes(), f.shape[0], int(np.prod(f.shape[1:-1])), f.shape[-1]) for f in frames.values()]
    n = sum(f.size for f in frames.values())
    rows = []
    for coder, (enc_name, dec_name) in CODERS.items():
        if not all(hasattr(m, enc_name) for m in mods):
            continue
        blobs = [getattr(mods[0], enc_name)(*a) for a in args]
        for m in mods[1:]:
            if [getattr(m, enc_name)(*a) for a in args] != blobs:
                raise SystemExit(f"{coder}: {m.TAG} writes different bytes from {mods[0].TAG}")
        times: dict[str, dict[str, list[float]]] = {m.TAG: {"enc": [], "dec": []} for m in mods}
        for _ in range(repeats):
            for m in mods:
                enc, dec = getattr(m, enc_name), getattr(m, dec_name)
                t = time.thread_time()
                for a in args:
                    enc(*a)
                times[m.TAG]["enc"].append(time.thread_time() - t)
                t = time.thread_time()
                for b, a in zip(blobs, args):
                    dec(b, *a[1:])
                times[m.TAG]["dec"].append(time.thread_time() - t)
        rows += [{"coder": coder, "build": tag, "enc_mcodes_s": n / statistics.median(t["enc"]) / 1e6,
                  "dec_mcodes_s": n / statistics.median(t["dec"]) / 1e6, "codes_per_pass": n,
                  "passes": repeats} for tag, t in times.items()]
    return rows


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    builds = list(dict.fromkeys(r["build"] for r in rows))
    groups = [(r["coder"], k) for r in rows if r["build"] == builds[0] for k in ("enc", "dec")]
    fig, ax = plt.subplots(figsize=(8, 3.4))
    x = np.arange(len(groups))
    for i, b in enumerate(builds):
        by = {r["coder"]: r for r in rows if r["build"] == b}
        ax.bar(x + i * 0.38, [by[c][f"{k}_mcodes_s"] for c, k in groups], 0.36, label=b)
    ax.set_xticks(x + 0.19, [f"{c} {'encode' if k == 'enc' else 'decode'}" for c, k in groups])
    ax.set_ylabel("M codes/s (1 thread, CPU time)")
    ax.set_title("stable-ABI device wheel vs setup.py build (x86-64, same sources)")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "wheel_speed.json")
    p.add_argument("--no-plot", action="store_true")
    args = p.parse_args(argv)
    info = machine_info()
    frames = bundled_model_codes()
    with tempfile.TemporaryDirectory(prefix="wheel-speed-") as tmp:
        mods = [_load(path, tag) for tag, path in build_both(Path(tmp)).items()]
        rows = measure(mods, frames, args.repeats)
    for r in rows:
        print(f"{r['coder']:7s} {r['build']:56s} encode {r['enc_mcodes_s']:6.1f}  "
              f"decode {r['dec_mcodes_s']:6.1f} M codes/s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": info, "models": sorted(frames), "rows": rows,
                                    "bytes_identical": True}, indent=2) + "\n")
    if not args.no_plot:
        _plot(rows, args.out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
