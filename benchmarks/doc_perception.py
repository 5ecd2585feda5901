"""Document machine-perception benchmark: Tesseract OCR character error rate (CER) against bits.

One command: ``python -m benchmarks.doc_perception`` (needs Debian ``tesseract-ocr``,
``tesseract-ocr-eng``, ``fonts-dejavu-core``, ``fonts-liberation``; see scripts/apt/perception.txt).

Pages: real English text — license texts shipped by Debian ``base-files`` in
``/usr/share/common-licenses`` (checked by sha256 below) — rendered with Pillow at 768×512 RGB,
black on white, in four real fonts (DejaVu Sans/Serif, Liberation Sans/Serif) at four sizes
(16/20/24/29 px, x-height ≈ 7–16 px). The 16 held-out pages are drawn with a fixed seed from seven
texts that nothing else in the project uses (the tests render from another text, ``BSD``).

Every page is coded by every bundled RGB model (decoded by its generic decoder, curve "ours", and
where the bundle has one by its text-page decoder, curve "ours, text decoder"), JPEG (q5…75), WebP (q0…80, extended at the low
end: text pages cost more bits) and AVIF at six or seven qualities each and by
resolution reduction (×2/×3/×4, lossless WebP, bicubic upscale); see benchmarks/perception_points.py.
The decoded page is read by ``tesseract --psm 6 -l eng`` (one thread) and compared with the text
that was drawn: CER = Levenshtein distance / reference length, pooled over pages (sum of edits /
sum of reference characters), after NFKC normalisation, straight quotes and whitespace runs
collapsed to one space. Rate = whole-file bits per pixel, mean over the 16 pages.

Writes benchmarks/results/doc_perception.json + .png: every curve, and per model and decoder WebP's
CER interpolated at our bpp (linear in log-bpp on WebP's curve) with pass/fail of "our CER ≤
WebP's" for our points between 0.3 and 1.2 bpp.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks import perception_points as pp
from encoder_runtime.bundle import sha256_file

WIDTH, HEIGHT = 768, 512
MARGIN = 20
SEED = 20261129
LICENSES = Path("/usr/share/common-licenses")
# Debian base-files texts (bookworm); sha256 pins the exact wording the ground truth comes from.
HELD_OUT_TEXTS = {
    "GPL-3": "3972dc9744f6499f0f9b2dbf76696f2ae7ad8af9b23dde66d6af86c9dfb36986",
    "Apache-2.0": "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30",
    "MPL-2.0": "fab3dd6bdab226f1c08630b1dd917e11fcb4ec5e1e020e2c16f83a0a13863e85",
    "GFDL-1.3": "110535522396708cea37c72a802c5e7e81391139f5f7985631c93ef242b206a4",
    "Artistic": "b7fd9b73ea99602016a326e0b62e6646060d18febdd065ceca8bb482208c3d88",
    "LGPL-2.1": "dc626520dcd53a22f727af3ee42c770e56c97a64fe3adb063799d8ab032fe551",
    "CC0-1.0": "a2010f343487d3f7618affe54f789f5487602331c0a8d03f49e9a7c547cf0499",
}
TEST_TEXT = ("BSD", "5d588eb3b157d52112afea935c88a7ff9efddc1e2d95a42c25d3b96ad9055008")  # tests only
FONTS = {  # Debian fonts-dejavu-core 2.37 / fonts-liberation 1.07.4
    "DejaVu Sans": "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "DejaVu Serif": "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "Liberation Sans": "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "Liberation Serif": "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf",
}
SIZES = (16, 20, 24, 29)
CER_RANGE = (0.3, 1.2)
# Text pages cost more bits than photos at a given quality: the low end is extended so that JPEG
# and WebP reach down into our models' rates (WebP q0 ≈ 0.44 bpp, JPEG q5 ≈ 0.56 bpp here).
JPEG_Q_DOC = (5, 10, 20, 30, 50, 75)
WEBP_Q_DOC = (0, 1, 2, 5, 20, 50, 80)


@dataclass
class Page:
    """A rendered page and the exact text drawn on it."""
    image: np.ndarray
    text: str
    source: str
    font: str
    size_px: int
    x_height_px: int


def read_text(name: str, sha256: str, root: Path = LICENSES) -> list[str]:
    """Words of a Debian common-licenses text, checked against its pinned sha256: ASCII only, and
    only tokens with a letter or digit (drops the ``*****``/``----`` box art some texts carry)."""
    path = root / name
    if not path.is_file():
        raise SystemExit(f"{path}: text not found (Debian base-files provides /usr/share/common-licenses)")
    got = sha256_file(path)
    if got != sha256:
        raise SystemExit(f"{path}: sha256 {got} differs from the pinned {sha256}; the ground truth "
                         "would not be the recorded text")
    raw = unicodedata.normalize("NFKC", path.read_text(encoding="utf-8", errors="replace"))
    return [w for w in raw.encode("ascii", "ignore").decode().split() if re.search(r"[A-Za-z0-9]", w)]


def font_path(font: str) -> str:
    """The TrueType file of one of :data:`FONTS`, or exit naming the Debian package that ships it."""
    p = FONTS.get(font)
    if p is None:
        raise SystemExit(f"font {font!r}: expected one of {sorted(FONTS)}")
    if not Path(p).is_file():
        raise SystemExit(f"{p}: font file missing (install fonts-dejavu-core / fonts-liberation, "
                         "scripts/apt/perception.txt)")
    return p


def render_page(words: list[str], font: str, size_px: int, source: str = "") -> Page:
    """Flow ``words`` into a 768×512 page (left-aligned, margins 20 px, line pitch 1.35 em) until the
    page is full; returns the page and exactly the words drawn (lines joined by newlines)."""
    from PIL import Image, ImageDraw, ImageFont
    f = ImageFont.truetype(font_path(font), size_px)
    img = Image.new("RGB", (WIDTH, HEIGHT), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    pitch = round(1.35 * size_px)
    lines, line, i = [], "", 0
    max_lines = (HEIGHT - 2 * MARGIN - size_px) // pitch + 1
    while i < len(words) and len(lines) < max_lines:
        cand = f"{line} {words[i]}" if line else words[i]
        if draw.textlength(cand, font=f) <= WIDTH - 2 * MARGIN:
            line, i = cand, i + 1
        elif line:
            lines.append(line)
            line = ""
        else:  # a single word wider than the page: skip it
            i += 1
    if line and len(lines) < max_lines:
        lines.append(line)
    for k, ln in enumerate(lines):
        draw.text((MARGIN, MARGIN + k * pitch), ln, font=f, fill=(0, 0, 0))
    box = f.getbbox("x")
    return Page(np.asarray(img), "\n".join(lines), source, font, size_px, box[3] - box[1])


def held_out_pages(seed: int = SEED, texts: dict[str, str] | None = None) -> list[Page]:
    """The 16 benchmark pages: every font × size, each from a seeded text and start word."""
    texts = texts or HELD_OUT_TEXTS
    words = {n: read_text(n, h) for n, h in texts.items()}
    rng = np.random.default_rng(seed)
    names = sorted(words)
    pages = []
    for font in FONTS:
        for size in SIZES:
            src = names[int(rng.integers(len(names)))]
            start = int(rng.integers(max(1, len(words[src]) - 400)))
            pages.append(render_page(words[src][start:], font, size, f"{src}@{start}"))
    return pages


def tesseract_available() -> bool:
    return shutil.which("tesseract") is not None


def ocr(img: np.ndarray) -> str:
    """Text read by the Tesseract CLI (``--psm 6``: one uniform block of text; English; 1 thread)."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    r = subprocess.run(["tesseract", "stdin", "stdout", "--psm", "6", "-l", "eng", "--dpi", "96"],
                       input=buf.getvalue(), capture_output=True,
                       env={**os.environ, "OMP_THREAD_LIMIT": "1"})
    if r.returncode != 0:
        raise RuntimeError(f"tesseract exited {r.returncode}: {r.stderr.decode(errors='replace')[-300:]}")
    return r.stdout.decode("utf-8", errors="replace")


_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2014": "-",
                         "\u2013": "-", "\u00a0": " "})


def normalize(text: str) -> str:
    """NFKC (ligatures → letters), straight quotes/dashes, whitespace runs → one space, stripped."""
    t = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    return re.sub(r"\s+", " ", t).strip()


def char_errors(ref: str, hyp: str) -> tuple[int, int]:
    """(Levenshtein edits, reference characters) after :func:`normalize`."""
    from rapidfuzz.distance import Levenshtein
    r, h = normalize(ref), normalize(hyp)
    return Levenshtein.distance(r, h), len(r)


def cer(ref: str, hyp: str) -> float:
    """Character error rate of ``hyp`` against ``ref`` (edits / reference length; may exceed 1)."""
    e, n = char_errors(ref, hyp)
    if n == 0:
        raise ValueError("cer: empty reference text")
    return e / n


def pooled_cer(pages: list[Page], decoded: list[np.ndarray]) -> dict:
    """OCR every decoded page; pooled CER (sum of edits / sum of reference chars) and per-page CERs."""
    edits, chars, per = 0, 0, []
    for p, d in zip(pages, decoded):
        e, n = char_errors(p.text, ocr(d))
        edits, chars = edits + e, chars + n
        per.append(e / n)
    return {"cer": edits / chars, "cer_page_mean": float(np.mean(per)),
            "cer_page_max": float(np.max(per))}


def summary_table(curves: dict[str, list[dict]]) -> str:
    lines = [f"{'codec':28s} {'setting':12s} {'bpp':>7s} {'CER %':>7s}"]
    for fam, pts in curves.items():
        for p in pts:
            lines.append(f"{fam:28s} {p['setting']:12s} {p['bpp']:7.3f} {100 * p['cer']:7.2f}")
    return "\n".join(lines)


#: the page fields that identify a page in the results JSON
PAGE_ID = ("source", "font", "size_px", "x_height_px")


def page_ids(pages) -> list[list]:
    """What identifies each page (compared by --baselines-from)."""
    return [[getattr(p, k) for k in PAGE_ID] for p in pages]


def results_page_ids(res: dict) -> list[list]:
    """The same identities as recorded in a doc_perception results JSON."""
    return [[p[k] for k in PAGE_ID] for p in res["pages"]]


#: curve of our models decoded by their bundle's text-page decoder (``Decoder(variant="text")``);
#: the curve "ours" holds the same models' default decoder (``decoder.default``: fp32 or int8).
TEXT_FAMILY = "ours, text decoder"


def text_settings(models: list[str]) -> list[tuple[str, str, pp.OursCodec]]:
    """(family, model, codec) of every model in ``models`` whose bundle has a text decoder."""
    from encoder_runtime.bundle import load_bundle
    from encoder_runtime.codec import DECODER_FILES
    return [(TEXT_FAMILY, n, pp.OursCodec(n, variant="text")) for n in models
            if DECODER_FILES["text"] in load_bundle(n).manifest["files"]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-pages", type=int, default=0, help="use only the first N pages (smoke runs)")
    ap.add_argument("--models", nargs="*", help="bundled RGB models (default: all)")
    ap.add_argument("--baselines-from", type=Path, metavar="JSON",
                    help="run only our models and take every other curve from an earlier run's JSON "
                         "on the same pages (the baselines do not change when our models do)")
    ap.add_argument("--out", type=Path, default=pp.RESULTS, help="output folder (default benchmarks/results)")
    args = ap.parse_args(argv)
    models = pp.check_models(args.models)
    if not tesseract_available():
        print("doc_perception: 'tesseract' not found; install Debian tesseract-ocr tesseract-ocr-eng "
              "(scripts/apt/perception.txt)", file=sys.stderr)
        return 2
    pages = held_out_pages()
    if args.max_pages:
        pages = pages[: args.max_pages]
    images = [p.image for p in pages]
    t0 = time.perf_counter()
    clean = pooled_cer(pages, images)
    print(f"doc: {len(pages)} pages, clean CER {100 * clean['cer']:.2f} %", file=sys.stderr)
    curves = {"clean": [{"setting": "uncompressed", "bpp": 24.0, **clean}]}
    settings = pp.codec_settings(models, jpeg_q=JPEG_Q_DOC, webp_q=WEBP_Q_DOC)
    settings[len(models):len(models)] = text_settings(models)
    reused = {}
    if args.baselines_from:
        families = dict.fromkeys(s[0] for s in settings if not s[0].startswith("ours"))
        reused = pp.earlier_curves(args.baselines_from, families, page_ids(pages), results_page_ids)
        settings = [s for s in settings if s[0].startswith("ours")]
    curves.update(pp.run_points(images, settings, lambda dec: pooled_cer(pages, dec), "doc"))
    curves.update(reused)
    decoder_of = {(fam, n): codec.dec.variant for fam, n, codec in settings if fam.startswith("ours")}
    verdicts = [{**v, "decoder": decoder_of[fam, v["model"]]}
                for fam in ("ours", TEXT_FAMILY)
                for v in pp.compare_with_webp(curves, "cer", *CER_RANGE, higher_is_better=False,
                                              family=fam)]
    tver = subprocess.run(["tesseract", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    res = {
        "pages": [{"source": p.source, "font": p.font, "size_px": p.size_px, "x_height_px": p.x_height_px,
                   "chars": len(normalize(p.text))} for p in pages],
        "seed": SEED, "size": [WIDTH, HEIGHT],
        "texts": {n: {"path": str(LICENSES / n), "sha256": h} for n, h in HELD_OUT_TEXTS.items()},
        "fonts": {n: {"path": p, "sha256": sha256_file(Path(p))} for n, p in FONTS.items()},
        "curves": curves, "vs_webp": verdicts, "judged_bpp_range": list(CER_RANGE),
        "metric": "CER = Levenshtein edits / reference chars, pooled over pages, after NFKC, straight "
                  "quotes and whitespace collapsed; tesseract --psm 6 -l eng, OMP_THREAD_LIMIT=1",
        "rate": pp.RATE_NOTE,
        "seconds": round(time.perf_counter() - t0, 1),
        "env": pp.environment({"tesseract": tver}),
    }
    if args.baselines_from:
        res["baselines_from"] = str(args.baselines_from)
    pp.write_results(args.out, "doc_perception", res, [("cer", "character error rate (Tesseract 5, pooled)")],
                     f"OCR on {len(pages)} held-out 768×512 text pages", log_y=True)
    print(summary_table(curves))
    print(json.dumps(verdicts, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
