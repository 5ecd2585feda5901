"""Rebuild a bundle's encoder graphs from its integer parameters (no checkpoint needed).

``python -m export.regraph [BUNDLE ...]`` (default: every bundled model) rewrites encoder.onnx
and encoder_int8.onnx from encoder_int.npz + the manifest's config, and updates the manifest's
sha256 entries. The codes cannot change: both graphs compute the integer spec exactly.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from encoder_runtime.bundle import list_model_names, load_bundle

from .int8_graph import int8_encoder_graph
from .model import CodecConfig
from .onnx_export import add_bundle_files, encoder_graph, file_entry


def regraph(bundle_dir: Path) -> list[str]:
    """Rewrite the encoder graphs of one bundle; returns the files that changed."""
    bundle = load_bundle(bundle_dir)
    manifest = json.loads(json.dumps(bundle.manifest))
    cfg = CodecConfig(**manifest["config"])
    with np.load(bundle.path / "encoder_int.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in ("weight", "bias", "shift")}
    graphs = {"encoder.onnx": encoder_graph(cfg, arrays).SerializeToString(),
              "encoder_int8.onnx": int8_encoder_graph(cfg, arrays).SerializeToString()}
    changed = {n: d for n, d in graphs.items() if manifest["files"].get(n) != file_entry(d)}
    if changed:
        add_bundle_files(bundle.path, manifest, changed)
    return list(changed)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m export.regraph", description=__doc__.splitlines()[0])
    ap.add_argument("bundles", nargs="*", help="bundle folders or names (default: all bundled)")
    args = ap.parse_args(argv)
    for b in args.bundles or list_model_names():
        print(f"{b}: {', '.join(regraph(b)) or 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
