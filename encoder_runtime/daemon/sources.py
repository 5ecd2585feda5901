"""Frame sources, chosen by URL scheme (the pyserial ``serial_for_url`` idea).

``SCHEME:ARG,key=value,...``:

- ``synthetic:HxWxC,fps=0,count=0,dtype=uint8`` moving test pattern (fps 0 = as fast as possible)
- ``dir:PATH,loop=0,fps=0,kind=`` every image / ``.npy`` / WAV / FLAC / volume (NIfTI ``.nii``,
  ``.nii.gz``; multi-page TIFF with ``kind=volume``) file in a folder, sorted by name; one kind
  per stream (``kind=image|audio|npy|volume``, default: the first file's kind); with
  ``loop=1`` the decoded frames are kept after the first pass (up to 64 MiB)
- ``file:PATH,chunk=4096,fps=0`` one image or ``.npy`` (one frame), or audio cut into chunks
- ``dir:`` and ``file:`` take ``modality=NAME`` for ``.npy`` frames (e.g. ``modality=hyperspectral``
  for H×W×32 uint16 spectral cubes), so ``--model default|quality:N`` picks that modality's model
- ``stdin:HxWxC,dtype=uint8`` fixed-size raw frames on standard input
- ``serial:URL,baud=115200`` frames from an MCU via ``firmware_bridge`` (lazily imported)
- ``camera:/dev/video0,width=640,height=480`` V4L2 via OpenCV (optional extra)
- ``mic:DEVICE,rate=16000,chunk=1600,channels=1`` microphone via sounddevice (optional extra)

``frames=T`` on an image source (``camera:``, ``dir:``, ``synthetic:``, ``stdin:``, ...) makes it a
video source: T consecutive frames are collected into one T×H×W×C frame group (one stream frame,
coded by a video model's spatio-temporal block); a lost or differently sized frame ends the
group, which is then dropped and counted as one lost group.

Every source yields :class:`SourceItem` and declares a queue ``policy``: ``block`` (files,
synthetic: nothing is lost, the source waits), ``gap`` (real-time sensors: when the queue is
full the newest frame is dropped and accounted for by a GAP record), ``latest`` (camera: the
newest frame wins, superseded frames are counted, not streamed).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..container import GapReason
from .config import ConfigError


@dataclasses.dataclass
class SourceItem:
    """One frame (``array``) or a report of ``lost`` frames the source could not deliver."""

    array: np.ndarray | None
    t_mono_ns: int
    t_wall_ns: int
    lost: int = 0
    reason: GapReason = GapReason.UNKNOWN


class Source:
    """Base class: iterate to get items; ``close()`` stops a blocking read."""

    policy = "block"
    name = "source"
    modality = "image"   # which kind of bundled model fits by default ("image", "audio", None)
    channels = 1         # audio: channels per frame (a stereo source picks a joint stereo model)
    fps = 0.0            # frames per second the source is paced at (0: unpaced or not known)

    def __iter__(self) -> Iterator[SourceItem]:  # pragma: no cover - abstract
        raise NotImplementedError

    def frame_spec(self) -> tuple[tuple[int, ...], np.dtype] | None:
        """Shape and dtype of the frames this source will deliver, where known before the first one
        (``None``: only the frames will tell). Raises ConfigError when a reader package is missing."""
        return None

    def close(self) -> None:
        """Release devices/files; safe to call twice."""


def now_ns() -> tuple[int, int]:
    """(monotonic, wall) clock pair in nanoseconds."""
    return time.monotonic_ns(), time.time_ns()


def _parse_shape(text: str, what: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(x) for x in text.lower().replace("(", "").replace(")", "").replace(" ", "")
                      .replace(",", "x").split("x") if x)
    except ValueError:
        raise ConfigError(f"{what}: expected a shape like 256x256x3, got {text!r}") from None
    if not shape or any(d <= 0 for d in shape):
        raise ConfigError(f"{what}: expected a shape like 256x256x3, got {text!r}")
    return shape


def _parse_dtype(text: str, what: str) -> np.dtype:
    try:
        dt = np.dtype(text)
    except TypeError:
        raise ConfigError(f"{what}: unknown dtype {text!r}") from None
    if dt.hasobject or dt.kind not in "uif":
        raise ConfigError(f"{what}: dtype must be numeric, got {text!r}")
    return dt


class _Pacer:
    """Sleeps to hold ``fps`` (0 = unpaced); interruptible via ``stop``."""

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps if fps > 0 else 0.0
        self.next = time.monotonic()
        self.stopped = False

    def wait(self) -> None:
        if not self.period:
            return
        self.next += self.period
        delay = self.next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            self.next = time.monotonic()


class SyntheticSource(Source):
    """A moving gradient-and-disc test pattern; ``count`` 0 = endless."""

    name = "synthetic"

    def __init__(self, shape=(256, 256, 3), fps: float = 0.0, count: int = 0, dtype="uint8") -> None:
        self.shape, self.fps, self.count, self.dtype = tuple(shape), fps, count, np.dtype(dtype)
        self.policy = "gap" if fps > 0 else "block"
        self._stop = False
        h, w = self.shape[0], self.shape[1] if len(self.shape) > 1 else 1
        self._yy, self._xx = np.mgrid[0:h, 0:w].astype(np.float32)
        self._cache: dict[int, np.ndarray] = {}

    CYCLE = 64

    def frame(self, i: int) -> np.ndarray:
        """The i-th test frame (deterministic; a cycle of 64 frames, computed once each)."""
        i %= self.CYCLE
        cached = self._cache.get(i)
        if cached is None:
            cached = self._cache[i] = self._render(i)
        return cached

    def _render(self, i: int) -> np.ndarray:
        h, w = self._yy.shape
        cy, cx = h / 2 + h / 4 * np.sin(i / 10), w / 2 + w / 4 * np.cos(i / 13)
        disc = ((self._yy - cy) ** 2 + (self._xx - cx) ** 2) < (min(h, w) / 6) ** 2
        base = (self._xx / max(w, 1) * 160 + self._yy / max(h, 1) * 60 + 4 * i) % 220
        img = np.where(disc, 235.0, base)
        if len(self.shape) == 3:
            img = np.stack([np.roll(img, k * 7, axis=1) for k in range(self.shape[2])], axis=-1)
        img = img.reshape(self.shape)
        if self.dtype.kind == "f":
            return (img / 255.0).astype(self.dtype)
        return img.astype(self.dtype)

    def __iter__(self) -> Iterator[SourceItem]:
        pacer = _Pacer(self.fps)
        i = 0
        while not self._stop and (self.count == 0 or i < self.count):
            pacer.wait()
            mono, wall = now_ns()
            yield SourceItem(self.frame(i), mono, wall)
            i += 1

    def frame_spec(self) -> tuple[tuple[int, ...], np.dtype]:
        """The configured shape and dtype."""
        return self.shape, self.dtype

    def close(self) -> None:
        self._stop = True


IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
AUDIO_EXT = {".wav", ".flac", ".ogg"}
VOLUME_EXT = {".nii", ".nii.gz"}


def _reader(path: Path):
    """The optional package that reads ``path`` (Pillow's ``Image`` or ``soundfile``); ConfigError
    naming the file and the package when it is not installed."""
    if path.suffix.lower() in IMAGE_EXT:
        try:
            from PIL import Image
        except ImportError:
            raise ConfigError(f"{path}: reading images needs Pillow (pip install pillow)") from None
        return Image
    try:
        import soundfile
    except (ImportError, OSError):
        raise ConfigError(f"{path}: reading audio needs soundfile (pip install soundfile)") from None
    return soundfile


def _unsupported(path: Path) -> ConfigError:
    return ConfigError(f"{path}: unsupported file type {path.suffix.lower()!r} "
                       f"(images {sorted(IMAGE_EXT)}, .npy, audio {sorted(AUDIO_EXT)}, volumes "
                       f"{sorted(VOLUME_EXT)})")


def file_frame_spec(path: Path, chunk: int = 4096) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of the frames :func:`read_frames_from_file` yields for ``path``, from the
    file's header only (an audio file's last chunk may be shorter)."""
    ext = path.suffix.lower()
    try:
        if ext == ".npy":
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
            return tuple(arr.shape), arr.dtype
        if ext in IMAGE_EXT:
            with _reader(path).open(path) as im:
                return (im.height, im.width) + (() if im.mode == "L" else (3,)), np.dtype(np.uint8)
        if ext in AUDIO_EXT:
            return (chunk, _reader(path).info(str(path)).channels), np.dtype(np.int16)
    except ConfigError:
        raise
    except Exception as exc:  # unreadable file: the reader's own words
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    raise _unsupported(path)


def _ext(path: Path) -> str:
    """Lower-case extension, ``.nii.gz`` as one."""
    return ".nii.gz" if path.name.lower().endswith(".nii.gz") else path.suffix.lower()


def _read_volume(path: Path) -> np.ndarray:
    """A NIfTI file or a multi-page TIFF as one 3-D frame (encoder_runtime/volume_io.py)."""
    from ..media import MediaError, read_input
    try:
        array, meta = read_input(path)
    except MediaError as exc:
        raise ConfigError(str(exc)) from None
    if meta.get("kind") != "volume":
        raise ConfigError(f"{path}: not a volume (a single-page image); use kind=image")
    return array


def read_frames_from_file(path: Path, chunk: int = 4096, volume: bool = False
                          ) -> Iterator[np.ndarray]:
    """Frames in one file: an image, volume or ``.npy`` is one frame; audio is cut into ``chunk``
    samples. With ``volume`` a TIFF is read as a multi-page stack."""
    ext = _ext(path)
    if ext in VOLUME_EXT or (volume and ext in (".tif", ".tiff")):
        yield _read_volume(path)
    elif ext == ".npy":
        yield np.load(path, allow_pickle=False)
    elif ext in IMAGE_EXT:
        with _reader(path).open(path) as im:
            yield np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB") else im)
    elif ext in AUDIO_EXT:
        with _reader(path).SoundFile(str(path)) as f:
            while True:
                block = f.read(chunk, dtype="int16", always_2d=True)
                if len(block) == 0:
                    break
                yield block
    else:
        raise _unsupported(path)


class FileSource(Source):
    """Frames from one file or every supported file in a folder."""

    def __init__(self, path: str, folder: bool, loop: bool = False, fps: float = 0.0,
                 chunk: int = 4096, kind: str = "") -> None:
        self.path, self.folder, self.loop, self.fps, self.chunk = Path(path), folder, loop, fps, chunk
        self.name = "dir" if folder else "file"
        self._stop = False
        self.modality = "image"
        if folder:
            if not self.path.is_dir():
                raise ConfigError(f"dir: {self.path} is not a folder")
            files = sorted(p for p in self.path.iterdir()
                           if _ext(p) in IMAGE_EXT | AUDIO_EXT | VOLUME_EXT | {".npy"})
            if not files:
                raise ConfigError(f"dir: {self.path} holds no images, .npy, audio or volume files")
            # One stream holds one kind of frame: the kind named by kind=, else the first file's.
            kinds = {"image": IMAGE_EXT, "audio": AUDIO_EXT, "npy": {".npy"},
                     "volume": VOLUME_EXT | {".tif", ".tiff"}}
            if kind and kind not in kinds:
                raise ConfigError(f"dir: kind must be one of {', '.join(kinds)}, got {kind!r}")
            kind = kind or next(k for k, ext in kinds.items() if _ext(files[0]) in ext)
            self.files = [p for p in files if _ext(p) in kinds[kind]]
            if not self.files:
                raise ConfigError(f"dir: {self.path} holds no {kind} files")
            skipped = len(files) - len(self.files)
            if skipped:
                print(f"dir: {self.path}: streaming the {len(self.files)} {kind} files, skipping {skipped} "
                      f"of other kinds (choose with kind=image|audio|npy|volume)", file=sys.stderr)
        else:
            if not self.path.is_file():
                raise ConfigError(f"file: {self.path} does not exist")
            self.files = [self.path]
            kind = "volume" if _ext(self.path) in VOLUME_EXT else ""
        self.volume = kind == "volume"
        if self.volume:  # 8-bit volumes → the "volume" models, 12-bit in uint16 → "volume16"
            first = _read_volume(self.files[0])
            self.modality = "volume16" if first.dtype == np.uint16 else "volume"
        elif _ext(self.files[0]) in AUDIO_EXT:
            self.modality = "audio"
            self.channels = file_frame_spec(self.files[0], chunk)[0][1]
        elif _ext(self.files[0]) == ".npy":
            self.modality = None

    CACHE_BYTES = 64 * 1024**2  # with loop=1, keep decoded frames up to this size after the first pass

    def frame_spec(self) -> tuple[tuple[int, ...], np.dtype]:
        """The first file's frame shape and dtype (read from its header; a volume is read)."""
        if self.volume:
            first = _read_volume(self.files[0])
            return tuple(first.shape), first.dtype
        return file_frame_spec(self.files[0], self.chunk)

    def _frames(self) -> Iterator[np.ndarray]:
        for p in self.files:
            yield from read_frames_from_file(p, self.chunk, self.volume)

    def __iter__(self) -> Iterator[SourceItem]:
        pacer = _Pacer(self.fps)
        cache: list[np.ndarray] | None = [] if self.loop else None
        cached = False
        while not self._stop:
            size = 0
            for arr in (iter(cache) if cached else self._frames()):
                if self._stop:
                    return
                if cache is not None and not cached:
                    size += arr.nbytes
                    if size <= self.CACHE_BYTES:
                        arr.flags.writeable = False  # shared between passes
                        cache.append(arr)
                    else:
                        cache = None  # too big: re-read the files on every pass
                pacer.wait()
                mono, wall = now_ns()
                yield SourceItem(arr, mono, wall)
            if not self.loop:
                return
            cached = cache is not None

    def close(self) -> None:
        self._stop = True


class StdinSource(Source):
    """Fixed-size raw frames (declared shape and dtype) on a binary stream."""

    name = "stdin"

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, stream=None) -> None:
        self.shape, self.dtype = shape, dtype
        self.modality = "image" if dtype == np.uint8 and len(shape) in (2, 3) else None
        self.stream = stream if stream is not None else sys.stdin.buffer
        self.frame_bytes = int(np.prod(shape)) * dtype.itemsize

    def frame_spec(self) -> tuple[tuple[int, ...], np.dtype]:
        """The declared shape and dtype."""
        return self.shape, self.dtype

    def __iter__(self) -> Iterator[SourceItem]:
        while True:
            buf = bytearray()
            while len(buf) < self.frame_bytes:
                chunk = self.stream.read(self.frame_bytes - len(buf))
                if not chunk:
                    if buf:
                        print(f"stdin: partial frame of {len(buf)} of {self.frame_bytes} bytes "
                              "at end of input, ignored", file=sys.stderr)
                    return
                buf += chunk
            mono, wall = now_ns()
            yield SourceItem(np.frombuffer(bytes(buf), self.dtype).reshape(self.shape), mono, wall)


def _gap_count(gap) -> int:
    """Number of frames a serial-source gap report stands for (tuple, int or object)."""
    if gap is None:
        return 0
    if isinstance(gap, int):
        return gap
    if isinstance(gap, tuple) and len(gap) >= 2:
        return int(gap[1]) - int(gap[0]) + 1
    for attr in ("count", "lost", "n"):
        if hasattr(gap, attr):
            return int(getattr(gap, attr))
    if hasattr(gap, "first") and hasattr(gap, "last"):
        return int(gap.last) - int(gap.first) + 1
    return 1


class SerialSource(Source):
    """Frames from ``firmware_bridge.source.SerialFrameSource``; MCU gaps become GAP records."""

    name = "serial"
    policy = "gap"
    modality = None

    def __init__(self, url: str, **kwargs) -> None:
        try:
            from firmware_bridge.source import SerialFrameSource
        except ImportError as exc:
            raise ConfigError(f"serial: firmware_bridge is not available ({exc}); "
                              "install the bridge extra: pip install 'sensorcodec[bridge]'") from None
        self._src = SerialFrameSource(url, **kwargs)

    def __iter__(self) -> Iterator[SourceItem]:
        for _seq, mono, wall, arr, gap in self._src:
            lost = _gap_count(gap)
            if lost:
                yield SourceItem(None, mono, wall, lost, GapReason.SERIAL_CRC)
            if arr is not None:
                yield SourceItem(np.asarray(arr), mono, wall)

    def close(self) -> None:
        close = getattr(self._src, "close", None)
        if close:
            close()


class CameraSource(Source):
    """V4L2 camera via OpenCV (optional extra); newest frame wins."""

    name = "camera"
    policy = "latest"

    def __init__(self, device: str = "/dev/video0", width: int = 0, height: int = 0) -> None:
        try:
            import cv2
        except ImportError:
            raise ConfigError("camera: needs OpenCV (pip install opencv-python-headless); on a "
                              "Raspberry Pi camera use stdin: with rpicam-vid --codec yuv420 -o -") from None
        self._cv2 = cv2
        dev = int(device) if device.isdigit() else device
        self._cap = cv2.VideoCapture(dev, cv2.CAP_V4L2)
        if width:
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if not self._cap.isOpened():
            raise ConfigError(f"camera: cannot open {device}")
        self._stop = False

    def __iter__(self) -> Iterator[SourceItem]:
        while not self._stop:
            ok, frame = self._cap.read()
            mono, wall = now_ns()
            if not ok:
                yield SourceItem(None, mono, wall, 1, GapReason.SOURCE_LOST)
                time.sleep(0.1)
                continue
            yield SourceItem(frame[..., ::-1].copy(), mono, wall)  # BGR -> RGB

    def close(self) -> None:
        self._stop = True
        self._cap.release()


class MicSource(Source):
    """Microphone via sounddevice (optional extra); input overflows become GAP records."""

    name = "mic"
    policy = "gap"
    modality = "audio"

    def __init__(self, device: str = "", rate: int = 16000, chunk: int = 1600, channels: int = 1) -> None:
        try:
            import sounddevice
        except (ImportError, OSError) as exc:
            raise ConfigError(f"mic: needs sounddevice and PortAudio (pip install sounddevice): {exc}") from None
        import queue as _q

        self._q: _q.Queue = _q.Queue(maxsize=64)
        self._lost = 0
        self.chunk, self.channels = chunk, channels

        def callback(indata, frames, _time, status):
            mono, wall = now_ns()
            if status.input_overflow:
                self._lost += 1
            try:
                self._q.put_nowait((indata.copy(), mono, wall))
            except _q.Full:
                self._lost += 1

        self._stream = sounddevice.InputStream(device=device or None, samplerate=rate, channels=channels,
                                               blocksize=chunk, dtype="int16", callback=callback)
        self._stream.start()
        self._stop = False

    def frame_spec(self) -> tuple[tuple[int, ...], np.dtype]:
        """``chunk`` int16 samples × ``channels``."""
        return (self.chunk, self.channels), np.dtype(np.int16)

    def __iter__(self) -> Iterator[SourceItem]:
        import queue as _q

        while not self._stop:
            try:
                arr, mono, wall = self._q.get(timeout=0.5)
            except _q.Empty:
                continue
            if self._lost:
                lost, self._lost = self._lost, 0
                yield SourceItem(None, mono, wall, lost, GapReason.SOURCE_LOST)
            yield SourceItem(arr, mono, wall)

    def close(self) -> None:
        self._stop = True
        self._stream.stop()
        self._stream.close()


class FrameGroupSource(Source):
    """Groups of ``frames`` consecutive image frames of ``inner`` as T×H×W×C video frames."""

    modality = "video"

    def __init__(self, inner: Source, frames: int) -> None:
        if inner.modality != "image":
            raise ConfigError(f"{inner.name}: frames= groups image frames into video; this "
                              f"source gives {inner.modality or 'array'} frames")
        if frames < 1:
            raise ConfigError(f"{inner.name}: frames must be >= 1, got {frames}")
        self.inner, self.frames = inner, frames
        self.name, self.policy, self.fps = inner.name, inner.policy, inner.fps

    def __iter__(self) -> Iterator[SourceItem]:
        group: list[np.ndarray] = []
        first: SourceItem | None = None
        for item in self.inner:
            arr = item.array
            if arr is not None and arr.ndim == 2:
                arr = np.repeat(arr[..., None], 3, axis=2)
            if arr is None or (group and arr.shape != group[0].shape):
                if group or arr is None:  # the partial group is lost
                    yield SourceItem(None, item.t_mono_ns, item.t_wall_ns, 1,
                                     item.reason if arr is None else GapReason.UNKNOWN)
                group, first = [], None
                if arr is None:
                    continue
            if not group:
                first = item
            group.append(arr)
            if len(group) == self.frames:
                yield SourceItem(np.stack(group), first.t_mono_ns, first.t_wall_ns)
                group, first = [], None

    def frame_spec(self) -> tuple[tuple[int, ...], np.dtype] | None:
        """``frames`` × the inner source's frame (grey frames become RGB)."""
        spec = self.inner.frame_spec()
        if spec is None:
            return None
        shape, dtype = spec
        return (self.frames,) + tuple(shape) + ((3,) if len(shape) == 2 else ()), dtype

    def close(self) -> None:
        self.inner.close()


def _split(rest: str) -> tuple[str, dict[str, str]]:
    parts = rest.split(",") if rest else []
    positional, opts = "", {}
    for i, p in enumerate(parts):
        if "=" in p:
            k, v = p.split("=", 1)
            opts[k.strip()] = v.strip()
        elif i == 0:
            positional = p
        else:
            positional += "," + p  # a comma inside a path/shape
    return positional, opts


def _num(opts: dict, key: str, default, conv=float, url: str = ""):
    if key not in opts:
        return default
    try:
        return conv(opts.pop(key))
    except ValueError:
        raise ConfigError(f"{url}: option {key} must be a number") from None


def open_source(url: str) -> Source:
    """Open a source from its URL (see module docstring); raises ConfigError with the reason."""
    if ":" not in url:
        raise ConfigError(f"source {url!r}: expected SCHEME:ARG (one of {', '.join(SCHEMES)})")
    scheme, rest = url.split(":", 1)
    factory = SCHEMES.get(scheme)
    if factory is None:
        raise ConfigError(f"source {url!r}: unknown scheme {scheme!r} (one of {', '.join(SCHEMES)})")
    positional, opts = _split(rest)
    frames = _num(opts, "frames", 0, int, url)
    src = factory(positional, opts, url)
    if frames:
        src = FrameGroupSource(src, frames)
    if opts:
        raise ConfigError(f"source {url!r}: unknown option(s) {', '.join(sorted(opts))}")
    return src


def _synthetic(pos: str, opts: dict, url: str) -> Source:
    shape = _parse_shape(pos, url) if pos else (256, 256, 3)
    return SyntheticSource(shape, fps=_num(opts, "fps", 0.0, url=url),
                           count=_num(opts, "count", 0, int, url),
                           dtype=_parse_dtype(opts.pop("dtype", "uint8"), url))


def _with_modality(src: FileSource, opts: dict, url: str) -> FileSource:
    """``modality=NAME``: the modality of the source's ``.npy`` frames (picks the default model)."""
    name = opts.pop("modality", "")
    if name:
        if src.modality is not None:
            raise ConfigError(f"{url}: modality= is for .npy frames; these files are {src.modality}")
        src.modality = name
    return src


def _dir(pos: str, opts: dict, url: str) -> Source:
    if not pos:
        raise ConfigError(f"{url}: expected dir:PATH")
    return _with_modality(FileSource(
        os.path.expanduser(pos), True, loop=bool(_num(opts, "loop", 0, int, url)),
        fps=_num(opts, "fps", 0.0, url=url), chunk=_num(opts, "chunk", 4096, int, url),
        kind=opts.pop("kind", "")), opts, url)


def _file(pos: str, opts: dict, url: str) -> Source:
    if not pos:
        raise ConfigError(f"{url}: expected file:PATH")
    return _with_modality(FileSource(
        os.path.expanduser(pos), False, loop=bool(_num(opts, "loop", 0, int, url)),
        fps=_num(opts, "fps", 0.0, url=url), chunk=_num(opts, "chunk", 4096, int, url)), opts, url)


def _stdin(pos: str, opts: dict, url: str) -> Source:
    if not pos:
        raise ConfigError(f"{url}: stdin needs a frame shape, e.g. stdin:480x640x3,dtype=uint8")
    return StdinSource(_parse_shape(pos, url), _parse_dtype(opts.pop("dtype", "uint8"), url))


def _serial(pos: str, opts: dict, url: str) -> Source:
    if not pos:
        raise ConfigError(f"{url}: expected serial:URL (e.g. serial:/dev/ttyACM0 or serial:loop://)")
    kwargs = {}
    if "baud" in opts:
        kwargs["baudrate"] = _num(opts, "baud", 115200, int, url)
    return SerialSource(pos, **kwargs)


def _camera(pos: str, opts: dict, url: str) -> Source:
    return CameraSource(pos or "/dev/video0", width=_num(opts, "width", 0, int, url),
                        height=_num(opts, "height", 0, int, url))


def _mic(pos: str, opts: dict, url: str) -> Source:
    return MicSource(pos, rate=_num(opts, "rate", 16000, int, url), chunk=_num(opts, "chunk", 1600, int, url),
                     channels=_num(opts, "channels", 1, int, url))


SCHEMES: dict[str, Callable[[str, dict, str], Source]] = {
    "synthetic": _synthetic, "dir": _dir, "file": _file, "stdin": _stdin,
    "serial": _serial, "camera": _camera, "mic": _mic,
}
