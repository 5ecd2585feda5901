"""An rpi5 target bundle installs offline into a clean emulated aarch64 Python and its codes
equal the x86 codes byte for byte (issue 3, part 4).

Setup (cached under data/cache/arm, rebuilt by the test itself when missing): Debian arm64
.debs of python3.11 from the machine's Debian mirror, unpacked; the target's wheels from PyPI.
Needs the Debian package qemu-user-static (scripts/apt/arm.txt). Emulation is 35-80x slower
than native, so this checks a handful of real frames per bundled model (photo tiles for image
models; excerpts of the bundled speech and drum-loop clips, odd lengths included, for audio
models; BasicMotions test recordings and crops for the IMU models; the bundled held-out clip
and odd-sized groups of it for video models); bit-exactness on thousands
of frames is checked natively by the model tests (tests/test_exactness.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import skimage.data

from export import export_cli
from export.emulation import (EmulationUnavailable, check_bundle_on_arm, graph_input, install_wheelhouse,
                              qemu_binary, write_toy_bundle)
from export.targets import PROJECT_ROOT, build_target_bundle, get_target

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def qemu() -> str:
    try:
        return qemu_binary()
    except EmulationUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def site_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("arm-site")


def _bundled_models() -> list[str]:
    models = PROJECT_ROOT / "encoder_runtime" / "models"
    return sorted(p.parent.name for p in models.glob("*/manifest.json"))


def _real_frames(manifest: dict) -> np.ndarray | list[np.ndarray]:
    """Real frames in the form ``Encoder.codes`` takes for the bundle's modality."""
    modality, dtype = manifest.get("modality"), manifest.get("sample", {}).get("dtype")
    if modality == "image" and dtype == "uint8":
        return _image_tiles(manifest)
    if modality == "audio" and dtype == "int16":
        return _audio_excerpts(manifest)
    if modality == "timeseries" and dtype == "int16":
        return _timeseries_frames(manifest)
    if modality == "video" and dtype == "uint8":
        return _video_groups(manifest)
    if modality in ("volume", "volume16"):
        return _volume_frames(manifest)
    if modality == "hyperspectral" and dtype == "uint16":
        return _spectral_frames()
    pytest.fail(f"{manifest.get('name')}: no real data for a {dtype} {modality} bundle here: "
                "every bundled model must be checked under emulation")


def _audio_excerpts(manifest: dict) -> list[np.ndarray]:
    """Mono int16 excerpts of the bundled clips: 1 s of speech, odd lengths (4001 samples, the
    whole 28053-sample drum loop, one block + 1), and a drum-loop part of 8191 samples; for a
    stereo model, (T, 2) excerpts of the bundled stereo loop (odd lengths and the whole clip)."""
    from encoder_runtime.media import read_input

    samples = PROJECT_ROOT / "encoder_runtime" / "samples"
    block = int(manifest["transform"]["block"][0])
    if int(manifest["sample"]["channels"]) == 2:  # joint stereo: the bundled stereo drum loop
        st = read_input(samples / "loop_amen_stereo_44k.wav")[0]
        assert st.dtype == np.int16 and st.shape[1] == 2
        parts = [st[:20_000], st[31_111:35_112], st[-(block + 1):], st]
        return [np.ascontiguousarray(p) for p in parts]
    speech = read_input(samples / "speech_16k.wav")[0]
    loop = read_input(samples / "loop_amen_16k.wav")[0]
    speech, loop = (a if a.ndim == 1 else a[:, 0] for a in (speech, loop))
    assert speech.dtype == loop.dtype == np.int16
    parts = [speech[24_000:40_000], speech[61_111:65_112], loop, loop[3_000:11_191],
             speech[100_003:100_004 + block]]
    assert {len(p) % block for p in parts} != {0} and all(len(p) >= block for p in parts)
    return [np.ascontiguousarray(p) for p in parts]


def _timeseries_frames(manifest: dict) -> list[np.ndarray]:
    """All 40 BasicMotions test recordings (T=100, 6 channels int16, four activities) and three
    odd-length crops, as (T, C) arrays (a few ms each under emulation)."""
    from export.train import load_training_arrays

    try:
        signals = load_training_arrays("timeseries", "test")
    except (ImportError, SystemExit, OSError, ValueError, KeyError) as e:
        pytest.skip(f"no held-out timeseries data here ({e.__class__.__name__}: {e})")
    signals = [np.ascontiguousarray(np.moveaxis(a, 0, -1)) for a in signals]
    channels = int(manifest["sample"]["channels"])
    assert signals and all(a.dtype == np.int16 and a.shape[-1] == channels for a in signals)
    block = int(manifest["transform"]["block"][0])
    frames = list(signals)
    frames += [signals[1][5:42], signals[2][50:63], signals[3][-(block + 1):]]
    return [np.ascontiguousarray(f) for f in frames]


def _video_groups(manifest: dict) -> list[np.ndarray]:
    """An 8-frame 48x64 group of the bundled held-out clip and two odd-sized groups of it."""
    from encoder_runtime.video_io import read_y4m

    clip = read_y4m((PROJECT_ROOT / "encoder_runtime" / "samples" / "city_8f.y4m").read_bytes())[0]
    return [np.ascontiguousarray(g) for g in (clip[:, 24:72, 32:96], clip[1:6, 3:40, 5:50],
                                              clip[4:8, :9, :13])]


def _volume_frames(manifest: dict) -> list[np.ndarray]:
    """Three crops (sizes not multiples of the block; ~30 k voxels, fast under emulation) of the
    bundled held-out MRI sample of the bundle's bit depth (Colin27 u8 / dipy b0 12-bit u16), as
    (X, Y, Z) arrays."""
    from encoder_runtime.media import read_input

    samples = PROJECT_ROOT / "encoder_runtime" / "samples"
    name = "mri_colin27_crop.nii.gz" if manifest["sample"]["dtype"] == "uint8" else "mri_dipy_s0_10slices.nii.gz"
    vol = read_input(samples / name)[0]
    assert vol.dtype == np.dtype(manifest["sample"]["dtype"])
    return [np.ascontiguousarray(vol[10:46, 20:63, 2:10]), np.ascontiguousarray(vol[3:40, 5:30, 1:]),
            np.ascontiguousarray(vol[-9:, -13:, -5:])]


def _spectral_frames() -> list[np.ndarray]:
    """The three bundled held-out MUSE frames (40×40 / 30×30 ×32, 12-bit in uint16) and an odd
    17×9 crop."""
    samples = PROJECT_ROOT / "encoder_runtime" / "samples"
    cubes = [np.load(p, allow_pickle=False) for p in sorted(samples.glob("hsi_*.npy"))]
    assert len(cubes) == 3 and all(c.dtype == np.uint16 and c.shape[-1] == 32 for c in cubes)
    return cubes + [np.ascontiguousarray(cubes[0][3:20, 5:14])]


def _image_tiles(manifest: dict, count: int = 6, size: int = 128) -> np.ndarray:
    """``count`` real photo tiles in the bundle's input layout (N, H, W, C) uint8."""
    sample = manifest.get("sample", {})
    block = max(manifest.get("transform", {}).get("block", [8, 8]))
    size = max(block, size // block * block)
    img = skimage.data.astronaut()
    if sample.get("channels", 3) == 1:
        img = skimage.data.camera()[..., None]
    h, w = img.shape[:2]
    corners = [((i * 97) % (h - size), (i * 173) % (w - size)) for i in range(count)]
    return np.stack([img[y:y + size, x:x + size] for y, x in corners])


def _check(bundle_src: Path | None, out: Path, site_cache: Path, target: str = "rpi5",
           model: str | None = None) -> dict:
    if model is not None:  # through the CLI, as on a fresh machine
        assert export_cli.main(["--model", model, "--target", target, "--out", str(out)]) == 0
        target_bundle = out
    else:
        target_bundle = build_target_bundle(bundle_src, target, out)
    manifest = json.loads((target_bundle / "manifest.json").read_text())
    frames = _real_frames(manifest)
    result = check_bundle_on_arm(target_bundle, frames, site_cache_dir=site_cache)
    assert result.arm_info["machine"] == "aarch64" and result.host_info["machine"] == "x86_64"
    # every graph the bundle ships (.onnx fp32/int8, .ort fp32/int8) ran on both sides
    expected = {"onnx:fp32", *(f"ort:{v}" for v in manifest["target"]["ort_format"]["files"])}
    expected |= {"runtime:fp32", "frame:fp32"}  # encoder_runtime.codec.Encoder: codes, FRAME payloads
    if "encoder_int8.onnx" in manifest["files"]:
        expected |= {"onnx:int8", "runtime:int8", "frame:int8"}
    assert result.arm_info["encoder_runtime"] == "ok", result.arm_info
    assert expected <= set(result.arm_codes) and expected <= set(result.host_codes)
    assert set(result.arm_codes) == set(result.host_codes)
    assert result.mismatches() == [], result.mismatches()
    same_bytes = result.frame_bytes_identical()
    ref = result.host_codes["onnx:fp32"]
    block, latent = np.prod(manifest["transform"]["block"]), manifest["latent"]["channels"]
    n_codes = sum(int(np.prod(graph_input(manifest, f).shape[:-1])) // block * latent for f in frames)
    assert ref.size == n_codes and np.unique(ref).size > 3
    if isinstance(frames, np.ndarray):
        assert ref.shape[0] == len(frames)
    shapes = (f"{len(frames)} tiles {frames.shape[1:]}" if isinstance(frames, np.ndarray) else
              f"{len(frames)} frames {sorted({tuple(f.shape) for f in frames})}")
    print(f"\n{manifest['name']} on {manifest['target']['name']}: {shapes}, {ref.size} codes, keys {sorted(result.arm_codes)}, "
          f"timings {{{', '.join(f'{k}: {v:.1f}' for k, v in result.timings.items())}}}, "
          f"FRAME payload bytes identical arm/x86: {same_bytes}, "
          f"guest {result.arm_info}")
    return {"codes": ref, "frames": frames, "result": result}


@pytest.mark.parametrize("target", ["rpi5", "rpi4"])  # qemu cortex-a76 / cortex-a72 kernels
def test_toy_bundle_bit_exact_on_emulated_arm(qemu, tmp_path, site_cache, target):
    src = write_toy_bundle(tmp_path / "toy")
    got = _check(src, tmp_path / target, site_cache, target)
    # and equal to the integer formula of docs/bundle-format.md
    p = np.load(src / "encoder_int.npz")
    w, b, s = p["weight"].astype(np.int64), p["bias"].astype(np.int64), p["shift"]
    f = got["frames"]
    n, h, wd, c = f.shape
    acc = np.einsum("nyixjc,kcij->nkyx", f.reshape(n, h // 8, 8, wd // 8, 8, c).astype(np.int64), w)
    ref = np.clip(np.round((acc + b[None, :, None, None]) / 2.0 ** s[None, :, None, None]), -127, 127)
    assert np.array_equal(got["codes"], ref.astype(np.int8))


def test_exported_codec_bit_exact_on_emulated_rpi5(qemu, tmp_path, site_cache):
    """A bundle written by the real exporter (untrained weights: the arithmetic is what counts)."""
    torch = pytest.importorskip("torch")
    from export.model import Codec, CodecConfig
    from export.onnx_export import write_bundle

    torch.manual_seed(0)
    src = write_bundle(Codec(CodecConfig(decoder_width=16, decoder_blocks=1)), tmp_path / "src",
                       "untrained-rgb")
    _check(src, tmp_path / "rpi5", site_cache)


@pytest.mark.parametrize("model", _bundled_models() or [pytest.param("none", marks=pytest.mark.skip(
    reason="no bundled models in encoder_runtime/models yet"))])
def test_bundled_model_bit_exact_on_emulated_rpi5(qemu, tmp_path, site_cache, model):
    _check(None, tmp_path / "rpi5", site_cache, "rpi5", model=model)


def test_jetson_wheelhouse_is_cp310_and_complete(tmp_path):
    """JetPack 6's Python 3.10 caps onnxruntime at 1.23.2; the wheelhouse must install offline."""
    src = write_toy_bundle(tmp_path / "toy")
    out = build_target_bundle(src, "jetson-orin", tmp_path / "jetson")
    t = json.loads((out / "manifest.json").read_text())["target"]
    assert t["python"] == "3.10" and t["default_variant"] == "int8"
    assert t["onnxruntime"] == "1.23.2"
    assert all("cp311" not in w for w in t["wheelhouse"]["wheels"])
    install_wheelhouse(out / "wheelhouse", tmp_path / "site", get_target("jetson-orin"))
    assert (tmp_path / "site" / "onnxruntime").is_dir() and (tmp_path / "site" / "encoder_runtime").is_dir()
    shutil.rmtree(tmp_path / "site")
