"""Deployment targets and target bundles (``sensor-export`` packaging step).

A *runtime bundle* (folder: ``manifest.json`` + ``*.onnx`` + ``encoder_int.npz``, see
``docs/bundle-format.md``) says what the codec is. A *target bundle* is that runtime bundle
packaged for one kind of machine, so that it installs and runs there with no network:

```
<out>/
  manifest.json            source manifest + "target" section (board, Python, default variant
                           and why, onnxruntime version, ORT-format files, wheelhouse hashes)
  encoder.onnx ...         the runtime bundle's files, unchanged
  ort/encoder*.ort         ORT-format models optimised for the target (--target_platform arm|amd64)
  wheelhouse/*.whl         onnxruntime, numpy, zstandard, pyserial, pip, sensorcodec (target tags;
                           sensorcodec is cp311-abi3 for the target's arch with the native
                           coders, see export/native_wheel.py, or pure Python on Python 3.10)
  wheelhouse/requirements.txt   every wheel pinned with --hash (pip --require-hashes)
  install.sh               offline install into a venv (+ system user, config, systemd unit)
  sensor-encode.service    systemd unit (Type=notify, watchdog, hardened)
  SHA256SUMS               sha256 of every file above (``sha256sum -c``)
```

Making the runtime bundle (from a checkpoint, or a bundled model) and packaging it for a target
are separate steps: :func:`build_target_bundle` only ever reads a finished runtime bundle.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

from encoder_runtime.bundle import BundleError, load_bundle, resolve, sha256_file

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE_DIR = PROJECT_ROOT / "data" / "cache" / "arm"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

VARIANT_FILES = {"fp32": "encoder.onnx", "int8": "encoder_int8.onnx"}
"""Encoder graph file of each variant inside a runtime bundle (both give the same codes)."""

RUNTIME_REQUIREMENTS = ("pyserial",)
"""Packages the device needs beyond sensorcodec's own dependencies (the ``bridge`` extra)."""


class TargetError(ValueError):
    """An unknown target or an option the target cannot honour."""


class PackagingError(RuntimeError):
    """A packaging step (wheel build, wheel download, ORT conversion) failed."""


@dataclasses.dataclass(frozen=True)
class Target:
    """One kind of machine a bundle can be packaged for.

    ``platforms`` are pip ``--platform`` tags, newest first; pip does not widen an explicit
    tag, so older manylinux tags must be listed too (zstandard is manylinux2014 only).
    """

    name: str
    description: str
    arch: str  # uname -m of the machine: "x86_64" | "aarch64"
    os: str
    python_version: str  # "3.11"
    platforms: tuple[str, ...]
    onnxruntime: str  # pip requirement for the target's Python
    default_variant: str  # "fp32" | "int8"
    variant_reason: str
    cpu: str
    qemu_cpu: str | None  # qemu-aarch64 -cpu model closest to the board (emulated checks)

    @property
    def ort_target_platform(self) -> str:
        """``--target_platform`` for ``convert_onnx_models_to_ort``."""
        return "arm" if self.arch == "aarch64" else "amd64"

    @property
    def abi(self) -> str:
        """CPython ABI tag, e.g. ``cp311``."""
        return "cp" + self.python_version.replace(".", "")

    def with_python(self, python_version: str | None) -> "Target":
        """The same target for another Python (e.g. a self-built 3.11 on JetPack 6)."""
        if not python_version or python_version == self.python_version:
            return self
        if not re.fullmatch(r"3\.\d{1,2}", python_version):
            raise TargetError(f"python version: expected like '3.11', got {python_version!r}")
        minor = int(python_version.split(".")[1])
        if minor < 10:
            raise TargetError(f"python {python_version}: sensorcodec needs Python >= 3.10")
        # PyPI's newest cp310 onnxruntime is 1.23.2 (cp311+ get the newest release).
        ort = "onnxruntime<=1.23.2" if minor == 10 else "onnxruntime"
        return dataclasses.replace(self, python_version=python_version, onnxruntime=ort)


def _manylinux(arch: str) -> tuple[str, ...]:
    return (f"manylinux_2_28_{arch}", f"manylinux2014_{arch}")


_INT8_DOTPROD = ("{cpu} has the Armv8.2 dot-product instructions (SDOT/UDOT), which the MLAS int8 "
                 "kernels of onnxruntime's CPU EP use; int8 is expected to beat fp32 there "
                 "(not yet measured on the board: run benchmarks/encoder_speed on it). Both "
                 "variants give bit-identical codes, so the choice is about speed only.")

TARGETS: dict[str, Target] = {t.name: t for t in (
    Target(
        name="x86_64", description="64-bit x86 Linux (servers, gateways, developer machines)",
        arch="x86_64", os="glibc >= 2.28 Linux (Debian 12: Python 3.11)", python_version="3.11",
        platforms=_manylinux("x86_64"), onnxruntime="onnxruntime", default_variant="fp32",
        variant_reason=("measured on x86-64 with onnxruntime 1.32 (reference note §2.5): int8 QDQ "
                        "graphs ran 2.9-5x slower than fp32 (QLinearConv rewrite, no fast grouped "
                        "path); both variants give bit-identical codes"),
        cpu="x86-64", qemu_cpu=None),
    Target(
        name="rpi4", description="Raspberry Pi 4 (64-bit Raspberry Pi OS bookworm)",
        arch="aarch64", os="Raspberry Pi OS bookworm arm64 (Debian 12, glibc 2.36, Python 3.11)",
        python_version="3.11", platforms=_manylinux("aarch64"), onnxruntime="onnxruntime",
        default_variant="fp32",
        variant_reason=("Cortex-A72 (Armv8.0) has no dot-product instructions, so onnxruntime's "
                        "int8 conv kernels have no fast path; int8 grouped/pointwise conv is "
                        "reported slower than fp32 on a Pi 4 (microsoft/onnxruntime#9192, #20052). "
                        "Both variants give bit-identical codes; not yet measured on the board"),
        cpu="4x Cortex-A72 @ 1.5-1.8 GHz", qemu_cpu="cortex-a72"),
    Target(
        name="rpi5", description="Raspberry Pi 5 (64-bit Raspberry Pi OS bookworm)",
        arch="aarch64", os="Raspberry Pi OS bookworm arm64 (Debian 12, glibc 2.36, Python 3.11)",
        python_version="3.11", platforms=_manylinux("aarch64"), onnxruntime="onnxruntime",
        default_variant="int8", variant_reason=_INT8_DOTPROD.format(cpu="Cortex-A76"),
        cpu="4x Cortex-A76 @ 2.4 GHz", qemu_cpu="cortex-a76"),
    Target(
        name="jetson-orin", description="NVIDIA Jetson Orin (JetPack 6, CPU execution provider)",
        arch="aarch64", os="JetPack 6 (Ubuntu 22.04, glibc 2.35, Python 3.10)",
        python_version="3.10", platforms=_manylinux("aarch64"),
        # PyPI's newest cp310 aarch64 onnxruntime is 1.23.2; no aarch64 onnxruntime-gpu on PyPI.
        onnxruntime="onnxruntime<=1.23.2", default_variant="int8",
        variant_reason=_INT8_DOTPROD.format(cpu="Cortex-A78AE")
        + " The GPU is not used: PyPI has no aarch64 onnxruntime-gpu, and the encoder is tiny.",
        cpu="6-12x Cortex-A78AE", qemu_cpu="cortex-a76"),
    Target(
        name="aarch64", description="generic 64-bit Arm Linux (glibc >= 2.28, Python 3.11)",
        arch="aarch64", os="any glibc >= 2.28 arm64 Linux with Python 3.11",
        python_version="3.11", platforms=_manylinux("aarch64"), onnxruntime="onnxruntime",
        default_variant="fp32",
        variant_reason=("unknown core: int8 only pays off with dot-product instructions (Armv8.2+), "
                        "fp32 is never pathological; both variants give bit-identical codes"),
        cpu="any Armv8-A", qemu_cpu="cortex-a72"),
)}


def get_target(name: str) -> Target:
    """The :class:`Target` called ``name``; raises :class:`TargetError` listing the known ones."""
    try:
        return TARGETS[name]
    except KeyError:
        raise TargetError(f"unknown target {name!r}; known targets: {', '.join(TARGETS)}") from None


# --------------------------------------------------------------------------------------------
# Source bundle


def read_source_bundle(bundle_dir: str | os.PathLike) -> dict:
    """Read and verify a runtime bundle folder; returns its manifest.

    :func:`encoder_runtime.bundle.load_bundle` checks the format, the required fields and every
    listed file's sha256 (naming the file on a mismatch). A bundle that is packaged for a target
    must also pin every file (a sha256 for each) and contain the fp32 encoder.
    Raises :class:`encoder_runtime.bundle.BundleError`.
    """
    bundle = Path(bundle_dir)
    if not bundle.is_dir():
        raise BundleError(f"bundle {bundle}: not a folder")
    if not (bundle / "manifest.json").is_file():
        raise BundleError(f"bundle {bundle}: manifest.json is missing")
    manifest = load_bundle(bundle).manifest
    mpath = bundle / "manifest.json"
    files = manifest["files"]
    if not isinstance(files, dict) or "encoder.onnx" not in files:
        raise BundleError(f"{mpath}: field 'files': the fp32 encoder 'encoder.onnx' is not listed")
    for rel, info in files.items():
        want = info.get("sha256") if isinstance(info, dict) else None
        if not isinstance(want, str) or not re.fullmatch(r"[0-9a-f]{64}", want):
            raise BundleError(f"{mpath}: files[{rel!r}].sha256: expected 64 hex digits, got {want!r}")
    return manifest


def resolve_model(name: str) -> Path:
    """Folder of a bundled model (``encoder_runtime/models/<name>``) or a bundle folder."""
    return resolve(name)


def choose_variant(target: Target, manifest: dict, variant: str | None = None) -> tuple[str, str]:
    """(variant, reason) the target runs by default, given which graphs the bundle has."""
    files = manifest["files"]
    if variant is not None:
        if variant not in VARIANT_FILES:
            raise TargetError(f"variant: expected one of {', '.join(VARIANT_FILES)}, got {variant!r}")
        if VARIANT_FILES[variant] not in files:
            raise TargetError(f"variant {variant!r} requested but the bundle has no "
                              f"{VARIANT_FILES[variant]}")
        return variant, "chosen explicitly by the exporter (--variant)"
    if target.default_variant == "int8" and VARIANT_FILES["int8"] not in files:
        return "fp32", "the bundle has no int8 graph (encoder_int8.onnx); " + target.variant_reason
    return target.default_variant, target.variant_reason


# --------------------------------------------------------------------------------------------
# Packaging steps


def _run(cmd: Sequence[str], what: str, *, cwd: Path | None = None, env: dict | None = None,
         check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-25:]
        raise PackagingError(f"{what} failed (exit {proc.returncode}): {' '.join(map(str, cmd))}\n"
                             + "\n".join(tail))
    return proc


HOST_ONLY_SCRIPTS = ("sensor-train", "sensor-data", "sensor-export")
"""Entry points of the host toolchain (they need torch/onnx): left out of device wheels."""


def device_pyproject(text: str) -> str:
    """The project's pyproject.toml for a device wheel: runtime packages and entry points only."""
    lines = [ln for ln in text.splitlines()
             if not any(ln.startswith(f"{name} =") for name in HOST_ONLY_SCRIPTS)
             and not re.fullmatch(r'export = \["templates/\*".*\]', ln.strip())]  # its package-data
    out = "\n".join(lines).replace('include = ["encoder_runtime*", "export*", "firmware_bridge*"]',
                                    'include = ["encoder_runtime*", "firmware_bridge*"]') + "\n"
    if '"export*"' in out:
        raise PackagingError("pyproject.toml: could not drop the export package for a device wheel "
                             "([tool.setuptools.packages.find] include changed?)")
    return out


def build_sensorcodec_wheel(out_dir: Path, project_root: Path = PROJECT_ROOT, *, device: bool = False) -> Path:
    """Build the pure-Python sensorcodec wheel from a source tree, offline.

    ``device=True`` builds what a board needs: the runtime (``encoder_runtime`` without the bundled
    models and samples — the target bundle carries its one model) and ``firmware_bridge``, without
    the host toolchain (``export``) and its entry points. The tree is copied to a scratch folder
    first so concurrent builds never share setuptools' ``build/`` folder and the source tree stays
    clean.
    """
    project_root = Path(project_root)
    if not (project_root / "pyproject.toml").is_file():
        raise PackagingError(f"no sensorcodec source tree at {project_root} (pyproject.toml missing); "
                             "pass a prebuilt wheel with --sensorcodec-wheel")
    out_dir.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "*.egg-info", "*.o", ".pytest_cache")
    with tempfile.TemporaryDirectory(prefix="sensorcodec-src-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for entry in project_root.iterdir():
            if entry.is_file() and (entry.suffix in {".toml", ".cfg", ".py", ".in", ".md", ".txt"}
                                    or entry.name.startswith("LICENSE")):
                shutil.copy2(entry, src / entry.name)
        for pkg in ("encoder_runtime", "firmware_bridge") if device else ("encoder_runtime", "export",
                                                                          "firmware_bridge"):
            if (project_root / pkg).is_dir():
                shutil.copytree(project_root / pkg, src / pkg, ignore=ignore)
        if device:
            for data in ("models", "samples"):
                shutil.rmtree(src / "encoder_runtime" / data, ignore_errors=True)
            (src / "pyproject.toml").write_text(device_pyproject((src / "pyproject.toml").read_text()))
        wdir = Path(tmp) / "wheel"
        # Fixed zip timestamps: the same sources give the same wheel (and the same sha256).
        env = {**os.environ, "SOURCE_DATE_EPOCH": "315532800", "SENSORCODEC_PURE_WHEEL": "1"}
        _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
              "-q", "-w", str(wdir), str(src)], "building the sensorcodec wheel", env=env)
        wheels = list(wdir.glob("sensorcodec-*.whl"))
        if len(wheels) != 1:
            raise PackagingError(f"building the sensorcodec wheel produced {wheels}")
        dest = out_dir / wheels[0].name
        shutil.copy2(wheels[0], dest)
    return dest


def _pip_target_args(target: Target) -> list[str]:
    args = ["--only-binary=:all:"]
    for p in target.platforms:
        args += ["--platform", p]
    return args + ["--python-version", target.python_version, "--implementation", "cp",
                   "--abi", target.abi]


def source_extras(modality: str | None) -> tuple[str, ...]:
    """sensorcodec extras a device needs for its model's sources: the serial bridge always, and the
    file readers (Pillow, soundfile) for image and audio models, whose ``dir:``/``file:`` sources
    read PNG/JPEG and WAV/FLAC."""
    return ("bridge", "media") if modality in ("image", "audio") else ("bridge",)


def download_wheelhouse(target: Target, sensorcodec_wheel: Path, dest: Path,
                        cache_dir: Path = DEFAULT_CACHE_DIR, extra: Iterable[str] = (),
                        extras: Sequence[str] = ("bridge",)) -> list[Path]:
    """Fill ``dest`` with every wheel the target needs (binary, for its platform and Python).

    Resolves offline from ``cache_dir/wheels`` first; only if that fails asks PyPI (through
    ``pip download``) and stores the result in the cache, so repeated builds need no network.
    """
    cache = Path(cache_dir) / "wheels"
    cache.mkdir(parents=True, exist_ok=True)
    dest.mkdir(parents=True, exist_ok=True)
    reqs = [f"{sensorcodec_wheel}[{','.join(extras)}]", target.onnxruntime, *RUNTIME_REQUIREMENTS, "pip", *extra]
    base = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
            *_pip_target_args(target)]
    env = {k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"}
    offline = _run([*base, "--no-index", "--find-links", str(cache), "-d", str(dest), *reqs],
                   "offline wheel resolution", env=env, check=False)
    if offline.returncode != 0:
        _run([*base, "-d", str(cache), *reqs],
             f"downloading wheels for {target.name} (cp{target.python_version}, {target.platforms})",
             env=env)
        for stale in cache.glob("sensorcodec-*.whl"):
            stale.unlink()
        _run([*base, "--no-index", "--find-links", str(cache), "-d", str(dest), *reqs],
             "offline wheel resolution after download", env=env)
    if not (dest / sensorcodec_wheel.name).exists():
        shutil.copy2(sensorcodec_wheel, dest / sensorcodec_wheel.name)
    return sorted(dest.glob("*.whl"))


_WHEEL_RE = re.compile(r"^(?P<name>[A-Za-z0-9_.]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")


def parse_wheel_name(filename: str) -> tuple[str, str]:
    """(normalised project name, version) from a wheel file name."""
    m = _WHEEL_RE.match(filename)
    if not m:
        raise PackagingError(f"not a wheel file name: {filename}")
    return re.sub(r"[-_.]+", "-", m.group("name")).lower(), m.group("version")


def write_requirements(wheelhouse: Path) -> Path:
    """``requirements.txt`` pinning every wheel by version and sha256 (for --require-hashes)."""
    lines = ["# Generated by sensor-export: every wheel in this folder, pinned by sha256.",
             "# pip install --no-index --find-links . --require-hashes -r requirements.txt"]
    for whl in sorted(wheelhouse.glob("*.whl")):
        name, version = parse_wheel_name(whl.name)
        spec = "sensorcodec[bridge]" if name == "sensorcodec" else name
        lines.append(f"{spec}=={version} --hash=sha256:{sha256_file(whl)}")
    path = wheelhouse / "requirements.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def ort_optimization_level(target: Target) -> str:
    """Graph optimisation level baked into the target's .ort files."""
    return "all" if target.arch == "aarch64" else "extended"


def convert_to_ort(model_files: Sequence[Path], out_dir: Path, target: Target) -> dict[str, Path]:
    """ORT-format copies of ``model_files`` optimised for the target (Fixed style).

    Same as ``python -m onnxruntime.tools.convert_onnx_models_to_ort``; returns {onnx name: .ort}.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="sensorcodec-ort-") as tmp:
        work = Path(tmp)
        for f in model_files:
            shutil.copy2(f, work / f.name)
        # In-process call of what `python -m onnxruntime.tools.convert_onnx_models_to_ort DIR
        # --target_platform arm|amd64 --optimization_style Fixed` runs (saves a second import).
        from onnxruntime.tools import convert_onnx_models_to_ort as conv  # noqa: PLC0415

        # "all" adds NCHWc layouts sized for the *build* host's vectors (AVX-512 here), which
        # would not be portable to other x86-64 machines; ARM conversion never adds them.
        level = ort_optimization_level(target)
        old_level = os.environ.get("ORT_CONVERT_ONNX_MODELS_TO_ORT_OPTIMIZATION_LEVEL")
        os.environ["ORT_CONVERT_ONNX_MODELS_TO_ORT_OPTIMIZATION_LEVEL"] = level
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                conv.convert_onnx_models_to_ort(
                    work, optimization_styles=[conv.OptimizationStyle.Fixed],
                    target_platform=target.ort_target_platform)
        except Exception as e:  # noqa: BLE001 - any converter failure names the models
            raise PackagingError(f"converting {[f.name for f in model_files]} to ORT format "
                                 f"(target_platform {target.ort_target_platform}) failed: {e}") from e
        finally:
            if old_level is None:
                os.environ.pop("ORT_CONVERT_ONNX_MODELS_TO_ORT_OPTIMIZATION_LEVEL", None)
            else:
                os.environ["ORT_CONVERT_ONNX_MODELS_TO_ORT_OPTIMIZATION_LEVEL"] = old_level
        infix = "" if level == "all" else f".{level}"  # the converter's file naming
        for f in model_files:
            ort = work / f"{f.stem}{infix}.ort"
            if not ort.is_file():
                raise PackagingError(f"ORT conversion wrote no {ort.name} for {f.name}")
            result[f.name] = Path(shutil.copy2(ort, out_dir / f"{f.stem}.ort"))
        ops = work / f"required_operators{infix}.config"
        if ops.is_file():
            shutil.copy2(ops, out_dir / "required_operators.config")
    return result


def render_template(name: str, values: dict[str, str]) -> str:
    """Fill ``@KEY@`` placeholders of ``export/templates/<name>``; every placeholder must be given."""
    text = (TEMPLATES_DIR / name).read_text(encoding="utf-8")
    for key, val in values.items():
        text = text.replace(f"@{key}@", val)
    left = sorted(set(re.findall(r"@([A-Z_]+)@", text)))
    if left:
        raise PackagingError(f"template {name}: no value for {', '.join(left)}")
    return text


def _installed_version(wheels: Iterable[Path], project: str) -> str | None:
    for whl in wheels:
        name, version = parse_wheel_name(whl.name)
        if name == project:
            return version
    return None


# --------------------------------------------------------------------------------------------
# The one entry point


def build_target_bundle(src_bundle_dir: str | os.PathLike, target: str | Target,
                        out_dir: str | os.PathLike, *, variant: str | None = None,
                        python_version: str | None = None, wheelhouse: bool = True,
                        sensorcodec_wheel: str | os.PathLike | None = None,
                        project_root: str | os.PathLike = PROJECT_ROOT,
                        cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR,
                        overwrite: bool = False, encode_args: str | None = None) -> Path:
    """Package the runtime bundle ``src_bundle_dir`` for ``target`` into ``out_dir``.

    Verifies the source bundle (sha256 of every file), copies it, adds ORT-format encoders, an
    offline wheelhouse (unless ``wheelhouse=False``), ``install.sh``, a systemd unit for
    ``sensor-encode`` and ``SHA256SUMS``, and writes the manifest with a ``target`` section.
    The folder is built beside ``out_dir`` and renamed into place at the end, so a failed build
    leaves nothing half-written. Returns ``out_dir``.
    """
    tgt = (target if isinstance(target, Target) else get_target(target)).with_python(python_version)
    src = Path(src_bundle_dir)
    out = Path(out_dir)
    manifest = read_source_bundle(src)
    chosen, reason = choose_variant(tgt, manifest, variant)
    if out.exists():
        if not overwrite:
            raise FileExistsError(f"output folder {out} already exists (pass --force to replace it)")
        if not (out / "manifest.json").is_file() and any(out.iterdir()):
            raise FileExistsError(f"refusing to replace {out}: not empty and not a bundle")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for rel in manifest["files"]:
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, stage / rel)
        new_files: dict[str, dict] = dict(manifest["files"])
        encoders = [stage / f for f in VARIANT_FILES.values() if f in manifest["files"]]
        ort_files = convert_to_ort(encoders, stage / "ort", tgt)
        import onnxruntime  # noqa: PLC0415  (host toolchain; only needed for the conversion)

        ort_info = {
            "files": {v: f"ort/{Path(VARIANT_FILES[v]).stem}.ort"
                      for v in VARIANT_FILES if VARIANT_FILES[v] in ort_files},
            "target_platform": tgt.ort_target_platform, "optimization_style": "Fixed",
            "optimization_level": ort_optimization_level(tgt),
            "built_with_onnxruntime": onnxruntime.__version__,
            "note": ("for a minimal onnxruntime build; the PyPI wheel runs the .onnx files. An .ort "
                     "file loads only in an onnxruntime as new as the one that wrote it"),
        }
        for p in ort_files.values():
            new_files[f"ort/{p.name}"] = {}

        wheel_info: dict | None = None
        extras = source_extras(manifest.get("modality"))
        wh = stage / "wheelhouse"
        with tempfile.TemporaryDirectory(prefix="sensorcodec-wheel-") as wtmp:
            if sensorcodec_wheel:
                sc, native = Path(sensorcodec_wheel), {"native": None, "reason": "--sensorcodec-wheel"}
            else:  # the target's architecture with the native coders where possible, else pure
                from export.native_wheel import device_wheel  # noqa: PLC0415 (imports this module)

                sc, native = device_wheel(tgt, Path(wtmp), Path(project_root))
            if not sc.is_file():
                raise PackagingError(f"sensorcodec wheel {sc} does not exist")
            if not wheelhouse:  # only sensorcodec itself; install.sh takes the dependencies from PyPI
                wh.mkdir()
                shutil.copy2(sc, wh / sc.name)
                new_files[f"wheelhouse/{sc.name}"] = {}
            else:
                wheels = download_wheelhouse(tgt, sc, wh, Path(cache_dir), extras=extras)
        if wheelhouse:
            req = write_requirements(wh)
            wheel_info = {
                "dir": "wheelhouse", "requirements": "wheelhouse/requirements.txt",
                "onnxruntime": _installed_version(wheels, "onnxruntime"),
                "numpy": _installed_version(wheels, "numpy"),
                "wheels": {w.name: sha256_file(w) for w in wheels},
                "bytes": sum(w.stat().st_size for w in wheels),
                "extras": list(extras),
            }
            new_files[f"wheelhouse/{req.name}"] = {}

        values = {
            "TARGET": tgt.name, "ARCH": tgt.arch, "PYTHON_VERSION": tgt.python_version,
            "MODEL": str(manifest.get("name", src.name)), "VARIANT": chosen,
            "ENCODE_ARGS": encode_args or "--config /etc/sensor-encode/config.toml",
            "EXTRAS": ",".join(extras), "ONNXRUNTIME": tgt.onnxruntime,
        }
        (stage / "install.sh").write_text(render_template("install.sh.in", values), encoding="utf-8")
        (stage / "install.sh").chmod(0o755)
        (stage / "sensor-encode.service").write_text(
            render_template("sensor-encode.service.in", values), encoding="utf-8")
        new_files["install.sh"] = {}
        new_files["sensor-encode.service"] = {}
        for rel in new_files:
            new_files[rel] = {"sha256": sha256_file(stage / rel), "bytes": (stage / rel).stat().st_size}

        out_manifest = dict(manifest)
        out_manifest["files"] = new_files
        out_manifest["target"] = {
            "name": tgt.name, "description": tgt.description, "arch": tgt.arch, "os": tgt.os,
            "cpu": tgt.cpu, "python": tgt.python_version, "platform_tags": list(tgt.platforms),
            "default_variant": chosen, "default_variant_reason": reason,
            "default_encoder": VARIANT_FILES[chosen],
            "onnxruntime": (wheel_info or {}).get("onnxruntime") or tgt.onnxruntime,
            "ort_format": ort_info, "wheelhouse": wheel_info,
            "sensorcodec_wheel": {"file": sc.name, **native},
            "install": "install.sh", "systemd_unit": "sensor-encode.service",
            "source_bundle": {"path": str(src.resolve()),
                              "manifest_sha256": sha256_file(src / "manifest.json")},
            "built": {"by": "sensor-export", "utc": _dt.datetime.now(_dt.timezone.utc)
                      .isoformat(timespec="seconds"), "host": f"{platform.system()} {platform.machine()}",
                      "python": platform.python_version()},
        }
        (stage / "manifest.json").write_text(json.dumps(out_manifest, indent=2) + "\n", encoding="utf-8")

        sums = sorted(p for p in stage.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
        (stage / "SHA256SUMS").write_text(
            "".join(f"{sha256_file(p)}  {p.relative_to(stage).as_posix()}\n" for p in sums),
            encoding="utf-8")
        stage.chmod(0o755)
        if out.exists():
            shutil.rmtree(out)
        stage.rename(out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return out
