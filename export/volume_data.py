"""Real 3-D medical volumes (MRI) for the volume models, fetched into ``data/cache/volumes``.

Sources (pinned; each source file's sha256 is checked, derived files are recorded in
``data/manifest.json`` under "volumes"):

* Debian ``mricron-data`` 1.2.20211006+dfsg-4: Colin27 ``ch2.nii.gz`` (T1, one subject, 27
  averages, 181×217×181 u8, 1 mm) and the INIA19 macaque template ``inia19-t1-brain.nii.gz``
  (float32, rescaled to u8 here).
* PyPI ``nilearn`` 0.14.1 wheel: MNI152 2009a T1 template (197×233×189 u8, 1 mm).
* PyPI ``nibabel`` 5.4.2 wheel: ``example4d.nii.gz`` (real fMRI, 128×96×24 × 2 volumes, int16
  0..1162).
* PyPI ``dipy`` 1.12.1 wheel: ``S0_10slices.nii.gz`` (real diffusion b0, 128×128×10 u16, 12-bit)
  and ``aniso_vox.nii.gz`` (58×58×24 int16 0..2149).

Wheels and the .deb are only unpacked (``pip download --no-deps`` / ``apt-get download``), never
installed. Split by subject / source file (no subject in both):

=========  ==========================================  ===================================
kind       train                                        test (held out)
=========  ==========================================  ===================================
``u8``     MNI152 T1 (average), INIA19 (macaque)        Colin27 ch2 (single human subject)
``u12``    nibabel example4d (2 vols), dipy aniso_vox   dipy S0_10slices (other subject)
=========  ==========================================  ===================================

Derived files are ``volumes/<kind>/<split>/<name>.npy``: (X, Y, Z) arrays in the NIfTI's voxel
order; ``u8`` as uint8, ``u12`` as uint16 in 0..4095.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

from encoder_runtime.bundle import sha256_file

from . import data as datasets

MRICRON = ("mricron-data", "1.2.20211006+dfsg-4")
MRICRON_SHA256 = "d40aa0ed66cf89bf6cafa049ad3884703c9d975c2ee2737525b7196528df9d6f"
#: PyPI wheels (data members only; never installed): name → (version, file, sha256). dipy's is a
#: platform wheel: pip is asked for exactly this file on any host (export/data.py
#: wheel_tag_options); its data members are the same in every platform's wheel.
WHEELS = {
    "nilearn": ("0.14.1", "nilearn-0.14.1-py3-none-any.whl",
                "725206484e9fb3f6691f9c2d20204a068759d5072f12055324702ee0cb2bbe8a"),
    "nibabel": ("5.4.2", "nibabel-5.4.2-py3-none-any.whl",
                "553482c5f1e1034fc312edf6fb7f32236c0056439845d1c29293b7e8c98d4854"),
    "dipy": ("1.12.1", "dipy-1.12.1-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64."
                       "manylinux_2_28_x86_64.whl",
             "65013b80f6e61c4c52de7b61da6e36afa76b09ccfe8c456414519b36609d7bb6"),
}
T = "usr/share/mricron/templates/"
# derived name → (kind, split, source, member path, member sha256, volume index along axis 3)
SOURCES = {
    "colin27_ch2": ("u8", "test", "mricron-data", T + "ch2.nii.gz",
                    "a009051127f64dc3dd554d5f5b589870ea72106d9642c21b4e7093e478cfc309", None),
    "inia19_t1": ("u8", "train", "mricron-data", T + "inia19-t1-brain.nii.gz",
                  "3f0707f4999a0c6b56d6c9a0145310cba17753e2b4612f577d8dbfe65a89e231", None),
    "mni152_t1": ("u8", "train", "nilearn",
                  "nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
                  "421a10e872fd6cadae7f61d358dffbcc1795a497d61ee76c5dda2503e1a1e9e6", None),
    "example4d_v0": ("u12", "train", "nibabel", "nibabel/tests/data/example4d.nii.gz",
                     "42097dfbab9d2a036b41ae5c97a359591cf2cf5c3f8dc6ca6455c0b8a7f22696", 0),
    "example4d_v1": ("u12", "train", "nibabel", "nibabel/tests/data/example4d.nii.gz",
                     "42097dfbab9d2a036b41ae5c97a359591cf2cf5c3f8dc6ca6455c0b8a7f22696", 1),
    "aniso_vox": ("u12", "train", "dipy", "dipy/data/files/aniso_vox.nii.gz",
                  "8440b6366d3dbd58d8f5af3ef6764dbd65e35b1061abe7bf4dc8fac32fb7aff7", None),
    "s0_10slices": ("u12", "test", "dipy", "dipy/data/files/S0_10slices.nii.gz",
                    "b77985d533c8b0b2f4a7d276e6b0d8388df9966b5c9d67be7c1cbd4178285e14", 0),
}
KINDS = {"u8": np.uint8, "u12": np.uint16}
U12_MAX = 4095


def _nibabel():
    try:
        import nibabel
    except ImportError:
        raise datasets.DataError("volume data needs nibabel: pip install 'sensorcodec[volume]'") from None
    return nibabel


def _deb_member(cache: Path, member: str) -> bytes:
    deb = datasets.pinned_deb(cache, *MRICRON, MRICRON_SHA256)
    root = cache / "volumes" / "src" / "mricron"
    if not (root / member).is_file():
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return (root / member).read_bytes()


def _wheel_member(cache: Path, pkg: str, member: str) -> bytes:
    whl = datasets.pinned_download(cache, "wheels", pkg, *WHEELS[pkg], "--only-binary=:all:")
    with zipfile.ZipFile(whl) as zf:
        return zf.read(member)


def _to_kind(a: np.ndarray, kind: str, name: str) -> np.ndarray:
    """Source voxels → the kind's integer range (floats rescaled to 0..255; ints checked)."""
    if kind == "u8" and a.dtype.kind == "f":
        a = np.round(np.clip(a, 0, None) * (255.0 / float(a.max())))
    lim = 255 if kind == "u8" else U12_MAX
    if a.min() < 0 or a.max() > lim:
        raise datasets.DataError(f"volume {name}: values {a.min()}..{a.max()} outside 0..{lim}")
    return a.astype(KINDS[kind])


def _derive(cache: Path, name: str) -> Path:
    kind, split, src, member, want, index = SOURCES[name]
    out = cache / "volumes" / kind / split / f"{name}.npy"
    if out.is_file():
        return out
    blob = _deb_member(cache, member) if src == MRICRON[0] else _wheel_member(cache, src, member)
    import hashlib
    got = hashlib.sha256(blob).hexdigest()
    if got != want:
        raise datasets.DataError(f"{src}:{member}: sha256 {got} does not match the pinned {want}")
    nib = _nibabel()
    img = nib.Nifti1Image.from_bytes(_gunzip(blob))
    a = np.asanyarray(img.dataobj)
    if a.ndim == 4:
        a = a[..., index or 0]
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, _to_kind(np.asarray(a), kind, name), allow_pickle=False)
    return out


def _gunzip(blob: bytes) -> bytes:
    import gzip
    return gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob


def fetch_volumes(cache: Path = datasets.DEFAULT_CACHE, names: list[str] | None = None) -> Path:
    """Derive the volumes ``names`` (default: all of :data:`SOURCES`) into ``cache/volumes``
    (downloads what is missing) and warn when a derived file differs from data/manifest.json."""
    datasets.claim_cache_dirs(cache, ("volumes",))
    want = json.loads(datasets.MANIFEST.read_text()).get("volumes", {}).get("files", {}) \
        if datasets.MANIFEST.exists() else {}
    for name in names or SOURCES:
        p = _derive(cache, name)
        rel = str(p.relative_to(cache))
        if rel in want and sha256_file(p) != want[rel]["sha256"]:
            print(f"warning: {p}: sha256 differs from data/manifest.json volumes.files",
                  file=sys.stderr)
    return cache / "volumes"


def volume_paths(kind: str, split: str, cache: Path = datasets.DEFAULT_CACHE) -> list[Path]:
    """Derived ``.npy`` volumes of ``kind`` ('u8' or 'u12') and ``split`` ('train' or 'test')."""
    if kind not in KINDS or split not in ("train", "test"):
        raise ValueError(f"volume kind/split {kind!r}/{split!r}: expected u8|u12 and train|test")
    names = [n for n, (k, s, *_) in SOURCES.items() if k == kind and s == split]
    fetch_volumes(cache, names)
    return [cache / "volumes" / kind / split / f"{n}.npy" for n in names]


def volume_arrays(kind: str, split: str, cache: Path = datasets.DEFAULT_CACHE) -> list[np.ndarray]:
    """The volumes of :func:`volume_paths` as (1, X, Y, Z) arrays (channel first)."""
    return [np.load(p, allow_pickle=False)[None] for p in volume_paths(kind, split, cache)]


def volumes_manifest(cache: Path = datasets.DEFAULT_CACHE) -> dict:
    """The "volumes" entry of data/manifest.json: sources and, per derived file, provenance."""
    files = {}
    for name, (kind, split, src, member, sha, index) in SOURCES.items():
        p = cache / "volumes" / kind / split / f"{name}.npy"
        a = np.load(p, mmap_mode="r")
        files[str(p.relative_to(cache))] = {
            "source": src, "version": MRICRON[1] if src == MRICRON[0] else WHEELS[src][0],
            "member": member, "member_sha256": sha, "volume_index": index,
            "shape": list(a.shape), "dtype": str(a.dtype), "sha256": sha256_file(p)}
    return {"deb": {MRICRON[0]: {"version": MRICRON[1], "sha256": MRICRON_SHA256}},
            "wheels": {n: {"version": v, "file": f, "sha256": h} for n, (v, f, h) in WHEELS.items()},
            "files": files}


def main(argv: list[str] | None = None) -> int:
    """``python -m export.volume_data fetch [--write-manifest]``."""
    import argparse
    ap = argparse.ArgumentParser(prog="python -m export.volume_data", description=__doc__.splitlines()[0])
    ap.add_argument("cmd", choices=["fetch"])
    ap.add_argument("--cache", type=Path, default=datasets.DEFAULT_CACHE)
    ap.add_argument("--write-manifest", action="store_true", help="(maintainers) record sha256s")
    args = ap.parse_args(argv)
    try:
        fetch_volumes(args.cache)
    except datasets.DataError as exc:
        print(f"sensor-data: error: {exc}", file=sys.stderr)
        return 2
    if args.write_manifest:
        manifest = json.loads(datasets.MANIFEST.read_text())
        manifest["volumes"] = volumes_manifest(args.cache)
        datasets.MANIFEST.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    for kind in KINDS:
        for split in ("train", "test"):
            print(kind, split, [p.name for p in volume_paths(kind, split, args.cache)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
