"""Real training and test data, fetched from Debian packages into a cache and checked by sha256.

``python -m export.data fetch`` downloads pinned Debian data packages (wallpaper photographs,
speech, wideband sound samples), unpacks them, and derives:

* ``images/test/*.png``  held-out photos: Lanczos-downscaled to short side 512, centre-cropped to
  768×512 (portrait 512×768). Never used for training, tuning or initialisation.
* ``images/train/*.png`` the other photos at 1/2 of source size.
* ``audio/{train,test}/*.wav`` mono 16 kHz int16 (speech and wideband sounds).

The split is by source file, so no content leaks between train and test. Every derived file's
sha256 is checked against the committed ``data/manifest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from encoder_runtime.bundle import sha256_file

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


def _download_debs(cache: Path) -> dict[str, Path]:
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, version in PACKAGES.items():
        found = [p for p in debs.glob(f"{name}_*.deb")]
        if not found:
            subprocess.run(["apt-get", "download", f"{name}={version}"], cwd=debs, check=True,
                           stdout=subprocess.DEVNULL)
            found = list(debs.glob(f"{name}_*.deb"))
        out[name] = found[0]
    return out


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
    cache.mkdir(parents=True, exist_ok=True)
    stamp = cache / ".derived"
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    if stamp.exists() and not force and not write_manifest:
        return cache
    debs = _download_debs(cache)
    for name, deb in debs.items():
        want = manifest.get("debs", {}).get(name)
        got = sha256_file(deb)
        if want and want != got and not write_manifest:
            raise SystemExit(f"{deb}: sha256 {got} does not match the manifest ({want})")
    root = cache / "root"
    for deb in debs.values():
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    for sub in ("images", "audio"):
        shutil.rmtree(cache / sub, ignore_errors=True)
    _derive_images(root, cache)
    _derive_audio(root, cache)
    files = derived_files(cache)
    if write_manifest:
        MANIFEST.parent.mkdir(parents=True, exist_ok=True)
        MANIFEST.write_text(json.dumps({
            "packages": PACKAGES,
            "debs": {n: sha256_file(p) for n, p in debs.items()},
            "test_photos": sorted(TEST_PHOTOS),
            "files": files}, indent=1, sort_keys=True) + "\n")
    else:
        bad = [k for k, v in manifest.get("files", {}).items() if files.get(k) != v]
        if bad:
            print(f"warning: {len(bad)} derived files differ from data/manifest.json "
                  f"(first: {bad[0]}); a Pillow/scipy upgrade can change bytes", file=sys.stderr)
    stamp.write_text("ok\n")
    return cache


def image_paths(split: str, cache: Path = DEFAULT_CACHE) -> list[Path]:
    """Derived image files of a split ('train' or 'test')."""
    return sorted((cache / "images" / split).glob("*.png"))


def audio_paths(split: str, cache: Path = DEFAULT_CACHE) -> list[Path]:
    """Derived 16 kHz mono WAV (or int16 .npy) files of a split."""
    folder = cache / "audio" / split
    return sorted(list(folder.glob("*.wav")) + list(folder.glob("*.npy")))


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
    pkg, version, fname, want = BASICMOTIONS_WHEEL
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    whl = wheels / fname
    if not whl.is_file():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                        "-q", "-d", str(wheels), f"{pkg}=={version}"], check=True)
    got = sha256_file(whl)
    if got != want:
        raise SystemExit(f"{whl}: sha256 {got} does not match the pinned {want}")
    out.mkdir(parents=True, exist_ok=True)
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


def main(argv: list[str] | None = None) -> int:
    """``python -m export.data fetch``: build the data cache."""
    ap = argparse.ArgumentParser(prog="sensor-data", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="download and derive the data set")
    f.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    f.add_argument("--write-manifest", action="store_true", help="(maintainers) record new sha256s")
    f.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    cache = fetch(args.cache, write_manifest=args.write_manifest, force=args.force)
    print(f"{cache}: {len(image_paths('train', cache))} train / {len(image_paths('test', cache))} "
          f"test photos, {len(audio_paths('train', cache))} train / "
          f"{len(audio_paths('test', cache))} test audio clips")
    return 0


if __name__ == "__main__":
    sys.exit(main())
