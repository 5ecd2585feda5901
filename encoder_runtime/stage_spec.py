"""The checks every decoder-side stage's manifest field shares (``postfilter``, ``noise_fill``):
an object whose ``kind`` is known and whose optional ``seed`` is a 32-bit unsigned integer.
Errors are :class:`BundleError` naming the file, the field and the expected value."""

from __future__ import annotations

from .bundle import BundleError


def stage_object(spec: object, field: str, kinds: tuple[str, ...], where: str) -> dict | None:
    """``spec`` checked to be an object of one of ``kinds`` (None when the field is absent)."""
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise BundleError(f"{where}: field '{field}': expected an object, got {spec!r:.80}")
    if spec.get("kind") not in kinds:
        raise BundleError(f"{where}: field '{field}.kind': expected one of {', '.join(kinds)}, "
                          f"got {spec.get('kind')!r:.40}")
    return spec


def stage_seed(spec: dict, field: str, where: str) -> int:
    """The stage's ``seed`` (default 0), checked to lie in [0, 2^32)."""
    seed = spec.get("seed", 0)
    if type(seed) is not int or not 0 <= seed < 2 ** 32:
        raise BundleError(f"{where}: field '{field}.seed': expected an integer in [0, 2^32), "
                          f"got {seed!r:.40}")
    return seed
