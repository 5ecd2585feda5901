"""``sensor-codec``: encode and decode files with a bundled model, inspect streams and models."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from . import __version__, container
from .bundle import default_model, joint_channels, list_models, load_bundle
from .codec import Decoder, Encoder
from .errors import BundleError, MalformedInputError
from .frame import FrameError, parse_frame
from .ladder import ladder, measured_rate, resolve_knob
from . import video_io
from .media import MediaError, encode_media, modality_of, read_input, resample, write_output
from .metrics import psnr_db, snr_db

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
STDIO = "-"
#: Output format for ``-o -`` when --format is not given, by stream modality.
STDOUT_FORMAT = {"image": "png", "audio": "wav", "video": "y4m"}


def _warn(msg: str) -> None:
    """One warning line on stderr (never on stdout, which may carry data)."""
    print(f"sensor-codec: warning: {msg}", file=sys.stderr)


def _is_stdio(path: Path | str) -> bool:
    return str(path) == STDIO


def _stdio_path(fmt: str | None, what: str) -> Path:
    """A name for stdin/stdout data whose extension gives its format (``-.png``)."""
    if not fmt:
        raise MediaError(f"{what}: '-' needs --format (e.g. png, wav, flac, npy)")
    path = Path(f"-.{fmt.lower().lstrip('.')}")
    modality_of(path)  # MediaError for an unknown format
    return path


def _modality_for(path: Path, array: np.ndarray, modality: str | None, warnings: list[str],
                  meta: dict | None = None) -> str:
    """The input's modality: from the file type, else --modality, else guessed (with a warning).
    Volumes (NIfTI, TIFF stacks) go to the 8-bit ``volume`` or the 12-bit ``volume16`` models
    by dtype."""
    kind = (meta or {}).get("kind") or modality_of(path)
    if kind == "volume":
        return "volume16" if array.dtype == np.uint16 else "volume"
    if kind != "array":
        return kind
    if modality:
        return modality
    kind = "image" if array.dtype == np.uint8 and array.ndim in (2, 3) else "audio"
    warnings.append(f"{path}: modality guessed as {kind} from dtype {array.dtype} and shape "
                    f"{list(array.shape)}; pass --modality image|audio|timeseries|hyperspectral to choose")
    return kind


def _choose_model(path: Path, args, array: np.ndarray, warnings: list[str],
                  meta: dict | None = None) -> str:
    """--model, else the ladder rung -q/--bpp asks for, else the modality's default model."""
    quality, bpp = getattr(args, "quality", None), getattr(args, "bpp", None)
    if args.model:
        if quality is not None or bpp is not None:
            raise BundleError("--model: give either --model or -q/--bpp, not both")
        return args.model
    kind = _modality_for(path, array, getattr(args, "modality", None), warnings, meta)
    channels = joint_channels(kind, array.shape[1] if array.ndim == 2 else 1)
    return resolve_knob(kind, quality, bpp, channels) or default_model(kind, channels)


def _fit_audio(path: Path, array: np.ndarray, meta: dict, enc: Encoder,
               warnings: list[str]) -> tuple[np.ndarray, dict]:
    """Audio at the model's sample rate (resampled, with a warning, when the file differs)."""
    want, got = enc.bundle.manifest["sample"].get("rate_hz"), meta.get("rate_hz")
    if enc.bundle.modality != "audio" or not want or not got or int(want) == int(got):
        return array, meta
    warnings.append(f"{path}: {got} Hz audio resampled to {want} Hz for model {enc.name}")
    return resample(array, int(got), int(want)), {**meta, "rate_hz": int(want)}


def _read(args) -> tuple[Path, np.ndarray, dict, list[str]]:
    """(name, array, meta, warnings) of the encode input: a file or stdin (``-``, --format)."""
    warnings: list[str] = []
    if _is_stdio(args.input):
        path = _stdio_path(args.format, "input")
        array, meta = read_input(path, data=sys.stdin.buffer.read(), warnings=warnings)
    else:
        path = Path(args.input)
        array, meta = read_input(path, warnings=warnings)
    return path, array, meta, warnings


def _rate_stats(array: np.ndarray, nbytes: int, modality: str) -> dict:
    if modality in ("image", "video"):
        positions = int(np.prod(array.shape[:2 if modality == "image" else 3]))
        stats = {"bytes": nbytes, "bpp": round(8 * nbytes / positions, 4)}
        return stats if modality == "image" else {**stats, "frames": int(array.shape[0])}
    samples = array.shape[0]
    return {"bytes": nbytes, "bits_per_sample": round(8 * nbytes / array.size, 4),
            "samples": int(samples)}


def _quality(ref: np.ndarray, out: np.ndarray, modality: str) -> dict:
    ref64, out64 = ref.astype(np.float64), out.astype(np.float64)
    mse = float(((ref64 - out64) ** 2).mean())
    if modality in ("image", "video"):
        return {"psnr_db": round(psnr_db(mse), 3)}
    if modality in ("volume", "volume16"):  # PSNR on the data's bit depth (8 or 12)
        return {"psnr_db": round(psnr_db(mse, 255.0 if ref.dtype == np.uint8 else 4095.0), 3)}
    sig = float((ref64 ** 2).mean())
    return {"snr_db": round(snr_db(sig, mse), 3)}


def cmd_encode(args) -> int:
    path, array, meta, warnings = _read(args)
    enc = Encoder.load(_choose_model(path, args, array, warnings, meta), threads=args.threads)
    array, meta = _fit_audio(path, array, meta, enc, warnings)
    for w in warnings:
        _warn(w)
    meta = {**meta, "source": path.name}
    if enc.bundle.modality == "video":  # one FRAME record per group of frames
        t_block = enc.bundle.block[0]
        groups = video_io.frame_groups(array.shape[0], video_io.group_size(array.shape, t_block),
                                       t_block) if array.ndim == 4 else [(0, len(array))]
        blob = enc.encode_frames([array[a:b] for a, b in groups], meta=meta)
    else:
        blob = enc.encode(array, meta=meta)
    report = sys.stdout
    if _is_stdio(args.output):
        sys.stdout.buffer.write(blob)
        report = sys.stderr  # stdout carries the stream
    else:
        Path(args.output).write_bytes(blob)
    stats = _rate_stats(array, len(blob), enc.bundle.modality)
    print(json.dumps({"model": enc.name, "output": str(args.output), **stats}), file=report)
    return 0


def _frame_names(output: Path, n: int) -> list[Path]:
    """Output files for ``n`` frames, numbered from 1: ``output`` as a printf pattern when it
    holds ``%`` (``out_%04d.png``); else ``output`` itself for one frame, ``name-0001.png``, …
    for more."""
    if "%" in output.name:
        try:
            names = [output.with_name(output.name % i) for i in range(1, n + 1)]
        except (TypeError, ValueError):
            raise MediaError(f"{output}: expected one %d-style field in the name "
                             "(e.g. out_%04d.png)") from None
        return names
    if n == 1:
        return [output]
    return [output.with_name(f"{output.stem}-{i:04d}{output.suffix}") for i in range(1, n + 1)]


def _check_target(header: dict, out: Path) -> None:
    """Refuse writing a stream's frames to a format of another modality (image → .wav, …)."""
    stream, target = header.get("modality"), modality_of(out)
    if target == "array" or stream == target:
        return
    if stream == "video" and target == "image":
        return  # one image per video frame
    if stream in ("volume", "volume16") and (target == "volume" or out.suffix.lower() in
                                             (".tif", ".tiff")):
        return  # NIfTI or a TIFF stack
    fits = {"image": "an image format (.png, …) or .npy", "audio": ".wav, .flac or .npy",
            "video": ".y4m, image frames (name_%04d.png) or .npy"}
    raise MediaError(f"{out}: cannot write {stream} frames as {target}; write "
                     f"{fits.get(stream, '.npy')}")


def cmd_decode(args) -> int:
    source = "<stdin>" if _is_stdio(args.input) else str(args.input)
    blob = sys.stdin.buffer.read() if _is_stdio(args.input) else Path(args.input).read_bytes()
    header, records = container.read_stream(blob, source)
    to_stdout = _is_stdio(args.output)
    out = (_stdio_path(args.format or STDOUT_FORMAT.get(header.get("modality"), "npy"), "output")
           if to_stdout else Path(args.output))
    _check_target(header, out)
    frames = [r for r in records if r.type == container.RecordType.FRAME]
    if not frames:
        raise container.ContainerError(f"{source}: stream holds no FRAME record")
    if args.frame is not None:
        if not 1 <= args.frame <= len(frames):
            raise MediaError(f"--frame {args.frame}: expected 1..{len(frames)} "
                             f"({source} holds {len(frames)} frames)")
        frames = [frames[args.frame - 1]]
    dec = Decoder.for_header(header, threads=args.threads, postfilter=args.postfilter,
                             variant=args.decoder_variant)
    arrays = dec.decode_frames(header, [f.payload for f in frames])
    meta = header.get("meta")
    if len(arrays) > 1 and modality_of(out) in ("audio", "video"):
        arrays = [np.concatenate(arrays, axis=0)]  # audio chunks / frame groups: one file
    if header.get("modality") == "video" and modality_of(out) == "image":
        arrays = [f for a in arrays for f in a]    # one image per frame
    if to_stdout:
        if len(arrays) > 1:
            raise MediaError(f"{source}: {len(arrays)} frames; stdout takes one: pass --frame N "
                             "or an output file name")
        sys.stdout.buffer.write(encode_media(arrays[0], out, meta))
        names = [Path(STDIO)]
    else:
        names = _frame_names(out, len(arrays))
        for name, array in zip(names, arrays):
            write_output(name, array, meta)
    print(json.dumps({"model": dec.name, "frames": len(frames),
                      "output": str(names[0]) if len(names) == 1 else [str(n) for n in names],
                      "shape": list(arrays[0].shape), "dtype": str(arrays[0].dtype)}),
          file=sys.stderr if to_stdout else sys.stdout)
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

    def family(m: dict) -> tuple[str, int | None]:  # audio: one ladder per joint channel count
        ch = int(m["sample"]["channels"])
        return m["modality"], (ch if m["modality"] == "audio" and ch > 1 else None)

    defaults = {f: default_model(*f) for f in {family(m) for m in models}}
    rungs = {f: [n for n, _ in ladder(*f)] for f in defaults}
    for m in models:
        f = family(m)
        m["default"] = defaults[f] == m["name"]
        m["quality"] = rungs[f].index(m["name"]) + 1 if m["name"] in rungs[f] else None
        m["measured_rate"] = measured_rate(load_bundle(m["name"], verify=False).manifest)
    if args.json:
        print(json.dumps(models, indent=1))
        return 0
    print(f"  {'name':<16}{'modality':<11}{'-q':>3}{'latent':>7}{'MACs/px':>9}{'rate':>8}"
          f"{'PSNR/SNR':>10}{'size':>10}")
    for m in models:
        op = m["operating_point"]
        rate = m["measured_rate"] or op.get("bpp", op.get("bits_per_sample", float("nan")))
        q = op.get("psnr_db", op.get("snr_db_mean", float("nan")))
        print(f"{'*' if m['default'] else ' '} {m['name']:<16}{m['modality']:<11}"
              f"{m['quality'] or '':>3}{m['latent_channels']:>7}"
              f"{m['macs_per_sample'] or 0:>9.1f}{rate:>8.3f}{q:>10.2f}{m['bytes'] / 1e6:>9.2f}M")
    print("\nlegend: * = default model of its modality (used without --model, -q or --bpp; audio:"
          "\n          one per jointly coded channel count, picked by the input's channels)\n"
          "        rate = measured on held-out data: bits per pixel (image), per sample (audio; stereo:"
          " per sample pair;"
          " timeseries, hyperspectral: one band value)\n"
          "        encode -q N picks rung N (-q column) of the input's modality, 1 = lowest rate;"
          "\n        encode --bpp X picks the model whose measured rate is closest to X")
    return 0


def cmd_roundtrip(args) -> int:
    """Encode + decode real sample files and print size, rate and quality (the README demo)."""
    inputs = args.inputs or (sorted(p for p in SAMPLES_DIR.iterdir() if p.suffix in (".png", ".wav", ".y4m"))
                             if SAMPLES_DIR.is_dir() else [])
    if not inputs:
        raise FileNotFoundError("no input files given and no bundled samples found")
    for path in inputs:
        warnings: list[str] = []
        array, meta = read_input(path, warnings=warnings)
        name = _choose_model(Path(path), args, array, warnings, meta)
        for w in warnings:
            _warn(w)
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


def _add_knob(p: argparse.ArgumentParser) -> None:
    """--model / -q / --bpp / --modality: which bundled model encodes."""
    p.add_argument("--model", help="bundled model name or bundle folder (default: by modality)")
    p.add_argument("-q", "--quality", type=int, metavar="N",
                   help="quality 1..N: rung N of the modality's bundled models ordered by "
                        "measured rate (1 = smallest; see `sensor-codec models`)")
    p.add_argument("--bpp", type=float, metavar="X", help="target rate in bits per pixel (image) "
                   "or per sample (audio): the bundled model measured closest to X")
    p.add_argument("--modality", choices=("image", "audio", "timeseries", "video", "hyperspectral"),
                   help="modality of a .npy input (otherwise guessed from its dtype, with a warning)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="sensor-codec", description=__doc__)
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads (default 1)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("encode", help="encode an image (PNG/JPEG/PPM/TIFF), WAV/FLAC or .npy")
    e.add_argument("input", type=Path, help="input file, or - for stdin (needs --format)")
    e.add_argument("-o", "--output", type=Path, required=True, help="stream file, or - for stdout")
    e.add_argument("--format", help="format of stdin data: png, jpg, wav, flac, npy, ...")
    _add_knob(e)
    e.set_defaults(func=cmd_encode)
    d = sub.add_parser("decode", help="decode a stream; output format from the extension; "
                       "several frames go to name-0001.png, ... (or a %%04d pattern), audio "
                       "frames are joined into one file")
    d.add_argument("input", type=Path, help="stream file, or - for stdin")
    d.add_argument("-o", "--output", type=Path, required=True,
                   help="output file, out_%%04d.png pattern, or - for stdout")
    d.add_argument("--frame", type=int, metavar="N", help="decode only frame N (1 = first)")
    d.add_argument("--format", help="format for -o - (default png for images, wav for audio, "
                   "else npy)")
    d.add_argument("--no-postfilter", dest="postfilter", action="store_false",
                   help="skip the model's decoder-side stages, if any (audio: post-filter "
                   "noise floor and latent noise fill)")
    d.add_argument("--decoder-variant", choices=("fp32", "int8", "text"), default=None,
                   help="decoder graph: fp32, the static-int8 one (faster, slightly lower PSNR; "
                        "only models whose bundle has decoder_int8.onnx) or the text-page one "
                        "(for OCR; only models whose bundle has decoder_text.onnx); default: the "
                        "one the model's manifest names (decoder.default), else fp32")
    d.set_defaults(func=cmd_decode, errors_name_input=True)
    i = sub.add_parser("info", help="show a stream's header and records")
    i.add_argument("input", type=Path)
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_info, errors_name_input=True)
    m = sub.add_parser("models", help="list the bundled models (* = default; -q rungs)")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_models)
    r = sub.add_parser("roundtrip", help="encode+decode files (default: bundled samples) and "
                       "print size, rate and quality")
    r.add_argument("inputs", nargs="*", type=Path)
    _add_knob(r)
    r.set_defaults(func=cmd_roundtrip)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        rc = args.func(args)
        sys.stdout.flush()  # a closed pipe (| head) surfaces here, not at interpreter exit
        return rc
    except BrokenPipeError:
        _quiet_stdout()
        return 141  # like a tool killed by SIGPIPE
    except (ValueError, OSError) as exc:  # every user-facing error type derives from these
        source = args.input if getattr(args, "errors_name_input", False) else None
        print(f"sensor-codec: error: {_one_line(exc, source)}", file=sys.stderr)
        return 2


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


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
