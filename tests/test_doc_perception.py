"""benchmarks.doc_perception: real pages rendered with Debian fonts read back by Tesseract; the CER
function; coding damage raises the CER. Skips only when the Debian binary/fonts are absent
(scripts/apt/perception.txt installs them)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmarks import doc_perception as dp
from benchmarks.rd import pillow_codec

needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None,
                                     reason="Debian tesseract-ocr not installed (scripts/apt/perception.txt)")
needs_fonts = pytest.mark.skipif(not all(Path(p).is_file() for p in dp.FONTS.values()),
                                 reason="fonts-dejavu-core / fonts-liberation not installed")


def _test_page(size: int = 16) -> dp.Page:
    """A page from the BSD text, which the benchmark's held-out pages never use."""
    name, sha = dp.TEST_TEXT
    assert name not in dp.HELD_OUT_TEXTS
    return dp.render_page(dp.read_text(name, sha), "DejaVu Sans", size, name)


def test_cer_function():
    assert dp.cer("hello world", "hello world") == 0.0
    assert dp.cer("abcd", "abxd") == pytest.approx(0.25)
    assert dp.cer("abcd", "") == pytest.approx(1.0)
    assert dp.cer("ab", "abcdef") == pytest.approx(2.0)  # insertions count: CER can exceed 1
    # normalisation: whitespace runs, ligatures (NFKC), curly quotes are not errors
    assert dp.cer('the "office" file', "the \u201co\ufb03ce\u201d\n  file") == 0.0
    with pytest.raises(ValueError, match="empty reference"):
        dp.cer("  ", "x")


def test_read_text_checks_sha(tmp_path):
    name, sha = dp.TEST_TEXT
    words = dp.read_text(name, sha)
    assert len(words) > 100 and all(any(c.isalnum() for c in w) for w in words)
    (tmp_path / name).write_text("changed text\n")
    with pytest.raises(SystemExit, match=f"{name}: sha256"):
        dp.read_text(name, sha, root=tmp_path)
    with pytest.raises(SystemExit, match="text not found"):
        dp.read_text("no-such-license", sha, root=tmp_path)


@needs_fonts
def test_render_page_shape_and_text():
    p = _test_page(20)
    assert p.image.shape == (dp.HEIGHT, dp.WIDTH, 3) and p.image.dtype == np.uint8
    assert 300 < len(p.text) < 3000 and p.text.count("\n") >= 10
    assert 8 <= p.x_height_px <= 13
    assert (p.image < 128).mean() > 0.01  # ink on the page
    with pytest.raises(SystemExit, match="expected one of"):
        dp.font_path("Comic Sans")


@needs_tesseract
@needs_fonts
def test_clean_page_reads_back_and_jpeg_hurts():
    p = _test_page(16)
    clean = dp.cer(p.text, dp.ocr(p.image))
    assert clean < 0.02
    n, dec = pillow_codec("JPEG", quality=5)(p.image)
    assert n * 8 / (dp.WIDTH * dp.HEIGHT) < 1.0
    assert dp.cer(p.text, dp.ocr(dec)) > clean + 0.01


@needs_fonts
def test_baselines_from_matches_the_committed_results():
    """--baselines-from identifies pages the way the committed results JSON records them, so a re-run
    of our models can reuse that run's baseline curves; a different page set is refused."""
    import json
    from benchmarks import perception_points as pp
    path = Path(dp.__file__).parent / "results" / "doc_perception.json"
    pages = dp.held_out_pages()
    curves = pp.earlier_curves(path, ["WebP"], dp.page_ids(pages), dp.results_page_ids)
    assert curves["WebP"] == json.loads(path.read_text())["curves"]["WebP"]
    with pytest.raises(SystemExit, match="items are not this run's"):
        pp.earlier_curves(path, ["WebP"], dp.page_ids(pages[1:]), dp.results_page_ids)


def test_text_decoder_rows():
    """Models whose bundle has a text decoder get a second curve, judged against WebP on its own."""
    from benchmarks import perception_points as pp
    got = dp.text_settings(["rgb-c16", "rgb-c12-low"])
    assert [(fam, n, c.dec.variant) for fam, n, c in got] == [(dp.TEXT_FAMILY, "rgb-c16", "text")]
    curves = {pp.WEBP_FAMILY: [{"bpp": 0.4, "cer": 0.01}, {"bpp": 0.8, "cer": 0.001}],
              "ours": [{"setting": "m", "bpp": 0.5, "cer": 0.02}],
              dp.TEXT_FAMILY: [{"setting": "m", "bpp": 0.5, "cer": 0.001}]}
    rows = {fam: pp.compare_with_webp(curves, "cer", 0.3, 1.2, False, family=fam)[0]["pass"]
            for fam in ("ours", dp.TEXT_FAMILY)}
    assert rows == {"ours": False, dp.TEXT_FAMILY: True}
