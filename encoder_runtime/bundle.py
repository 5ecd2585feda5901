"""Load and verify model bundles (manifest.json + ONNX files + sha256), never importing torch.

Trust rules (docs/bundle-format.md):

* A bare model *name* (``"rgb-c16"``) resolves only to the bundled models (or to a folder
  inside a ``models_dir`` the caller names) — never to a folder of the working directory, and
  a name from a stream header is never a path. A bundle *folder* is loaded only when the caller
  passes a :class:`~pathlib.Path` or a string with a path separator (``"./my-bundle"``).
* Every file the manifest lists must carry a sha256, and :meth:`Bundle.read_verified` hashes
  the very bytes it returns, so a file swapped after :func:`load_bundle` is never run.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .container import parse_json_object
from .errors import BundleError

__all__ = ["MODELS_DIR", "NAME_PATTERN", "Bundle", "BundleError", "check_model_name",
           "codes_channels", "default_model", "joint_channels", "list_model_names", "list_models", "load_bundle", "resolve",
           "sha256_file"]

MODELS_DIR = Path(__file__).resolve().parent / "models"
REQUIRED_KEYS = ("format", "format_version", "name", "modality", "sample", "transform", "latent",
                 "coder", "files")
#: What a model name (and a bundle file name) may look like: no separators, no "..".
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
MAX_MANIFEST_BYTES = 1 << 20
MAX_MANIFEST_DEPTH = 16
SAMPLE_DTYPES = ("uint8", "int8", "int16", "uint16", "int32", "float32", "float64")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Bundle:
    """A verified model bundle on disk."""

    path: Path
    manifest: dict
    manifest_sha256: str

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def modality(self) -> str:
        return self.manifest["modality"]

    @property
    def block(self) -> list[int]:
        return list(self.manifest["transform"]["block"])

    @property
    def dims(self) -> int:
        return int(self.manifest["transform"]["dims"])

    @property
    def channels(self) -> int:
        return int(self.manifest["sample"]["channels"])

    @property
    def sample_dtype(self) -> str:
        return self.manifest["sample"]["dtype"]

    @property
    def latent_channels(self) -> int:
        return int(self.manifest["latent"]["channels"])

    def file(self, name: str) -> Path:
        """Path of a bundle file listed in the manifest."""
        if name not in self.manifest["files"]:
            raise BundleError(f"{self.path}: manifest lists no file {name!r} "
                              f"(has: {', '.join(sorted(self.manifest['files']))})")
        return self.path / name

    def _check_bytes(self, name: str, got: str) -> None:
        want = self.manifest["files"][name]["sha256"]
        if got != want:
            raise BundleError(f"{self.path / name}: sha256 {got[:16]}… does not match the "
                              f"manifest ({want[:16]}…); the bundle is corrupt")

    def verify_file(self, name: str) -> None:
        """Check one listed file's sha256 against the manifest (BundleError when it differs)."""
        f = self.file(name)
        if not f.is_file():
            raise BundleError(f"{f}: listed in the manifest but missing")
        self._check_bytes(name, sha256_file(f))

    def read_verified(self, name: str) -> bytes:
        """The bytes of a listed file, after checking *those bytes* against the manifest sha256.

        Load models through this (not through :meth:`file`): a file replaced after
        :func:`load_bundle` checked it is then refused instead of run.
        """
        f = self.file(name)
        try:
            data = f.read_bytes()
        except FileNotFoundError:
            raise BundleError(f"{f}: listed in the manifest but missing") from None
        self._check_bytes(name, hashlib.sha256(data).hexdigest())
        return data

    def summary(self) -> dict:
        """Short description for `sensor-codec models`."""
        m = self.manifest
        size = sum(int(v.get("bytes", 0)) for v in m["files"].values())
        return {"name": self.name, "modality": self.modality,
                "latent_channels": self.latent_channels, "block": self.block,
                "sample": m["sample"], "operating_point": m.get("operating_point", {}),
                "macs_per_sample": m.get("macs_per_sample", {}).get("folded"),
                "bytes": size, "path": str(self.path)}


def check_model_name(name: object, what: str = "model name") -> str:
    """``name`` if it is a plain model name (letters, digits, ``._-``; no path); else BundleError."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise BundleError(f"{what}: expected a model name (letters, digits, '.', '_', '-'; "
                          f"no path), got {name!r}")
    return name


def _is_path(name_or_path: str | os.PathLike) -> bool:
    """Whether the caller means a folder: a Path object or a string with a path separator."""
    if not isinstance(name_or_path, str):
        return True
    return "/" in name_or_path or os.sep in name_or_path or name_or_path.startswith(("~", "."))


def resolve(name_or_path: str | os.PathLike, models_dir: str | os.PathLike | None = None) -> Path:
    """A model name → its folder in ``models_dir`` (default: the bundled models); a path → itself.

    A bare name is never looked up in the working directory (a folder there must not shadow a
    bundled model); pass ``Path("name")`` or ``"./name"`` to load a folder.
    """
    if _is_path(name_or_path):
        p = Path(name_or_path).expanduser()
        if not (p / "manifest.json").is_file():
            raise BundleError(f"bundle folder {str(p)!r}: no manifest.json there")
        return p
    name = check_model_name(name_or_path)
    root = Path(models_dir) if models_dir is not None else MODELS_DIR
    candidate = root / name
    if (candidate / "manifest.json").is_file():
        return candidate
    if models_dir is not None:
        raise BundleError(f"model {name!r} not found in {root}")
    known = ", ".join(list_model_names()) or "none"
    hint = (f"; to load the folder ./{name}, pass './{name}'" if (Path(name) / "manifest.json"
                                                                  ).is_file() else "")
    raise BundleError(f"model {name!r} not found: not a bundled model (bundled: {known}){hint}")


def _check_manifest(m: dict, mpath: Path) -> None:
    """Check the fields the runtime relies on (types, ranges, file names, sha256 pins)."""
    def bad(field: str, expected: str, got: object) -> BundleError:
        return BundleError(f"{mpath}: field {field!r}: expected {expected}, got {got!r:.80}")

    def pos_int(v: object) -> bool:
        return type(v) is int and 0 < v <= 1 << 16

    missing = [k for k in REQUIRED_KEYS if k not in m]
    if missing:
        raise BundleError(f"{mpath}: missing field(s) {', '.join(missing)}")
    if m["format"] != "sensorcodec-bundle" or m["format_version"] != 1:
        raise BundleError(f"{mpath}: unsupported bundle format {m['format']!r:.40} "
                          f"v{m['format_version']!r:.20} (expected 'sensorcodec-bundle' v1)")
    check_model_name(m["name"], f"{mpath}: field 'name'")
    if not isinstance(m["modality"], str):
        raise bad("modality", "a string", m["modality"])
    for key in ("sample", "transform", "latent", "coder", "files"):
        if not isinstance(m[key], dict):
            raise bad(key, "an object", m[key])
    sample, transform, latent = m["sample"], m["transform"], m["latent"]
    if not pos_int(sample.get("channels")):
        raise bad("sample.channels", "a positive integer", sample.get("channels"))
    if sample.get("dtype") not in SAMPLE_DTYPES:
        raise bad("sample.dtype", f"one of {', '.join(SAMPLE_DTYPES)}", sample.get("dtype"))
    dims, block = transform.get("dims"), transform.get("block")
    if type(dims) is not int or not 1 <= dims <= 3:
        raise bad("transform.dims", "1, 2 or 3", dims)
    if not isinstance(block, list) or len(block) != dims or not all(map(pos_int, block)):
        raise bad("transform.block", f"{dims} positive integers", block)
    if not pos_int(latent.get("channels")):
        raise bad("latent.channels", "a positive integer", latent.get("channels"))
    if m["modality"] == "image" and dims != 2:
        raise bad("transform.dims", "2 for an image model", dims)
    if m["modality"] == "audio" and dims != 1:
        raise bad("transform.dims", "1 for an audio model", dims)
    if m["modality"] == "video" and (dims != 3 or m["sample"].get("channels") != 3):
        raise bad("transform.dims / sample.channels", "3 (frames, rows, columns) and 3 (RGB) for "
                  "a video model", [dims, m["sample"].get("channels")])
    if not isinstance(m["coder"].get("default"), str):
        raise bad("coder.default", "a coder id", m["coder"].get("default"))
    if not isinstance(m["coder"].get("fallback", ""), str):
        raise bad("coder.fallback", "a coder id (used where coder.default's package is missing)",
                  m["coder"].get("fallback"))
    for fname, info in m["files"].items():
        if not isinstance(fname, str) or fname.startswith("/") or not all(
                NAME_PATTERN.fullmatch(part) and ".." not in part for part in fname.split("/")):
            raise bad("files", "file names relative to the bundle folder (parts of letters, "
                      "digits, '.', '_', '-'; no '..')", fname)
        want = info.get("sha256") if isinstance(info, dict) else None
        if not isinstance(want, str) or not SHA256_PATTERN.fullmatch(want):
            raise bad(f"files.{fname}.sha256", "64 lowercase hex digits", want)


def load_bundle(name_or_path: str | os.PathLike, *, verify: bool = True,
                models_dir: str | os.PathLike | None = None) -> Bundle:
    """Read a bundle's manifest, check its fields and (by default) every file's sha256.

    ``name_or_path`` follows :func:`resolve`; ``models_dir`` replaces the bundled models as the
    place where bare names are looked up. Raises :class:`BundleError`.
    """
    path = resolve(name_or_path, models_dir)
    mpath = path / "manifest.json"
    with open(mpath, "rb") as fh:
        raw = fh.read(MAX_MANIFEST_BYTES + 1)
    if len(raw) > MAX_MANIFEST_BYTES:
        raise BundleError(f"{mpath}: larger than {MAX_MANIFEST_BYTES} bytes")
    manifest = parse_json_object(raw, str(mpath), MAX_MANIFEST_DEPTH, BundleError)
    _check_manifest(manifest, mpath)
    bundle = Bundle(path, manifest, hashlib.sha256(raw).hexdigest())
    if verify:
        for fname in manifest["files"]:
            bundle.verify_file(fname)
    return bundle


def list_model_names() -> list[str]:
    """Names of the bundled models."""
    if not MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in MODELS_DIR.iterdir() if (p / "manifest.json").is_file())


def list_models() -> list[dict]:
    """Summaries of the bundled models."""
    return [load_bundle(n, verify=False).summary() for n in list_model_names()]


def codes_channels(manifest: dict, modality: str, channels: int | None = None) -> bool:
    """Whether a model (its manifest) is one of ``modality``'s family for ``channels``: audio
    models code ``channels`` channels jointly (None: 1, the mono models that code each channel of
    a signal as a batch item); other modalities ignore ``channels``."""
    if manifest["modality"] != modality:
        return False
    return modality != "audio" or int(manifest["sample"]["channels"]) == (channels or 1)


def joint_channels(modality: str, channels: int) -> int | None:
    """``channels`` when a bundled ``modality`` model codes that many channels jointly, else None
    (e.g. stereo audio → 2 when a stereo model is bundled, else the mono models per channel)."""
    if modality == "audio" and channels > 1 and any(
            codes_channels(load_bundle(n, verify=False).manifest, modality, channels)
            for n in list_model_names()):
        return channels
    return None


def default_model(modality: str, channels: int | None = None) -> str:
    """The bundled model a modality uses when none is named (flagged 'default' in its manifest);
    for audio, among the models coding ``channels`` channels jointly (None: the mono models)."""
    best = None
    for n in list_model_names():
        m = load_bundle(n, verify=False).manifest
        if codes_channels(m, modality, channels):
            if m.get("default"):
                return n
            best = best or n
    if best is None:
        what = f"{channels}-channel {modality}" if channels and channels > 1 else repr(modality)
        raise BundleError(f"no bundled model for modality {what}; pass --model")
    return best
