"""Lossless latent coders: exact round trips, edge cases, hostile input, registry, rate choice.

Codes come from real photos (scikit-image) through the benchmark's block-PCA stand-in for a
trained encoder (PCA fitted on a different photo than the one coded), so the rate check below
runs on realistic codes. No timing here: speed is measured by ``benchmarks/lossless.py``.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zstandard

from encoder_runtime import entropy
from encoder_runtime.entropy import (
    BUNDLE_CODER,
    DEFAULT_CODER,
    CoderUnavailableError,
    CorruptPayloadError,
    LosslessCoder,
    available_coders,
    get_coder,
    known_coders,
)

REPO = Path(__file__).resolve().parents[1]
CODERS = available_coders()
BASE_CODERS = ["sigplane-zstd", "bitplane-zstd", "zstd3", "zstd19"]


def _bench():
    """benchmarks/lossless.py as a module (its BlockPCA makes the realistic codes)."""
    spec = importlib.util.spec_from_file_location("lossless_bench", REPO / "benchmarks" / "lossless.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def photo_codes() -> dict[str, np.ndarray]:
    """Codes of astronaut / chelsea from a block PCA fitted on coffee (C=12 and C=48)."""
    from skimage import data

    bench = _bench()
    pca = bench.BlockPCA.fit([data.coffee()])
    astro, cat = data.astronaut(), data.chelsea()
    return {
        "astronaut-c12": pca.codes(astro, 12, bench.DEFAULT_STEPS[12]),
        "astronaut-c48": pca.codes(astro, 48, bench.DEFAULT_STEPS[48]),
        "chelsea-c12": pca.codes(cat, 12, bench.DEFAULT_STEPS[12]),  # 37x56: odd width
        # fine step: large values, some clipped at +-127
        "chelsea-c16-fine": pca.codes(cat, 16, 2.0),
    }


@pytest.fixture(scope="module")
def signal_codes() -> np.ndarray:
    """1-D codes (4, T) of a real signal: the camera photo's rows as one long trace, 8-sample PCA."""
    from skimage import data

    sig = data.camera().astype(np.float32).ravel()[: 8 * 3000].reshape(-1, 8)
    sig = sig - sig.mean(0)
    _, _, vt = np.linalg.svd(sig[::7], full_matrices=False)
    y = sig @ vt[:4].T / 6.0
    return np.clip(np.rint(y), -127, 127).astype(np.int8).T.copy()


def _edge_cases() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "zeros": np.zeros((12, 64, 96), np.int8),
        "const-minus128": np.full((3, 9, 10), -128, np.int8),
        "const-127": np.full((2, 8, 8), 127, np.int8),
        "zero-channel": np.stack([rng.integers(-5, 6, (13, 11)), np.zeros((13, 11)),
                                  rng.integers(-128, 128, (13, 11))]).astype(np.int8),
        "extremes": rng.choice(np.array([-128, 127, 0, -1, 1], np.int8), (5, 12, 14)),
        "uniform-noise": rng.integers(-128, 128, (6, 32, 32)).astype(np.int8),
        "one-code": np.array([[-128]], np.int8),
        "one-row": rng.integers(-3, 4, (4, 1, 33)).astype(np.int8),
        "one-col": rng.integers(-3, 4, (4, 21, 1)).astype(np.int8),
        "three-rows": rng.integers(-3, 4, (3, 3, 7)).astype(np.int8),
        "odd-2d": rng.integers(-20, 21, (7, 13, 17)).astype(np.int8),
        "1d": rng.integers(-4, 5, (4, 1001)).astype(np.int8),
        "3d": rng.integers(-4, 5, (5, 3, 10, 6)).astype(np.int8),
        "one-channel": rng.integers(-9, 10, (1, 16, 16)).astype(np.int8),
        "many-channels": rng.integers(-2, 3, (193, 4, 4)).astype(np.int8),
    }


EDGE = _edge_cases()


@pytest.mark.parametrize("name", CODERS)
def test_round_trip_photo_codes(name: str, photo_codes: dict[str, np.ndarray]) -> None:
    coder = get_coder(name)
    for key, codes in photo_codes.items():
        blob = coder.encode(codes)
        assert isinstance(blob, bytes)
        back = coder.decode(blob, codes.shape)
        assert back.dtype == np.int8 and back.shape == codes.shape, key
        np.testing.assert_array_equal(back, codes, err_msg=f"{name} on {key}")
        assert coder.encode(codes) == blob, f"{name} is not deterministic on {key}"


@pytest.mark.parametrize("name", CODERS)
def test_round_trip_signal_codes(name: str, signal_codes: np.ndarray) -> None:
    coder = get_coder(name)
    np.testing.assert_array_equal(coder.decode(coder.encode(signal_codes), signal_codes.shape),
                                  signal_codes)


@pytest.mark.parametrize("name", CODERS)
@pytest.mark.parametrize("case", sorted(EDGE))
def test_round_trip_edge_cases(name: str, case: str) -> None:
    codes = EDGE[case]
    coder = get_coder(name)
    back = coder.decode(coder.encode(codes), codes.shape)
    assert back.dtype == np.int8
    np.testing.assert_array_equal(back, codes)


@pytest.mark.parametrize("name", CODERS)
@pytest.mark.parametrize("shape", [(0, 4, 4), (3, 0), (2, 0, 5), (2, 3, 0, 4)])
def test_empty_arrays(name: str, shape: tuple[int, ...]) -> None:
    coder = get_coder(name)
    blob = coder.encode(np.zeros(shape, np.int8))
    assert blob == b""
    back = coder.decode(blob, shape)
    assert back.shape == shape and back.dtype == np.int8
    with pytest.raises(ValueError, match="empty shape"):
        coder.decode(b"\x01", shape)


@pytest.mark.parametrize("name", CODERS)
def test_non_contiguous_input(name: str, photo_codes: dict[str, np.ndarray]) -> None:
    codes = photo_codes["astronaut-c12"][:, ::2, 1::3]
    coder = get_coder(name)
    np.testing.assert_array_equal(coder.decode(coder.encode(codes), codes.shape), codes)


def test_bad_encoder_input() -> None:
    coder = get_coder(DEFAULT_CODER)
    with pytest.raises(TypeError, match="int8"):
        coder.encode(np.zeros((2, 4, 4), np.int16))
    with pytest.raises(TypeError, match="numpy array"):
        coder.encode([[1, 2]])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="spatial"):
        coder.encode(np.zeros(5, np.int8))


# ------------------------------------------------------------------------------ hostile input


def _corruptions(blob: bytes) -> dict[str, bytes]:
    rng = np.random.default_rng(3)
    out = {
        "empty": b"",
        "truncated-1": blob[:-1],
        "truncated-half": blob[: len(blob) // 2],
        "one-byte": blob[:1],
        "trailing": blob + b"\x00",
        "trailing-frame": blob + zstandard.ZstdCompressor().compress(b"abc"),
        "garbage": rng.integers(0, 256, len(blob)).astype(np.uint8).tobytes(),
        "zeros": bytes(len(blob)),
        "ones": b"\xff" * len(blob),
    }
    return out


@pytest.mark.parametrize("name", CODERS)
def test_hostile_payloads_raise_value_error(name: str, photo_codes: dict[str, np.ndarray]) -> None:
    codes = photo_codes["chelsea-c12"]
    coder = get_coder(name)
    blob = coder.encode(codes)
    for what, bad in _corruptions(blob).items():
        with pytest.raises(ValueError):
            coder.decode(bad, codes.shape)
            pytest.fail(f"{name}: {what} payload decoded without error")


@pytest.mark.parametrize("name", CODERS)
def test_bit_flips_never_crash(name: str, photo_codes: dict[str, np.ndarray]) -> None:
    """A flipped bit either raises ValueError or decodes to some int8 array of the shape."""
    codes = photo_codes["chelsea-c12"]
    coder = get_coder(name)
    blob = bytearray(coder.encode(codes))
    rng = np.random.default_rng(11)
    for pos in rng.integers(0, len(blob), 60):
        bad = bytearray(blob)
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        try:
            out = coder.decode(bytes(bad), codes.shape)
        except ValueError:
            continue
        assert out.shape == codes.shape and out.dtype == np.int8


@pytest.mark.parametrize("name", CODERS)
def test_wrong_shape_raises(name: str, photo_codes: dict[str, np.ndarray]) -> None:
    codes = photo_codes["astronaut-c12"]
    c, h, w = codes.shape
    coder = get_coder(name)
    blob = coder.encode(codes)
    for shape in [(c, h, w + 1), (c, h - 4, w), (c * 2, h, w), (c, h * w * 4)]:
        with pytest.raises(ValueError):
            coder.decode(blob, shape)
            pytest.fail(f"{name}: decoded with wrong shape {shape}")


@pytest.mark.parametrize("shape", [(1,), (), (-1, 4), (2, "x")])
def test_bad_shape_argument(shape: tuple) -> None:
    with pytest.raises(ValueError, match="shape|dimension"):
        get_coder(DEFAULT_CODER).decode(b"\x01", shape)


@pytest.mark.parametrize("name", ["zstd19", "zstd3"])
def test_zstd_bomb_rejected_before_allocation(name: str) -> None:
    """A frame declaring a huge content size (or none) is refused without decompressing."""
    bomb = zstandard.ZstdCompressor(level=1).compress(bytes(50_000_000))
    assert len(bomb) < 5000
    with pytest.raises(ValueError, match="claims"):
        get_coder(name).decode(bomb, (12, 64, 96))
    no_size = zstandard.ZstdCompressor(level=1, write_content_size=False).compress(bytes(100))
    with pytest.raises(ValueError, match="content size"):
        get_coder(name).decode(no_size, (1, 100))


def test_sigplane_bomb_rejected() -> None:
    bomb = b"\x01" + zstandard.ZstdCompressor(level=1).compress(bytes(10_000_000))
    with pytest.raises(ValueError, match="claims"):
        get_coder("sigplane-zstd").decode(bomb, (12, 64, 96))


def test_too_many_codes_rejected() -> None:
    with pytest.raises(ValueError, match="MAX_CODES"):
        get_coder(DEFAULT_CODER).decode(b"\x01", (1 << 20, 1 << 20))


# ------------------------------------------------------------------------------ formats, registry


def test_zstd_coders_are_plain_zstd_of_planar_bytes(photo_codes: dict[str, np.ndarray]) -> None:
    codes = photo_codes["astronaut-c12"]
    for name in ("zstd3", "zstd19"):
        assert zstandard.ZstdDecompressor().decompress(get_coder(name).encode(codes)) == codes.tobytes()
    blob = zstandard.ZstdCompressor(level=7).compress(codes.tobytes())  # any level decodes
    np.testing.assert_array_equal(get_coder("zstd19").decode(blob, codes.shape), codes)


def test_sigplane_stores_incompressible_codes() -> None:
    codes = EDGE["uniform-noise"]
    blob = get_coder("sigplane-zstd").encode(codes)
    assert blob[0] == 0 and len(blob) == 1 + codes.size


def test_registry() -> None:
    assert set(BASE_CODERS) <= set(available_coders())
    assert DEFAULT_CODER in available_coders()
    assert available_coders()[0] == DEFAULT_CODER
    assert set(available_coders()) <= set(known_coders())
    for name in available_coders():
        coder = get_coder(name)
        assert isinstance(coder, LosslessCoder)
        assert coder.name == name
        assert get_coder(name) is coder
    with pytest.raises(ValueError, match="known coders: .*zstd19"):
        get_coder("nope")


def test_optional_coder_unavailable_without_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jpeg_ls", None)  # import raises ImportError
    monkeypatch.setitem(sys.modules, "imagecodecs", None)
    monkeypatch.setattr(entropy, "_CACHE", {})
    assert "jpegls" not in available_coders()
    assert "jpegls" in known_coders()
    with pytest.raises(CoderUnavailableError, match="pyjpegls"):
        get_coder("jpegls")
    assert set(BASE_CODERS) <= set(available_coders())


def test_encoder_falls_back_where_the_native_coder_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bundle naming ``ctx-ac`` still encodes on a device without the native extension: the
    Encoder warns and uses the manifest's ``coder.fallback``; the stream names the coder it used,
    so it decodes anywhere. An explicitly requested coder is never replaced."""
    from encoder_runtime import Decoder, Encoder
    from encoder_runtime.bundle import load_bundle
    assert load_bundle("rgb-c32").manifest["coder"] == {"default": BUNDLE_CODER,
                                                        "fallback": DEFAULT_CODER}
    import encoder_runtime
    monkeypatch.setitem(sys.modules, "encoder_runtime._sclossless", None)  # import -> ImportError
    monkeypatch.delattr(encoder_runtime, "_sclossless", raising=False)
    monkeypatch.setattr(entropy, "_CACHE", {})
    with pytest.warns(RuntimeWarning, match="ctx-ac.*encoding with 'sigplane-zstd' instead"):
        enc = Encoder.load("rgb-c32", backend="onnx")
    assert enc.coder.name == DEFAULT_CODER
    img = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    blob = enc.encode(img)
    assert Decoder.for_stream(blob).decode(blob).shape == img.shape
    with pytest.raises(CoderUnavailableError, match="native extension"):
        Encoder.load("rgb-c32", coder=BUNDLE_CODER, backend="onnx")


def test_runtime_imports_no_torch_and_no_optional_packages() -> None:
    code = ("import sys, encoder_runtime.entropy as e; e.get_coder(e.DEFAULT_CODER); "
            "bad = [m for m in ('torch', 'jpeg_ls', 'imagecodecs', 'matplotlib') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# ------------------------------------------------------------------------------ the rate decision


def test_default_coder_rate_at_most_zstd19(photo_codes: dict[str, np.ndarray]) -> None:
    """The reason for the default: on photo codes it is no larger than zstd-19 (sizes, not time)."""
    default, ref = get_coder(DEFAULT_CODER), get_coder("zstd19")
    for key in ("astronaut-c12", "astronaut-c48", "chelsea-c12"):
        codes = photo_codes[key]
        assert len(default.encode(codes)) <= len(ref.encode(codes)), key


def test_benchmark_runs_on_code_files(tmp_path: Path, photo_codes: dict[str, np.ndarray]) -> None:
    """``benchmarks/lossless.py --codes`` (the path for real model codes) end to end, tiny input."""
    import json

    stack = np.stack([photo_codes["chelsea-c12"], photo_codes["chelsea-c12"][:, ::-1]])
    np.save(tmp_path / "codes.npy", stack)
    out = tmp_path / "lossless.json"
    rc = _bench().main(["--codes", str(tmp_path / "codes.npy"), "--stacked", "--repeats", "1",
                        "--coders", DEFAULT_CODER, "--no-plot", "--out", str(out)])
    assert rc == 0
    doc = json.loads(out.read_text())
    rows = {r["coder"]: r for r in doc["results"]}
    assert set(rows) == {DEFAULT_CODER, "zstd19"}
    assert rows["zstd19"]["rate_vs_zstd19"] == 1.0
    assert rows[DEFAULT_CODER]["frames"] == 2 and rows[DEFAULT_CODER]["bpp"] > 0
    with pytest.raises(ValueError, match="fit int8"):
        np.save(tmp_path / "big.npy", np.full((2, 4, 4), 300, np.int16))
        _bench().load_code_file(tmp_path / "big.npy", 64, stacked=False)
