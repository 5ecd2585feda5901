"""Decoder-side latent noise fill for audio models (numpy only, no encoder change).

At low rates most codes of a quiet subband are 0: the true latent lay anywhere in (-1/2, 1/2)
of a quantizer step, yet the decoder graph sees exact zeros and renders silence (holes in the
spectrum that speech recognisers read as large feature errors). :func:`fill_zeros` replaces
every zero code of channel ``c`` by seeded uniform noise in ``(-w_c/2, w_c/2)`` (``w_c`` in
[0, 1] steps) before the decoder graph runs; non-zero codes are unchanged. The training
objective's quantization proxy (additive uniform noise) is the same kind of input, so a decoder
needs no retraining to accept it.

A bundle turns it on with a manifest field (validated by :func:`parse_noise_fill`)::

    "noise_fill": {"kind": "uniform_zero", "width": 0.5, "seed": 0}

``width`` is one number for every latent channel or a list of one per channel.
``Decoder(..., noise_fill=False)`` (``sensor-codec decode --no-postfilter`` turns off both
decoder-side stages) skips it. The output is deterministic: the same frame decodes to the same
samples.
"""

from __future__ import annotations

import numpy as np

from .bundle import BundleError
from .stage_spec import stage_object, stage_seed

KINDS = ("uniform_zero",)


def parse_noise_fill(spec: object, channels: int, where: str = "manifest") -> dict | None:
    """Checked noise-fill settings from a manifest ``noise_fill`` field (None: no fill).

    ``channels``: the model's latent channels (a per-channel ``width`` list must have as many).
    Raises :class:`BundleError` naming the field and the expected value.
    """
    spec = stage_object(spec, "noise_fill", KINDS, where)
    if spec is None:
        return None
    width = spec.get("width")
    widths = width if isinstance(width, list) else [width] * channels
    if len(widths) != channels or not all(
            isinstance(w, (int, float)) and not isinstance(w, bool) and 0.0 <= w <= 1.0
            for w in widths):
        raise BundleError(f"{where}: field 'noise_fill.width': expected a number in [0, 1] or a "
                          f"list of {channels} such numbers, got {width!r:.80}")
    seed = stage_seed(spec, "noise_fill", where)
    return {"kind": spec["kind"], "width": [float(w) for w in widths], "seed": seed}


def fill_zeros(codes: np.ndarray, width: list[float] | np.ndarray, seed: int = 0) -> np.ndarray:
    """float32 copy of ``codes`` (N, C, *latent) whose zeros in channel c are U(-w_c/2, w_c/2)."""
    codes = np.asarray(codes)
    w = np.asarray(width, dtype=np.float32)
    if codes.ndim < 2 or w.shape != (codes.shape[1],):
        raise ValueError(f"fill_zeros: codes (N, C, ...) with C = {len(w)} widths expected, got "
                         f"shape {codes.shape}")
    out = codes.astype(np.float32)
    noise = np.random.default_rng(seed).random(out.shape, dtype=np.float32) - np.float32(0.5)
    scale = w.reshape((1, -1) + (1,) * (codes.ndim - 2))
    return np.where(codes == 0, noise * scale, out).astype(np.float32)


def apply(spec: dict | None, codes: np.ndarray) -> np.ndarray:
    """``codes`` with the noise fill of a parsed ``spec`` (unchanged when ``spec`` is None)."""
    if spec is None:
        return codes
    return fill_zeros(codes, spec["width"], spec["seed"])
