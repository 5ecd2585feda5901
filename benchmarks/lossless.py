"""Lossless-stage benchmark: rate and single-thread speed of every registered latent coder.

What it measures, per coder and per code set: bits per *image* pixel (payload bytes x 8 / (H x W)),
the rate relative to ``zstd19`` on the same codes, and encode / decode speed in image megapixels
per second (MP/s) at one thread (median of ``--repeats`` passes over all frames, interleaved
across coders; the codes are round-trip checked bit for bit first). The headline MP/s come from
the thread's CPU time, since the development machine is shared and wall-clock speeds swing 2-3x
with other load; wall-clock MP/s are in the JSON too. Results go to
``benchmarks/results/lossless.json`` and a rate-vs-speed scatter ``benchmarks/results/lossless.png``.

Codes. Until trained models exist, realistic stand-in codes are made from real photos the way a
rate-penalised block-transform codec would make them: 8x8x3 RGB blocks -> PCA (fitted on the
scikit-image photos, never on the test photos) -> the first C components -> divided by one global
step -> rounded -> clipped to int8. The high-variance components give large, smooth channels; the
rest are sparse. Test photos: the 25 Debian wallpaper photographs (plasma-workspace-wallpapers +
lomiri-wallpapers-16.04 in ``data/cache/debs``), Lanczos-downscaled to short side 512 and
centre-cropped to 768x512 (portrait 512x768), cached as PNG; without the debs it falls back to the
scikit-image photos with a PCA fitted on the others (leave-one-out).

Real model codes: ``--codes PATH.npy`` (one frame (C, *spatial), or with ``--stacked`` a stack
(N, C, *spatial)); ``--pixels-per-code`` gives image pixels per spatial code position (64 for
1/8 resolution). Several ``--codes`` may be given; each is one code set.

Usage::

    python benchmarks/lossless.py                      # synthetic C=12 and C=48 sets
    python benchmarks/lossless.py --codes codes.npy --stacked --pixels-per-code 64
    python benchmarks/lossless.py --quick --no-plot --out /tmp/l.json   # smoke run
    python benchmarks/lossless.py --variants           # + unregistered variants (zstd levels, ctx-ac format 1)
    python benchmarks/lossless.py --bundled --out benchmarks/results/lossless_bundled.json  # real codes, every bundled model
"""

from __future__ import annotations

import argparse
import io
import json
import lzma
import os
import platform
import statistics
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from encoder_runtime import entropy  # noqa: E402

BLOCK = 8
CROP = (512, 768)  # short side, long side
PLASMA_DEB = "plasma-workspace-wallpapers"
LOMIRI_DEB = "lomiri-wallpapers-16.04"
# Real photographs only (reference/data-sources.md §1.1: art and renders dropped).
PLASMA_PHOTOS = ("BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow",
                 "FallenLeaf", "Grey", "Kite", "OneStandsOut", "Path", "summer_1am")
LOMIRI_SKIP = ("umang_",)
# One global quantiser step per latent width, chosen so that the zstd-19 rate of the synthetic
# codes lands near the prototype's measured operating points (~0.16 bpp at C=12, ~1 bpp at C=48).
DEFAULT_STEPS = {12: 128.0, 48: 28.0}


# --------------------------------------------------------------------------------------------
# photos


def _ar_members(deb: Path) -> dict[str, bytes]:
    """Members of a Debian package (an ``ar`` archive) by name."""
    data = deb.read_bytes()
    if data[:8] != b"!<arch>\n":
        raise ValueError(f"{deb}: not a Debian package (no ar magic)")
    out: dict[str, bytes] = {}
    pos = 8
    while pos + 60 <= len(data):
        head = data[pos:pos + 60]
        name = head[:16].decode("ascii").strip().rstrip("/")
        size = int(head[48:58].decode("ascii").strip())
        out[name] = data[pos + 60:pos + 60 + size]
        pos += 60 + size + (size & 1)
    return out


def _deb_tar(deb: Path) -> tarfile.TarFile:
    """The data tarball of a Debian package, opened for reading."""
    members = _ar_members(deb)
    for name, blob in members.items():
        if name.startswith("data.tar"):
            if name.endswith(".zst"):
                import zstandard

                blob = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob)).read()
                return tarfile.open(fileobj=io.BytesIO(blob), mode="r:")
            if name.endswith(".xz"):
                return tarfile.open(fileobj=io.BytesIO(lzma.decompress(blob)), mode="r:")
            return tarfile.open(fileobj=io.BytesIO(blob), mode="r:*")
    raise ValueError(f"{deb}: no data.tar member in {sorted(members)}")


def _resize_crop(img: "Image.Image") -> np.ndarray:  # noqa: F821 (PIL imported lazily)
    """Lanczos-downscale so the short side is 512, centre-crop to 768x512 (or 512x768)."""
    from PIL import Image

    img = img.convert("RGB")
    w, h = img.size
    s = CROP[0] / min(w, h)
    nw, nh = max(CROP[0], round(w * s)), max(CROP[0], round(h * s))
    img = img.resize((nw, nh), Image.Resampling.LANCZOS, reducing_gap=3.0)
    tw, th = (CROP[1], CROP[0]) if nw >= nh else (CROP[0], CROP[1])
    left, top = (nw - tw) // 2, (nh - th) // 2
    return np.asarray(img.crop((left, top, left + tw, top + th)))


def wallpaper_photos(debs_dir: Path, cache_dir: Path) -> list[tuple[str, np.ndarray]]:
    """The 25 wallpaper photographs as 768x512 RGB uint8 arrays (cached as PNG); [] without debs."""
    from PIL import Image

    debs = {p.name.split("_")[0]: p for p in sorted(debs_dir.glob("*.deb"))}
    if PLASMA_DEB not in debs or LOMIRI_DEB not in debs:
        return []
    cache_dir.mkdir(parents=True, exist_ok=True)
    out: list[tuple[str, np.ndarray]] = []
    wanted = {f"./usr/share/wallpapers/{n}/contents/images/2560x1600.jpg": n for n in PLASMA_PHOTOS}
    todo: list[tuple[str, str, str]] = []  # (deb, member, name)
    for member, name in wanted.items():
        todo.append((PLASMA_DEB, member, name))
    with _deb_tar(debs[LOMIRI_DEB]) as tar:
        for m in tar.getmembers():
            base = os.path.basename(m.name)
            if (m.isfile() and m.name.startswith("./usr/share/backgrounds/")
                    and base.lower().endswith((".jpg", ".png")) and not base.startswith(LOMIRI_SKIP)):
                todo.append((LOMIRI_DEB, m.name, Path(base).stem))
    missing = [t for t in todo if not (cache_dir / f"{t[2]}.png").exists()]
    for deb in sorted({t[0] for t in missing}):
        names = {t[1]: t[2] for t in missing if t[0] == deb}
        with _deb_tar(debs[deb]) as tar:
            for member, name in names.items():
                f = tar.extractfile(member)
                if f is None:
                    raise ValueError(f"{debs[deb]}: {member} is not a regular file")
                arr = _resize_crop(Image.open(io.BytesIO(f.read())))
                Image.fromarray(arr).save(cache_dir / f"{name}.png")
    for _, _, name in sorted(todo, key=lambda t: t[2].lower()):
        out.append((name, np.asarray(Image.open(cache_dir / f"{name}.png").convert("RGB"))))
    return out


def skimage_photos() -> list[tuple[str, np.ndarray]]:
    """The colour photographs bundled with scikit-image (astronaut, coffee, chelsea, motorcycle)."""
    from skimage import data

    left, _right, _disp = data.stereo_motorcycle()
    return [("astronaut", data.astronaut()), ("coffee", data.coffee()), ("chelsea", data.chelsea()),
            ("motorcycle", left)]


# --------------------------------------------------------------------------------------------
# synthetic codes


def image_blocks(img: np.ndarray, block: int = BLOCK) -> tuple[np.ndarray, tuple[int, int]]:
    """(h*w, block*block*3) float vectors of the non-overlapping blocks (image cropped to a multiple)."""
    h, w = img.shape[0] // block, img.shape[1] // block
    x = img[:h * block, :w * block].astype(np.float32).reshape(h, block, w, block, -1)
    return x.transpose(0, 2, 1, 3, 4).reshape(h * w, -1), (h, w)


@dataclass(frozen=True)
class BlockPCA:
    """A PCA of 8x8x3 image blocks: a stand-in for a trained (folded) linear encoder."""

    mean: np.ndarray   # (D,)
    basis: np.ndarray  # (D, D) rows = components, decreasing variance

    @classmethod
    def fit(cls, images: Sequence[np.ndarray]) -> "BlockPCA":
        """Fit on the blocks of ``images``."""
        x = np.concatenate([image_blocks(im)[0] for im in images]).astype(np.float64)
        mean = x.mean(0)
        cov = np.cov((x - mean).T)
        vals, vecs = np.linalg.eigh(cov)
        order = np.argsort(vals)[::-1]
        basis = vecs[:, order].T
        basis *= np.where(basis.sum(1, keepdims=True) < 0, -1.0, 1.0)  # deterministic signs
        return cls(mean.astype(np.float32), basis.astype(np.float32))

    def codes(self, img: np.ndarray, channels: int, step: float) -> np.ndarray:
        """int8 (channels, h, w) codes: first ``channels`` components / ``step``, rounded, clipped."""
        x, (h, w) = image_blocks(img)
        y = (x - self.mean) @ self.basis[:channels].T / step
        q = np.clip(np.rint(y), -127, 127).astype(np.int8)
        return np.ascontiguousarray(q.T.reshape(channels, h, w))


def synthetic_code_sets(channels: Sequence[int], steps: dict[int, float], debs_dir: Path,
                        cache_dir: Path, max_frames: int | None = None
                        ) -> tuple[list["CodeSet"], str]:
    """One code set per latent width from the wallpaper photos (or scikit-image photos)."""
    train = skimage_photos()
    test = wallpaper_photos(debs_dir, cache_dir)
    source = "wallpapers (25 photos, 768x512), PCA fitted on scikit-image photos"
    if not test:
        source = "scikit-image photos, PCA fitted leave-one-out"
    if max_frames:
        test = test[:max_frames]
    sets: list[CodeSet] = []
    for c in channels:
        step = steps.get(c, DEFAULT_STEPS.get(c, 40.0))
        frames: list[np.ndarray] = []
        if test:
            pca = BlockPCA.fit([im for _, im in train])
            frames = [pca.codes(im, c, step) for _, im in test]
        else:
            for i, (_, im) in enumerate(train[: max_frames or None]):
                pca = BlockPCA.fit([t for j, (_, t) in enumerate(train) if j != i])
                frames.append(pca.codes(im, c, step))
        sets.append(CodeSet(f"pca C={c} step={step:g}", frames, BLOCK * BLOCK))
    return sets, source


# --------------------------------------------------------------------------------------------
# measuring


@dataclass
class CodeSet:
    """Frames of codes of one model / operating point."""

    name: str
    frames: list[np.ndarray]
    pixels_per_code: int  # image pixels per spatial code position (64 for 1/8 resolution)

    @property
    def pixels(self) -> int:
        """Total image pixels over all frames."""
        return sum(int(np.prod(f.shape[1:])) * self.pixels_per_code for f in self.frames)


def load_code_file(path: Path, pixels_per_code: int, stacked: bool) -> "CodeSet":
    """A code set from a .npy file of integer codes: one frame (C, *spatial), or with
    ``stacked`` a stack of frames (N, C, *spatial)."""
    arr = np.load(path, allow_pickle=False)
    need = 3 if stacked else 2
    if arr.ndim < need:
        raise ValueError(f"{path}: codes must be {'(N, C, *spatial)' if stacked else '(C, *spatial)'}"
                         f", got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{path}: codes must be integers, got {arr.dtype}")
    if arr.dtype != np.int8:
        if arr.size and (arr.min() < -128 or arr.max() > 127):
            raise ValueError(f"{path}: values {arr.min()}..{arr.max()} do not fit int8")
        arr = arr.astype(np.int8)
    frames = list(arr) if stacked else [arr]
    if not frames:
        raise ValueError(f"{path}: no frames")
    return CodeSet(path.stem, [np.ascontiguousarray(f) for f in frames], pixels_per_code)


def sample_kind(manifest: dict) -> str:
    """The kind of bundled sample a model reads: its modality, or "audio-stereo" for 2-channel audio."""
    m = manifest
    return "audio-stereo" if m["modality"] == "audio" and m["sample"]["channels"] == 2 else m["modality"]


def bundled_sample_inputs() -> dict[str, list[np.ndarray]]:
    """Real held-out inputs per :func:`sample_kind` from encoder_runtime/samples (see its README):
    three photos, the speech and drum-loop clips (mono) or the stereo drum loop, a video clip, the
    MRI crops (8-bit and 12-bit), the hyperspectral frame, and the 40 BasicMotions test recordings
    for IMU models (left out when that data set is not cached)."""
    from encoder_runtime.media import read_input

    samples = REPO / "encoder_runtime" / "samples"

    def read(*names: str) -> list[np.ndarray]:
        return [read_input(samples / f)[0] for f in names]

    inputs = {
        "image": read("ColdRipple.png", "ColorfulCups.png", "Kite.png"),
        "audio": [np.ascontiguousarray(x if x.ndim == 1 else x[:, 0])
                  for x in read("speech_16k.wav", "loop_amen_16k.wav")],
        "audio-stereo": read("loop_amen_stereo_44k.wav"),
        "video": read("city_8f.y4m"),
        "volume": read("mri_colin27_crop.nii.gz"),
        "volume16": read("mri_dipy_s0_10slices.nii.gz"),
        "hyperspectral": read("hsi_abell478_12.npy"),
    }
    try:
        from export.train import load_training_arrays

        inputs["timeseries"] = [np.ascontiguousarray(a.T)
                                for a in load_training_arrays("timeseries", "test")]
    except (ImportError, SystemExit, OSError, ValueError, KeyError) as e:
        print(f"IMU models skipped: no BasicMotions test data ({type(e).__name__}: {e})")
    return inputs


def bundled_model_codes() -> dict[str, np.ndarray]:
    """One real frame's codes (C, *latent) per bundled model, from the first bundled sample of its
    kind (:func:`bundled_sample_inputs`; audio cut to 32k samples, mono speech from 30k): the code
    sets of the cross-platform byte-equality tests (x86 extension, aarch64, Cortex-M4)."""
    from encoder_runtime.codec import Encoder

    inputs = {k: v[0] for k, v in bundled_sample_inputs().items() if v}
    inputs["audio"] = inputs["audio"][30_000:62_001]
    inputs["audio-stereo"] = inputs["audio-stereo"][:32_001]
    out = {}
    for man in sorted((REPO / "encoder_runtime" / "models").glob("*/manifest.json")):
        x = inputs.get(sample_kind(json.loads(man.read_text())))
        if x is not None:
            out[man.parent.name] = np.ascontiguousarray(Encoder.load(man.parent.name).codes(
                np.ascontiguousarray(x))[0])
    return out


def bundled_code_sets(models: Sequence[str] | None = None) -> list[CodeSet]:
    """Real codes of the bundled models (``Encoder.codes``) on :func:`bundled_sample_inputs`.
    ``pixels_per_code`` is the model's input samples per code position (its transform block)."""
    from encoder_runtime.codec import Encoder

    inputs = bundled_sample_inputs()
    sets = []
    for man in sorted((REPO / "encoder_runtime" / "models").glob("*/manifest.json")):
        name = man.parent.name
        m = json.loads(man.read_text())
        kind = sample_kind(m)
        if (models and name not in models) or kind not in inputs:
            continue
        enc = Encoder.load(name)
        frames = [np.ascontiguousarray(enc.codes(x)[0]) for x in inputs[kind]]
        sets.append(CodeSet(name, frames, int(np.prod(m["transform"]["block"]))))
    return sets


class _Variant:
    """An unregistered coder configuration, timed for the design notes only (never in streams)."""

    def __init__(self, coder: entropy.LosslessCoder, label: str) -> None:
        self._coder, self.name = coder, label

    def encode(self, codes: np.ndarray) -> bytes:
        return self._coder.encode(codes)

    def decode(self, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        return self._coder.decode(data, shape)


class _CtxAcFormat1(entropy.CtxAcCoder):
    """``ctx-ac`` writing format 1, as versions before format 3 did (the decoder reads both)."""

    def _encode(self, codes: np.ndarray) -> bytes:
        return self._native.encode_format1(codes, *entropy._grid(codes.shape))


class _RansFormat2(entropy.RansCoder):
    """``rans`` writing format 2 on every frame, as versions before format 4 did (the decoder
    reads both)."""

    def _encode(self, codes: np.ndarray) -> bytes:
        return self._native.rans_encode_format2(codes, *entropy._grid(codes.shape))


def variant_coders() -> list[entropy.LosslessCoder]:
    """zstd-1, the default coder's transform at higher zstd levels and, with the native
    extension, ``ctx-ac``'s format 1 and ``rans``'s format 2 (the formats 3 and 4 replaced,
    timed in the same passes)."""
    out = [_Variant(entropy.ZstdCoder(1), "(zstd1)"),
           _Variant(entropy.SigplaneZstdCoder(level=3), "(sigplane-zstd@3)"),
           _Variant(entropy.SigplaneZstdCoder(level=9), "(sigplane-zstd@9)")]
    available = entropy.available_coders()
    if "ctx-ac" in available:
        out.append(_Variant(_CtxAcFormat1(), "(ctx-ac format 1)"))
    if "rans" in available:
        out.append(_Variant(_RansFormat2(), "(rans format 2)"))
    return out


def _pass(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, this thread's CPU seconds) of one call of ``fn``."""
    w0, c0 = time.perf_counter(), time.thread_time()
    fn()
    return time.perf_counter() - w0, time.thread_time() - c0


def measure_set(coders: Sequence[entropy.LosslessCoder], cs: CodeSet, repeats: int) -> list[dict]:
    """Rate and speed of every coder on every frame of ``cs`` (round trips checked).

    Timed passes (encode all frames, then decode all frames) are interleaved across coders,
    ``repeats`` rounds, so load from other processes hits every coder alike; coders slower than
    2 s per pass (zstd-19) get at most 3 passes. Speeds use the median pass. The headline
    MP/s use the thread's CPU time, which on a shared machine is close to what the same
    single-threaded work takes on an idle core; wall-clock MP/s are kept beside them.
    """
    blobs: dict[str, list[bytes]] = {}
    for coder in coders:
        blobs[coder.name] = [coder.encode(f) for f in cs.frames]
        for f, b in zip(cs.frames, blobs[coder.name]):
            back = coder.decode(b, f.shape)
            if back.dtype != np.int8 or not np.array_equal(back, f):
                raise AssertionError(f"{coder.name} does not round-trip on {cs.name}")
    enc: dict[str, list[tuple[float, float]]] = {c.name: [] for c in coders}
    dec: dict[str, list[tuple[float, float]]] = {c.name: [] for c in coders}
    for rnd in range(repeats):
        for coder in coders:
            if rnd >= 3 and enc[coder.name][0][0] > 2.0:
                continue
            bl = blobs[coder.name]
            enc[coder.name].append(_pass(lambda: [coder.encode(f) for f in cs.frames]))
            dec[coder.name].append(_pass(lambda: [coder.decode(b, f.shape)
                                                  for f, b in zip(cs.frames, bl)]))
    mp, n = cs.pixels / 1e6, len(cs.frames)
    codes = sum(f.size for f in cs.frames)
    rows = []
    for coder in coders:
        e, d = enc[coder.name], dec[coder.name]
        te, td = statistics.median(t[1] for t in e), statistics.median(t[1] for t in d)
        nbytes = sum(len(b) for b in blobs[coder.name])
        rows.append({
            "coder": coder.name,
            "bytes": nbytes,
            "bpp": nbytes * 8 / cs.pixels,
            "enc_mps": mp / te,
            "dec_mps": mp / td,
            "enc_ms_per_frame": te * 1e3 / n,
            "dec_ms_per_frame": td * 1e3 / n,
            "enc_mps_wall": mp / statistics.median(t[0] for t in e),
            "dec_mps_wall": mp / statistics.median(t[0] for t in d),
            "passes": len(e),
            "enc_mcodes_s": codes / te / 1e6,  # int8 codes per second (issue 12's unit)
            "dec_mcodes_s": codes / td / 1e6,
        })
    return rows


def machine_info() -> dict:
    """Machine, versions and thread settings printed with every result."""
    import zstandard

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"machine": platform.machine(), "cpu": cpu, "cores": os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__,
            "zstandard": zstandard.__version__, "zstd": ".".join(map(str, zstandard.ZSTD_VERSION)),
            "threads": 1, "loadavg_start": list(os.getloadavg())}
    try:
        import jpeg_ls  # noqa: F401
        from importlib.metadata import version

        info["pyjpegls"] = version("pyjpegls")
    except Exception:  # optional
        pass
    try:
        info["affinity"] = sorted(os.sched_getaffinity(0))
    except AttributeError:
        pass
    return info


def _plot(results: list[dict], path: Path) -> None:
    """Rate (relative to zstd19) vs encode speed, one panel per code set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(dict.fromkeys(r["set"] for r in results))
    fig, axes = plt.subplots(1, len(sets), figsize=(6.5 * len(sets), 4.8), squeeze=False)
    for ax, name in zip(axes[0], sets):
        rows = sorted((r for r in results if r["set"] == name), key=lambda r: r["rate_vs_zstd19"])
        for i, r in enumerate(rows):
            variant = r["coder"].startswith("(")
            default = r["coder"] == entropy.DEFAULT_CODER
            ax.scatter(r["enc_mps"], r["rate_vs_zstd19"], s=140 if default else 40,
                       marker="*" if default else "o", color="grey" if variant else None,
                       zorder=3)
            ax.annotate(r["coder"], (r["enc_mps"], r["rate_vs_zstd19"]), fontsize=8,
                        color="grey" if variant else "black",
                        xytext=(6, -10 if i % 2 else 4), textcoords="offset points")
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.axvline(393.2, color="red", lw=0.8, ls=":", label="1 ms per 768x512 frame")
        ax.set_xscale("log")
        ax.set_xlabel("encode speed, image MP/s (1 thread, CPU time, median pass)")
        ax.set_ylabel("rate / rate(zstd19)")
        ax.set_title(f"{name}: {rows[0]['frames']} frames", fontsize=9)
        ax.legend(fontsize=8, loc="center left")
        ax.grid(alpha=0.3)
    fig.suptitle("lossless coders for int8 latent codes (lower = smaller, right = faster)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print a table; write JSON (and PNG)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--codes", type=Path, action="append", default=[],
                    help=".npy file of int8 codes (C, *spatial) or (N, C, *spatial); repeatable")
    ap.add_argument("--stacked", action="store_true",
                    help="--codes files hold a stack of frames (N, C, *spatial)")
    ap.add_argument("--pixels-per-code", type=int, default=BLOCK * BLOCK,
                    help="image pixels per spatial code position for --codes (default 64)")
    ap.add_argument("--bundled", nargs="*", metavar="MODEL", default=None,
                    help="real codes of the bundled models (all, or the ones named) on the "
                         "bundled samples; see bundled_code_sets()")
    ap.add_argument("--channels", type=int, nargs="+", default=[12, 48],
                    help="latent widths of the synthetic PCA codes (default 12 48)")
    ap.add_argument("--coders", nargs="+", default=None, help="coders to run (default: all available)")
    ap.add_argument("--variants", action="store_true",
                    help="also time unregistered variants (zstd1, sigplane-zstd at zstd levels 3/9, "
                         "ctx-ac format 1, rans format 2)")
    ap.add_argument("--repeats", type=int, default=5, help="timed passes; the median is reported")
    ap.add_argument("--quick", action="store_true", help="6 frames, 3 repeats (smoke run)")
    ap.add_argument("--debs", type=Path, default=REPO / "data" / "cache" / "debs")
    ap.add_argument("--cache", type=Path, default=REPO / "data" / "cache" / "lossless-bench")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "lossless.json")
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)
    repeats = 3 if args.quick else args.repeats

    if args.bundled is not None:
        sets = bundled_code_sets(args.bundled)
        source = ("bundled models on the bundled samples (3 photos / 2 clips / 40 BasicMotions "
                  "test recordings)")
    elif args.codes:
        sets = [load_code_file(p, args.pixels_per_code, args.stacked) for p in args.codes]
        source = "files: " + ", ".join(str(p) for p in args.codes)
    else:
        sets, source = synthetic_code_sets(args.channels, {}, args.debs, args.cache,
                                           6 if args.quick else None)
    names = args.coders or entropy.available_coders()
    if "zstd19" not in names:
        names = ["zstd19", *names]
    coders = [entropy.get_coder(n) for n in names]
    if args.variants:
        coders += variant_coders()
    info = machine_info()
    print("machine:", json.dumps(info))
    print("codes:", source)
    results: list[dict] = []
    for cs in sets:
        c = cs.frames[0].shape[0]
        vals = np.concatenate([f.ravel() for f in cs.frames])
        print(f"\n{cs.name}: {len(cs.frames)} frames, C={c}, spatial {cs.frames[0].shape[1:]}, "
              f"values {vals.min()}..{vals.max()}, zeros {np.mean(vals == 0):.1%}")
        print(f"{'coder':<22}{'bpp':>9}{'vs zstd19':>11}{'enc MP/s':>11}{'dec MP/s':>11}"
              f"{'enc ms/fr':>11}{'dec ms/fr':>11}{'enc wall':>10}{'dec wall':>10}"
              f"{'enc Mc/s':>10}{'dec Mc/s':>10}")
        rows = measure_set(coders, cs, repeats)
        base = next(r for r in rows if r["coder"] == "zstd19")
        fast = next((r for r in rows if r["coder"] == "zstd3"), None)
        for r in rows:
            r.update(set=cs.name, channels=c, frames=len(cs.frames),
                     rate_vs_zstd19=r["bpp"] / base["bpp"],
                     enc_speed_vs_zstd19=r["enc_mps"] / base["enc_mps"])
            if fast is not None:  # a fast baseline timed in the same rounds: robust to load
                r["enc_speed_vs_zstd3"] = r["enc_mps"] / fast["enc_mps"]
            print(f"{r['coder']:<22}{r['bpp']:>9.4f}{r['rate_vs_zstd19']:>11.3f}{r['enc_mps']:>11.0f}"
                  f"{r['dec_mps']:>11.0f}{r['enc_ms_per_frame']:>11.3f}{r['dec_ms_per_frame']:>11.3f}"
                  f"{r['enc_mps_wall']:>10.0f}{r['dec_mps_wall']:>10.0f}"
                  f"{r['enc_mcodes_s']:>10.1f}{r['dec_mcodes_s']:>10.1f}")
        results.extend(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    info["loadavg_end"] = list(os.getloadavg())
    doc = {"benchmark": "lossless", "default_coder": entropy.DEFAULT_CODER, "codes": source,
           "repeats": repeats, "speed_note": "MP/s = image megapixels per second, one thread, "
           "median pass over all frames, from the thread's CPU time (*_wall: wall clock, "
           "inflated by other load on a shared machine); passes interleaved across coders",
           "machine": info, "results": results}
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\nwrote {args.out}")
    if not args.no_plot:
        png = args.out.with_suffix(".png")
        _plot(results, png)
        print(f"wrote {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
