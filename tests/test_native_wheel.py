"""Device wheels with the native coders (``ctx-ac``, ``rans``) for x86_64 and aarch64 (issue 12, item 2).

``export.native_wheel`` compiles the extensions of ``setup.py`` against the CPython stable ABI
(cp311-abi3), natively for x86_64 and with ``aarch64-linux-gnu-gcc`` for aarch64. Checked here:
the wheels themselves (tags, glibc floor, RECORD, no libpython, reproducible bytes); the x86_64
wheel installed by pip into an empty folder and imported from there; the aarch64 wheel from a
``sensor-export`` wheelhouse installed (with numpy and zstandard aarch64 wheels, pinned) into the
emulated Debian arm64 Python 3.11 (``qemu-aarch64-static -L``, root from ``export.emulation``);
both write the in-tree x86 extension's bytes (``ctx-ac`` and ``rans``) for one real frame of
every bundled model (``benchmarks.lossless.bundled_model_codes``) and decode them back. Skips,
naming the Debian package, without the cross compiler or qemu-user-static (scripts/apt/*.txt).
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from export import export_cli, native_wheel
from export.emulation import (EmulationUnavailable, ensure_arm_root, install_wheelhouse, qemu_binary,
                              run_in_guest)
from export.native_wheel import (NATIVE_CACHE_DIR, NativeBuildUnavailable, build_native_wheel, compiler,
                                 device_wheel, glibc_floor)
from export.targets import DEFAULT_CACHE_DIR, _pip_target_args, build_sensorcodec_wheel, get_target

REPO = Path(__file__).resolve().parents[1]

GUEST_WHEELS = {  # what the guest runtime imports besides sensorcodec: (version, sha256 of aarch64 cp311)
    "numpy": ("2.4.6", "0ab0a9c4ffb1a6d95ef519fe4247dba8eb6b18ad93999f76b7f657039acabd47"),
    "zstandard": ("0.25.0", "01582723b3ccd6939ab7b3a78622c573799d5d8737b534b86d0e06ac18dbde4a"),
}

WHEEL_EXTENSIONS = {"encoder_runtime/_sclossless.abi3.so": b"PyInit__sclossless",
                    "encoder_runtime/_scencoder.abi3.so": b"PyInit__scencoder"}
"""The extensions a device wheel adds to the pure one (setup.py NATIVE_EXTENSIONS), and their init."""

NATIVE_CODERS = ("ctx-ac", "rans")
"""The coders in the extension (encoder_runtime._sclossless); each is checked where built here."""

# Run natively and under emulation: each native coder through the installed runtime, bytes out,
# decoded back. argv: codes.npz out.npz coder...
CODEC_SCRIPT = textwrap.dedent(r"""
    import json, platform, sys, time
    import numpy as np
    from encoder_runtime import _sclossless
    from encoder_runtime.entropy import get_coder

    out, seconds = {}, {}
    with np.load(sys.argv[1]) as z:
        for name in sys.argv[3:]:
            coder, seconds[name] = get_coder(name), 0.0
            for key in z.files:
                codes = z[key]
                t0 = time.perf_counter()
                blob = coder.encode(codes)
                seconds[name] += time.perf_counter() - t0
                assert np.array_equal(coder.decode(blob, codes.shape), codes), (name, key)
                out[name + "/" + key] = np.frombuffer(blob, np.uint8)
    np.savez(sys.argv[2], **out)
    print(json.dumps({"extension": _sclossless.__file__, "machine": platform.machine(),
                      "python": platform.python_version(), "encode_s": seconds}))
""")


# Run under emulation: the native encoder kernel (encoder_runtime._scencoder) on real samples of
# every bundled model. argv: inputs.npz out.npz
ENCODER_SCRIPT = textwrap.dedent(r"""
    import json, sys
    import numpy as np
    from encoder_runtime import _scencoder

    out = {}
    with np.load(sys.argv[1]) as z:
        for name in sorted({k.split("/")[0] for k in z.files}):
            g = lambda f: z[name + "/" + f]
            codes = np.empty(tuple(g("code_shape")), np.int8)
            _scencoder.encode(g("samples"), int(g("dtype")), g("samples").shape[1:-1],
                              tuple(int(b) for b in g("block")), int(g("samples").shape[-1]),
                              g("weight"), g("bias"), g("shift"), int(g("code_max")), codes)
            out[name] = codes
    np.savez(sys.argv[2], **out)
    print(json.dumps({"extension": _scencoder.__file__, "isa": _scencoder.isa()}))
""")


def _need_compiler(arch: str) -> None:
    try:
        compiler(arch)
    except NativeBuildUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def codes(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    """One real frame's codes per bundled model (.npz) and the in-tree x86 extension's bytes
    ({"coder/model": bytes}) for every native coder built here."""
    from benchmarks.lossless import bundled_model_codes
    from encoder_runtime.entropy import available_coders, get_coder

    coders = [c for c in NATIVE_CODERS if c in available_coders()]
    if not coders:
        pytest.skip("the in-tree extension encoder_runtime._sclossless is not built (pip install -e .)")
    frames = bundled_model_codes()
    assert len(frames) >= 12, sorted(frames)
    path = tmp_path_factory.mktemp("codes") / "codes.npz"
    np.savez(path, **frames)
    return path, {f"{c}/{k}": get_coder(c).encode(v) for c in coders for k, v in frames.items()}


@pytest.fixture(scope="module")
def encoder_inputs(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """Small real inputs of every bundled model with its integer weights (.npz) and the codes the
    int8 ONNX graph makes of them ({model: codes}): what the native kernel must write anywhere."""
    from benchmarks.lossless import bundled_sample_inputs, sample_kind
    from encoder_runtime import Encoder
    from encoder_runtime.bundle import list_model_names, load_bundle
    from encoder_runtime.native_encoder import DTYPE_CODES, NativeKernel

    crop = {"image": np.s_[:64, :96], "hyperspectral": np.s_[:16, :16], "video": np.s_[:4, :32, :48],
            "volume": np.s_[:8, :16, :16], "volume16": np.s_[:8, :16, :16]}
    inputs = {k: v[0] for k, v in bundled_sample_inputs().items() if v}
    arrays, want = {}, {}
    for name in list_model_names():
        b = load_bundle(name)
        kind = sample_kind(b.manifest)
        if kind not in inputs:
            continue
        x = np.ascontiguousarray(inputs[kind][crop.get(kind, np.s_[:4096])])
        onnx = Encoder(b, variant="int8", backend="onnx")
        batch, _ = onnx._to_batch(x)
        want[name] = onnx.codes(x)
        k = NativeKernel(b)
        for f, a in (("samples", batch), ("dtype", DTYPE_CODES[b.sample_dtype]), ("block", k.block),
                     ("weight", k.weight), ("bias", k.bias), ("shift", k.shift), ("code_max", k.code_max),
                     ("code_shape", want[name].shape)):
            arrays[f"{name}/{f}"] = np.asarray(a)
    path = tmp_path_factory.mktemp("enc") / "inputs.npz"
    np.savez(path, **arrays)
    return path, want


@pytest.fixture(scope="module")
def pure_wheel(tmp_path_factory) -> Path:
    return build_sensorcodec_wheel(tmp_path_factory.mktemp("pure"), REPO, device=True)


def _run_codec(cmd_prefix: list[str], codes: tuple[Path, dict[str, bytes]], work: Path, run=subprocess.run,
               **kw) -> tuple[dict, dict]:
    """Run CODEC_SCRIPT (``cmd_prefix`` + script, through ``run``) on the codes for the coders
    of the expected bytes; returns its info line and {"coder/model": bytes}."""
    codes_npz, want = codes
    script, out = work / "codec.py", work / "out.npz"
    script.write_text(CODEC_SCRIPT)
    coders = sorted({k.split("/")[0] for k in want})
    proc = run([*cmd_prefix, str(script), str(codes_npz), str(out), *coders], **kw)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    with np.load(out) as z:
        return info, {k: z[k].tobytes() for k in z.files}


def _run_encoder(cmd_prefix: list[str], encoder_inputs: tuple[Path, dict[str, np.ndarray]], work: Path,
                 run=subprocess.run, **kw) -> dict:
    """Run ENCODER_SCRIPT (``cmd_prefix`` + script, through ``run``); asserts it wrote the int8
    graph's codes for every model; returns its info line."""
    script, out = work / "encode.py", work / "enc_out.npz"
    script.write_text(ENCODER_SCRIPT)
    proc = run([*cmd_prefix, str(script), str(encoder_inputs[0]), str(out)], **kw)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    with np.load(out) as z:
        bad = [m for m, c in encoder_inputs[1].items() if not np.array_equal(z[m], c)]
        assert set(z.files) == set(encoder_inputs[1]) and not bad, f"native encoder codes differ: {bad}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_wheel_tags_record_and_reproducible(arch, pure_wheel, tmp_path):
    _need_compiler(arch)
    whl = build_native_wheel(arch, tmp_path / "a", REPO, pure_wheel=pure_wheel)
    assert whl.name == f"sensorcodec-0.1.0-cp311-abi3-manylinux2014_{arch}.whl"
    again = build_native_wheel(arch, tmp_path / "b", REPO, pure_wheel=pure_wheel, reuse=False)  # compiled
    assert again.read_bytes() == whl.read_bytes(), "the same sources must give the same wheel bytes"
    with zipfile.ZipFile(whl) as zf:
        names = zf.namelist()
        sos = {name: zf.read(name) for name in WHEEL_EXTENSIONS}
        wheel_meta = zf.read("sensorcodec-0.1.0.dist-info/WHEEL").decode()
        record = zf.read("sensorcodec-0.1.0.dist-info/RECORD").decode().splitlines()
        for line in record:  # every file listed once with its hash and size
            name, digest, size = line.rsplit(",", 2)
            if name.endswith("/RECORD"):
                continue
            data = zf.read(name)
            want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert digest == f"sha256={want}" and int(size) == len(data), name
        assert sorted(ln.rsplit(",", 2)[0] for ln in record) == sorted(names)
        with zipfile.ZipFile(pure_wheel) as pz:  # the pure wheel's files, plus the extension
            assert set(names) - set(pz.namelist()) == set(WHEEL_EXTENSIONS)
    assert "Root-Is-Purelib: false" in wheel_meta and f"Tag: cp311-abi3-manylinux2014_{arch}" in wheel_meta
    elf_machine = {"x86_64": 62, "aarch64": 183}[arch]
    for name, so in sos.items():
        assert so[:4] == b"\x7fELF" and int.from_bytes(so[18:20], "little") == elf_machine, name
        assert b"libpython" not in so and WHEEL_EXTENSIONS[name] in so, name
        so_path = tmp_path / "x.so"
        so_path.write_bytes(so)
        assert glibc_floor(so_path) == (2, 17), name  # what manylinux2014 promises (Debian 12 has 2.36)


def test_x86_64_wheel_installs_and_writes_the_extension_bytes(codes, encoder_inputs, tmp_path):
    _need_compiler("x86_64")
    assert native_wheel.main(["--arch", "x86_64", "--out", str(tmp_path)]) == 0  # the CLI
    (whl,) = tmp_path.glob("sensorcodec-*-cp311-abi3-manylinux2014_x86_64.whl")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "--no-index", "--no-deps", "--no-compile", "--target", str(site), str(whl)],
                   check=True, capture_output=True)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "PYTHONNOUSERSITE": "1"}
    info, got = _run_codec([sys.executable], codes, tmp_path, capture_output=True, text=True,
                           cwd=tmp_path, env=env, timeout=120)
    assert Path(info["extension"]) == site / "encoder_runtime" / "_sclossless.abi3.so"
    assert got == codes[1]
    info = _run_encoder([sys.executable], encoder_inputs, tmp_path, capture_output=True, text=True,
                        cwd=tmp_path, env=env, timeout=120)
    assert Path(info["extension"]) == site / "encoder_runtime" / "_scencoder.abi3.so"


def _guest_wheels(target) -> Path:
    """numpy and zstandard wheels for the target (pinned, sha256-checked), pip-downloaded once."""
    folder = NATIVE_CACHE_DIR / "wheels"
    folder.mkdir(parents=True, exist_ok=True)
    for name, (version, sha) in GUEST_WHEELS.items():
        found = sorted(folder.glob(f"{name}-{version}-*.whl"))
        if not found:
            r = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                                "--disable-pip-version-check", *_pip_target_args(target),
                                "-d", str(folder), f"{name}=={version}"], capture_output=True, text=True)
            if r.returncode != 0:
                pytest.skip(f"{name}=={version} aarch64 wheel not cached and not downloadable: "
                            f"{r.stderr.strip()[-300:]}")
            found = sorted(folder.glob(f"{name}-{version}-*.whl"))
        got = hashlib.sha256(found[0].read_bytes()).hexdigest()
        assert got == sha, f"{found[0]}: sha256 {got}, pinned {sha}"
    return folder


def test_aarch64_wheel_from_sensor_export_under_emulation(codes, encoder_inputs, tmp_path, capsys):
    """The rpi4 wheelhouse's aarch64 wheel, installed into emulated Debian arm64 Python 3.11,
    writes the x86 extension's bytes for every bundled model's codes, with every native coder,
    and its native encoder kernel writes the int8 graph's codes for every bundled model."""
    _need_compiler("aarch64")
    try:
        qemu_binary()
    except EmulationUnavailable as e:
        pytest.skip(str(e))
    assert export_cli.main(["--model", "rgb-c12-low", "--target", "rpi4", "--out", str(tmp_path / "rpi4"),
                            "--no-wheelhouse"]) == 0
    assert "native coders compiled in, cp311-abi3" in capsys.readouterr().out
    t = json.loads((tmp_path / "rpi4" / "manifest.json").read_text())["target"]
    (whl,) = (tmp_path / "rpi4" / "wheelhouse").glob("*.whl")
    assert whl.name.endswith("-cp311-abi3-manylinux2014_aarch64.whl")
    assert t["sensorcodec_wheel"] == {"file": whl.name, "native": True, "abi": "cp311-abi3",
                                      "modules": ["encoder_runtime._scencoder", "encoder_runtime._sclossless"]}
    target = get_target("rpi4")
    try:
        root = ensure_arm_root(DEFAULT_CACHE_DIR, target.python_version, target.qemu_cpu)
    except EmulationUnavailable as e:
        pytest.skip(str(e))
    pins = [f"{n}=={v}" for n, (v, _) in GUEST_WHEELS.items()]
    deps = NATIVE_CACHE_DIR / ("site-" + "-".join([target.abi, *(p.replace("==", "") for p in pins)]))
    if not (deps / ".complete").is_file():
        shutil.rmtree(deps, ignore_errors=True)
        install_wheelhouse(_guest_wheels(target), deps, target, pins, no_deps=True)
        (deps / ".complete").write_text("ok")
    site = tmp_path / "site"
    install_wheelhouse(whl.parent, site, target, [str(whl)], no_deps=True)
    codes_npz, want = codes
    info, got = _run_codec([], codes, tmp_path, lambda argv: run_in_guest(
        root, argv, site_dirs=[site, deps], cpu=target.qemu_cpu, timeout=300, cwd=tmp_path))
    assert info["machine"] == "aarch64" and info["python"].startswith("3.11")
    assert Path(info["extension"]) == site / "encoder_runtime" / "_sclossless.abi3.so"
    assert set(got) == set(want)
    bad = [k for k in want if got[k] != want[k]]
    assert not bad, f"aarch64 wheel wrote different bytes for {bad}"
    enc_info = _run_encoder([], encoder_inputs, tmp_path, lambda argv: run_in_guest(
        root, argv, site_dirs=[site, deps], cpu=target.qemu_cpu, timeout=300, cwd=tmp_path))
    assert enc_info["isa"] == "neon"
    n = sum(int(np.prod(v.shape)) for v in np.load(codes_npz).values())
    print(f"\naarch64 native encoder under qemu: int8-graph codes for {len(encoder_inputs[1])} models"
          f"\naarch64 wheel under qemu ({target.qemu_cpu}): {len(got)} coder/model pairs, {n} codes per "
          "coder, emulated encode " + ", ".join(f"{c} {n / s / 1e6:.1f}" for c, s in info["encode_s"].items())
          + " M codes/s")


def test_python_310_target_gets_the_pure_wheel(tmp_path):
    """JetPack 6 runs CPython 3.10, older than the stable ABI the extension needs: pure wheel,
    with the reason."""
    whl, note = device_wheel(get_target("jetson-orin"), tmp_path, REPO)
    assert whl.name == "sensorcodec-0.1.0-py3-none-any.whl"
    assert note["native"] is False and "3.10 < 3.11" in note["reason"] and "native coders" in note["reason"]
