"""Device wheels with the native lossless coders (``ctx-ac``, ``rans``) for x86_64 and aarch64.

The device wheel that :func:`export.targets.build_sensorcodec_wheel` builds is pure Python. This
module compiles the native extensions of ``setup.py`` (``NATIVE_EXTENSIONS``) for a target
architecture with the Debian cross compiler (``aarch64-linux-gnu-gcc``; ``x86_64-linux-gnu-gcc``
natively) against the CPython *stable ABI* (``Py_LIMITED_API`` 3.11, see
``export/native/abi3_compat.h``), adds them to that wheel and retags it
``cp311-abi3-manylinux2014_<arch>`` (glibc >= 2.17): one wheel per architecture serves CPython 3.11, 3.12,
3.13 ... (Raspberry Pi OS / Debian 12: 3.11, Ubuntu 24.04: 3.12, Debian 13: 3.13). CPython 3.10
(JetPack 6) gets the pure wheel: the extension's buffer calls joined the limited API in 3.11.

The aarch64 Python headers (``pyconfig.h`` is per architecture) come from Debian's
``libpython3.11-dev:arm64`` .deb, fetched once through the private arm64 apt state of
:mod:`export.emulation` and cached under ``data/cache/native-wheel``. Builds are reproducible:
the same sources give the same wheel bytes.
"""

from __future__ import annotations

import base64
import hashlib
import os
import platform
import re
import runpy
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path

from export.targets import (DEFAULT_CACHE_DIR, PROJECT_ROOT, PackagingError, Target,
                            build_sensorcodec_wheel)

NATIVE_CACHE_DIR = PROJECT_ROOT / "data" / "cache" / "native-wheel"
COMPAT_HEADER = Path(__file__).resolve().parent / "native" / "abi3_compat.h"
ABI3_MIN_PYTHON = (3, 11)
"""Oldest CPython the stable-ABI extension loads in (must match Py_LIMITED_API in the header)."""
PYTHON_TAG, ABI_TAG = "cp311", "abi3"
CROSS_TRIPLETS = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}
CROSS_PACKAGES = {"x86_64": "gcc", "aarch64": "gcc-aarch64-linux-gnu"}
"""Debian package of each architecture's compiler (listed in scripts/apt/*.txt)."""
HEADERS_DEB = "libpython3.11-dev"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # SOURCE_DATE_EPOCH of build_sensorcodec_wheel


class NativeBuildUnavailable(PackagingError):
    """This machine cannot build the native extension for that architecture (names the fix)."""


def compiler(arch: str) -> str:
    """The C compiler for ``arch`` (``<triplet>-gcc``); raises :class:`NativeBuildUnavailable`."""
    if arch not in CROSS_TRIPLETS:
        raise NativeBuildUnavailable(f"arch: expected one of {', '.join(CROSS_TRIPLETS)}, got {arch!r}")
    cc = shutil.which(f"{CROSS_TRIPLETS[arch]}-gcc")
    if not cc:
        raise NativeBuildUnavailable(f"{CROSS_TRIPLETS[arch]}-gcc not found: install the Debian "
                                     f"package {CROSS_PACKAGES[arch]} (scripts/apt/bridge.txt)")
    return cc


def native_extensions(project_root: Path = PROJECT_ROOT) -> dict[str, dict]:
    """``NATIVE_EXTENSIONS`` of the source tree's ``setup.py`` (module -> sources, includes, flags)."""
    setup_py = Path(project_root) / "setup.py"
    if not setup_py.is_file():
        raise PackagingError(f"no setup.py in {project_root}: the native extensions are listed there")
    exts = runpy.run_path(str(setup_py), run_name="sensorcodec_native_wheel").get("NATIVE_EXTENSIONS")
    if not isinstance(exts, dict) or not exts:
        raise PackagingError(f"{setup_py}: NATIVE_EXTENSIONS: expected a non-empty dict, got {exts!r}")
    return exts


def python_include_dirs(arch: str, cache_dir: Path = NATIVE_CACHE_DIR) -> list[Path]:
    """Include folders of CPython 3.11 headers built for ``arch``.

    The host's own headers when it is that architecture and CPython >= 3.11; otherwise Debian's
    ``libpython3.11-dev`` for arm64, unpacked once into ``cache_dir``.
    """
    if arch == platform.machine() and sys.version_info[:2] >= ABI3_MIN_PYTHON:
        return [Path(sysconfig.get_paths()["include"])]
    if arch != "aarch64":
        raise NativeBuildUnavailable(f"no CPython headers for {arch} on this {platform.machine()} host")
    from export.emulation import EmulationUnavailable, _locked, fetch_arm64_debs  # noqa: PLC0415

    cache = Path(cache_dir).resolve()
    root = cache / f"{HEADERS_DEB}-arm64"
    with _locked(cache / ".headers.lock"):
        if not (root / ".complete").is_file():
            apt_dir = Path(DEFAULT_CACHE_DIR).resolve()
            try:
                with _locked(apt_dir / ".root.lock"):  # the apt state is shared with export.emulation
                    (deb,) = fetch_arm64_debs([HEADERS_DEB], cache / "debs", apt_dir / "apt")
            except EmulationUnavailable as e:
                raise NativeBuildUnavailable(f"arm64 CPython headers ({HEADERS_DEB}): {e}") from None
            tmp = Path(tempfile.mkdtemp(prefix=".headers.", dir=cache))
            try:
                subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True, capture_output=True)
                for big in (tmp / "usr" / "lib").glob("python3*/config-*/*.a"):
                    big.unlink()  # 23 MB of static libpython; an extension never links it
                (tmp / ".complete").write_text(deb.name)
                shutil.rmtree(root, ignore_errors=True)
                tmp.rename(root)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    include = root / "usr" / "include"
    if not (include / "python3.11" / "Python.h").is_file():
        raise NativeBuildUnavailable(f"{include}/python3.11/Python.h missing (delete {root} to refetch)")
    return [include / "python3.11", include]


def compile_extension(module: str, spec: dict, arch: str, out_dir: Path,
                      project_root: Path = PROJECT_ROOT, cache_dir: Path = NATIVE_CACHE_DIR, *,
                      reuse: bool = True) -> Path:
    """Compile one extension of ``NATIVE_EXTENSIONS`` for ``arch`` against the stable ABI.

    Returns ``out_dir/<module path>.abi3.so`` (stripped, no libpython dependency). A build is
    reused from ``cache_dir/so/<key>`` when the compiler, the flags and every source and header
    it reads are the same (each target bundle would otherwise compile again); ``reuse=False``
    compiles anyway (and refreshes the cache).
    """
    root = Path(project_root)
    rel = Path(*module.split(".")).with_suffix(".abi3.so")
    cc = compiler(arch)
    py_includes = python_include_dirs(arch, cache_dir)
    args = ["-shared", "-fPIC", "-fvisibility=hidden", "-include", str(COMPAT_HEADER),
            "-Werror=implicit-function-declaration", *spec.get("extra_compile_args", []),
            *[f"-I{root / d}" for d in spec.get("include_dirs", [])], *[f"-I{d}" for d in py_includes],
            *[str(root / s) for s in spec["sources"]], "-Wl,-s"]
    inputs = [COMPAT_HEADER, py_includes[0] / "patchlevel.h", *[root / s for s in spec["sources"]],
              *sorted(h for d in spec.get("include_dirs", []) for h in (root / d).glob("*.h"))]
    key = hashlib.sha256(subprocess.run([cc, "--version"], capture_output=True).stdout)
    for part in args:
        key.update(part.encode() + b"\0")
    for f in inputs:
        key.update(f.read_bytes() + b"\0")
    cached = Path(cache_dir).resolve() / "so" / f"{arch}-{key.hexdigest()[:24]}" / rel
    if not (reuse and cached.is_file()):
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}")
        proc = subprocess.run([cc, *args, "-o", str(tmp)], capture_output=True, text=True, cwd=root)
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise PackagingError(f"compiling {module} for {arch} failed (exit {proc.returncode}): "
                                 f"{cc} {' '.join(args)}\n{(proc.stdout + proc.stderr).strip()[-3000:]}")
        tmp.replace(cached)
    so = Path(out_dir) / rel
    so.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached, so)
    return so


def glibc_floor(shared_object: Path) -> tuple[int, int]:
    """Newest ``GLIBC_2.x`` symbol version a shared object needs (at least 2.17: manylinux2014)."""
    found = re.findall(rb"GLIBC_2\.(\d+)", Path(shared_object).read_bytes())
    return (2, max([17, *(int(m) for m in found)]))


def platform_tag(arch: str, glibc: tuple[int, int]) -> str:
    """The manylinux platform tag for ``arch`` and a glibc floor: the legacy ``manylinux2014``
    spelling at 2.17 (the wheel's file name must fit a bundle file name, 64 characters)."""
    return f"manylinux2014_{arch}" if glibc <= (2, 17) else f"manylinux_{glibc[0]}_{glibc[1]}_{arch}"


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def add_native_modules(pure_wheel: Path, modules: dict[str, Path], plat: str,
                       out_dir: Path) -> Path:
    """A platform wheel: ``pure_wheel`` plus ``modules`` ({path in wheel: file}), retagged
    ``cp311-abi3-<plat>`` with a fresh RECORD; fixed zip timestamps (reproducible)."""
    m = re.match(r"^([^-]+)-([^-]+)-py3-none-any\.whl$", pure_wheel.name)
    if not m:
        raise PackagingError(f"{pure_wheel.name}: expected a pure 'NAME-VERSION-py3-none-any.whl'")
    dist, version = m.groups()
    info_dir = f"{dist}-{version}.dist-info"
    tag = f"{PYTHON_TAG}-{ABI_TAG}-{plat}"
    entries: list[tuple[str, bytes, int]] = []
    with zipfile.ZipFile(pure_wheel) as zin:
        for item in zin.infolist():
            if item.filename == f"{info_dir}/RECORD" or item.is_dir():
                continue
            data = zin.read(item)
            if item.filename == f"{info_dir}/WHEEL":
                lines = [ln for ln in data.decode().splitlines()
                         if ln.strip() and not ln.startswith(("Tag:", "Root-Is-Purelib:"))]
                data = "\n".join(lines + ["Root-Is-Purelib: false", f"Tag: {tag}"]).encode() + b"\n"
            entries.append((item.filename, data, (item.external_attr >> 16) or 0o644))
    for arc, path in sorted(modules.items()):
        entries.append((arc, Path(path).read_bytes(), 0o755))
    entries.sort(key=lambda e: (e[0].startswith(info_dir), e[0]))  # dist-info last, as pip writes
    record = "".join(f"{a},{_record_hash(d)},{len(d)}\n" for a, d, _ in entries) + f"{info_dir}/RECORD,,\n"
    entries.append((f"{info_dir}/RECORD", record.encode(), 0o644))
    out = Path(out_dir) / f"{dist}-{version}-{tag}.whl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for arc, data, mode in entries:
            zi = zipfile.ZipInfo(arc, _FIXED_TIME)
            zi.external_attr = (0o100000 | mode) << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            zout.writestr(zi, data)
    return out


def build_native_wheel(arch: str, out_dir: Path, project_root: Path = PROJECT_ROOT, *,
                       pure_wheel: Path | None = None, cache_dir: Path = NATIVE_CACHE_DIR,
                       reuse: bool = True) -> Path:
    """The device wheel for ``arch`` with every native extension compiled in (stable ABI).

    ``pure_wheel`` (a device wheel from :func:`build_sensorcodec_wheel`) is built when not given;
    ``reuse``: see :func:`compile_extension`.
    Raises :class:`NativeBuildUnavailable` when the compiler or the headers are missing.
    """
    compiler(arch)  # fail before the (slower) pure wheel build
    with tempfile.TemporaryDirectory(prefix=f"sensorcodec-native-{arch}-") as tmp:
        work = Path(tmp)
        pure = pure_wheel or build_sensorcodec_wheel(work / "pure", Path(project_root), device=True)
        modules = {}
        for module, spec in native_extensions(project_root).items():
            so = compile_extension(module, spec, arch, work / "ext", project_root, cache_dir, reuse=reuse)
            modules[so.relative_to(work / "ext").as_posix()] = so
        glibc = max(glibc_floor(p) for p in modules.values())
        return add_native_modules(pure, modules, platform_tag(arch, glibc), Path(out_dir))


def device_wheel(target: Target, out_dir: Path, project_root: Path = PROJECT_ROOT,
                 cache_dir: Path = NATIVE_CACHE_DIR) -> tuple[Path, dict]:
    """The sensorcodec wheel for ``target``'s wheelhouse and a note on its native coder.

    A ``cp311-abi3`` wheel for the target's architecture when its Python is >= 3.11 and this
    machine has the compiler; otherwise the pure wheel (the native coders are then unavailable on
    the device; every other coder works) with the reason in the note.
    """
    minor = tuple(int(x) for x in target.python_version.split("."))
    pure = build_sensorcodec_wheel(Path(out_dir) / "pure", Path(project_root), device=True)
    if minor < ABI3_MIN_PYTHON:
        return pure, {"native": False, "reason": (
            f"Python {target.python_version} < 3.11: the stable-ABI extension needs 3.11 "
            "(Py_buffer joined the limited API there); the native coders are unavailable on it")}
    try:
        wheel = build_native_wheel(target.arch, out_dir, project_root, pure_wheel=pure,
                                   cache_dir=cache_dir)
    except NativeBuildUnavailable as e:
        return pure, {"native": False, "reason": f"{e}; the native coders are unavailable on it"}
    return wheel, {"native": True, "abi": f"{PYTHON_TAG}-{ABI_TAG}",
                   "modules": sorted(native_extensions(project_root))}


def main(argv: list[str] | None = None) -> int:
    """``python -m export.native_wheel --arch aarch64 --out dist``: build the wheel(s), print them."""
    import argparse  # noqa: PLC0415

    p = argparse.ArgumentParser(prog="python -m export.native_wheel", description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", choices=sorted(CROSS_TRIPLETS), action="append",
                   help="target architecture (repeatable; default: both)")
    p.add_argument("--out", type=Path, default=Path("dist"), help="output folder (default dist)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sensorcodec-pure-") as tmp:
        pure = build_sensorcodec_wheel(Path(tmp), PROJECT_ROOT, device=True)
        for arch in args.arch or sorted(CROSS_TRIPLETS):
            try:
                whl = build_native_wheel(arch, args.out, pure_wheel=pure)
            except PackagingError as e:
                print(f"native_wheel: error: {e}", file=sys.stderr)
                return 1
            print(f"{whl} ({whl.stat().st_size / 1e3:.1f} kB)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
