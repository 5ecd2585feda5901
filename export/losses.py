"""Training distortions for machines: log-mel and multi-resolution STFT log-magnitude losses
(audio) and an image-gradient loss (images: text stays legible).

MSE spends a low-rate codec's few channels on the high-energy low frequencies and drops the
low-energy detail speech recognizers live on (formants, consonants). Recognizer front ends look at
log band energies, so these losses compare reconstructions in that domain:

* :func:`log_mel_distance` — mean |Δ| of 10·log10 mel-band power (dB), 16 kHz, ``n_mels`` bands
  up to ``f_max`` (like MFCC/filterbank front ends: 40–80 bands up to ~7 kHz).
* :func:`stft_distance` — multi-resolution STFT log-magnitude distance (dB) over several FFT
  sizes (time/frequency trade-off), optionally frequency-weighted.
* :func:`gradient_mse` — MSE of the horizontal and vertical pixel differences (images): a blurred
  or ringing glyph edge costs more than the same error energy on a smooth area, which is what
  OCR needs at low rates.
* :func:`ms_ssim` — multi-scale SSIM (Wang et al. 2003, as ``benchmarks/metrics.py`` computes it:
  11×11 Gaussian window σ 1.5, valid part, 2×2 mean pooling between scales, per RGB channel),
  differentiable; structure and contrast at several scales, the texture classifiers key on.
* :func:`distortion` — the training objective's distortion term for ``--loss mse|mel|stft|grad|msssim``:
  ``w_mse · 10·log10(MSE) + w_perc · perceptual dB``, all in dB so the rate weight λ (dB per
  bit/sample) keeps its meaning.

Audio inputs are raw int16-scale samples (N, 1, T) as float; they are normalised to full scale 1.0 and
band powers are floored at ``floor_db`` below full scale so silence and dither do not dominate.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

LOSSES = ("mse", "mel", "stft", "grad", "msssim")
AUDIO_LOSSES = ("mel", "stft")
IMAGE_LOSSES = ("grad", "msssim")
MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
FULL_SCALE = 32768.0


def hz_to_mel(f: float | torch.Tensor) -> float | torch.Tensor:
    """HTK mel scale."""
    if isinstance(f, torch.Tensor):
        return 2595.0 * torch.log10(1.0 + f / 700.0)
    return 2595.0 * math.log10(1.0 + f / 700.0)


@lru_cache(maxsize=16)
def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int, f_min: float,
                   f_max: float) -> torch.Tensor:
    """(n_mels, n_fft//2+1) triangular HTK-mel filters (area-normalised, float32, CPU)."""
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"mel filterbank: need 0 <= f_min < f_max <= {sample_rate / 2} Hz, "
                         f"got f_min={f_min}, f_max={f_max}")
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges_mel = torch.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2, dtype=torch.float64)
    edges = 700.0 * (10 ** (edges_mel / 2595.0) - 1.0)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lo) / (mid - lo)
    down = (hi - freqs[None]) / (hi - mid)
    fb = torch.clamp(torch.minimum(up, down), min=0.0)
    fb = fb * (2.0 / (hi - lo))  # equal area per band (Slaney normalisation)
    return fb.float()


def _power_spec(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """|STFT|² of (N, 1, T) or (N, T) full-scale-normalised signals → (N, F, frames)."""
    x = x.reshape(-1, x.shape[-1]) / FULL_SCALE
    win = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    spec = torch.stft(x, n_fft, hop_length=hop, window=win, center=True, pad_mode="reflect",
                      return_complex=True)
    return spec.real ** 2 + spec.imag ** 2


def _db(p: torch.Tensor, floor_db: float) -> torch.Tensor:
    return 10.0 * torch.log10(p + 10.0 ** (floor_db / 10.0))


def log_mel_distance(rec: torch.Tensor, ref: torch.Tensor, *, sample_rate: int = 16000,
                     n_fft: int = 512, hop: int = 160, n_mels: int = 64, f_min: float = 60.0,
                     f_max: float = 7000.0, floor_db: float = -80.0) -> torch.Tensor:
    """Mean absolute log-mel power difference in dB (25–32 ms frames, 10 ms hop at 16 kHz)."""
    fb = mel_filterbank(n_fft, n_mels, sample_rate, f_min, f_max).to(rec.device, rec.dtype)
    mr = fb @ _power_spec(rec, n_fft, hop)
    mx = fb @ _power_spec(ref, n_fft, hop)
    return (_db(mr, floor_db) - _db(mx, floor_db)).abs().mean()


def stft_distance(rec: torch.Tensor, ref: torch.Tensor, *, ffts: tuple[int, ...] = (128, 512, 2048),
                  floor_db: float = -80.0, sample_rate: int = 16000,
                  weight_above_hz: float = 0.0, weight: float = 1.0) -> torch.Tensor:
    """Multi-resolution STFT log-magnitude distance: mean over FFT sizes (hop = n/4) of the mean
    |Δ dB|. ``weight`` > 1 multiplies bins above ``weight_above_hz`` (frequency weighting)."""
    total = rec.new_zeros(())
    for n in ffts:
        d = (_db(_power_spec(rec, n, n // 4), floor_db) - _db(_power_spec(ref, n, n // 4), floor_db)).abs()
        if weight != 1.0:
            f = torch.linspace(0, sample_rate / 2, n // 2 + 1, device=rec.device, dtype=rec.dtype)
            w = torch.where(f >= weight_above_hz, torch.full_like(f, weight), torch.ones_like(f))
            d = d * (w / w.mean())[None, :, None]
        total = total + d.mean()
    return total / len(ffts)


def gradient_mse(rec: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the first differences along the last two axes (N, C, H, W),
    averaged over both directions (same units as the pixel MSE)."""
    if rec.dim() < 3:
        raise ValueError(f"gradient_mse: expected (N, C, H, W) images, got shape {tuple(rec.shape)}")
    d = rec - ref
    dy = (d[..., 1:, :] - d[..., :-1, :]) ** 2
    dx = (d[..., :, 1:] - d[..., :, :-1]) ** 2
    return 0.5 * (dy.mean() + dx.mean())


def _gauss_window(channels: int, device: torch.device, dtype: torch.dtype,
                   sigma: float = 1.5, radius: int = 5) -> torch.Tensor:
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, -1, -1).contiguous()


def ms_ssim(rec: torch.Tensor, ref: torch.Tensor, data_range: float = 255.0,
            weights: tuple[float, ...] = MSSSIM_WEIGHTS) -> torch.Tensor:
    """Mean MS-SSIM of (N, C, H, W) images over images and channels. Uses as many of the 5 scales
    as the size allows (each needs 11 pixels after halving; the used weights are renormalised),
    so 128² training crops get 4 scales, a 768×512 image all 5."""
    if rec.dim() != 4 or rec.shape != ref.shape:
        raise ValueError(f"ms_ssim: expected two (N, C, H, W) images of one shape, got "
                         f"{tuple(rec.shape)} and {tuple(ref.shape)}")
    side = min(rec.shape[-2:])
    if side < 11:
        raise ValueError(f"ms_ssim: images must be at least 11×11, got {tuple(rec.shape[-2:])}")
    n = min(len(weights), int(math.log2(side / 11)) + 1)
    w = torch.tensor(weights[:n], device=rec.device, dtype=rec.dtype)
    w = w / w.sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    win = _gauss_window(rec.shape[1], rec.device, rec.dtype)
    x, y, vals = rec, ref, []
    for j in range(n):
        f = lambda t: torch.nn.functional.conv2d(t, win, groups=t.shape[1])  # noqa: E731
        mx, my = f(x), f(y)
        sxx, syy, sxy = f(x * x) - mx * mx, f(y * y) - my * my, f(x * y) - mx * my
        cs = (2 * sxy + c2) / (sxx + syy + c2)
        if j == n - 1:
            cs = cs * (2 * mx * my + c1) / (mx * mx + my * my + c1)
        vals.append(cs.mean(dim=(-2, -1)).clamp(min=1e-6))  # (N, C)
        if j < n - 1:
            x, y = torch.nn.functional.avg_pool2d(x, 2), torch.nn.functional.avg_pool2d(y, 2)
    return torch.prod(torch.stack(vals) ** w[:, None, None], dim=0).mean()


def distortion(rec: torch.Tensor, ref: torch.Tensor, loss: str = "mse", *, mse_weight: float = 1.0,
               perceptual_weight: float = 1.0, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    """(distortion in dB for the objective, MSE) for ``loss`` in :data:`LOSSES`.

    ``mse``: 10·log10(MSE) (the original objective; weights ignored). ``mel`` / ``stft``:
    ``mse_weight``·10·log10(MSE) + ``perceptual_weight``·(log-mel | multi-res STFT) dB distance;
    ``grad``: ``mse_weight``·10·log10(MSE) + ``perceptual_weight``·10·log10(gradient MSE);
    ``msssim``: ``mse_weight``·10·log10(MSE) + ``perceptual_weight``·10·log10(1 − MS-SSIM);
    ``kw`` go to the perceptual distance."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, not {loss!r}")
    mse = ((rec - ref) ** 2).mean()
    mse_db = 10 * torch.log10(mse + 1e-6)
    if loss == "mse":
        return mse_db, mse
    if loss == "grad":
        return mse_weight * mse_db + perceptual_weight * 10 * torch.log10(gradient_mse(rec, ref) + 1e-6), mse
    if loss == "msssim":
        return mse_weight * mse_db + perceptual_weight * 10 * torch.log10(1 - ms_ssim(rec, ref) + 1e-6), mse
    perc = (log_mel_distance if loss == "mel" else stft_distance)(rec, ref, **kw)
    return mse_weight * mse_db + perceptual_weight * perc, mse
