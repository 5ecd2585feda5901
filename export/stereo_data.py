"""Real stereo 44.1 kHz audio for the joint multichannel models (issue 11).

The 92 stereo FLACs of the pinned Debian ``sonic-pi-samples`` package (already unpacked by
:func:`export.data.fetch`), written unchanged in rate and channels as int16 WAV under
``audio_stereo44k/{train,test}/<stem>.wav`` (the two 24-bit files are rounded to 16 bits). The
split is by source file and is the same as the 16 kHz audio set's (``export.data.SONIC_TEST``), so
no test sound was trained on by any audio model. Every file's sha256 is checked against
``data/manifest.json`` → ``"audio_stereo44k"``. Model selection uses a validation split of the
train files (``val``: every ``VAL_EVERY``-th by name; ``fit``: the rest), never the test files.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from encoder_runtime.bundle import sha256_file

from . import data as datasets

SUB = "audio_stereo44k"
RATE_HZ = 44100
MIN_SECONDS = 0.25
VAL_EVERY = 6
SPLITS = ("train", "test", "fit", "val")


def _source_flacs(cache: Path) -> list[Path]:
    return sorted((cache / "root/usr/share/sonic-pi/samples").glob("*.flac"))


def to_int16(data: np.ndarray) -> np.ndarray:
    """int32-scaled samples (soundfile ``dtype='int32'``) → int16, rounded and clipped."""
    return np.clip(np.round(data / 65536.0), -32768, 32767).astype(np.int16)


def fetch_stereo(cache: Path = datasets.DEFAULT_CACHE) -> Path:
    """Derive ``cache/audio_stereo44k/{train,test}/*.wav`` (stereo 44.1 kHz int16) once; warn
    (stderr) for a file whose sha256 differs from the manifest. Returns the folder."""
    import soundfile as sf
    out = cache / SUB
    if not (out / ".done").is_file():
        datasets.fetch(cache)
        datasets.cache_dir(cache, SUB)
        for flac in _source_flacs(cache):
            data, rate = sf.read(flac, dtype="int32", always_2d=True)
            if data.shape[1] != 2 or rate != RATE_HZ or len(data) < MIN_SECONDS * RATE_HZ:
                continue
            split = "test" if flac.stem in datasets.SONIC_TEST else "train"
            (out / split).mkdir(parents=True, exist_ok=True)
            sf.write(out / split / f"{flac.stem}.wav", to_int16(data), RATE_HZ, subtype="PCM_16")
        (out / ".done").write_text("ok\n")
    want = (json.loads(datasets.MANIFEST.read_text()).get(SUB, {})
            if datasets.MANIFEST.exists() else {})
    bad = [k for k, v in manifest_files(cache).items() if want.get(k, v) != v]
    if bad:
        print(f"warning: {len(bad)} stereo files differ from data/manifest.json {SUB} "
              f"(first: {bad[0]})", file=sys.stderr)
    return out


def manifest_files(cache: Path = datasets.DEFAULT_CACHE) -> dict[str, str]:
    """relative path → sha256 of every derived stereo file (the manifest's ``audio_stereo44k``)."""
    return {str(p.relative_to(cache)): sha256_file(p)
            for p in sorted((cache / SUB).glob("*/*.wav"))}


def stereo_paths(split: str, cache: Path = datasets.DEFAULT_CACHE) -> list[Path]:
    """The stereo 44.1 kHz WAV files of a split, fetched first: 'train' or 'test', or the train
    files' validation part 'val' (every ``VAL_EVERY``-th by name) and the rest, 'fit'."""
    if split not in SPLITS:
        raise ValueError(f"stereo split {split!r}: expected one of {', '.join(SPLITS)}")
    files = sorted((fetch_stereo(cache) / ("test" if split == "test" else "train")).glob("*.wav"))
    if split == "val":
        return files[::VAL_EVERY]
    return [f for i, f in enumerate(files) if i % VAL_EVERY] if split == "fit" else files


def stereo_arrays(split: str, cache: Path = datasets.DEFAULT_CACHE) -> list[np.ndarray]:
    """The split as (2, N) int16 arrays."""
    import soundfile as sf
    return [np.ascontiguousarray(sf.read(p, dtype="int16")[0].T) for p in stereo_paths(split, cache)]
