"""Shared machinery of the recognizer-at-equal-rate benchmarks (``doc_perception``, ``photo_perception``).

One job: turn a list of images and a *score* function into rate/accuracy points for every codec
setting — every bundled RGB model, JPEG, WebP, AVIF (Pillow, via :func:`benchmarks.rd.pillow_codec`)
and resolution reduction (downscale ×2/×3/×4, stored as **lossless WebP**, upscaled back with a
bicubic filter) — and compare our points with WebP's curve at equal rate.

Rates are whole-file bits per pixel of what was encoded (for ours the complete one-frame container
stream, header included, as in ``benchmarks/rd.py``); ours is also given "in a stream" (the FRAME
record alone).
"""

from __future__ import annotations

import io
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from benchmarks.rd import pillow_codec
from encoder_runtime import Decoder, Encoder, container
from encoder_runtime.bundle import list_models

RESULTS = Path(__file__).resolve().parent / "results"

Codec = Callable[[np.ndarray], tuple[int, np.ndarray]]

JPEG_Q = (10, 20, 30, 50, 75, 90)
WEBP_Q = (5, 20, 40, 60, 80, 95)
AVIF_Q = (10, 25, 40, 55, 70, 85)
DOWNSCALE = (2, 3, 4)
WEBP_FAMILY = "WebP"
RATE_NOTE = ("whole-file bits per pixel over all encoded pixels (ours: one-frame container stream; "
             "bpp_in_stream: FRAME record only); downscale: lossless WebP of the small image")


class OursCodec:
    """One bundled model as a codec: ``(whole-stream bytes, decoded)``; also counts FRAME-record
    bytes in :attr:`frame_bytes` (what each further frame of a stream costs). ``variant`` picks
    the decoder graph (``Decoder(variant=...)``: fp32, int8, text); None = the model's default
    (manifest ``decoder.default``), what a user of the bundle gets."""

    def __init__(self, name: str, variant: str | None = None) -> None:
        self.name = name
        self.enc = Encoder.load(name)
        self.dec = Decoder.load(name, variant=variant)
        self.frame_bytes = 0

    def __call__(self, img: np.ndarray) -> tuple[int, np.ndarray]:
        blob = self.enc.encode(img)
        _, recs = container.read_stream(blob)
        self.frame_bytes += sum(r.size for r in recs)
        return len(blob), self.dec.decode(blob)


def downscale_codec(factor: int) -> Codec:
    """Box-filter downscale by ``factor``, store as lossless WebP (the rate), bicubic upscale back."""
    from PIL import Image

    def run(img: np.ndarray) -> tuple[int, np.ndarray]:
        h, w = img.shape[:2]
        small = Image.fromarray(img).resize((max(1, round(w / factor)), max(1, round(h / factor))),
                                            Image.Resampling.BOX)
        buf = io.BytesIO()
        small.save(buf, "WEBP", lossless=True, quality=100, method=6)
        n = buf.tell()
        buf.seek(0)
        back = Image.open(buf).convert("RGB").resize((w, h), Image.Resampling.BICUBIC)
        return n, np.asarray(back)
    return run


def rgb_models() -> list[str]:
    """Names of every bundled RGB image model."""
    return [m["name"] for m in list_models() if m["modality"] == "image"]


def check_models(names: Sequence[str] | None, allow_folders: bool = False) -> list[str]:
    """``names`` (default: every bundled RGB model), or exit naming the unknown ones;
    ``allow_folders`` also accepts bundle folders (a ``manifest.json`` inside: candidate models)."""
    known = rgb_models()
    bad = [n for n in names or [] if n not in known
           and not (allow_folders and (Path(n) / "manifest.json").is_file())]
    if bad:
        raise SystemExit(f"--models: {', '.join(bad)} not a bundled RGB model"
                         f"{' or bundle folder' if allow_folders else ''} (expected some of "
                         f"{', '.join(known)})")
    return list(names) if names else known


def codec_settings(models: Sequence[str] | None = None, jpeg_q: Sequence[int] = JPEG_Q,
                   webp_q: Sequence[int] = WEBP_Q, avif_q: Sequence[int] = AVIF_Q) -> list[tuple[str, str, Codec]]:
    """(family, setting label, codec) for every point of the benchmark; codecs Pillow lacks are left
    out with a note on stderr."""
    from PIL import features
    out: list[tuple[str, str, Codec]] = [("ours", n, OursCodec(n)) for n in (models or rgb_models())]
    out += [("JPEG (libjpeg-turbo)", f"q{q}", pillow_codec("JPEG", quality=q)) for q in jpeg_q]
    for fam, feat, make, qs in ((WEBP_FAMILY, "webp", lambda q: pillow_codec("WEBP", quality=q, method=4), webp_q),
                                ("AVIF", "avif", lambda q: pillow_codec("AVIF", quality=q, speed=6), avif_q)):
        if features.check(feat):
            out += [(fam, f"q{q}", make(q)) for q in qs]
        else:
            print(f"perception: skipping {fam}: Pillow built without {feat}", file=sys.stderr)
    out += [("downscale (lossless WebP)", f"x{f}", downscale_codec(f)) for f in DOWNSCALE]
    return out


def earlier_curves(path: Path, families: Iterable[str], ids: list,
                   read_ids: Callable[[dict], list]) -> dict[str, list[dict]]:
    """The curves of ``families`` from an earlier run's JSON at ``path`` whose items
    (``read_ids(json)``) equal this run's ``ids``: the baselines do not change when our models do,
    so a re-run of ours can reuse them (``--baselines-from``)."""
    try:
        res = json.loads(Path(path).read_text())
        got = read_ids(res)
        curves = {fam: res["curves"][fam] for fam in families}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"--baselines-from {path}: not a results JSON of this benchmark with the "
                         f"curves {sorted(families)} ({e.__class__.__name__}: {e})") from None
    if got != ids:
        raise SystemExit(f"--baselines-from {path}: its {len(got)} items are not this run's {len(ids)}")
    return curves


def run_points(images: Sequence[np.ndarray], settings: Iterable[tuple[str, str, Codec]],
               score: Callable[[list[np.ndarray]], dict], tag: str) -> dict[str, list[dict]]:
    """Code every image with every setting; ``score(decoded images) -> dict of metrics`` gives the
    accuracy of one point. Returns curves ``{family: [point, ...]}`` sorted by bpp; each point holds
    ``bpp`` (whole file), ``setting``, the score's metrics and, for ours, ``bpp_in_stream``."""
    pixels = sum(int(im.shape[0]) * int(im.shape[1]) for im in images)
    curves: dict[str, list[dict]] = {}
    settings = list(settings)
    for i, (fam, label, codec) in enumerate(settings, 1):
        t = time.perf_counter()
        nbytes, decoded = 0, []
        for im in images:
            n, d = codec(im)
            nbytes += n
            decoded.append(d)
        t_code = time.perf_counter() - t
        pt = {"setting": label, "bpp": 8 * nbytes / pixels, **score(decoded),
              "seconds_codec": round(t_code, 2), "seconds_total": round(time.perf_counter() - t, 2)}
        if isinstance(codec, OursCodec):
            pt["bpp_in_stream"] = 8 * codec.frame_bytes / pixels
        curves.setdefault(fam, []).append(pt)
        shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in pt.items()}
        print(f"{tag} [{i}/{len(settings)}] {fam} {shown}", file=sys.stderr, flush=True)
    return {k: sorted(v, key=lambda p: p["bpp"]) for k, v in curves.items()}


def interp_log_bpp(curve: Sequence[dict], key: str, bpp: float) -> float | None:
    """``key`` of ``curve`` at rate ``bpp``: linear in log(bpp) between the two neighbouring points;
    None outside the curve's rate range (no extrapolation)."""
    pts = sorted((p["bpp"], p[key]) for p in curve)
    r = np.log([b for b, _ in pts])
    if not pts or not (r[0] <= math.log(bpp) <= r[-1]):
        return None
    return float(np.interp(math.log(bpp), r, [v for _, v in pts]))


def compare_with_webp(curves: dict[str, list[dict]], key: str, lo: float, hi: float,
                      higher_is_better: bool, family: str = "ours") -> list[dict]:
    """Per bundled model: WebP's ``key`` interpolated at our bpp, and whether ours is at least as
    good (``pass``), judged for our points with ``lo <= bpp <= hi`` (None outside that range or
    where WebP's curve does not reach our rate; ``webp_nearest`` then gives WebP's nearest point).
    ``family``: the curve of ours to judge (e.g. the text-decoder rows of the document benchmark)."""
    rows = []
    webp = curves.get(WEBP_FAMILY, [])
    for p in curves.get(family, []):
        w = interp_log_bpp(webp, key, p["bpp"]) if webp else None
        judged = lo <= p["bpp"] <= hi and w is not None
        ok = None
        if judged:
            ok = bool(p[key] >= w) if higher_is_better else bool(p[key] <= w)
        row = {"model": p["setting"], "bpp": p["bpp"], key: p[key], f"webp_{key}_at_our_bpp": w,
               "judged": judged, "pass": ok}
        if w is None and webp:
            near = min(webp, key=lambda q: abs(math.log(q["bpp"] / p["bpp"])))
            row["webp_nearest"] = {"setting": near["setting"], "bpp": near["bpp"], key: near[key]}
        rows.append(row)
    return rows


def environment(extra: dict | None = None) -> dict:
    """Machine, versions and thread settings recorded with every result."""
    import onnxruntime
    import PIL
    from PIL import features
    env = {"machine": platform.machine(), "processor": platform.processor(),
           "python": platform.python_version(), "cpus": os.cpu_count(),
           "onnxruntime": onnxruntime.__version__, "pillow": PIL.__version__,
           "pillow_features": {f: features.version(f) for f in ("libjpeg_turbo", "webp", "avif")},
           "threads": 1}
    env.update(extra or {})
    return env


def plot_curves(curves: dict[str, list[dict]], panels: Sequence[tuple[str, str]], title: str, out: Path,
                log_y: bool = False) -> None:
    """Accuracy vs bpp (log x), one panel per ``(metric key, y label)``; ours bold with model names;
    writes ``out`` (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(panels), figsize=(8 * len(panels), 5.2), squeeze=False)
    for ax, (key, ylabel) in zip(axes[0], panels):
        for fam, pts in curves.items():
            if fam == "clean":
                continue
            ours = fam.startswith("ours")
            ax.plot([p["bpp"] for p in pts], [p[key] for p in pts], "o-" if ours else ".--",
                    lw=2.2 if ours else 1, label=fam)
            if ours:
                for p in pts:
                    ax.annotate(p["setting"], (p["bpp"], p[key]), fontsize=7, xytext=(3, 3),
                                textcoords="offset points")
        if "clean" in curves:
            ax.axhline(curves["clean"][0][key], color="k", lw=0.8, ls=":", label="uncompressed")
        ax.set_xscale("log")
        if log_y:
            ax.set_yscale("log")
        ax.set_xlabel("bits per pixel (whole file)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def write_results(out: Path, stem: str, res: dict, panels: Sequence[tuple[str, str]], title: str,
                  log_y: bool = False) -> None:
    """Write ``stem``.json (``res``) and ``stem``.png (``res["curves"]`` per :func:`plot_curves`)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(res, indent=1))
    plot_curves(res["curves"], panels, title, out / f"{stem}.png", log_y=log_y)
