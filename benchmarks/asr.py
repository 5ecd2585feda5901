"""Machine listener for the speech benchmarks: pocketsphinx (packaged en-us model) and word error rate.

* :func:`transcribe` decodes 16 kHz mono int16 samples with pocketsphinx's bundled US-English
  acoustic model, language model and dictionary (PyPI ``pocketsphinx`` 5.1.1, pinned in the dev
  extra; nothing is downloaded). One utterance per clip on a fresh decoder, deterministic: a
  reused decoder carries its noise tracker and cepstral mean from one utterance to the next, so a
  clip's transcript depended on the clip (or codec) decoded before it.
* :func:`normalize` lower-cases, maps a few abbreviations to the spoken form ("mr" → "mister"),
  drops punctuation (apostrophes inside words are kept) and collapses white space.
* :func:`wer` / :func:`corpus_wer`: word-level Levenshtein distance (substitutions + deletions +
  insertions) over the number of reference words; the corpus WER sums both over all clips.
"""

from __future__ import annotations

import re

import numpy as np

RATE = 16000
_ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint"}


def _decoder():
    """A new pocketsphinx decoder (≈0.3 s to load the packaged en-us model): no state carried over."""
    from pocketsphinx import Decoder
    return Decoder(samprate=RATE, loglevel="FATAL")


def transcribe(samples_int16_16k: np.ndarray) -> str:
    """Best hypothesis (lower case words) of pocketsphinx en-us for one 16 kHz mono int16 clip."""
    x = np.asarray(samples_int16_16k)
    if x.ndim != 1 or x.dtype != np.int16:
        raise ValueError(f"transcribe: expected 1-D int16 samples at {RATE} Hz, got "
                         f"{x.dtype} with shape {x.shape}")
    dec = _decoder()
    dec.start_utt()
    dec.process_raw(np.ascontiguousarray(x).tobytes(), full_utt=True)
    dec.end_utt()
    hyp = dec.hyp()
    return hyp.hypstr if hyp is not None else ""


def normalize(text: str) -> list[str]:
    """Words of ``text`` for scoring: lower case, abbreviations spelled out, no punctuation."""
    words = re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split()
    words = [w.strip("'") for w in words]
    return [_ABBREVIATIONS.get(w, w) for w in words if w]


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Word-level Levenshtein distance (substitutions, deletions and insertions all cost 1)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def wer(ref: str, hyp: str) -> float:
    """Word error rate of ``hyp`` against ``ref`` (both normalised); can exceed 1 with insertions."""
    r = normalize(ref)
    if not r:
        raise ValueError("wer: the reference transcript has no words")
    return edit_distance(r, normalize(hyp)) / len(r)


def corpus_wer(pairs: list[tuple[str, str]]) -> float:
    """Corpus WER over (reference, hypothesis) pairs: total edits / total reference words."""
    edits = sum(edit_distance(normalize(r), normalize(h)) for r, h in pairs)
    words = sum(len(normalize(r)) for r, _ in pairs)
    if words == 0:
        raise ValueError("corpus_wer: the references have no words")
    return edits / words
