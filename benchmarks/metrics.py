"""Image quality metrics for the RD benchmark: PSNR, SSIM and MS-SSIM in numpy/scipy.

SSIM follows Wang et al. 2004 exactly as ``skimage.metrics.structural_similarity`` does with
``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``: an 11×11 Gaussian window
(σ = 1.5, separable, normalised to sum 1), K1 = 0.01, K2 = 0.03, L = ``data_range`` (255 for
uint8), local statistics from the window, and the mean over the "valid" region (the 5-pixel
border where the window would leave the image is dropped).

MS-SSIM is the standard 5-scale form of Wang, Simoncelli & Bovik (2003): at scales 1…4 the
contrast-structure term cs, at scale 5 the full SSIM (luminance × cs), combined as
``Π cs_j^w_j · ssim_5^w_5`` with w = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333); between scales the
image is low-passed and halved by 2×2 averaging (an odd last row/column is dropped). Negative
terms (possible only at very low quality) are clamped to 0 before the fractional powers, as
pytorch-msssim does. The 5th scale of a 768×512 image is 48×32, larger than the 11×11 window.

**Colour:** for RGB input, MS-SSIM (and SSIM) is computed on each of R, G and B separately and
the three values are averaged (the convention of tf.image.ssim_multiscale and pytorch-msssim).
It is not computed on luma.

``msssim_db(v) = -10·log10(1 - v)`` maps MS-SSIM to a dB scale for BD-rate and plots.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from encoder_runtime.metrics import psnr_db

MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
K1, K2 = 0.01, 0.03
WIN_SIGMA = 1.5
WIN_RADIUS = 5  # 11×11 window


def gaussian_window_1d(sigma: float = WIN_SIGMA, radius: int = WIN_RADIUS) -> np.ndarray:
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


_G = gaussian_window_1d()


def _filter_valid(x: np.ndarray) -> np.ndarray:
    """Separable Gaussian filter of a 2-D float64 array, "valid" part only."""
    y = ndimage.correlate1d(x, _G, axis=0, mode="reflect")
    y = ndimage.correlate1d(y, _G, axis=1, mode="reflect")
    r = WIN_RADIUS
    return y[r:-r, r:-r]


def _ssim_terms(x: np.ndarray, y: np.ndarray, data_range: float) -> tuple[float, float]:
    """(mean SSIM, mean contrast-structure) of two 2-D float64 arrays."""
    if min(x.shape) < 2 * WIN_RADIUS + 1:
        raise ValueError(f"SSIM needs at least {2 * WIN_RADIUS + 1}×{2 * WIN_RADIUS + 1} pixels, got {x.shape}")
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    mx, my = _filter_valid(x), _filter_valid(y)
    sxx = _filter_valid(x * x) - mx * mx
    syy = _filter_valid(y * y) - my * my
    sxy = _filter_valid(x * y) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    lum = (2 * mx * my + c1) / (mx * mx + my * my + c1)
    return float((lum * cs).mean()), float(cs.mean())


def _channels(a: np.ndarray) -> list[np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 2:
        return [a]
    if a.ndim == 3:
        return [a[..., c] for c in range(a.shape[-1])]
    raise ValueError(f"expected H×W or H×W×C, got shape {a.shape}")


def _check(a: np.ndarray, b: np.ndarray) -> None:
    if np.shape(a) != np.shape(b):
        raise ValueError(f"shape mismatch: {np.shape(a)} vs {np.shape(b)}")


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    _check(a, b)
    mse = float(((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2).mean())
    return psnr_db(mse, data_range)


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Single-scale SSIM (mean over channels for H×W×C)."""
    _check(a, b)
    return float(np.mean([_ssim_terms(x, y, data_range)[0] for x, y in zip(_channels(a), _channels(b))]))


def _down2(x: np.ndarray) -> np.ndarray:
    h, w = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
    x = x[:h, :w]
    return 0.25 * (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2])


def _msssim_2d(x: np.ndarray, y: np.ndarray, data_range: float, weights) -> float:
    vals = []
    for j, _ in enumerate(weights):
        s, cs = _ssim_terms(x, y, data_range)
        vals.append(s if j == len(weights) - 1 else cs)
        if j < len(weights) - 1:
            x, y = _down2(x), _down2(y)
    return float(np.prod([max(v, 0.0) ** w for v, w in zip(vals, weights)]))


def ms_ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0,
            weights: tuple[float, ...] = MSSSIM_WEIGHTS) -> float:
    """5-scale MS-SSIM (Wang et al. 2003); for H×W×C the mean of the per-channel values.

    The smallest side must be at least 11·2^(scales−1) = 176 pixels for 5 scales."""
    _check(a, b)
    n = len(weights)
    need = (2 * WIN_RADIUS + 1) * 2 ** (n - 1)
    if min(np.shape(a)[:2]) < need:
        raise ValueError(f"{n}-scale MS-SSIM needs images of at least {need}×{need}, got {np.shape(a)[:2]}")
    return float(np.mean([_msssim_2d(x, y, data_range, weights) for x, y in zip(_channels(a), _channels(b))]))


def msssim_db(v: float) -> float:
    """MS-SSIM on a dB scale: −10·log10(1 − v) (capped at 100 dB for v = 1)."""
    return float(-10 * math.log10(max(1.0 - v, 1e-10)))
