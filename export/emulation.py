"""Run a target bundle on emulated aarch64 (qemu-user) and compare its codes with x86.

Recipe (reference note ``onnx-int8-arm-energy.md`` §3.3b, verified on this machine kind): Debian
arm64 ``.deb`` files unpacked with ``dpkg-deb -x`` into a root folder, a fake ARM
``<root>/proc/cpuinfo`` (onnxruntime segfaults at import under qemu-user when it sees the host's
x86 cpuinfo), the bundle's wheelhouse installed offline with ``pip --target --platform``, and the
guest Python run as ``qemu-aarch64-static -cpu <core> -L <root> <root>/usr/bin/python3.11``.
No chroot, binfmt_misc, docker or root needed.

The .debs come from the machine's own Debian mirror through a private apt state folder
(``apt-get -o Dir::State::Lists=... -o APT::Architecture=arm64``), so the host's dpkg
architectures are never touched. Everything is cached under ``data/cache/arm`` (git-ignored)
and rebuilt idempotently when missing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from export.targets import DEFAULT_CACHE_DIR, PROJECT_ROOT, PackagingError, Target, get_target

# Runtime closure of Debian 12's python3.11 on arm64 (reference note §3.3b: 28 packages, 12.5 MB).
ARM64_PYTHON_DEBS: dict[str, tuple[str, ...]] = {
    "3.11": (
        "libc6", "libgcc-s1", "libstdc++6", "gcc-12-base", "python3.11-minimal",
        "libpython3.11-minimal", "libpython3.11-stdlib", "zlib1g", "libexpat1", "libssl3", "libffi8",
        "libbz2-1.0", "liblzma5", "libsqlite3-0", "libuuid1", "libncursesw6", "libtinfo6",
        "libreadline8", "libdb5.3", "libcrypt1", "libnsl2", "libtirpc3", "libgssapi-krb5-2",
        "libk5crypto3", "libkrb5-3", "libkrb5support0", "libkeyutils1", "libcom-err2",
    ),
}

# /proc/cpuinfo of a 4-core Cortex-A72 / A76; what onnxruntime's cpuinfo library parses.
_CPU_PART = {"cortex-a72": ("0xd08", "fp asimd evtstrm crc32 cpuid"),
             "cortex-a76": ("0xd0b", "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp "
                                     "asimdhp cpuid asimdrdm lrcpc dcpop asimddp"),
             "max": ("0xd0b", "fp asimd evtstrm crc32 cpuid")}


class EmulationUnavailable(RuntimeError):
    """This machine cannot run aarch64 code (qemu-user-static missing, no apt, ...)."""


def qemu_binary() -> str:
    """Path of ``qemu-aarch64-static``; raises :class:`EmulationUnavailable` naming the package."""
    exe = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
    if not exe:
        raise EmulationUnavailable("qemu-aarch64-static not found: install the Debian package "
                                   "qemu-user-static (bash scripts/install-system-deps.sh)")
    return exe


def fake_cpuinfo(cpu: str = "cortex-a72", cores: int = 4) -> str:
    """A /proc/cpuinfo text of an ARM core (onnxruntime reads it at import)."""
    part, features = _CPU_PART.get(cpu, _CPU_PART["cortex-a72"])
    block = ("processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: {f}\nCPU implementer\t: 0x41\n"
             "CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: {p}\nCPU revision\t: 3\n\n")
    return "".join(block.format(i=i, f=features, p=part) for i in range(cores))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _apt_options(apt_dir: Path) -> list[str]:
    """apt-get options for a private arm64-only package list (host dpkg state untouched)."""
    return ["-o", f"Dir::State::Lists={apt_dir / 'lists'}", "-o", f"Dir::Cache={apt_dir / 'cache'}",
            "-o", "Dir::State::status=/dev/null", "-o", "Dir::Etc::SourceList=/dev/null",
            "-o", f"Dir::Etc::SourceParts={apt_dir / 'sources.list.d'}",
            "-o", "APT::Architecture=arm64", "-o", "APT::Architectures::=arm64",
            "-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root", "-q"]


def _apt(args: Sequence[str], apt_dir: Path, cwd: Path | None = None) -> None:
    cmd = ["apt-get", *_apt_options(apt_dir), *args]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise EmulationUnavailable(f"{' '.join(cmd[:1] + list(args))} failed (exit {proc.returncode}):\n"
                                   + (proc.stdout + proc.stderr).strip()[-2000:])


def fetch_arm64_debs(packages: Sequence[str], dest: Path, apt_dir: Path) -> list[Path]:
    """Download the arm64 .debs of ``packages`` into ``dest`` (skips ones already there)."""
    if not shutil.which("apt-get"):
        raise EmulationUnavailable("apt-get not found: arm64 Python is taken from Debian .debs")
    dest.mkdir(parents=True, exist_ok=True)
    have = {p.name.split("_")[0]: p for p in dest.glob("*.deb")}
    missing = [p for p in packages if p not in have]
    if missing:
        srcs = apt_dir / "sources.list.d"
        if not (apt_dir / "lists").is_dir() or not any((apt_dir / "lists").glob("*Packages*")):
            srcs.mkdir(parents=True, exist_ok=True)
            for d in ("lists/partial", "cache/archives/partial"):
                (apt_dir / d).mkdir(parents=True, exist_ok=True)
            found = False
            for f in Path("/etc/apt/sources.list.d").glob("*.sources"):
                text = f.read_text(encoding="utf-8", errors="replace")
                if "debian" in text and "Architectures:" not in text:
                    shutil.copy2(f, srcs / f.name)
                    found = True
            main_list = Path("/etc/apt/sources.list")
            if main_list.is_file() and main_list.read_text(errors="replace").strip():
                lines = [ln for ln in main_list.read_text(errors="replace").splitlines()
                         if ln.startswith("deb ") and "[" not in ln]
                if lines:
                    (srcs / "main.list").write_text("\n".join(lines) + "\n")
                    found = True
            if not found:
                raise EmulationUnavailable("no Debian apt sources found under /etc/apt")
            _apt(["update"], apt_dir)
        _apt(["download", *[f"{p}:arm64" for p in missing]], apt_dir, cwd=dest)
    debs = {p.name.split("_")[0]: p for p in dest.glob("*.deb")}
    lost = [p for p in packages if p not in debs]
    if lost:
        raise EmulationUnavailable(f"apt-get download did not fetch: {', '.join(lost)}")
    return [debs[p] for p in packages]


@dataclasses.dataclass(frozen=True)
class ArmRoot:
    """An unpacked Debian arm64 userland with Python, runnable through qemu-user."""

    path: Path
    python_version: str

    @property
    def python(self) -> Path:
        """Host path of the guest's interpreter."""
        return self.path / "usr" / "bin" / f"python{self.python_version}"


def ensure_arm_root(cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR, python_version: str = "3.11",
                    cpu: str = "cortex-a72") -> ArmRoot:
    """The cached arm64 Python root, built on first use (about 10 s with a warm apt cache).

    Idempotent and safe to call from concurrent processes (file lock); a ``.complete`` stamp
    names the .debs it was built from, and the root is rebuilt if they change.
    """
    if python_version not in ARM64_PYTHON_DEBS:
        raise EmulationUnavailable(f"no Debian arm64 Python {python_version} recipe; "
                                   f"have {', '.join(ARM64_PYTHON_DEBS)}")
    cache = Path(cache_dir)
    root = cache / f"root-py{python_version}"
    with _locked(cache / ".root.lock"):
        debs = fetch_arm64_debs(ARM64_PYTHON_DEBS[python_version], cache / "debs", cache / "apt")
        stamp = "\n".join(sorted(d.name for d in debs))
        if not ((root / ".complete").is_file() and (root / ".complete").read_text() == stamp):
            tmp = Path(tempfile.mkdtemp(prefix=".root.", dir=cache))
            try:
                for deb in debs:
                    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True,
                                   capture_output=True)
                # Empty dist-packages so qemu -L never falls through to the host's x86 ones.
                for d in ("usr/lib/python3/dist-packages",
                          f"usr/local/lib/python{python_version}/dist-packages"):
                    (tmp / d).mkdir(parents=True, exist_ok=True)
                (tmp / "proc").mkdir(exist_ok=True)
                (tmp / ".complete").write_text(stamp)
                if root.exists():
                    shutil.rmtree(root)
                tmp.rename(root)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        info = root / "proc" / "cpuinfo"
        if not info.is_file() or info.read_text() != fake_cpuinfo(cpu):
            tmp_info = info.with_name(f".cpuinfo.{os.getpid()}")
            tmp_info.write_text(fake_cpuinfo(cpu))
            tmp_info.replace(info)
    return ArmRoot(root, python_version)


def install_wheelhouse(wheelhouse: Path, site_dir: Path, target: Target,
                       requirements: Sequence[str] = ("sensorcodec[bridge]",), *,
                       no_deps: bool = False) -> float:
    """Install ``requirements`` from the bundle's wheelhouse into ``site_dir`` for the target.

    Offline (``--no-index``): this is the check that the wheelhouse is complete. Runs the host's
    pip with ``--target --platform`` (the guest Python has no pip); ``no_deps``: the named
    requirements only. Returns seconds taken.
    """
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
           "--no-index", "--find-links", str(wheelhouse), "--target", str(site_dir),
           "--only-binary=:all:", "--python-version", target.python_version,
           "--implementation", "cp", "--abi", target.abi, *(["--no-deps"] if no_deps else [])]
    for p in target.platforms:
        cmd += ["--platform", p]
    env = {k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"}
    proc = subprocess.run([*cmd, *requirements], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise PackagingError(f"offline install from {wheelhouse} failed (wheelhouse incomplete?):\n"
                             + (proc.stdout + proc.stderr).strip()[-3000:])
    return time.perf_counter() - t0


def run_in_guest(root: ArmRoot, argv: Sequence[str], *, site_dirs: Sequence[Path] = (),
                 cpu: str = "cortex-a72", timeout: float = 900, cwd: Path | None = None,
                 env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python<ver> argv...`` on emulated aarch64 (``qemu-aarch64-static -L root``)."""
    genv = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(cwd or tempfile.gettempdir()),
            "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": os.pathsep.join(str(s) for s in site_dirs),
            "OMP_NUM_THREADS": "1", **(env or {})}
    cmd = [qemu_binary(), "-cpu", cpu, "-L", str(root.path), str(root.python), *argv]
    return subprocess.run(cmd, cwd=cwd, env=genv, capture_output=True, text=True, timeout=timeout)


# --------------------------------------------------------------------------------------------
# The guest program: encode frames with every encoder graph of a bundle, save the codes.

GUEST_SCRIPT = r'''
"""Encode frames with a bundle on this machine; write {variant: codes} to an .npz."""
import json, platform, sys, time
import numpy as np
import onnxruntime as ort

bundle, frames_path, out_path = sys.argv[1:4]
with np.load(frames_path) as z:  # frame_i: what Encoder.codes takes; input_i: the graph's batch
    n = len([k for k in z.files if k.startswith("frame_")])
    frames = [z["frame_%05d" % i] for i in range(n)]
    inputs = [z["input_%05d" % i] for i in range(n)]


def join(codes):
    """Equal-shaped codes stacked on the batch axis, otherwise raveled one after another."""
    if len({c.shape for c in codes}) == 1:
        return np.ascontiguousarray(np.concatenate(codes))
    return np.ascontiguousarray(np.concatenate([c.ravel() for c in codes]))


manifest = json.load(open(bundle + "/manifest.json"))
target = manifest.get("target") or {}
models = {"onnx:" + v: f for v, f in (("fp32", "encoder.onnx"), ("int8", "encoder_int8.onnx"))
          if f in manifest["files"]}
for v, f in ((target.get("ort_format") or {}).get("files") or {}).items():
    models["ort:" + v] = f
so = ort.SessionOptions()
so.intra_op_num_threads = 1
so.inter_op_num_threads = 1
so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
out, info = {}, {"machine": platform.machine(), "onnxruntime": ort.__version__,
                 "numpy": np.__version__, "python": platform.python_version(), "seconds": {}}
for key, rel in sorted(models.items()):
    t0 = time.perf_counter()
    sess = ort.InferenceSession(bundle + "/" + rel, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    out[key] = join([sess.run(None, {name: x})[0] for x in inputs])
    info["seconds"][key] = time.perf_counter() - t0
try:  # the sensorcodec runtime itself: integer codes and whole FRAME payloads (entropy coded)
    from encoder_runtime.codec import Encoder
except ImportError as e:
    info["encoder_runtime"] = "unavailable: %s" % e
else:
    for v in ("fp32", "int8"):
        if v == "int8" and "encoder_int8.onnx" not in manifest["files"]:
            continue
        t0 = time.perf_counter()
        enc = Encoder.load(bundle, variant=v, backend="onnx")
        out["runtime:" + v] = join([enc.codes(f) for f in frames])
        payloads = [enc.encode_frame(f) for f in frames]
        out["frame:" + v] = np.frombuffer(b"".join(len(p).to_bytes(8, "little") + p
                                                   for p in payloads), np.uint8)
        info["seconds"]["runtime:" + v] = time.perf_counter() - t0
    info["encoder_runtime"] = "ok"
np.savez(out_path, **out)
print(json.dumps(info))
'''


@dataclasses.dataclass
class ArmCheck:
    """Result of :func:`check_bundle_on_arm`."""

    arm_codes: dict[str, np.ndarray]
    host_codes: dict[str, np.ndarray]
    arm_info: dict
    host_info: dict
    timings: dict[str, float]

    def mismatches(self) -> list[str]:
        """What differs: every code array (ARM or host; any graph, or the runtime Encoder)
        against the host's fp32 ``.onnx`` codes byte for byte, and the codes that the host
        decodes from every FRAME payload (entropy coded, ARM or host) against the same. Empty
        when all agree."""
        ref = self.host_codes["onnx:fp32"]
        bad = []
        if set(self.arm_codes) != set(self.host_codes):
            bad.append(f"outputs differ: arm {sorted(self.arm_codes)} host {sorted(self.host_codes)}")
        for side, codes in (("arm", self.arm_codes), ("host", self.host_codes)):
            for key, arr in codes.items():
                if key.startswith("frame:"):
                    try:
                        arr = join_codes([frame_payload_codes(p) for p in split_payloads(arr)])
                    except Exception as e:  # noqa: BLE001 - report, do not hide
                        bad.append(f"{side} {key}: does not decode here ({e})")
                        continue
                if arr.dtype != ref.dtype or arr.shape != ref.shape or arr.tobytes() != ref.tobytes():
                    bad.append(f"{side} {key}")
        return bad

    def frame_bytes_identical(self) -> dict[str, bool]:
        """Whether each variant's entropy-coded FRAME payloads are the same bytes on ARM and here
        (informational: the lossless coder need not be byte-stable across platforms; the codes
        it decodes to must be)."""
        return {k: self.arm_codes[k].tobytes() == self.host_codes.get(k, np.zeros(0)).tobytes()
                for k in self.arm_codes if k.startswith("frame:")}


def join_codes(codes: Sequence[np.ndarray]) -> np.ndarray:
    """Per-frame codes as one array, as the guest joins them: equal shapes are stacked on the
    batch axis, mixed shapes (audio excerpts of several lengths, ...) raveled in order."""
    if len({c.shape for c in codes}) == 1:
        return np.ascontiguousarray(np.concatenate(codes))
    return np.ascontiguousarray(np.concatenate([np.asarray(c).ravel() for c in codes]))


def graph_input(manifest: dict, frame: np.ndarray) -> np.ndarray:
    """The encoder graph's ``samples`` batch for one frame, as ``Encoder.codes`` builds it
    (docs/bundle-format.md): a trailing channel axis when missing, mono audio models take each
    channel as a batch item, every block axis edge-padded to a multiple of the block."""
    a = np.asarray(frame)
    block = [int(b) for b in manifest["transform"]["block"]]
    channels = int((manifest.get("sample") or {}).get("channels") or 1)
    if a.ndim == len(block):
        a = a[..., None]
    if manifest.get("modality") == "image" and a.shape[-1] == 1 and channels > 1:
        a = np.repeat(a, channels, axis=-1)
    if manifest.get("modality") == "audio" and channels == 1:
        batch = np.ascontiguousarray(a.T)[..., None]
    else:
        batch = a[None]
    pad = [(0, 0)] + [(0, (-n) % b) for n, b in zip(batch.shape[1:-1], block)] + [(0, 0)]
    if any(p[1] for p in pad):
        batch = np.pad(batch, pad, mode="edge")
    return np.ascontiguousarray(batch)


def split_payloads(packed: np.ndarray) -> list[bytes]:
    """Undo the guest's packing of FRAME payloads (u64 little-endian length + bytes, repeated)."""
    data, out, pos = packed.tobytes(), [], 0
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 8], "little")
        out.append(data[pos + 8:pos + 8 + n])
        pos += 8 + n
    return out


def frame_payload_codes(payload: bytes) -> np.ndarray:
    """The integer codes (N, C, *latent) a FRAME payload carries, decoded with this machine's
    lossless coder (``encoder_runtime.frame`` + ``encoder_runtime.entropy``)."""
    from encoder_runtime import entropy  # noqa: PLC0415
    from encoder_runtime.frame import parse_frame  # noqa: PLC0415

    info = parse_frame(payload)
    cs = tuple(info.code_shape)
    flat = (cs[0] * cs[1],) + cs[2:] if cs[0] > 1 else cs[1:]
    return entropy.get_coder(info.coder).decode(bytes(payload[info.data_offset:]), flat).reshape(cs)


def _write_frames(path: Path, manifest: dict, frames: Sequence[np.ndarray]) -> None:
    arrays = {}
    for i, f in enumerate(frames):
        arrays["frame_%05d" % i] = np.ascontiguousarray(f)
        arrays["input_%05d" % i] = graph_input(manifest, f)
    np.savez(path, **arrays)


def _run_script(python_argv: Sequence[str], runner, bundle: Path, fpath: Path,
                work: Path, tag: str) -> tuple[dict[str, np.ndarray], dict]:
    script = work / "encode_frames.py"
    script.write_text(GUEST_SCRIPT)
    opath = work / f"codes-{tag}.npz"
    proc = runner([*python_argv, str(script), str(bundle), str(fpath), str(opath)])
    if proc.returncode != 0:
        raise PackagingError(f"encoding on {tag} failed (exit {proc.returncode}):\n"
                             + (proc.stdout + proc.stderr).strip()[-3000:])
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    with np.load(opath) as z:
        return {k: z[k] for k in z.files}, info


def check_bundle_on_arm(target_bundle: str | os.PathLike, frames: np.ndarray | Sequence[np.ndarray], *,
                        cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR, cpu: str | None = None,
                        work_dir: str | os.PathLike | None = None,
                        site_cache_dir: str | os.PathLike | None = None,
                        timeout: float = 900) -> ArmCheck:
    """Install ``target_bundle``'s wheelhouse into an emulated aarch64 Python, encode ``frames``
    there with every encoder graph of the bundle, and do the same natively here.

    ``frames`` are arrays as ``Encoder.codes`` takes them: a batch of equal-shaped frames
    (e.g. ``(N, H, W, C)`` uint8 tiles) or a list of frames of any shapes (int16 audio
    excerpts ``(T,)`` of odd lengths, ``(T, C)`` time series, ...); the raw graphs get each
    frame as :func:`graph_input` lays it out (edge-padded to the block). The guest site-packages is reused from ``site_cache_dir``
    when a bundle with the same pinned wheelhouse was installed there before. Returns both sets
    of codes; see :meth:`ArmCheck.mismatches`.
    """
    bundle = Path(target_bundle).resolve()
    manifest = json.loads((bundle / "manifest.json").read_text())
    tsec = manifest.get("target") or {}
    target = get_target(tsec.get("name", "aarch64")).with_python(tsec.get("python"))
    if target.arch != "aarch64":
        raise PackagingError(f"bundle {bundle} is for {target.arch}, not aarch64")
    if not (tsec.get("wheelhouse") or {}).get("dir"):
        raise PackagingError(f"bundle {bundle} has no wheelhouse (built with wheelhouse=False)")
    cpu = cpu or target.qemu_cpu or "cortex-a72"
    timings: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        work = Path(work_dir) if work_dir else Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="sensorcodec-arm-")))
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        root = ensure_arm_root(cache_dir, target.python_version, cpu)
        timings["arm_root_s"] = time.perf_counter() - t0
        # requirements.txt pins every wheel by sha256: equal files mean equal installs.
        key = hashlib.sha256((bundle / "wheelhouse" / "requirements.txt").read_bytes()).hexdigest()[:16]
        site = Path(site_cache_dir or work) / f"site-{target.abi}-{key}"
        if (site / ".complete").is_file():
            timings["offline_install_s"] = 0.0
        else:
            if site.exists():
                shutil.rmtree(site)
            timings["offline_install_s"] = install_wheelhouse(bundle / "wheelhouse", site, target)
            (site / ".complete").write_text(key)
        fpath = work / "frames.npz"
        _write_frames(fpath, manifest, list(frames))
        t0 = time.perf_counter()
        arm_codes, arm_info = _run_script(
            [], lambda argv: run_in_guest(root, argv, site_dirs=[site], cpu=cpu, timeout=timeout,
                                          cwd=work), bundle, fpath, work, "arm")
        timings["emulated_run_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        host_codes, host_info = _run_script(
            [sys.executable], lambda argv: subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, cwd=work,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(
                    filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]))}),
            bundle, fpath, work, "host")
        timings["native_run_s"] = time.perf_counter() - t0
    return ArmCheck(arm_codes, host_codes, arm_info, host_info, timings)


# --------------------------------------------------------------------------------------------
# A small runtime bundle for checks before (or independent of) a trained model.


def write_toy_bundle(out_dir: str | os.PathLike, *, channels: int = 12, block: int = 8,
                     seed: int = 0) -> Path:
    """Write a tiny but well-formed runtime bundle (docs/bundle-format.md) to ``out_dir``.

    The encoder is the integer-exact folded form: a ``block``x``block`` stride-``block`` conv
    with int8 weights on uint8 HWC RGB, int32 bias, per-channel power-of-two requantization,
    Round (half to even), Clip to +-127, int8 output. ``encoder.onnx`` computes it in float32
    (exact: |acc| < 2^24); ``encoder_int8.onnx`` with ConvInteger in int32. Needs ``onnx``.
    """
    import onnx  # noqa: PLC0415
    from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    c_in = 3
    weight = rng.integers(-127, 128, size=(channels, c_in, block, block), dtype=np.int64).astype(np.int8)
    bias = (-128 * weight.astype(np.int32).sum(axis=(1, 2, 3))).astype(np.int32)  # centre uint8 at 0
    shift = rng.integers(9, 13, size=channels).astype(np.int32)
    assert (np.abs(weight.astype(np.int64)).sum(axis=(1, 2, 3)) * 255 + np.abs(bias)).max() < 2**24
    scale = (2.0 ** -shift.astype(np.float64)).astype(np.float32).reshape(1, channels, 1, 1)

    def tail(nodes, inits, acc: str):
        inits += [numpy_helper.from_array(scale, "scale"),
                  numpy_helper.from_array(np.array(-127, np.float32), "lo"),
                  numpy_helper.from_array(np.array(127, np.float32), "hi")]
        nodes += [helper.make_node("Mul", [acc, "scale"], ["scaled"]),
                  helper.make_node("Round", ["scaled"], ["rounded"]),
                  helper.make_node("Clip", ["rounded", "lo", "hi"], ["clipped"]),
                  helper.make_node("Cast", ["clipped"], ["codes"], to=TensorProto.INT8)]

    # Same names as export.onnx_export.encoder_graph: the runtime feeds "samples".
    x = helper.make_tensor_value_info("samples", TensorProto.UINT8, ["N", "H", "W", c_in])
    y = helper.make_tensor_value_info("codes", TensorProto.INT8, ["N", channels, "H_lat", "W_lat"])
    # fp32 graph
    nodes = [helper.make_node("Cast", ["samples"], ["xf"], to=TensorProto.FLOAT),
             helper.make_node("Transpose", ["xf"], ["xc"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["xc", "W", "B"], ["acc"], kernel_shape=[block, block],
                              strides=[block, block])]
    inits = [numpy_helper.from_array(weight.astype(np.float32), "W"),
             numpy_helper.from_array(bias.astype(np.float32), "B")]
    tail(nodes, inits, "acc")
    fp32 = helper.make_model(helper.make_graph(nodes, "toy_encoder_fp32", [x], [y], inits),
                             opset_imports=[helper.make_opsetid("", 17)], producer_name="sensorcodec-toy")
    # integer graph: ConvInteger (uint8 x int8 -> int32) + int32 bias
    nodes = [helper.make_node("Transpose", ["samples"], ["xc"], perm=[0, 3, 1, 2]),
             helper.make_node("ConvInteger", ["xc", "Wq"], ["acci"], kernel_shape=[block, block],
                              strides=[block, block]),
             helper.make_node("Add", ["acci", "Bi"], ["accb"]),
             helper.make_node("Cast", ["accb"], ["acc"], to=TensorProto.FLOAT)]
    inits = [numpy_helper.from_array(weight, "Wq"),
             numpy_helper.from_array(bias.reshape(1, channels, 1, 1), "Bi")]
    tail(nodes, inits, "acc")
    int8 = helper.make_model(helper.make_graph(nodes, "toy_encoder_int8", [x], [y], inits),
                             opset_imports=[helper.make_opsetid("", 17)], producer_name="sensorcodec-toy")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for model, name in ((fp32, "encoder.onnx"), (int8, "encoder_int8.onnx")):
        model.ir_version = 8
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, out / name)
    np.savez(out / "encoder_int.npz", weight=weight, bias=bias, shift=shift)
    from encoder_runtime.bundle import sha256_file  # noqa: PLC0415

    files = {n: {"sha256": sha256_file(out / n), "bytes": (out / n).stat().st_size}
             for n in ("encoder.onnx", "encoder_int8.onnx", "encoder_int.npz")}
    try:
        from encoder_runtime.entropy import DEFAULT_CODER as coder  # noqa: PLC0415
    except ImportError:
        coder = "zstd3"
    pixels = block * block
    manifest = {
        "format": "sensorcodec-bundle", "format_version": 1, "name": "toy-rgb-c%d" % channels,
        "modality": "image", "sample": {"dtype": "uint8", "layout": "HWC", "channels": c_in,
                                        "rate_hz": None},
        "transform": {"wavelet": "haar", "levels": int(np.log2(block)), "dims": 2,
                      "block": [block, block], "folded": True, "padding": "edge"},
        "latent": {"channels": channels, "code_max": 127, "rounding": "half_to_even"},
        "coder": {"default": coder}, "files": files,
        "macs_per_sample": {"folded": channels * c_in * pixels / pixels, "wpt_plus_projection": 0.0},
        "operating_point": {}, "model_card": {"command": "export.emulation.write_toy_bundle",
                                              "note": "random integer weights, for packaging tests"},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return out
