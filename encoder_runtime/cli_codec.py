"""``sensor-codec``: encode and decode files with a bundled model, inspect streams and models."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from . import container
from .bundle import default_model, list_models
from .codec import Decoder, Encoder
from .errors import MalformedInputError
from .frame import FrameError, parse_frame
from .media import modality_of, read_input, write_output
from .metrics import psnr_db, snr_db

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"


def _model_for(path: Path, model: str | None, array: np.ndarray) -> str:
    if model:
        return model
    kind = modality_of(path)
    if kind == "array":
        kind = "image" if array.dtype == np.uint8 and array.ndim in (2, 3) else "audio"
    return default_model(kind)


def _rate_stats(array: np.ndarray, nbytes: int, modality: str) -> dict:
    if modality == "image":
        positions = array.shape[0] * array.shape[1]
        return {"bytes": nbytes, "bpp": round(8 * nbytes / positions, 4)}
    samples = array.shape[0]
    return {"bytes": nbytes, "bits_per_sample": round(8 * nbytes / array.size, 4),
            "samples": int(samples)}


def _quality(ref: np.ndarray, out: np.ndarray, modality: str) -> dict:
    ref64, out64 = ref.astype(np.float64), out.astype(np.float64)
    mse = float(((ref64 - out64) ** 2).mean())
    if modality == "image":
        return {"psnr_db": round(psnr_db(mse), 3)}
    sig = float((ref64 ** 2).mean())
    return {"snr_db": round(snr_db(sig, mse), 3)}


def cmd_encode(args) -> int:
    array, meta = read_input(args.input)
    enc = Encoder.load(_model_for(args.input, args.model, array), threads=args.threads)
    meta = {**meta, "source": Path(args.input).name}
    blob = enc.encode(array, meta=meta)
    Path(args.output).write_bytes(blob)
    stats = _rate_stats(array, len(blob), enc.bundle.modality)
    print(json.dumps({"model": enc.name, "output": str(args.output), **stats}))
    return 0


def cmd_decode(args) -> int:
    blob = Path(args.input).read_bytes()
    header, records = container.read_stream(blob, str(args.input))
    dec = Decoder.for_header(header, threads=args.threads)
    frames = [r for r in records if r.type == container.RecordType.FRAME]
    if not frames:
        raise container.ContainerError(f"{args.input}: stream holds no FRAME record")
    out = dec.decode_frame(header, frames[0].payload)
    write_output(args.output, out, header.get("meta"))
    print(json.dumps({"model": dec.name, "output": str(args.output), "shape": list(out.shape),
                      "dtype": str(out.dtype)}))
    return 0


def cmd_info(args) -> int:
    data = Path(args.input).read_bytes()
    header, records = container.read_stream(data, str(args.input))
    frames = []
    for r in records:
        item = {"seq": r.seq, "type": container.RecordType(r.type).name
                if r.type in container.RecordType._value2member_map_ else r.type,
                "bytes": len(r.payload), "t_mono_ns": r.t_mono_ns, "t_wall_ns": r.t_wall_ns}
        if r.type == container.RecordType.GAP:
            first, last, reason = r.gap()
            item.update(first_lost=first, last_lost=last, reason=reason.name)
        elif r.type == container.RecordType.FRAME:
            try:
                fi = parse_frame(r.payload)
            except FrameError as exc:
                raise FrameError(f"record seq {r.seq}: {exc}") from None
            item.update(shape=list(fi.shape), code_shape=list(fi.code_shape), coder=fi.coder)
        frames.append(item)
    info = {"file": str(args.input), "bytes": len(data), "header": header, "records": frames}
    if args.json:
        print(json.dumps(info, indent=1))
    else:
        b = header.get("bundle") if isinstance(header.get("bundle"), dict) else {}
        print(f"{args.input}: {len(data)} bytes, model {b.get('name')} ({header.get('modality')}),"
              f" coder {header.get('coder')}, stream {header.get('stream_id')}")
        for f in frames:
            extra = (f" shape {f['shape']}" if "shape" in f else
                     f" lost {f.get('first_lost')}..{f.get('last_lost')} ({f.get('reason')})"
                     if f["type"] == "GAP" else "")
            print(f"  seq {f['seq']:>6}  {f['type']:<6} {f['bytes']:>9} bytes{extra}")
    return 0


def cmd_models(args) -> int:
    models = list_models()
    if args.json:
        print(json.dumps(models, indent=1))
        return 0
    print(f"{'name':<16}{'modality':<10}{'latent':>7}{'MACs/px':>9}{'bpp':>8}{'PSNR/SNR':>10}{'size':>10}")
    for m in models:
        op = m["operating_point"]
        rate = op.get("bpp", op.get("bits_per_sample", float("nan")))
        q = op.get("psnr_db", op.get("snr_db_mean", float("nan")))
        print(f"{m['name']:<16}{m['modality']:<10}{m['latent_channels']:>7}"
              f"{m['macs_per_sample'] or 0:>9.1f}{rate:>8.3f}{q:>10.2f}{m['bytes'] / 1e6:>9.2f}M")
    return 0


def cmd_roundtrip(args) -> int:
    """Encode + decode real sample files and print size, rate and quality (the README demo)."""
    inputs = args.inputs or (sorted(p for p in SAMPLES_DIR.iterdir() if p.suffix in (".png", ".wav"))
                             if SAMPLES_DIR.is_dir() else [])
    if not inputs:
        raise FileNotFoundError("no input files given and no bundled samples found")
    for path in inputs:
        array, meta = read_input(path)
        name = _model_for(Path(path), args.model, array)
        enc, dec = Encoder.load(name, threads=args.threads), Decoder.load(name, threads=args.threads)
        t0 = time.perf_counter()
        blob = enc.encode(array, meta=meta)
        t1 = time.perf_counter()
        out = dec.decode(blob)
        t2 = time.perf_counter()
        row = {"file": Path(path).name, "model": name, "shape": list(array.shape),
               **_rate_stats(array, len(blob), enc.bundle.modality),
               **_quality(array, out, enc.bundle.modality),
               "encode_ms": round(1e3 * (t1 - t0), 2), "decode_ms": round(1e3 * (t2 - t1), 1)}
        print(json.dumps(row))
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="sensor-codec", description=__doc__)
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads (default 1)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("encode", help="encode an image (PNG/JPEG/PPM/TIFF), WAV/FLAC or .npy")
    e.add_argument("input", type=Path)
    e.add_argument("-o", "--output", type=Path, required=True)
    e.add_argument("--model", help="bundled model name or bundle folder (default: by modality)")
    e.set_defaults(func=cmd_encode)
    d = sub.add_parser("decode", help="decode a stream; output format from the extension")
    d.add_argument("input", type=Path)
    d.add_argument("-o", "--output", type=Path, required=True)
    d.set_defaults(func=cmd_decode, errors_name_input=True)
    i = sub.add_parser("info", help="show a stream's header and records")
    i.add_argument("input", type=Path)
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_info, errors_name_input=True)
    m = sub.add_parser("models", help="list the bundled models")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_models)
    r = sub.add_parser("roundtrip", help="encode+decode files (default: bundled samples) and "
                       "print size, rate and quality")
    r.add_argument("inputs", nargs="*", type=Path)
    r.add_argument("--model")
    r.set_defaults(func=cmd_roundtrip)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as exc:  # every user-facing error type derives from these
        source = args.input if getattr(args, "errors_name_input", False) else None
        print(f"sensor-codec: error: {_one_line(exc, source)}", file=sys.stderr)
        return 2


def _one_line(exc: BaseException, source: Path | None) -> str:
    """One line for an error: its first line, prefixed with the stream file unless it names it.

    ``sensor-codec decode/info`` pass their input file: malformed input
    (:class:`~encoder_runtime.errors.MalformedInputError`) then reads ``FILE: field: expected``.
    """
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if source is not None and isinstance(exc, MalformedInputError) and str(source) not in msg:
        msg = f"{source}: {msg}"
    return msg


if __name__ == "__main__":
    sys.exit(main())
