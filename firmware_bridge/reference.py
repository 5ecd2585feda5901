"""numpy reference of the integer encoder in ``docs/bundle-format.md`` (the spec the C kernel meets).

For a D-dimensional channel-last signal ``x`` (``(T, C)`` audio/time series, ``(H, W, C)``
images) and an ``encoder_int.npz`` with ``weight`` int8 ``(C_lat, C_in, *block)``, ``bias`` int32
``(C_lat,)``, ``shift`` int32 ``(C_lat,)``::

    acc[c, p]  = bias[c] + sum_{i,k} weight[c, i, k] * x[p*b + k, i]
    code[c, p] = clamp(round_half_to_even(acc[c, p] * 2**-shift[c]), -code_max, code_max)

Rounding is done in integers (no floats). Shifts are clamped to [-32, 62] exactly as in C:
beyond that range the result no longer depends on the shift for ``|acc| < 2**31``.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np

SHIFT_MAX = 62
LSHIFT_MAX = 31


class ModelError(ValueError):
    """An integer encoder file is inconsistent (names the file, field, expected vs got)."""


def requantize(acc: np.ndarray, shift: np.ndarray, code_max: int) -> np.ndarray:
    """``clamp(round_half_to_even(acc * 2**-shift), ±code_max)`` in int64 arithmetic.

    ``acc`` has the channel on axis 0; ``shift`` is per channel (may be negative: left shift).
    """
    acc = np.asarray(acc, dtype=np.int64)
    s = np.asarray(shift, dtype=np.int64).reshape((-1,) + (1,) * (acc.ndim - 1))
    sr = np.clip(s, 1, SHIFT_MAX)
    q = np.right_shift(acc, sr)  # floor division by 2**s (numpy shifts are arithmetic)
    r = acc - np.left_shift(q, sr)
    half = np.left_shift(np.int64(1), sr - 1)
    q = q + ((r > half) | ((r == half) & ((q & 1) == 1)))
    sl = np.clip(-s, 0, LSHIFT_MAX)
    big = np.where(acc > 0, code_max + 1, np.where(acc < 0, -code_max - 1, 0))
    left = np.where(-s > LSHIFT_MAX, big, acc * np.left_shift(np.int64(1), sl))
    out = np.where(s > 0, q, left)
    return np.clip(out, -code_max, code_max)


def to_blocks(x: np.ndarray, block: tuple[int, ...]) -> tuple[np.ndarray, tuple[int, ...]]:
    """Channel-last ``x`` (``*spatial, C``) -> ``(P, C * prod(block))`` rows in weight order
    ``(C, *block)``, and the block grid shape."""
    d = len(block)
    if x.ndim != d + 1:
        raise ModelError(f"input has shape {x.shape}; expected {d} spatial axes + channels")
    spatial, c = x.shape[:d], x.shape[d]
    for ax, (n, b) in enumerate(zip(spatial, block)):
        if n % b:
            raise ModelError(f"input axis {ax} has {n} samples, not a multiple of the block {b}")
    grid = tuple(n // b for n, b in zip(spatial, block))
    shp = []
    for g, b in zip(grid, block):
        shp += [g, b]
    xb = x.reshape(*shp, c)
    # axes: g0 b0 g1 b1 ... C  ->  g0 g1 ... C b0 b1 ...
    perm = [2 * i for i in range(d)] + [2 * d] + [2 * i + 1 for i in range(d)]
    xb = xb.transpose(perm).reshape(int(np.prod(grid)), -1)
    return xb, grid


def encode(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, shift: np.ndarray,
           code_max: int = 127) -> np.ndarray:
    """Codes ``(C_lat, *grid)`` (int8 when ``code_max`` <= 127, else int16) of channel-last ``x``."""
    weight = np.asarray(weight)
    c_lat, c_in, block = weight.shape[0], weight.shape[1], tuple(weight.shape[2:])
    if x.shape[-1] != c_in:
        raise ModelError(f"input has {x.shape[-1]} channels, the model expects {c_in}")
    xb, grid = to_blocks(np.asarray(x).astype(np.int64), block)
    acc = np.asarray(bias, np.int64)[:, None] + weight.reshape(c_lat, -1).astype(np.int64) @ xb.T
    codes = requantize(acc, shift, code_max).reshape((c_lat,) + grid)
    return codes.astype(np.int8 if code_max <= 127 else np.int16)


def load_model(npz_path: str | pathlib.Path, manifest_path: str | pathlib.Path | None = None) -> dict[str, Any]:
    """Load and check ``encoder_int.npz`` (+ optional manifest.json) into a plain dict."""
    npz_path = pathlib.Path(npz_path)
    with np.load(npz_path, allow_pickle=False) as z:
        missing = {"weight", "bias", "shift"} - set(z.files)
        if missing:
            raise ModelError(f"{npz_path}: missing arrays {sorted(missing)} (has {z.files})")
        w, b, s = z["weight"], z["bias"], z["shift"]
    if w.dtype != np.int8 or w.ndim < 3:
        raise ModelError(f"{npz_path}: weight must be int8 (C_lat, C_in, *block), got {w.dtype} {w.shape}")
    for name, a in (("bias", b), ("shift", s)):
        if a.dtype != np.int32 or a.shape != (w.shape[0],):
            raise ModelError(f"{npz_path}: {name} must be int32 ({w.shape[0]},), got {a.dtype} {a.shape}")
    manifest: dict[str, Any] = {}
    if manifest_path is not None:
        manifest = json.loads(pathlib.Path(manifest_path).read_text())
    code_max = int(manifest.get("latent", {}).get("code_max", 127))
    rounding = manifest.get("latent", {}).get("rounding", "half_to_even")
    if rounding != "half_to_even":
        raise ModelError(f"{manifest_path}: latent.rounding is {rounding!r}; this kernel implements 'half_to_even'")
    blk = manifest.get("transform", {}).get("block")
    if blk is not None and tuple(blk) != tuple(w.shape[2:]):
        raise ModelError(f"{manifest_path}: transform.block {blk} != weight block {list(w.shape[2:])}")
    return {"weight": w, "bias": b, "shift": s, "code_max": code_max, "manifest": manifest,
            "name": manifest.get("name", npz_path.parent.name),
            "dtype": manifest.get("sample", {}).get("dtype", "int16" if w.ndim == 3 else "uint8")}


def random_model(c_lat: int, c_in: int, block: tuple[int, ...], seed: int = 0,
                 x_max: int = 255) -> dict[str, np.ndarray]:
    """Random int8 weights with bias/shift chosen so codes use the int8 range (tests only)."""
    rng = np.random.default_rng(seed)
    w = rng.integers(-127, 128, (c_lat, c_in) + tuple(block), dtype=np.int64).astype(np.int8)
    fan = c_in * int(np.prod(block))
    bias = rng.integers(-1 << 12, 1 << 12, c_lat).astype(np.int32)
    # scale so that typical |acc| (~ 127 * x_max * sqrt(fan) / 2) maps near the code range
    typ = 127 * x_max * np.sqrt(fan) / 2
    base = int(max(0, np.round(np.log2(typ / 64))))
    shift = (base + rng.integers(-2, 3, c_lat)).astype(np.int32)
    return {"weight": w, "bias": bias, "shift": shift}
