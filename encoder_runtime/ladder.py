"""The quality ladder: one knob (``-q N`` or ``--bpp X``) → a bundled model of a modality.

Each bundled model of a modality is one rung, ordered by its *measured* rate on held-out data
(``model_card.metrics``: ``bpp`` for images, ``bits_per_sample`` for audio and time series;
falling back to ``operating_point``). ``-q 1`` is the lowest rate (smallest files), ``-q N``
the highest; ``--bpp X`` picks the rung whose measured rate is closest to X (ties: the lower).
The rungs are read from the bundles, so a newly installed model joins the ladder by itself.
Audio has one ladder per jointly coded channel count (mono, stereo): ``channels``.
"""

from __future__ import annotations

from .bundle import codes_channels, list_model_names, load_bundle
from .errors import BundleError

__all__ = ["RATE_KEYS", "ladder", "measured_rate", "model_for_quality", "model_for_rate",
           "resolve_knob"]

#: Rate fields, in order of preference, in ``model_card.metrics`` / ``operating_point``.
RATE_KEYS = ("bpp", "bits_per_sample")


def measured_rate(manifest: dict) -> float | None:
    """A model's measured rate (bits per pixel / per sample), or None if it records none."""
    for source in ((manifest.get("model_card") or {}).get("metrics") or {},
                   manifest.get("operating_point") or {}):
        for key in RATE_KEYS:
            v = source.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
                return float(v)
    return None


def ladder(modality: str, channels: int | None = None) -> list[tuple[str, float]]:
    """[(model name, measured rate)] of the bundled models of ``modality``, lowest rate first;
    audio: of the models coding ``channels`` channels jointly (None: the mono models)."""
    rungs = []
    for name in list_model_names():
        m = load_bundle(name, verify=False).manifest
        rate = measured_rate(m)
        if codes_channels(m, modality, channels) and rate is not None:
            rungs.append((name, rate))
    return sorted(rungs, key=lambda r: (r[1], r[0]))


def _rungs(modality: str, channels: int | None = None) -> list[tuple[str, float]]:
    rungs = ladder(modality, channels)
    if not rungs:
        raise BundleError(f"no bundled {modality} model records a measured rate; pass --model")
    return rungs


def model_for_quality(modality: str, quality: int, channels: int | None = None) -> str:
    """The ``quality``-th rung (1 = lowest rate) of ``modality``'s (``channels``) ladder."""
    rungs = _rungs(modality, channels)
    if type(quality) is not int or not 1 <= quality <= len(rungs):
        raise BundleError(f"quality {quality!r}: expected 1..{len(rungs)} for {modality} "
                          f"(1 = smallest files; see `sensor-codec models`)")
    return rungs[quality - 1][0]


def model_for_rate(modality: str, rate: float, channels: int | None = None) -> str:
    """The rung of ``modality`` whose measured rate is closest to ``rate`` (bits/pixel|sample)."""
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not rate > 0:
        raise BundleError(f"bpp {rate!r}: expected a positive number of bits per pixel/sample")
    return min(_rungs(modality, channels), key=lambda r: (abs(r[1] - rate), r[1]))[0]


def resolve_knob(modality: str, quality: int | None = None, bpp: float | None = None,
                 channels: int | None = None) -> str | None:
    """The model that ``quality`` or ``bpp`` asks for (None when neither is given)."""
    if quality is not None and bpp is not None:
        raise BundleError("give either a quality or a bpp, not both")
    if quality is not None:
        return model_for_quality(modality, quality, channels)
    if bpp is not None:
        return model_for_rate(modality, bpp, channels)
    return None
