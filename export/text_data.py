"""Rendered text pages for training and checkpoint selection (``sensor-train --text-train-weight``).

Real English text — Debian ``base-files`` licences in ``/usr/share/common-licenses``, pinned by
sha256 — rendered by :func:`benchmarks.doc_perception.render_page` (768×512, black on white, the
benchmark's four fonts) at seeded sizes 14–32 px. The texts are disjoint from the benchmark's
held-out texts (``HELD_OUT_TEXTS``) and its test text (``BSD``); near-copies of held-out texts
(GFDL-1.2 ≈ GFDL-1.3, LGPL-2 ≈ LGPL-2.1) and the ``GPL``/``LGPL``/``GFDL`` links to them are
left out. ``train`` pages come from :data:`TRAIN_TEXTS`, ``val`` pages (for picking checkpoints)
from :data:`VAL_TEXTS`.
"""

from __future__ import annotations

import numpy as np

from benchmarks.doc_perception import FONTS, HELD_OUT_TEXTS, TEST_TEXT, Page, read_text, render_page

TRAIN_TEXTS = {
    "GPL-1": "d77d235e41d54594865151f4751e835c5a82322b0e87ace266567c3391a4b912",
    "GPL-2": "8177f97513213526df2cf6184d8ff986c675afb514d4e68a404010521b880643",
    "MPL-1.1": "f849fc26a7a99981611a3a370e83078deb617d12a45776d6c4cada4d338be469",
}
VAL_TEXTS = {
    "LGPL-3": "e3a994d82e644b03a792a930f574002658412f62407f5fee083f2555c5f23118",
}
SPLITS = {"train": (TRAIN_TEXTS, 24, 1), "val": (VAL_TEXTS, 8, 2)}  # texts, pages, seed
SIZE_RANGE = (14, 32)

_reserved = set(HELD_OUT_TEXTS) | {TEST_TEXT[0]}
assert not _reserved & (set(TRAIN_TEXTS) | set(VAL_TEXTS)), "text split overlaps the benchmark's texts"


def text_pages(split: str, n_pages: int | None = None) -> list[Page]:
    """``n_pages`` (default 24 train / 8 val) seeded pages of ``split``'s texts: fonts in turn,
    size uniform in :data:`SIZE_RANGE`, random text and start word."""
    if split not in SPLITS:
        raise ValueError(f"text split must be one of {sorted(SPLITS)}, not {split!r}")
    texts, default_n, seed = SPLITS[split]
    words = {n: read_text(n, h) for n, h in texts.items()}
    names = sorted(words)
    rng = np.random.default_rng(seed)
    fonts = sorted(FONTS)
    pages = []
    for i in range(default_n if n_pages is None else n_pages):
        src = names[int(rng.integers(len(names)))]
        start = int(rng.integers(max(1, len(words[src]) - 400)))
        size = int(rng.integers(SIZE_RANGE[0], SIZE_RANGE[1] + 1))
        pages.append(render_page(words[src][start:], fonts[i % len(fonts)], size, f"{src}@{start}"))
    return pages


def text_arrays(split: str = "train", n_pages: int | None = None) -> list[np.ndarray]:
    """The pages of :func:`text_pages` as (3, H, W) uint8 training arrays."""
    return [p.image.transpose(2, 0, 1).copy() for p in text_pages(split, n_pages)]
