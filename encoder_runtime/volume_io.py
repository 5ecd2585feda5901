"""3-D volume files: NIfTI-1 (``.nii``, ``.nii.gz``, via nibabel) and multi-page TIFF stacks
(via Pillow), with the voxel geometry kept in the stream's ``meta``.

A volume comes back as an integer (X, Y, Z) array (NIfTI voxel order) or (pages, H, W) (TIFF).
Signed 16-bit volumes with no negative voxels (common for MRI) are handed to the codec as uint16
and written back as int16 (``meta["source_dtype"]``). ``meta`` keeps the NIfTI affine, voxel sizes
and units, or the TIFF resolution and ImageJ description, so that decoding writes a file with the
same geometry.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np

from .media import MediaError

NIFTI_EXT = (".nii", ".nii.gz")
TIFF_EXT = (".tif", ".tiff")


class VolumeError(MediaError):
    """A volume file cannot be read or written (the message names the file and the cause)."""


def is_nifti(path: Path) -> bool:
    return Path(path).name.lower().endswith(NIFTI_EXT)


def _nibabel(path: Path):
    try:
        import nibabel
    except ImportError:
        raise VolumeError(f"{path}: reading/writing NIfTI needs nibabel: "
                          "pip install 'sensorcodec[volume]'") from None
    return nibabel


def _to_codec_dtype(a: np.ndarray, path: Path, meta: dict) -> np.ndarray:
    if a.dtype == np.int16 and a.size and int(a.min()) >= 0:
        meta["source_dtype"] = "int16"
        return a.astype(np.uint16)
    if a.dtype.kind not in "iu":
        raise VolumeError(f"{path}: {a.dtype} voxels; the volume models code integer volumes "
                          "(uint8, or uint16/int16 with 0..4095)")
    return a


def read_nifti(path: Path, data: bytes | None = None) -> tuple[np.ndarray, dict]:
    """(integer array (X, Y, Z), meta) of a NIfTI file (or its bytes); 4-D files are refused."""
    nib = _nibabel(path)
    blob = Path(path).read_bytes() if data is None else data
    if blob[:2] == b"\x1f\x8b":
        blob = gzip.decompress(blob)
    try:
        img = nib.Nifti1Image.from_bytes(blob)
    except Exception as exc:  # nibabel raises several types on bad headers
        raise VolumeError(f"{path}: not a NIfTI-1 file ({exc.__class__.__name__}: {exc})") from None
    a = np.asanyarray(img.dataobj)
    if a.ndim == 4 and a.shape[3] == 1:
        a = a[..., 0]
    if a.ndim != 3:
        raise VolumeError(f"{path}: {a.ndim}-D NIfTI (shape {list(a.shape)}); expected one 3-D volume")
    xyz, t = img.header.get_xyzt_units()
    meta = {"kind": "volume", "format": "nifti", "affine": np.round(img.affine, 6).tolist(),
            "zooms": [float(z) for z in img.header.get_zooms()[:3]], "xyz_units": xyz,
            "qform_code": int(img.header["qform_code"]), "sform_code": int(img.header["sform_code"])}
    return _to_codec_dtype(np.ascontiguousarray(a), Path(path), meta), meta


def nifti_bytes(array: np.ndarray, path: Path, meta: dict) -> bytes:
    """A NIfTI-1 file of ``array`` with the affine / voxel sizes / units of ``meta`` (gzip for .gz)."""
    nib = _nibabel(path)
    a = array.astype(np.int16) if meta.get("source_dtype") == "int16" else array
    img = nib.Nifti1Image(a, np.asarray(meta.get("affine", np.eye(4)), dtype=np.float64))
    hdr = img.header
    if meta.get("zooms"):
        hdr.set_zooms(tuple(meta["zooms"])[: a.ndim])
    if meta.get("xyz_units"):
        hdr.set_xyzt_units(xyz=meta["xyz_units"])
    img.set_qform(img.affine, code=int(meta.get("qform_code", 1)))
    img.set_sform(img.affine, code=int(meta.get("sform_code", 1)))
    blob = img.to_bytes()
    return gzip.compress(blob, mtime=0) if str(path).lower().endswith(".gz") else blob


def tiff_pages(src) -> int:
    """Number of pages of a TIFF (path or file object)."""
    from PIL import Image
    with Image.open(src) as im:
        return int(getattr(im, "n_frames", 1))


def read_tiff_stack(path: Path, src) -> tuple[np.ndarray, dict]:
    """(array (pages, H, W) uint8/uint16, meta) of a multi-page grey TIFF."""
    from PIL import Image, ImageSequence
    with Image.open(src) as im:
        pages = []
        for page in ImageSequence.Iterator(im):
            if page.mode not in ("L", "I;16", "I;16B", "I;16L"):
                raise VolumeError(f"{path}: page {len(pages) + 1} has mode {page.mode}; a volume "
                                  "stack needs 8- or 16-bit grey pages")
            pages.append(np.asarray(page).astype(np.uint8 if page.mode == "L" else np.uint16))
        meta = {"kind": "volume", "format": "tiff"}
        res = im.info.get("resolution") or im.info.get("dpi")
        if res:
            meta["resolution"] = [float(r) for r in res]
        desc = im.tag_v2.get(270) if hasattr(im, "tag_v2") else None
        if isinstance(desc, str):
            meta["description"] = desc
    if len({p.shape for p in pages}) != 1:
        raise VolumeError(f"{path}: pages differ in size ({sorted({p.shape for p in pages})})")
    return np.stack(pages), meta


def tiff_stack_bytes(array: np.ndarray, meta: dict) -> bytes:
    """A multi-page TIFF of a (pages, H, W) uint8/uint16 array, with meta's resolution/description."""
    from PIL import Image
    if array.ndim != 3 or array.dtype not in (np.uint8, np.uint16):
        raise VolumeError(f"a TIFF stack needs a 3-D uint8/uint16 array; got {array.dtype} "
                          f"{list(array.shape)}")
    frames = [Image.fromarray(np.ascontiguousarray(p)) for p in array]
    kw = {}
    if meta.get("resolution"):
        kw["resolution"] = meta["resolution"][0]
        kw["x_resolution"], kw["y_resolution"] = (meta["resolution"] * 2)[:2]
    if meta.get("description"):
        kw["description"] = meta["description"]
    buf = io.BytesIO()
    frames[0].save(buf, format="TIFF", save_all=True, append_images=frames[1:], **kw)
    return buf.getvalue()
