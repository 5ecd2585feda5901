"""Load and verify model bundles (manifest.json + ONNX files + sha256), never importing torch."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent / "models"
REQUIRED_KEYS = ("format", "format_version", "name", "modality", "sample", "transform", "latent",
                 "coder", "files")


class BundleError(ValueError):
    """A bundle is missing, incomplete, corrupt or of an unsupported version."""


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

    def summary(self) -> dict:
        """Short description for `sensor-codec models`."""
        m = self.manifest
        size = sum(int(v.get("bytes", 0)) for v in m["files"].values())
        return {"name": self.name, "modality": self.modality,
                "latent_channels": self.latent_channels, "block": self.block,
                "sample": m["sample"], "operating_point": m.get("operating_point", {}),
                "macs_per_sample": m.get("macs_per_sample", {}).get("folded"),
                "bytes": size, "path": str(self.path)}


def resolve(name_or_path: str | Path) -> Path:
    """A bundled model name or a bundle folder → the folder."""
    p = Path(name_or_path)
    if (p / "manifest.json").is_file():
        return p
    candidate = MODELS_DIR / str(name_or_path)
    if (candidate / "manifest.json").is_file():
        return candidate
    known = ", ".join(list_model_names()) or "none"
    raise BundleError(f"model {str(name_or_path)!r} not found: not a bundle folder and not a "
                      f"bundled model (bundled: {known})")


def load_bundle(name_or_path: str | Path, *, verify: bool = True) -> Bundle:
    """Read a bundle's manifest and (by default) check every file's sha256."""
    path = resolve(name_or_path)
    raw = (path / "manifest.json").read_bytes()
    try:
        manifest = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path / 'manifest.json'}: not valid JSON ({exc})") from None
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise BundleError(f"{path / 'manifest.json'}: missing field(s) {', '.join(missing)}")
    if manifest["format"] != "sensorcodec-bundle" or manifest["format_version"] != 1:
        raise BundleError(f"{path / 'manifest.json'}: unsupported bundle format "
                          f"{manifest['format']!r} v{manifest['format_version']} (expected "
                          f"'sensorcodec-bundle' v1)")
    if verify:
        for fname, info in manifest["files"].items():
            f = path / fname
            if not f.is_file():
                raise BundleError(f"{f}: listed in the manifest but missing")
            got = sha256_file(f)
            if info.get("sha256") and got != info["sha256"]:
                raise BundleError(f"{f}: sha256 {got[:16]}… does not match the manifest "
                                  f"({info['sha256'][:16]}…); the bundle is corrupt")
    return Bundle(path, manifest, hashlib.sha256(raw).hexdigest())


def list_model_names() -> list[str]:
    """Names of the bundled models."""
    if not MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in MODELS_DIR.iterdir() if (p / "manifest.json").is_file())


def list_models() -> list[dict]:
    """Summaries of the bundled models."""
    return [load_bundle(n, verify=False).summary() for n in list_model_names()]


def default_model(modality: str) -> str:
    """The bundled model a modality uses when none is named (flagged 'default' in its manifest)."""
    best = None
    for n in list_model_names():
        m = load_bundle(n, verify=False).manifest
        if m["modality"] == modality:
            if m.get("default"):
                return n
            best = best or n
    if best is None:
        raise BundleError(f"no bundled model for modality {modality!r}; pass --model")
    return best
