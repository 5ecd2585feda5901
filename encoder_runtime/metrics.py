"""Signal-quality numbers shared by the CLI, the daemon demo, training and the benchmarks."""

from __future__ import annotations

import math

_FLOOR = 1e-12  # keeps a perfect reconstruction finite


def psnr_db(mse: float, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio (dB) of a mean squared error against ``peak``."""
    return 10 * math.log10(peak ** 2 / max(float(mse), _FLOOR))


def snr_db(signal_energy: float, error_energy: float) -> float:
    """Signal-to-noise ratio (dB): signal energy over error energy (sums or means alike)."""
    return 10 * math.log10(max(float(signal_energy), _FLOOR) / max(float(error_energy), _FLOOR))


def spectral_angle_deg(ref, rec, offset: float = 0.0, axis: int = -1) -> float:
    """Mean spectral angle (degrees) between the spectra of ``ref`` and ``rec`` along ``axis``
    (bands), after subtracting ``offset`` (the sample value of zero signal); spectra of zero norm
    count as 0° when both are zero and 90° otherwise."""
    import numpy as np
    a = np.moveaxis(np.asarray(ref, dtype=np.float64) - offset, axis, -1)
    b = np.moveaxis(np.asarray(rec, dtype=np.float64) - offset, axis, -1)
    na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    dot = (a * b).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where((na > 0) & (nb > 0), dot / (na * nb), np.where((na == 0) & (nb == 0), 1, 0))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))).mean())
