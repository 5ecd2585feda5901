"""Sample data for the simulator, each source labelled as real or synthetic.

Real data comes from packages already installed with the ``[export]``/``[dev]`` extras and is
imported lazily (this package itself needs only numpy + pyserial):

* ``ecg``    — ``pywt.data.ecg()``: 1024 samples of a real ECG recording (PyWavelets), int16.
* ``camera`` — ``skimage.data.astronaut()`` (real RGB photo, NASA, public domain) cut into 8×8×3
  uint8 tiles; falls back to ``pywt.data.ascent()`` (real grayscale photo) as 8×8×1 tiles.
* ``imu``    — synthetic 6-axis IMU (no real IMU recording is installed here): gravity, a slow
  rotation and noise, int16 (n, 6).
* ``audio``  — the ECG played back as a 1-channel int16 audio-rate block stream when available
  (real), else a synthetic tone.
"""

from __future__ import annotations

import dataclasses

import numpy as np


class PlaybackError(RuntimeError):
    """A data source is unavailable (the package that ships it is not installed)."""


@dataclasses.dataclass(frozen=True)
class Recording:
    """A block source: ``data`` is cut into frames along axis 0 (or is already a stack of tiles)."""

    name: str
    label: str  # "real: <where it comes from>" or "synthetic: <what it is>"
    data: np.ndarray
    tiles: bool = False


def ecg() -> Recording:
    """Real ECG from PyWavelets, as int16 (n, 1)."""
    try:
        import pywt  # noqa: PLC0415 - optional, real data only
    except ImportError as exc:
        raise PlaybackError("ecg playback needs PyWavelets (pip install pywavelets)") from exc
    x = np.asarray(pywt.data.ecg(), dtype=np.int64)
    return Recording("ecg", "real: pywt.data.ecg() (PyWavelets, 1024-sample ECG)",
                     x.astype(np.int16).reshape(-1, 1))


def camera_tiles(tile: int = 8) -> Recording:
    """Real photo cut into ``tile``×``tile``×C uint8 tiles (row-major tile order)."""
    try:
        import skimage.data  # noqa: PLC0415
        img, label = skimage.data.astronaut(), "real: skimage.data.astronaut() (NASA, public domain), RGB"
    except ImportError:
        try:
            import pywt  # noqa: PLC0415
        except ImportError as exc:
            raise PlaybackError("camera playback needs scikit-image or PyWavelets") from exc
        img, label = pywt.data.ascent()[..., None], "real: pywt.data.ascent() (grayscale photo)"
    h, w, c = img.shape
    h, w = h - h % tile, w - w % tile
    t = img[:h, :w].reshape(h // tile, tile, w // tile, tile, c).transpose(0, 2, 1, 3, 4)
    return Recording("camera", label, np.ascontiguousarray(t.reshape(-1, tile, tile, c), dtype=np.uint8), tiles=True)


def imu(n: int = 4096, seed: int = 0) -> Recording:
    """Synthetic 6-axis IMU at ±4 g / ±500 dps full scale, int16 (n, 6)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 100.0
    acc = np.stack([0.1 * np.sin(0.7 * t), 0.1 * np.cos(0.5 * t), np.ones_like(t)], 1) * 8192
    gyr = np.stack([20 * np.sin(0.3 * t), 10 * np.cos(0.9 * t), 5 * np.sin(0.1 * t)], 1) * 65.5
    x = np.concatenate([acc, gyr], 1) + rng.normal(0, 30, (n, 6))
    return Recording("imu", "synthetic: 6-axis IMU (gravity + slow rotation + noise)",
                     np.clip(x, -32768, 32767).astype(np.int16))


def audio(n: int = 16000) -> Recording:
    """Audio-rate int16 (n, 1): the real ECG when PyWavelets is there, else a synthetic tone."""
    try:
        r = ecg()
        return Recording("audio", r.label + ", played back as audio", (r.data.astype(np.int32) * 64).astype(np.int16))
    except PlaybackError:
        t = np.arange(n)
        return Recording("audio", "synthetic: 440 Hz tone at 16 kHz",
                         (8000 * np.sin(2 * np.pi * 440 * t / 16000)).astype(np.int16).reshape(-1, 1))


SOURCES = {"ecg": ecg, "camera": camera_tiles, "imu": imu, "audio": audio}


def load(name: str) -> Recording:
    """The named recording; raises :class:`PlaybackError` for unknown names."""
    if name not in SOURCES:
        raise PlaybackError(f"unknown data source {name!r}; choose one of {sorted(SOURCES)}")
    return SOURCES[name]()
