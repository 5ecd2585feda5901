"""Text-page decoder variant of an image bundle: ``decoder_text.onnx``.

``python -m export.text_variant MODEL RUN [RUN ...]`` scores the bundle's decoders and each
decoder-only training run (``sensor-train --init-bundle MODEL --decoder-steps 1.0
--text-train-weight F ...``; RUN is its output bundle folder) by Tesseract CER on the validation
pages of :mod:`export.text_data` (texts disjoint from the benchmark's held-out ones);
``--install RUN`` then writes that run's decoder into the bundle as ``decoder_text.onnx`` and its
sha256 and provenance into the manifest. ``Decoder(..., variant="text")`` /
``sensor-codec decode --decoder-variant text`` run it on the same codes as the default decoder.

The run must have left the encoder byte-identical (``encoder_int.npz`` equal, same config): the
codes, and so every stream, stay the same. The graph is stored with float16 initialisers, each
followed by a ``Cast`` to float32 that ONNX Runtime folds when the session is built (half the
bytes; the decoder still computes in float32).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from encoder_runtime.bundle import Bundle, load_bundle
from encoder_runtime.codec import DECODER_FILES

from .onnx_export import add_bundle_files

TEXT_FILE = DECODER_FILES["text"]
#: Initialisers with fewer values stay float32 (biases, scales: negligible bytes).
MIN_FP16_VALUES = 64


def fp16_storage(decoder: bytes) -> bytes:
    """``decoder`` with every large float32 initialiser stored as float16 + ``Cast`` to float32."""
    model = onnx.load_from_string(decoder)
    g = model.graph
    casts, keep = [], []
    for t in g.initializer:
        if t.data_type != TensorProto.FLOAT or int(np.prod(t.dims)) < MIN_FP16_VALUES:
            keep.append(t)
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name + "_fp16")
        keep.append(half)
        casts.append(helper.make_node("Cast", [half.name], [t.name], to=TensorProto.FLOAT,
                                      name=t.name + "_cast"))
    del g.initializer[:]
    g.initializer.extend(keep)
    nodes = casts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    model.doc_string = "text-page decoder: export/text_variant.py (float16 storage, float32 compute)"
    onnx.checker.check_model(model)
    return model.SerializeToString()


def check_same_encoder(bundle: Bundle, run: Bundle) -> None:
    """Refuse a run whose encoder differs from the bundle's (its codes would differ)."""
    for f in ("encoder_int.npz", "encoder.onnx"):
        a, b = bundle.manifest["files"][f]["sha256"], run.manifest["files"][f]["sha256"]
        if a != b:
            raise SystemExit(f"{run.path}: {f} sha256 {b[:12]}… differs from {bundle.path}'s "
                             f"{a[:12]}…; a text decoder must be trained decoder-only "
                             "(--decoder-steps 1.0) from this bundle")
    a, b = bundle.manifest["config"], run.manifest["config"]
    diff = sorted(k for k in a.keys() & b.keys() if a[k] != b[k])  # newer trainers add defaults
    if diff:
        raise SystemExit(f"{run.path}: config {', '.join(diff)} differ from {bundle.path}'s")


def write_text_decoder(bundle_dir: Path | str, decoder: bytes, card: dict | None = None) -> dict:
    """Write ``decoder`` (fp16-stored) into an image bundle as ``decoder_text.onnx``; record its
    sha256 in the manifest and ``card`` (training provenance, scores) as ``model_card.text_decoder``."""
    bundle = load_bundle(bundle_dir)
    manifest = json.loads(json.dumps(bundle.manifest))
    if card is not None:
        manifest.setdefault("model_card", {})["text_decoder"] = card
    return add_bundle_files(bundle.path, manifest, {TEXT_FILE: fp16_storage(decoder)})[TEXT_FILE]


def val_cer(bundle: Bundle, decoders: dict[str, bytes], split: str = "val") -> dict[str, dict]:
    """Pooled Tesseract CER of each decoder graph on ``split``'s rendered pages, decoding the
    bundle's own streams through ``Decoder(variant="text")`` of a scratch copy of the bundle."""
    from benchmarks.doc_perception import pooled_cer
    from encoder_runtime import Decoder, Encoder

    from .text_data import text_pages
    pages = text_pages(split)
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / bundle.name
        shutil.copytree(bundle.path, scratch)
        pixels = sum(p.image.shape[0] * p.image.shape[1] for p in pages)
        out = {}
        for label, graph in decoders.items():
            write_text_decoder(scratch, graph)  # a new manifest: streams pin it, so encode anew
            enc, dec = Encoder.load(scratch), Decoder(load_bundle(scratch), variant="text")
            blobs = [enc.encode(p.image) for p in pages]
            out[label] = {"bpp": 8 * sum(map(len, blobs)) / pixels,
                          **pooled_cer(pages, [dec.decode(b) for b in blobs])}
    return out


def photo_psnr(bundle: Bundle, variants: tuple[str, ...] = ("fp32", "text")) -> dict[str, float]:
    """Mean PSNR (dB) over the held-out test photos of each decoder variant (what a text decoder
    costs on photos; reported, never used for selection)."""
    from encoder_runtime import Decoder, Encoder
    from encoder_runtime.media import read_input
    from encoder_runtime.metrics import psnr_db

    from .data import image_paths
    enc = Encoder(bundle)
    decs = {v: Decoder(bundle, variant=v) for v in variants}
    out: dict[str, list[float]] = {v: [] for v in variants}
    for path in image_paths("test"):
        img = read_input(path)[0]
        blob = enc.encode(img)
        for v, dec in decs.items():
            out[v].append(psnr_db(np.mean((dec.decode(blob).astype(np.float64) - img) ** 2)))
    if not out[variants[0]]:
        raise SystemExit("no held-out test photos: run sensor-data (export/data.py) first")
    return {v: float(np.mean(p)) for v, p in out.items()}


def run_card(bundle: Bundle, run: Bundle, scores: dict) -> dict:
    """Provenance of a run's decoder for the manifest: its command chain, and the decoder-only
    steps and seconds since ``bundle``'s own training (warm-start stages after it + this run)."""
    card = run.manifest.get("model_card", {})
    base = int(bundle.manifest.get("model_card", {}).get("steps") or 0)
    stages = [(int(n), float(s)) for n, s in re.findall(r"; (\d+) steps, (\d+) s\)", card.get("command", ""))]
    return {"command": card.get("command"), "steps": card.get("steps"),
            "decoder_only_steps": int(card.get("steps") or 0) - base,
            "decoder_only_wall_s": round(sum(s for n, s in stages if n > base)
                                         + float(card.get("wall_time_s") or 0)),
            "wall_time_s": card.get("wall_time_s"), "hardware": card.get("hardware"),
            "torch": card.get("torch"), "storage": "float16 initialisers, float32 compute",
            "data": "train photos + rendered text pages of export/text_data.TRAIN_TEXTS",
            "val_pages": "export/text_data.text_pages('val') (8 pages, texts disjoint from the "
                         "benchmark's)", **scores}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m export.text_variant",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("model", help="bundled image model (or bundle folder) the runs started from")
    ap.add_argument("runs", nargs="*", type=Path, help="decoder-only training runs' bundle folders")
    ap.add_argument("--install", type=Path, metavar="RUN",
                    help="write this run's decoder into the bundle as decoder_text.onnx")
    ap.add_argument("--photos", action="store_true",
                    help="only print the bundle's decoders' mean PSNR on the held-out test photos")
    args = ap.parse_args(argv)
    bundle = load_bundle(args.model)
    if args.photos:
        variants = tuple(v for v, f in DECODER_FILES.items() if f in bundle.manifest["files"])
        for v, db in photo_psnr(bundle, variants).items():
            print(f"{bundle.name} {v:5s} held-out photos {db:.3f} dB")
        return 0
    runs = {str(r): load_bundle(r) for r in dict.fromkeys([*args.runs, *([args.install] if args.install else [])])}
    for r in runs.values():
        check_same_encoder(bundle, r)
    graphs = {f"{bundle.name} {v}": bundle.read_verified(f) for v, f in DECODER_FILES.items()
              if v != "int8" and f in bundle.manifest["files"]}
    graphs.update({k: r.read_verified(DECODER_FILES["fp32"]) for k, r in runs.items()})
    scores = val_cer(bundle, graphs)
    for label, s in scores.items():
        print(f"{label:60s} val CER {100 * s['cer']:6.2f} %  @ {s['bpp']:.3f} bpp", flush=True)
    if args.install:
        key = str(args.install)
        s = scores[key]
        entry = write_text_decoder(bundle.path, runs[key].read_verified(DECODER_FILES["fp32"]),
                                   run_card(bundle, runs[key], {"val_cer": s["cer"], "val_bpp": s["bpp"]}))
        print(f"{bundle.name}: {TEXT_FILE} {entry['bytes']} bytes, sha256 {entry['sha256'][:12]}…")
    return 0


if __name__ == "__main__":
    sys.exit(main())
