"""Video files for `sensor-codec`: YUV4MPEG2 (.y4m, numpy only), folders of image frames, and
other containers (.mp4, .avi, .mkv, …) through the ``ffmpeg`` program (optional).

A clip is a T×H×W×3 uint8 RGB array. .y4m uses BT.601 limited-range YCbCr (what ffmpeg assumes
for .y4m without a colour-range tag); 4:2:0 chroma is upsampled by repetition on reading and
averaged over 2×2 on writing when asked for.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

Y4M_EXT = {".y4m"}
FFMPEG_EXT = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".ogv"}
VIDEO_EXT = Y4M_EXT | FFMPEG_EXT

# BT.601 limited range, RGB → YCbCr rows (Y, Cb, Cr) and offsets
_RGB2YUV = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0],
                     [112.0, -93.786, -18.214]]) / 255.0
_OFFSET = np.array([16.0, 128.0, 128.0])


class VideoError(ValueError):
    """A video file or folder cannot be read or written (message names it and why)."""


def rgb_to_yuv(rgb: np.ndarray) -> np.ndarray:
    """T×H×W×3 uint8 RGB → float YCbCr (BT.601 limited range)."""
    return rgb.astype(np.float64) @ _RGB2YUV.T + _OFFSET


def yuv_to_rgb(yuv: np.ndarray) -> np.ndarray:
    """float YCbCr (BT.601 limited range) → uint8 RGB."""
    rgb = (yuv - _OFFSET) @ np.linalg.inv(_RGB2YUV).T
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def _y4m_chroma(tag: str, path) -> tuple[int, int]:
    """Chroma subsampling (rows, cols) of a y4m ``C`` tag."""
    if tag.startswith("420"):
        return 2, 2
    if tag.startswith("422"):
        return 1, 2
    if tag.startswith("444") and tag in ("444", "444alpha"):
        return 1, 1
    if tag == "mono":
        return 0, 0
    raise VideoError(f"{path}: y4m colour space C{tag} is not supported (8-bit 420*, 422, 444, "
                     "mono)")


def read_y4m(data: bytes, path: Path | str = "<y4m>") -> tuple[np.ndarray, dict]:
    """YUV4MPEG2 bytes → (T×H×W×3 uint8 RGB, meta with ``fps``)."""
    end = data.find(b"\n")
    if not data.startswith(b"YUV4MPEG2 ") or end < 0:
        raise VideoError(f"{path}: not a YUV4MPEG2 file (expected the 'YUV4MPEG2 ' signature)")
    fields = {f[:1]: f[1:] for f in data[10:end].decode("ascii", "replace").split()}
    try:
        w, h = int(fields["W"]), int(fields["H"])
    except (KeyError, ValueError):
        raise VideoError(f"{path}: y4m header lacks W/H: {data[:end]!r}") from None
    sy, sx = _y4m_chroma(fields.get("C", "420jpeg"), path)
    fps = 0.0
    if re.fullmatch(r"\d+:\d+", fields.get("F", "")):
        num, den = (int(v) for v in fields["F"].split(":"))
        fps = num / den if den else 0.0
    csize = 0 if sy == 0 else (-(-h // sy)) * (-(-w // sx))
    size = w * h + 2 * csize + (w * h if fields.get("C") == "444alpha" else 0)
    frames, pos = [], end + 1
    while pos < len(data):
        if not data.startswith(b"FRAME", pos):
            raise VideoError(f"{path}: frame {len(frames) + 1}: expected 'FRAME' at byte {pos}")
        pos = data.index(b"\n", pos) + 1
        if pos + size > len(data):
            raise VideoError(f"{path}: frame {len(frames) + 1} is truncated ({len(data) - pos} of "
                             f"{size} bytes)")
        buf = np.frombuffer(data, np.uint8, size, pos)
        pos += size
        y = buf[: w * h].reshape(h, w).astype(np.float64)
        if sy == 0:
            u = v = np.full((h, w), 128.0)
        else:
            ch, cw = -(-h // sy), -(-w // sx)
            planes = [buf[w * h + i * csize: w * h + (i + 1) * csize].reshape(ch, cw)
                      .repeat(sy, 0).repeat(sx, 1)[:h, :w] for i in (0, 1)]
            u, v = planes
        frames.append(yuv_to_rgb(np.stack([y, u, v], axis=-1)))
    if not frames:
        raise VideoError(f"{path}: y4m file holds no frames")
    return np.stack(frames), {"kind": "video", "fps": fps}


def write_y4m(video: np.ndarray, fps: float = 25.0, chroma: str = "444") -> bytes:
    """T×H×W×3 uint8 RGB → YUV4MPEG2 bytes (``chroma`` '444' or '420jpeg'; 420 needs even
    H and W)."""
    t, h, w, _ = video.shape
    num, den = (int(round(fps * 1000)), 1000) if fps else (25, 1)
    out = io.BytesIO()
    out.write(f"YUV4MPEG2 W{w} H{h} F{num}:{den} Ip A1:1 C{chroma}\n".encode())
    for frame in video:
        yuv = np.clip(np.round(rgb_to_yuv(frame)), 0, 255)
        planes = [yuv[..., 0]]
        for i in (1, 2):
            c = yuv[..., i]
            if chroma == "420jpeg":
                if h % 2 or w % 2:
                    raise VideoError(f"4:2:0 y4m needs an even frame size; got {w}×{h}")
                c = np.round(c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)))
            planes.append(c)
        out.write(b"FRAME\n")
        for p in planes:
            out.write(p.astype(np.uint8).tobytes())
    return out.getvalue()


def ffmpeg() -> str:
    """The ``ffmpeg`` program, or VideoError saying how to get it."""
    exe = shutil.which("ffmpeg")
    if not exe:
        raise VideoError("reading this video format needs the ffmpeg program (Debian/Ubuntu: "
                         "apt-get install ffmpeg); .y4m and folders of PNG frames need no ffmpeg")
    return exe


def read_with_ffmpeg(path: Path) -> tuple[np.ndarray, dict]:
    """Any video ffmpeg reads → (T×H×W×3 uint8 RGB, meta), through a y4m pipe (4:4:4)."""
    r = subprocess.run([ffmpeg(), "-v", "error", "-nostdin", "-i", str(path), "-an", "-f",
                        "yuv4mpegpipe", "-pix_fmt", "yuv444p", "-strict", "-1", "-"],
                       capture_output=True)
    if r.returncode != 0 or not r.stdout:
        raise VideoError(f"{path}: ffmpeg cannot read it (exit {r.returncode}): "
                         f"{r.stderr.decode(errors='replace').strip()[-300:] or 'no frames'}")
    return read_y4m(r.stdout, path)


def read_frame_dir(folder: Path) -> tuple[np.ndarray, dict]:
    """A folder of same-sized image frames (sorted by name) → T×H×W×3 uint8 RGB."""
    from .media import IMAGE_EXT, read_input
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXT)
    if not files:
        raise VideoError(f"{folder}: holds no image frames ({', '.join(sorted(IMAGE_EXT))})")
    frames = []
    for p in files:
        a = read_input(p)[0]
        a = np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a
        if frames and a.shape != frames[0].shape:
            raise VideoError(f"{p}: frame size {a.shape[1]}×{a.shape[0]} differs from "
                             f"{files[0].name}'s {frames[0].shape[1]}×{frames[0].shape[0]}")
        frames.append(a)
    return np.stack(frames), {"kind": "video", "frames_from": "folder"}


def read_video(path: Path, data: bytes | None = None) -> tuple[np.ndarray, dict]:
    """A clip from a .y4m / ffmpeg-readable file (or its ``data``) or a folder of frames."""
    path = Path(path)
    if data is None and path.is_dir():
        return read_frame_dir(path)
    if path.suffix.lower() in Y4M_EXT:
        if data is None:
            if not path.is_file():
                raise VideoError(f"{path}: no such file")
            data = path.read_bytes()
        return read_y4m(data, path)
    if data is not None:
        raise VideoError(f"{path}: {path.suffix} from stdin is not supported; use .y4m")
    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    return read_with_ffmpeg(path)


def frame_groups(frames: int, group: int, block: int) -> list[tuple[int, int]]:
    """[start, stop) frame ranges of ``group`` frames; a last range shorter than ``block`` (too
    short to code) joins the one before."""
    if frames < block:
        raise VideoError(f"clip has {frames} frames; the video model needs at least {block}")
    cuts = list(range(0, frames, group)) + [frames]
    if len(cuts) > 2 and cuts[-1] - cuts[-2] < block:
        del cuts[-2]
    return list(zip(cuts[:-1], cuts[1:]))


def group_size(shape: tuple[int, ...], block: int, max_values: int = 1 << 23,
               longest: int = 16) -> int:
    """Frames per coded group for a T×H×W×C clip: ``longest`` frames, fewer (a multiple of
    ``block``, at least one block) where a group would hold more than ``max_values`` values."""
    per_frame = int(np.prod(shape[1:]))
    fit = max(block, (max_values // max(1, per_frame)) // block * block)
    return min(longest, fit)
