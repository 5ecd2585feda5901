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
