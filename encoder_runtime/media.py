"""Read and write the file formats `sensor-codec` accepts: images, WAV/FLAC audio, .npy arrays,
video (.y4m, folders of frames, ffmpeg containers: encoder_runtime/video_io.py),
3-D volumes (NIfTI ``.nii``/``.nii.gz``, multi-page TIFF stacks; encoder_runtime/volume_io.py).

Pillow (images) and soundfile (FLAC) are optional (`pip install sensorcodec[media]`), nibabel
too (`sensorcodec[volume]`, NIfTI); WAV PCM and .npy need only the standard library and numpy.
"""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np

from . import video_io

IMAGE_EXT = {".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".pnm", ".tif", ".tiff", ".bmp", ".webp"}
AUDIO_EXT = {".wav", ".flac"}
ARRAY_EXT = {".npy"}
VIDEO_EXT = video_io.VIDEO_EXT


class MediaError(ValueError):
    """A file cannot be read or written."""


def modality_of(path: Path) -> str:
    """'image', 'audio', 'video', 'volume' (NIfTI) or 'array' from a file name (a folder: video
    frames); MediaError for anything else. A multi-page TIFF is named 'image' here and read as a
    volume by :func:`read_input`."""
    if Path(path).name.lower().endswith((".nii", ".nii.gz")):
        return "volume"
    ext = Path(path).suffix.lower()
    if ext in VIDEO_EXT or (not ext and Path(path).is_dir()):
        return "video"
    if ext in IMAGE_EXT:
        return "image"
    if ext in AUDIO_EXT:
        return "audio"
    if ext in ARRAY_EXT:
        return "array"
    raise MediaError(f"{path}: unsupported file type {ext or '(none)'!r}; expected an image "
                     f"({', '.join(sorted(IMAGE_EXT))}), audio (.wav, .flac), video "
                     f"({', '.join(sorted(VIDEO_EXT))} or a folder of frames), a volume (.nii, "
                     f".nii.gz, multi-page .tif) or .npy")


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise MediaError("reading/writing images needs Pillow: pip install 'sensorcodec[media]'") from None
    return Image


def read_input(path: Path, data: bytes | None = None,
               warnings: list[str] | None = None) -> tuple[np.ndarray, dict]:
    """Load a file → (array, meta). Images come back H×W×3 or H×W uint8; volumes (NIfTI, TIFF
    stacks of 2+ pages) as 3-D integer arrays with ``meta["kind"] == "volume"``.

    With ``data`` the bytes are read instead of the file and ``path`` only names them and their
    format (e.g. ``Path("-.png")`` for stdin). Lossy conversions (a transparent alpha channel
    dropped) append a one-line message to ``warnings``.
    """
    path = Path(path)
    kind = modality_of(path)
    if kind == "video":
        try:
            return video_io.read_video(path, data)
        except video_io.VideoError as exc:
            raise MediaError(str(exc)) from None
    if data is None and not path.is_file():
        raise MediaError(f"{path}: no such file")
    src = io.BytesIO(data) if data is not None else path
    try:
        if kind == "volume":
            from .volume_io import read_nifti
            return read_nifti(path, data)
        if kind == "image" and path.suffix.lower() in (".tif", ".tiff"):
            from .volume_io import read_tiff_stack, tiff_pages
            _pillow()
            if tiff_pages(src) > 1:
                if data is not None:
                    src.seek(0)
                return read_tiff_stack(path, src)
            if data is not None:
                src.seek(0)
        if kind == "image":
            Image = _pillow()
            with Image.open(src) as im:
                if im.mode in ("L", "I;16", "I", "F"):
                    arr = np.asarray(im.convert("L"))
                else:
                    if warnings is not None and (im.mode in ("RGBA", "LA", "PA", "La", "RGBa")
                                                 or "transparency" in im.info):
                        alpha = np.asarray(im.convert("RGBA"))[..., 3]
                        if alpha.min() < 255:
                            warnings.append(f"{path}: alpha channel dropped ({int((alpha < 255).sum())}"
                                            " transparent pixels keep only their colour)")
                    arr = np.asarray(im.convert("RGB"))
            return arr, {"kind": "image"}
        if kind == "audio":
            return _read_audio(path, src)
        arr = np.load(src, allow_pickle=False)
        return arr, {"kind": "array"}
    except MediaError:
        raise
    except Exception as exc:  # decoder libraries raise many types on bad files
        raise MediaError(f"{path}: cannot read as {kind} ({exc.__class__.__name__}: {exc})") from None


def _read_audio(path: Path, src) -> tuple[np.ndarray, dict]:
    if path.suffix.lower() == ".wav":
        try:
            with wave.open(str(src) if isinstance(src, Path) else src, "rb") as w:
                if w.getsampwidth() != 2:
                    raise MediaError(f"{path}: {8 * w.getsampwidth()}-bit WAV; only 16-bit PCM "
                                     "is read without soundfile")
                n, ch, rate = w.getnframes(), w.getnchannels(), w.getframerate()
                data = np.frombuffer(w.readframes(n), dtype="<i2").reshape(-1, ch)
            return data.astype(np.int16), {"kind": "audio", "rate_hz": rate}
        except wave.Error:
            if not isinstance(src, Path):
                src.seek(0)  # e.g. float WAV: fall through to soundfile
    try:
        import soundfile as sf
    except ImportError:
        raise MediaError(f"{path}: reading this audio needs soundfile: "
                         "pip install 'sensorcodec[media]'") from None
    data, rate = sf.read(str(src) if isinstance(src, Path) else src, dtype="int16",
                         always_2d=True)
    return data, {"kind": "audio", "rate_hz": int(rate)}


def resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Band-limited (FFT) resampling of int16 audio (N, C) from ``rate`` to ``target`` Hz."""
    n = x.shape[0]
    m = max(1, round(n * target / rate))
    spec = np.fft.rfft(x.astype(np.float64), axis=0)
    out = np.zeros((m // 2 + 1,) + spec.shape[1:], dtype=spec.dtype)
    k = min(spec.shape[0], out.shape[0])
    out[:k] = spec[:k]
    y = np.fft.irfft(out, n=m, axis=0) * (m / n)
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


def encode_media(array: np.ndarray, path: Path, meta: dict | None = None) -> bytes:
    """The bytes of a decoded array in the format named by ``path``'s extension."""
    path = Path(path)
    kind = modality_of(path)
    meta = meta or {}
    buf = io.BytesIO()
    if kind == "volume":
        from .volume_io import nifti_bytes
        return nifti_bytes(array, path, meta)
    if kind == "image" and path.suffix.lower() in (".tif", ".tiff") and (
            meta.get("kind") == "volume" or array.dtype == np.uint16 or (
                array.ndim == 3 and array.shape[2] not in (3, 4))):
        from .volume_io import tiff_stack_bytes
        _pillow()
        return tiff_stack_bytes(array if array.ndim == 3 else array[None], meta)
    if kind == "image":
        if array.dtype != np.uint8 or array.ndim not in (2, 3):
            raise MediaError(f"{path}: decoded data (shape {array.shape}, {array.dtype}) is not "
                             "an image; write it as .npy")
        fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".pgm": "PPM", ".pnm": "PPM"}.get(
            path.suffix.lower(), path.suffix[1:].upper())
        _pillow().fromarray(array).save(buf, format=fmt)
    elif kind == "video":
        if path.suffix.lower() not in video_io.Y4M_EXT:
            raise MediaError(f"{path}: decoded video is written as .y4m, PNG frames "
                             "(name_%04d.png) or .npy")
        if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3:
            raise MediaError(f"{path}: decoded data (shape {array.shape}, {array.dtype}) is not "
                             "a T×H×W×3 uint8 clip; write it as .npy")
        buf.write(video_io.write_y4m(array, float(meta.get("fps") or 25.0)))
    elif kind == "audio":
        rate = int(meta.get("rate_hz") or 16000)
        x = array if array.ndim == 2 else array[:, None]
        if x.dtype.kind == "f":
            x = np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)
        if path.suffix.lower() == ".wav":
            with wave.open(buf, "wb") as w:
                w.setnchannels(x.shape[1])
                w.setsampwidth(2)
                w.setframerate(rate)
                w.writeframes(x.astype("<i2").tobytes())
        else:
            import soundfile as sf
            sf.write(buf, x, rate, subtype="PCM_16", format=path.suffix[1:].upper())
    else:
        np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def write_output(path: Path, array: np.ndarray, meta: dict | None = None) -> None:
    """Write a decoded array in the format named by the file extension."""
    data = encode_media(array, path, meta)
    Path(path).write_bytes(data)
