"""The native encoder backend (encoder_runtime._scencoder, issue 12): its codes are bit-identical
to the int8 ONNX graph on real samples of every bundled model, and to the numpy reference of the
integer encoder (firmware_bridge.reference) on random models at the edges of the arithmetic
(extreme samples, shifts beyond [1, 62], both accumulators). Skips without the extension."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.lossless import bundled_sample_inputs, sample_kind
from encoder_runtime import Encoder
from encoder_runtime.bundle import list_model_names, load_bundle
from encoder_runtime.codec import CodecError
from firmware_bridge.reference import encode as reference_encode, random_model

ext = pytest.importorskip("encoder_runtime._scencoder",
                          reason="native extension not built (python setup.py build_ext --inplace)")


@pytest.fixture(scope="module")
def inputs() -> dict[str, list[np.ndarray]]:
    got = bundled_sample_inputs()
    got["audio"] = [x[:48_000] for x in got["audio"]]
    got["audio-stereo"] = [x[:48_000] for x in got["audio-stereo"]]
    got["video"] = [x[:4, :96, :160] for x in got["video"]]     # one 4-frame group, cropped
    if "timeseries" in got:
        got["timeseries"] = got["timeseries"][:3]
    return got


def _odd_crop(x: np.ndarray, kind: str) -> np.ndarray:
    """A crop that is not a multiple of the block (the encoder edge-pads it)."""
    if kind in ("image", "hyperspectral"):
        return x[: min(37, x.shape[0]), : min(53, x.shape[1])]
    if kind in ("volume", "volume16", "video"):
        return x[: min(5, x.shape[0]), : min(9, x.shape[1]), : min(11, x.shape[2])]
    return x[: min(999, len(x))]


@pytest.mark.parametrize("name", list_model_names())
def test_native_codes_equal_the_int8_graph(name, inputs):
    bundle = load_bundle(name)
    kind = sample_kind(bundle.manifest)
    if not inputs.get(kind):
        pytest.skip(f"no real samples of kind {kind!r} here")
    native = Encoder(bundle, backend="native")
    onnx = Encoder(bundle, variant="int8", backend="onnx")
    assert native.backend == "native" and onnx.backend == "onnx"
    for i, x in enumerate(inputs[kind][:2]):
        for part in (np.ascontiguousarray(x), np.ascontiguousarray(_odd_crop(x, kind))):
            want = onnx.codes(part)
            got = native.codes(part)
            assert got.dtype == np.int8 and got.shape == want.shape, (name, i, got.shape, want.shape)
            diff = int(np.count_nonzero(got != want))
            assert diff == 0, f"{name} sample {i} {part.shape}: {diff} codes differ from the int8 graph"
            # the frame path (reused buffer) writes the same bytes
            assert native.encode_frame(part) == onnx.encode_frame(part)


ISA_LEVELS = {3: "avx512vnni", 2: "avx512f", 1: "avx2", 0: None}
"""_scencoder.limit_isa levels and the kernel each selects (0: 16-byte vectors, any machine)."""


@pytest.fixture(params=sorted(ISA_LEVELS, reverse=True), ids=lambda lv: f"isa{lv}")
def isa_level(request):
    """Each kernel this machine can run, then back to the best."""
    got = ext.limit_isa(request.param)
    want = ISA_LEVELS[request.param]
    if want is not None and got != want:
        ext.limit_isa(3)
        pytest.skip(f"this machine's best kernel is {got}, not {want}")
    yield got
    ext.limit_isa(3)


@pytest.mark.parametrize("dtype,block,c_in,c_lat,code_max", [
    (np.uint8, (8, 8), 3, 16, 127),       # image, float32 accumulator
    (np.uint8, (16, 16), 3, 12, 127),     # 768 taps: float64 accumulator
    (np.int16, (16,), 1, 6, 127),         # audio
    (np.int16, (4,), 6, 13, 31),          # odd channel count, small code range
    (np.uint16, (2, 2), 32, 4, 127),      # hyperspectral
    (np.uint8, (4, 4, 4), 3, 48, 127),    # video / volume: 3-D blocks
    (np.uint8, (3, 5), 1, 40, 100),       # odd taps, many channels
])
def test_native_kernel_matches_the_integer_reference(dtype, block, c_in, c_lat, code_max, isa_level):
    rng = np.random.default_rng(len(block) * 100 + c_lat)
    info = np.iinfo(dtype)
    model = random_model(c_lat, c_in, block, seed=c_lat, x_max=int(info.max))
    shift = model["shift"].copy()
    shift[:4] = [-40, 0, 70, -3][: min(4, c_lat)]           # left shifts, none, beyond 62
    grid = (3, 5, 2)[: len(block)]
    x = rng.integers(info.min, int(info.max) + 1, (2,) + tuple(g * b for g, b in zip(grid, block))
                     + (c_in,), dtype=np.int64).astype(dtype)
    x[0].flat[:7] = info.max
    x[1].flat[:7] = info.min
    out = np.empty((2, c_lat) + grid, np.int8)
    ext.encode(x, {np.uint8: 0, np.int16: 1, np.uint16: 2}[dtype], x.shape[1:-1], block, c_in,
               model["weight"], model["bias"], shift, code_max, out)
    for n in range(2):
        want = reference_encode(x[n], model["weight"], model["bias"], shift, code_max)
        assert np.array_equal(out[n], want), (f"{isa_level} item {n}: "
                                              f"{np.count_nonzero(out[n] != want)} codes differ")


def test_native_kernel_refuses_bad_arguments():
    m = random_model(4, 1, (4,))
    x, out = np.zeros((1, 8, 1), np.int16), np.empty((1, 4, 2), np.int8)
    args = [x, 1, (8,), (4,), 1, m["weight"], m["bias"], m["shift"], 127, out]
    ext.encode(*args)
    for i, bad, msg in [(2, (7,), "not a multiple"), (9, np.empty((1, 4, 3), np.int8), "out holds"),
                        (5, m["weight"][:2], "weight holds"), (8, 128, "code_max"),
                        (3, (4, 4), "axes")]:
        with pytest.raises(ValueError, match=msg):
            ext.encode(*(args[:i] + [bad] + args[i + 1:]))


def test_backend_choice(monkeypatch):
    monkeypatch.delenv("SENSORCODEC_ENCODER_BACKEND", raising=False)
    assert Encoder.load("rgb-c16").backend == "native"                   # the default where built
    assert Encoder.load("rgb-c16", backend="auto").backend == "native"
    monkeypatch.setenv("SENSORCODEC_ENCODER_BACKEND", "onnx")
    assert Encoder.load("rgb-c16").backend == "onnx"
    assert Encoder.load("rgb-c16", backend="onnx").backend == "onnx"
    with pytest.raises(CodecError, match="unknown encoder backend 'tpu'"):
        Encoder.load("rgb-c16", backend="tpu")
