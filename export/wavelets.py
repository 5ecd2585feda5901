"""Wavelet packet transform (WPT) in torch: Haar, CDF 5/3 (``bior2.2``), CDF 9/7 (``bior4.4``).

Differentiable, batch-first (``(N, C, *spatial)``), any float dtype (float32 in practice), over the
last ``dims`` axes (``dims`` = 1, 2 or 3). The filter coefficients are read from
:class:`pywt.Wavelet` at import time; PyWavelets is an export-side dependency only.

Packet structure and channel order
----------------------------------
One level splits every channel into ``F = 2**dims`` sub-bands; ``levels = J`` applies that to every
channel (high bands included: a full packet tree) ``J`` times, so ``C`` channels become
``C * F**J`` channels. The order is channel-major::

    out_channel = c * F**J + f_1 * F**(J-1) + f_2 * F**(J-2) + ... + f_J
    f_j         = sum_a d_{j,a} * 2**(dims-1-a)

where ``c`` is the input channel, ``f_j`` the sub-band chosen at level ``j`` (level 1 first, the
most significant digit) and ``d_{j,a}`` is 0 for the lowpass ("a", approximation) and 1 for the
highpass ("d", detail) along transformed axis ``a`` (``a = 0`` is tensor axis ``-dims``, the most
significant bit). In PyWavelets' ``dwtn`` key notation ``f_j`` is the key whose letters, read as
binary digits with a=0/d=1, give ``f_j``: for 2-D ``0='aa', 1='ad', 2='da', 3='dd'`` (pywt's
``dwt2`` names: cA, cV, cH, cD). :func:`band_keys` lists the keys of every output channel.

Boundary handling (two modes)
-----------------------------
``mode="nonexpansive"`` (default): symmetric extension matched to the filter's own symmetry, so the
transform is non-expansive and exactly invertible. Haar (even-length, half-sample symmetric filters)
uses half-sample symmetric extension (``x[-1] = x[0]``, pywt ``'symmetric'``), which is a no-op for
even lengths. CDF 5/3 and 9/7 (odd-length, whole-sample symmetric filters) use whole-sample
symmetric extension (``x[-1] = x[1]``, pywt ``'reflect'``, JPEG 2000 style) with the lowpass
centred on even and the highpass on odd samples. An axis of length ``n`` becomes ``ceil(n/2)``
samples per level; for odd ``n`` the last highpass coefficient is the redundant mirror image
(equal to its neighbour by symmetry) so that all sub-bands have the same size, and synthesis ignores
it. A coefficient is a contiguous slice of ``pywt.dwt(x, w, mode)`` (mode ``'symmetric'`` for Haar,
``'reflect'`` otherwise) starting at index ``(L-2)//4``, ``L`` = pywt's filter length. Interior
coefficients are a fixed local function of the input (tiles equal crops of the full frame away
from the borders).

``mode="expansive"``: exactly PyWavelets' ``mode='symmetric'`` (half-sample symmetric extension,
``floor((n + L - 1)/2)`` outputs per level) for every wavelet; the J-level result equals
``pywt.WaveletPacket``/``WaveletPacket2D``/``WaveletPacketND`` nodes. Sizes grow by ``(L-2)/2`` per
level, so it is mainly a reference.

Minimum size
------------
At every level, each transformed axis of that level's input must have at least ``L`` samples, with
``L = pywt.Wavelet(w).dec_len`` (2 for Haar, 6 for 5/3, 10 for 9/7). This keeps every extension a
single mirror reflection (the extension implemented here, and the one that exports to ONNX as plain
slices), and it is where each boundary coefficient still sees real samples. :func:`min_size` gives
the smallest input length along one axis for ``levels`` levels
(non-expansive: ``(L-1) * 2**(J-1) + 1``; e.g. 9/7 with J=4: 73). Smaller inputs raise
:class:`ValueError` naming the axis, its size, the level and the minimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pywt
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "WAVELETS",
    "MODES",
    "FilterBank",
    "filter_bank",
    "min_size",
    "coeff_shape",
    "band_keys",
    "wpt_analysis",
    "wpt_synthesis",
    "WPT",
    "InverseWPT",
    "haar_block_matrix",
]

#: Supported wavelets (pywt names); "cdf53"/"cdf97" are accepted as aliases.
WAVELETS: tuple[str, ...] = ("haar", "bior2.2", "bior4.4")
_ALIASES = {"cdf53": "bior2.2", "cdf5/3": "bior2.2", "cdf97": "bior4.4", "cdf9/7": "bior4.4"}
#: Boundary modes, see the module docstring.
MODES: tuple[str, ...] = ("nonexpansive", "expansive")


@dataclass(frozen=True)
class FilterBank:
    """Analysis/synthesis filters of one wavelet, as stored by PyWavelets (length ``L`` each)."""

    name: str
    dec_lo: tuple[float, ...]
    dec_hi: tuple[float, ...]
    rec_lo: tuple[float, ...]
    rec_hi: tuple[float, ...]
    whole_sample: bool  # True: odd-length symmetric filters (whole-sample symmetric extension)

    @property
    def length(self) -> int:
        """Filter length ``L`` (pywt ``dec_len``)."""
        return len(self.dec_lo)


def _load_bank(name: str) -> FilterBank:
    w = pywt.Wavelet(name)
    dec_lo, dec_hi, rec_lo, rec_hi = (tuple(float(v) for v in f) for f in w.filter_bank)
    support = np.flatnonzero(np.abs(np.asarray(dec_lo)) > 1e-12)
    return FilterBank(name, dec_lo, dec_hi, rec_lo, rec_hi,
                      whole_sample=bool((support[-1] - support[0] + 1) % 2))


_BANKS: dict[str, FilterBank] = {name: _load_bank(name) for name in WAVELETS}


def filter_bank(wavelet: str) -> FilterBank:
    """The :class:`FilterBank` of ``wavelet`` ("haar", "bior2.2", "bior4.4" or an alias)."""
    key = _ALIASES.get(str(wavelet).lower(), str(wavelet).lower())
    if key not in _BANKS:
        raise ValueError(f"unknown wavelet {wavelet!r}: expected one of {', '.join(WAVELETS)}")
    return _BANKS[key]


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: expected one of {', '.join(MODES)}")


def _check_levels_dims(levels: int, dims: int) -> None:
    if not isinstance(dims, int) or dims not in (1, 2, 3):
        raise ValueError(f"dims must be 1, 2 or 3, got {dims!r}")
    if not isinstance(levels, int) or levels < 0:
        raise ValueError(f"levels must be a non-negative int, got {levels!r}")


def _next_len(n: int, length: int, mode: str) -> int:
    """Length of one sub-band after one level on an axis of length ``n``."""
    return (n + 1) // 2 if mode == "nonexpansive" else (n + length - 1) // 2


def min_size(wavelet: str, levels: int, mode: str = "nonexpansive") -> int:
    """Smallest axis length that allows ``levels`` levels (each level's input >= filter length L).

    Non-expansive: ``(L-1) * 2**(levels-1) + 1``; expansive: ``L + 2**(levels-1) - 1``.
    """
    _check_mode(mode)
    if levels < 0:
        raise ValueError(f"levels must be >= 0, got {levels}")
    length = filter_bank(wavelet).length
    if levels == 0:
        return 1
    # Each level's input n_j must be >= L. Non-expansive: n_{j+1} = ceil(n_j / 2), so the input
    # needs ceil(n / 2**(J-1)) >= L. Expansive: n_{j+1} = floor((n_j + L - 1) / 2).
    if mode == "nonexpansive":
        return (length - 1) * 2 ** (levels - 1) + 1
    return length + 2 ** (levels - 1) - 1


def _level_sizes(spatial: Sequence[int], wavelet: str, levels: int, mode: str) -> list[tuple[int, ...]]:
    """Per-level spatial sizes [input, after level 1, ..., after level J]; raises when too small."""
    length = filter_bank(wavelet).length
    dims = len(spatial)
    sizes = [tuple(int(s) for s in spatial)]
    for level in range(1, levels + 1):
        cur = sizes[-1]
        for a, n in enumerate(cur):
            if n < length:
                raise ValueError(
                    f"axis {a - dims} (transformed axis {a}) has size {n} at the input of level "
                    f"{level} of {levels}: {wavelet} needs >= {length} per level, i.e. an input of "
                    f">= {min_size(wavelet, levels, mode)} along every transformed axis "
                    f"(got {spatial[a]})")
        sizes.append(tuple(_next_len(n, length, mode) for n in cur))
    return sizes


def coeff_shape(shape: Sequence[int], wavelet: str, levels: int, dims: int,
                mode: str = "nonexpansive") -> tuple[int, ...]:
    """Shape of ``wpt_analysis`` output for an input of ``shape`` = (N, C, *spatial)."""
    _check_mode(mode)
    _check_levels_dims(levels, dims)
    if len(shape) < dims + 2:
        raise ValueError(f"input shape {tuple(shape)} must be (N, C, *spatial) with {dims} spatial axes")
    spatial = _level_sizes(shape[-dims:], wavelet, levels, mode)[-1]
    return (*shape[:-dims - 1], shape[-dims - 1] * 2 ** (dims * levels), *spatial)


def band_keys(levels: int, dims: int) -> list[tuple[str, ...]]:
    """pywt ``dwtn`` keys per level for each packet sub-band of ONE input channel, in output order.

    E.g. ``band_keys(2, 1) == [('a','a'), ('a','d'), ('d','a'), ('d','d')]``. Output channel
    ``c * 2**(dims*levels) + i`` is input channel ``c``'s band ``band_keys(levels, dims)[i]``.
    """
    _check_levels_dims(levels, dims)
    keys = ["".join("ad"[(f >> (dims - 1 - a)) & 1] for a in range(dims)) for f in range(2 ** dims)]
    out: list[tuple[str, ...]] = [()]
    for _ in range(levels):
        out = [p + (k,) for p in out for k in keys]
    return out


# ----------------------------------------------------------------------------------------------
# 1-D building blocks along the last axis


def _extend(x: torch.Tensor, left: int, right: int, whole: bool | tuple[bool, bool]) -> torch.Tensor:
    """Symmetric extension of the last axis by one mirror reflection (slices + flip + cat).

    ``whole`` (per side or for both): whole-sample (``x[-1] = x[1]``) or half-sample
    (``x[-1] = x[0]``) symmetry.
    """
    whole_l, whole_r = (whole, whole) if isinstance(whole, bool) else whole
    n = x.shape[-1]
    if left > n - int(whole_l) or right > n - int(whole_r):  # guarded by the minimum-size rule
        raise AssertionError(f"extension by {left}/{right} exceeds one reflection of length {n}")
    parts = []
    if left > 0:
        parts.append((x[..., 1:left + 1] if whole_l else x[..., :left]).flip(-1))
    parts.append(x)
    if right > 0:
        parts.append((x[..., n - 1 - right:n - 1] if whole_r else x[..., n - right:]).flip(-1))
    return torch.cat(parts, dim=-1) if len(parts) > 1 else x


def _analysis_1d(x: torch.Tensor, w_dec: torch.Tensor, bank: FilterBank, mode: str) -> torch.Tensor:
    """(..., n) -> (..., 2, m): lowpass and highpass along the last axis."""
    n = x.shape[-1]
    length = bank.length
    lead = x.shape[:-1]
    xr = x.reshape(-1, 1, n)
    if mode == "nonexpansive":
        # out_f[k] = sum_j f[j] x[2k + L/2 - j]: lowpass centred on x[2k], highpass on x[2k+1].
        m = (n + 1) // 2
        xe = _extend(xr, length // 2 - 1, 2 * m - 1 - n + length // 2, bank.whole_sample)
    else:
        # pywt 'symmetric': out_f[k] = sum_j f[j] x[2k + 1 - j], half-sample symmetric extension.
        m = (n + length - 1) // 2
        xe = _extend(xr, length - 2, 2 * m - n, whole=False)
    y = F.conv1d(xe, w_dec, stride=2)
    return y.reshape(*lead, 2, m)


def _synthesis_1d(z: torch.Tensor, w_rec: torch.Tensor, bank: FilterBank, mode: str,
                  n: int) -> torch.Tensor:
    """(..., 2, m) -> (..., n): inverse of :func:`_analysis_1d` for an axis of length ``n``."""
    m = z.shape[-1]
    length = bank.length
    lead = z.shape[:-2]
    zr = z.reshape(-1, 2, m)
    if mode == "expansive":
        # x[t] = sum_k lo[k] rec_lo[t + L - 2 - 2k] + hi[k] rec_hi[t + L - 2 - 2k]
        out = F.conv_transpose1d(zr, w_rec, stride=2)
        return out[..., length - 2:length - 2 + n].reshape(*lead, n)
    e = length // 2 - 1  # x[t] = sum_k sub[k] rec[t - 2k + e]
    if bank.whole_sample:
        # Extend the sub-bands with the symmetry they have: lowpass whole-sample about 0, highpass
        # half-sample about -1/2; at the right end it depends on the parity of n.
        q_left = length // 4
        right = max((n - 1 + e) // 2 - (m - 1), 0)
        if n % 2 == 0:
            lo = _extend(zr[:, :1], q_left, right, whole=(True, False))
            hi = _extend(zr[:, 1:], q_left, right, whole=(False, True))
        else:  # the last stored highpass coefficient is redundant: mirror its neighbours instead
            lo = _extend(zr[:, :1], q_left, right, whole=True)
            hi = _extend(zr[:, 1:, :m - 1], q_left, right + 1, whole=False)
        zr = torch.cat([lo, hi], dim=1)
        start = 2 * q_left + e
    else:  # Haar: no overlap between blocks, no extension needed
        start = e
    out = F.conv_transpose1d(zr, w_rec, stride=2)
    return out[..., start:start + n].reshape(*lead, n)


# ----------------------------------------------------------------------------------------------
# N-D packet transform


def _filters(bank: FilterBank, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """conv1d analysis weight (2, 1, L) and conv_transpose1d synthesis weight (2, 1, L)."""
    dec = torch.tensor([bank.dec_lo[::-1], bank.dec_hi[::-1]], dtype=torch.float64)
    rec = torch.tensor([bank.rec_lo, bank.rec_hi], dtype=torch.float64)
    return (dec.unsqueeze(1).to(device=device, dtype=dtype), rec.unsqueeze(1).to(device=device, dtype=dtype))


def _check_input(x: torch.Tensor, dims: int, what: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != dims + 2:
        raise ValueError(f"{what} must have shape (N, C, *spatial) with {dims} spatial axes, "
                         f"got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{what} must be a floating-point tensor, got {x.dtype}")


def _analysis(x: torch.Tensor, bank: FilterBank, levels: int, dims: int, mode: str,
              w_dec: torch.Tensor) -> torch.Tensor:
    _check_input(x, dims, "wpt_analysis input")
    _level_sizes(x.shape[-dims:], bank.name, levels, mode)
    w_dec = w_dec.to(dtype=x.dtype, device=x.device)
    n_batch = x.shape[0]
    for _ in range(levels):
        chans = x.shape[1]
        for a in range(dims):  # layout: (N, C, b_0..b_{a-1}, s_0..s_{dims-1})
            pos = x.dim() - dims + a
            y = _analysis_1d(x.movedim(pos, x.dim() - 1), w_dec, bank, mode)
            # non-negative axes throughout: the TorchScript ONNX exporter mishandles negative ones
            x = y.movedim((y.dim() - 2, y.dim() - 1), (2 + a, pos + 1))
        x = x.reshape(n_batch, chans * 2 ** dims, *x.shape[-dims:])
    return x


def _synthesis(y: torch.Tensor, bank: FilterBank, levels: int, dims: int, mode: str,
               out_shape: Sequence[int] | None, w_rec: torch.Tensor) -> torch.Tensor:
    _check_input(y, dims, "wpt_synthesis input")
    groups = 2 ** (dims * levels)
    if y.shape[1] % groups:
        raise ValueError(f"wpt_synthesis input has {y.shape[1]} channels, not a multiple of "
                         f"2**(dims*levels) = {groups}")
    if out_shape is None:
        if mode == "expansive":
            raise ValueError("out_shape is required for mode='expansive'")
        out_shape = tuple(s * 2 ** levels for s in y.shape[-dims:])
    out_shape = tuple(int(s) for s in out_shape)
    if len(out_shape) == y.dim():
        out_shape = out_shape[-dims:]
    if len(out_shape) != dims:
        raise ValueError(f"out_shape {out_shape} must list the {dims} spatial sizes (or a full shape)")
    sizes = _level_sizes(out_shape, bank.name, levels, mode)
    if tuple(y.shape[-dims:]) != sizes[-1]:
        raise ValueError(f"wpt_synthesis input has spatial shape {tuple(y.shape[-dims:])}, but "
                         f"out_shape {out_shape} with {levels} levels gives {sizes[-1]}")
    w_rec = w_rec.to(dtype=y.dtype, device=y.device)
    n_batch = y.shape[0]
    for level in range(levels, 0, -1):
        target = sizes[level - 1]
        chans = y.shape[1] // 2 ** dims
        y = y.reshape(n_batch, chans, *([2] * dims), *y.shape[-dims:])
        for a in range(dims - 1, -1, -1):  # layout: (N, C, b_0..b_a, s_0..s_{dims-1})
            pos = y.dim() - dims + a
            z = y.movedim((2 + a, pos), (y.dim() - 2, y.dim() - 1))
            z = _synthesis_1d(z, w_rec, bank, mode, target[a])
            y = z.movedim(z.dim() - 1, pos - 1)
    return y


def wpt_analysis(x: torch.Tensor, wavelet: str, levels: int, dims: int,
                 mode: str = "nonexpansive") -> torch.Tensor:
    """Full wavelet packet transform of ``x`` (N, C, *spatial) over its last ``dims`` axes.

    Returns (N, C * 2**(dims*levels), *spatial'), spatial' = ceil(n / 2**levels) per axis for the
    default non-expansive mode; channel order in the module docstring. Raises ValueError when an
    axis is below :func:`min_size`.
    """
    _check_mode(mode)
    _check_levels_dims(levels, dims)
    bank = filter_bank(wavelet)
    w_dec, _ = _filters(bank, x.dtype, x.device)
    return _analysis(x, bank, levels, dims, mode, w_dec)


def wpt_synthesis(y: torch.Tensor, wavelet: str, levels: int, dims: int,
                  out_shape: Sequence[int] | None = None, mode: str = "nonexpansive") -> torch.Tensor:
    """Inverse of :func:`wpt_analysis`: (N, C * 2**(dims*levels), *spatial') -> (N, C, *out_shape).

    ``out_shape`` is the spatial shape of the original input (or its full shape); it decides odd
    sizes. Default (non-expansive mode only): ``spatial' * 2**levels``.
    """
    _check_mode(mode)
    _check_levels_dims(levels, dims)
    bank = filter_bank(wavelet)
    _, w_rec = _filters(bank, y.dtype, y.device)
    return _synthesis(y, bank, levels, dims, mode, out_shape, w_rec)


class WPT(nn.Module):
    """``nn.Module`` form of :func:`wpt_analysis`; the filters are (non-persistent) buffers."""

    def __init__(self, wavelet: str, levels: int, dims: int, mode: str = "nonexpansive") -> None:
        super().__init__()
        _check_mode(mode)
        _check_levels_dims(levels, dims)
        self.bank = filter_bank(wavelet)
        self.wavelet, self.levels, self.dims, self.mode = self.bank.name, levels, dims, mode
        w_dec, _ = _filters(self.bank, torch.float32, torch.device("cpu"))
        self.register_buffer("w_dec", w_dec, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _analysis(x, self.bank, self.levels, self.dims, self.mode, self.w_dec)

    def extra_repr(self) -> str:
        return f"wavelet={self.wavelet!r}, levels={self.levels}, dims={self.dims}, mode={self.mode!r}"


class InverseWPT(nn.Module):
    """``nn.Module`` form of :func:`wpt_synthesis`; the filters are (non-persistent) buffers."""

    def __init__(self, wavelet: str, levels: int, dims: int, mode: str = "nonexpansive") -> None:
        super().__init__()
        _check_mode(mode)
        _check_levels_dims(levels, dims)
        self.bank = filter_bank(wavelet)
        self.wavelet, self.levels, self.dims, self.mode = self.bank.name, levels, dims, mode
        _, w_rec = _filters(self.bank, torch.float32, torch.device("cpu"))
        self.register_buffer("w_rec", w_rec, persistent=False)

    def forward(self, y: torch.Tensor, out_shape: Sequence[int] | None = None) -> torch.Tensor:
        return _synthesis(y, self.bank, self.levels, self.dims, self.mode, out_shape, self.w_rec)

    def extra_repr(self) -> str:
        return f"wavelet={self.wavelet!r}, levels={self.levels}, dims={self.dims}, mode={self.mode!r}"


def haar_block_matrix(levels: int, dims: int) -> np.ndarray:
    """Orthonormal (2**(dims*J), 2**(dims*J)) float64 matrix of the J-level Haar WPT of one block.

    A block is 2**J samples along each of the ``dims`` axes, flattened row-major (axis ``-dims``
    slowest). Row ``i`` gives packet channel ``i`` (same order as :func:`wpt_analysis`, one input
    channel), so for inputs divisible by 2**J along every axis
    ``wpt_analysis(x, 'haar', J, dims)[:, c*R + i] == conv(x[:, c], M[i].reshape((2**J,)*dims),
    stride=2**J)`` with ``R = 2**(dims*J)``. Built in closed form (not via :func:`wpt_analysis`).
    """
    _check_levels_dims(levels, dims)
    size = 2 ** (dims * levels)
    h = np.array([[1.0, 1.0], [1.0, -1.0]]) / math.sqrt(2.0)  # rows: lowpass, highpass (pywt haar)
    rows = np.arange(size)[:, None]
    cols = np.arange(size)[None, :]
    mat = np.ones((size, size))
    for j in range(levels):  # level j+1 pairs neighbours at block-coordinate bit j
        for a in range(dims):
            rbit = (rows >> ((levels - 1 - j) * dims + (dims - 1 - a))) & 1
            cbit = (cols >> ((dims - 1 - a) * levels + j)) & 1
            mat = mat * h[rbit, cbit]
    return mat
