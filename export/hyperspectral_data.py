"""Real hyperspectral cubes: VLT/MUSE integral-field data cubes shipped in the mpdaf wheel.

Source: PyPI ``mpdaf`` 3.6 (BSD-3-Clause; MUSE data courtesy of the MUSE consortium / ESO), fetched
with ``pip download --no-deps`` (nothing installed) and pinned by sha256. The wheel holds two real
cubes:

* ``mpdaf/data/sdetect/minicube.fits`` — Abell 478 (ESO VLT-U4 MUSE, 2014-12-08, 900 s),
  40×40 spaxels × 3681 channels (4750–9350 Å, 1.25 Å), per-sample SNR ≈ 3–10 after binning.
* ``mpdaf/data/sdetect/subcub_mosaic.fits`` — Hubble Ultra Deep Field mosaic (MUSE, 10 h),
  30×30 spaxels × 500 channels (4750–5374 Å): faint galaxies under noise (per-sample SNR < 1).

(``mpdaf/data/obj/CUBE.fits`` is a pre-commissioning *simulation* — dated 2011, before MUSE saw
light, RA/Dec exactly 20°/−30° — and is not used.)

Splits: ``train`` = Abell 478 frames 0–9 (4750–7950 Å); ``test`` = Abell 478 frames 11–14
(8270–9350 Å, held out by wavelength; frame 10 is a guard band and not used); ``test_udf`` = the
whole UDF cube (held out by source cube; noise-dominated, so it says little about rate–distortion:
see benchmarks/hyperspectral_rd.py). Only two real cubes exist here, so a split by source cube
alone would leave a noise-only test set.

Sensor model: a 32-band imaging spectrometer with 12-bit unsigned samples. Each band is the mean
of :data:`BIN` adjacent native channels (10 Å); the binned spectrum is cut into frames of
:data:`BANDS` consecutive bands (the last frame ends at the last band, overlapping the one before);
samples are ``DN = clip(round(flux · SCALE) + OFFSET, 0, 4095)`` with flux in the cubes' unit
10⁻²⁰ erg s⁻¹ cm⁻² Å⁻¹ (1 DN = 0.125 unit; OFFSET keeps the noise around zero flux positive).
Frames are stored as ``hyperspectral/<split>/<cube>_<k>.npy`` (H×W×32 uint16), checked
against ``data/manifest.json`` ("hyperspectral" → "files").
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import numpy as np

from encoder_runtime.bundle import sha256_file

from .data import DEFAULT_CACHE, MANIFEST, DataError, cache_dir, pinned_download

WHEEL = ("mpdaf", "3.6", "mpdaf-3.6-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
         "c76e20ae254012669ed966c35f2acd31ced81acc31946d9a04587cce3578ee17")
#: cube name → member of the wheel
CUBES = {"abell478": "mpdaf/data/sdetect/minicube.fits",
         "udf": "mpdaf/data/sdetect/subcub_mosaic.fits"}
#: split → (cube name, frame indices or None for all)
SPLITS = {"train": ("abell478", range(0, 10)), "test": ("abell478", range(11, 15)),
          "test_udf": ("udf", None)}
BANDS = 32
BIN = 8
SCALE = 8.0
OFFSET = 256
SAMPLE_BITS = 12
FITS_BLOCK = 2880


def read_fits_cube(blob: bytes, extname: str = "DATA") -> tuple[np.ndarray, dict]:
    """(float64 array as stored, header cards) of the image HDU named ``extname`` of a FITS file
    (numpy only: 2880-byte header blocks of 80-character cards, big-endian data)."""
    pos = 0
    while pos < len(blob):
        cards: dict[str, str] = {}
        while True:
            block = blob[pos:pos + FITS_BLOCK]
            if len(block) < FITS_BLOCK:
                raise DataError(f"FITS: truncated header at byte {pos}")
            pos += FITS_BLOCK
            lines = [block[i:i + 80].decode("ascii", "replace") for i in range(0, FITS_BLOCK, 80)]
            for ln in lines:
                key = ln[:8].strip()
                if ln[8:10] == "= ":
                    cards[key] = ln[10:].split("/")[0].strip().strip("'").strip()
            if any(ln[:8].strip() == "END" for ln in lines):
                break
        bitpix, naxis = int(cards.get("BITPIX", 8)), int(cards.get("NAXIS", 0))
        shape = tuple(int(cards[f"NAXIS{i}"]) for i in range(naxis, 0, -1))
        nbytes = abs(bitpix) // 8 * (int(np.prod(shape)) if naxis else 0)
        nbytes += int(cards.get("PCOUNT", 0))
        if cards.get("EXTNAME") == extname:
            dt = {-32: ">f4", -64: ">f8", 16: ">i2", 32: ">i4"}.get(bitpix)
            if dt is None:
                raise DataError(f"FITS HDU {extname}: BITPIX {bitpix} not supported")
            data = np.frombuffer(blob, dtype=dt, count=int(np.prod(shape)), offset=pos)
            return data.reshape(shape).astype(np.float64), cards
        pos += -(-nbytes // FITS_BLOCK) * FITS_BLOCK
    raise DataError(f"FITS: no HDU with EXTNAME={extname}")


def cube_frames(cube: np.ndarray) -> list[np.ndarray]:
    """(channels, H, W) flux → frames H×W×BANDS uint16 (module doc: binning, cutting, DN scale)."""
    n = cube.shape[0] // BIN
    binned = np.nan_to_num(cube[: n * BIN]).reshape(n, BIN, *cube.shape[1:]).mean(axis=1)
    if n < BANDS:
        raise DataError(f"cube has {cube.shape[0]} channels: fewer than {BANDS}×{BIN}")
    starts = list(range(0, n - BANDS + 1, BANDS))
    if starts[-1] + BANDS < n:
        starts.append(n - BANDS)
    dn = np.clip(np.round(binned * SCALE) + OFFSET, 0, 2 ** SAMPLE_BITS - 1).astype(np.uint16)
    return [np.ascontiguousarray(dn[s:s + BANDS].transpose(1, 2, 0)) for s in starts]


def flux(frame: np.ndarray) -> np.ndarray:
    """Samples (DN) → flux in 10⁻²⁰ erg s⁻¹ cm⁻² Å⁻¹ (float64)."""
    return (frame.astype(np.float64) - OFFSET) / SCALE


def fetch_hyperspectral(cache: Path = DEFAULT_CACHE) -> Path:
    """Derive ``hyperspectral/{train,test}/*.npy`` from the pinned mpdaf wheel (once)."""
    out = cache / "hyperspectral"
    if (out / ".derived").is_file():
        return out
    whl = pinned_download(cache, "wheels", *WHEEL, "--only-binary=:all:")
    out = cache_dir(cache, "hyperspectral")
    with zipfile.ZipFile(whl) as zf:
        frames = {name: cube_frames(read_fits_cube(zf.read(member))[0])
                  for name, member in CUBES.items()}
    for split, (name, keep) in SPLITS.items():
        (out / split).mkdir(parents=True, exist_ok=True)
        for k, frame in enumerate(frames[name]):
            if keep is None or k in keep:
                np.save(out / split / f"{name}_{k:02d}.npy", frame, allow_pickle=False)
    manifest = json.loads(MANIFEST.read_text()).get("hyperspectral", {}).get("files", {}) \
        if MANIFEST.exists() else {}
    for rel, entry in manifest.items():
        p = cache / rel
        if not p.is_file() or sha256_file(p) != entry["sha256"]:
            print(f"warning: {p}: missing or sha256 differs from data/manifest.json "
                  f"hyperspectral.files", file=sys.stderr)
    (out / ".derived").write_text("ok\n")
    return out


def frame_paths(split: str, cache: Path = DEFAULT_CACHE) -> list[Path]:
    """The derived H×W×32 uint16 frames of a split ('train', 'test' or 'test_udf')."""
    if split not in SPLITS:
        raise ValueError(f"hyperspectral split {split!r}: expected one of {', '.join(SPLITS)}")
    return sorted((fetch_hyperspectral(cache) / split).glob("*.npy"))


def training_arrays(split: str, cache: Path = DEFAULT_CACHE) -> list[np.ndarray]:
    """The frames of a split as (32, H, W) uint16 arrays (channels first, for training)."""
    return [np.load(p, allow_pickle=False).transpose(2, 0, 1).copy()
            for p in frame_paths(split, cache)]


def manifest_entry(cache: Path = DEFAULT_CACHE) -> dict:
    """The "hyperspectral" entry of data/manifest.json: wheel, cubes, sensor model, per-file sha256."""
    pkg, version, fname, sha = WHEEL
    files = {}
    for split, (name, _) in SPLITS.items():
        for p in frame_paths(split, cache):
            files[str(p.relative_to(cache))] = {"package": pkg, "version": version,
                                                "path": CUBES[name], "sha256": sha256_file(p)}
    return {"wheel": {"package": pkg, "version": version, "file": fname, "sha256": sha,
                      "licence": "BSD-3-Clause (mpdaf); MUSE data: MUSE consortium / ESO"},
            "sensor": {"bands": BANDS, "bin_channels": BIN, "scale_dn_per_unit": SCALE,
                       "offset_dn": OFFSET, "bits": SAMPLE_BITS,
                       "unit": "1e-20 erg/s/cm2/Angstrom"},
            "files": files}



def sample_info() -> dict:
    """What a bundle's manifest records about the samples (``sample`` field): the sensor model."""
    return {"bands": BANDS, "offset_dn": OFFSET, "flux_per_dn": 1 / SCALE, "bin_angstrom": BIN * 1.25,
            "unit": "1e-20 erg/s/cm2/Angstrom"}


if __name__ == "__main__":
    entry = manifest_entry()
    if "--write-manifest" in sys.argv:
        m = json.loads(MANIFEST.read_text())
        m["hyperspectral"] = entry
        MANIFEST.write_text(json.dumps(m, indent=1, sort_keys=True) + "\n")
    print(json.dumps({k: len(v) if k == "files" else v for k, v in entry.items()}, indent=1))
