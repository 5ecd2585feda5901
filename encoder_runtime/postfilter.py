"""Decoder-side audio post-filter: a spectral noise floor under the decoded signal (numpy only).

A low-rate audio model zeroes whole subbands in quiet frames, so the decoded spectrum holds
holes tens of dB below the recording's natural noise floor. Speech recognisers (log-mel / MFCC
front ends with cepstral mean normalisation and noise tracking) read those holes as large, random
feature errors. :func:`spectral_floor` lifts every short-time spectral bin to at least a floor
that lies ``floor_db`` dB under the frame's own long-term level in that bin (the ``ref_percentile``
of the bin's power over time, smoothed across ``smooth_bins`` neighbours), adding noise of the
missing power with a seeded random phase. The floor is derived from the decoded signal only
(the codes), never from the original; bins already above it are unchanged.

A bundle turns it on with a manifest field (validated by :func:`parse_postfilter`)::

    "postfilter": {"kind": "spectral_floor", "floor_db": 35.0, "seed": 0}

``Decoder(..., postfilter=False)`` (``sensor-codec decode --no-postfilter``) skips it. The
output is deterministic: the same frame decodes to the same samples.
"""

from __future__ import annotations

import numpy as np

from .bundle import BundleError
from .stage_spec import stage_object, stage_seed

KINDS = ("spectral_floor",)
N_FFT = 512
HOP = 128


def parse_postfilter(spec: object, where: str = "manifest") -> dict | None:
    """Checked post-filter settings from a manifest ``postfilter`` field (None: no post-filter).

    Raises :class:`BundleError` naming the field and the expected value.
    """
    spec = stage_object(spec, "postfilter", KINDS, where)
    if spec is None:
        return None
    db = spec.get("floor_db")
    if isinstance(db, bool) or not isinstance(db, (int, float)) or not 0.0 < db <= 120.0:
        raise BundleError(f"{where}: field 'postfilter.floor_db': expected a number in (0, 120], "
                          f"got {db!r:.40}")
    seed = stage_seed(spec, "postfilter", where)
    return {"kind": spec["kind"], "floor_db": float(db), "seed": seed}


def _frames(x: np.ndarray, window: np.ndarray) -> tuple[np.ndarray, int]:
    """Windowed STFT frames of ``x`` (padded by N_FFT both sides) and the padded length."""
    pad = np.pad(x, (N_FFT, N_FFT + (-len(x)) % HOP))
    return np.lib.stride_tricks.sliding_window_view(pad, N_FFT)[::HOP] * window, len(pad)


def _overlap_add(frames: np.ndarray, window: np.ndarray, length: int) -> np.ndarray:
    """Weighted overlap-add of synthesis frames (least-squares inverse of :func:`_frames`)."""
    out, norm = np.zeros(length), np.zeros(length)
    k = N_FFT // HOP
    for j in range(k):  # frames j, j+k, j+2k... do not overlap: add them as one reshaped block
        block = frames[j::k] * window
        start = j * HOP
        n = min(len(block) * N_FFT, length - start)
        out[start:start + n] += block.reshape(-1)[:n]
        norm[start:start + n] += np.tile(window ** 2, len(block))[:n]
    return out / np.maximum(norm, 1e-12)


def spectral_floor(x: np.ndarray, floor_db: float = 35.0, seed: int = 0,
                   ref_percentile: float = 90.0, smooth_bins: int = 8) -> np.ndarray:
    """``x`` (1-D float samples) with every STFT bin lifted to ≥ its floor (see module doc)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"spectral_floor: expected 1-D samples, got shape {x.shape}")
    if len(x) == 0:
        return x.copy()
    window = np.sqrt(np.hanning(N_FFT + 1)[:-1])
    frames, length = _frames(x, window)
    spec = np.fft.rfft(frames, axis=1)
    power = spec.real ** 2 + spec.imag ** 2
    ref = np.percentile(power, ref_percentile, axis=0)
    if smooth_bins:
        kernel = np.ones(2 * smooth_bins + 1) / (2 * smooth_bins + 1)
        ref = np.convolve(np.pad(ref, smooth_bins, mode="edge"), kernel, "valid")
    missing = np.maximum(ref * 10.0 ** (-floor_db / 10.0) - power, 0.0)
    phase = np.random.default_rng(seed).random(power.shape)
    spec = spec + np.sqrt(missing) * np.exp(2j * np.pi * phase)
    y = _overlap_add(np.fft.irfft(spec, N_FFT, axis=1), window, length)
    return y[N_FFT:N_FFT + len(x)]


def apply(settings: dict | None, x: np.ndarray) -> np.ndarray:
    """Run the post-filter ``settings`` (from :func:`parse_postfilter`) on samples (T,) or (T, C)
    float; each channel separately. ``None`` returns ``x`` unchanged."""
    if settings is None:
        return x
    x = np.asarray(x, dtype=np.float64)
    cols = x[:, None] if x.ndim == 1 else x
    out = np.stack([spectral_floor(c, settings["floor_db"], settings["seed"]) for c in cols.T], 1)
    return out[:, 0] if x.ndim == 1 else out
