"""Property-based fuzz of the decoder-side parsers (issue 13): container, frame payload, entropy
coders, bundle manifest and the whole decode path.

Property: any input ends in a result or in one clean
:class:`~encoder_runtime.errors.MalformedInputError` — never another exception type — and
memory stays bounded. All targets run in ONE subprocess whose address space is capped at 1 GiB
(``resource.setrlimit(RLIMIT_AS)``), so an allocation that a hostile size field could drive
fails the test as a ``MemoryError`` instead of passing unnoticed.

CI-sized by default (deterministic examples, well under a minute on one core). For a deeper
local run: ``SENSORCODEC_FUZZ_EXAMPLES=3000 python tests/test_fuzz_container.py`` (random seeds).
"""

from __future__ import annotations

import io
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from encoder_runtime import container
from encoder_runtime.bundle import MODELS_DIR, load_bundle
from encoder_runtime.codec import Decoder, Encoder
from encoder_runtime.entropy import (CoderUnavailableError, CorruptPayloadError, available_coders,
                                     get_coder, known_coders)
from encoder_runtime.errors import ContainerError, MalformedInputError
from encoder_runtime.frame import DTYPES, FRAME_VERSION, parse_frame

ADDRESS_SPACE = 1 << 30
EXAMPLES = int(os.environ.get("SENSORCODEC_FUZZ_EXAMPLES", "0"))
#: One model per modality: image, audio, time series.
MODELS = ("rgb-c16", "audio16k-c6", "imu6-l3c3")
CLEAN = (MalformedInputError, CoderUnavailableError)  # the latter: jpegls not installed here


def fuzz(n: int):
    """Hypothesis settings for a target: ``n`` examples in CI, more when asked for."""
    return settings(max_examples=EXAMPLES or n, deadline=None, derandomize=not EXAMPLES,
                    database=None, suppress_health_check=list(HealthCheck))


# ---- strategies ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=12)


def _record(rtype: int, payload: bytes, flags: int = 0, seq: int = 0) -> bytes:
    return container.Record(rtype, seq, payload, flags=flags).encode()


@st.composite
def header_payloads(draw) -> tuple[bytes, int]:
    """A HEADER payload + flags: a real header with one field replaced, or any JSON, or bytes."""
    kind = draw(st.sampled_from(["real", "json", "bytes", "deep"]))
    if kind == "real":
        header = dict(_HEADERS[draw(st.sampled_from(MODELS))])
        path = draw(st.sampled_from([("bundle",), ("bundle", "name"), ("bundle", "manifest_sha256"),
                                     ("coder",), ("modality",), ("meta",), ("clock",)]))
        value = draw(json_values)
        if len(path) == 2:
            header["bundle"] = {**header["bundle"], path[1]: value}
        else:
            header[path[0]] = value
        text = json.dumps(header).encode()
    elif kind == "json":
        text = json.dumps(draw(json_values)).encode()
    elif kind == "deep":
        d = draw(st.integers(1, 5000))
        text = b'{"bundle":' + b"[" * d + b"]" * d + b"}"
    else:
        text = draw(st.binary(max_size=200))
    flags = draw(st.sampled_from([0, container.HEADER_ZSTD, container.HEADER_CLOCK, 0xFF]))
    if flags & container.HEADER_ZSTD:
        packed = container._deflate_header(text)
        text = packed if packed is not None else text
    return text, flags


@st.composite
def frame_payloads(draw, model: str) -> bytes:
    """A FRAME payload for ``model``: valid, then usually one field made hostile."""
    b = _DECODERS[model].bundle
    blk = b.block
    if b.modality == "image":
        shape = [draw(st.integers(8, 40)), draw(st.integers(8, 40))] + draw(st.sampled_from([[], [3]]))
        dtype, n = "uint8", 1
    elif b.modality == "audio" and b.channels > 1:  # a joint multichannel model: one batch item
        shape = [draw(st.integers(16, 400)), b.channels]
        dtype, n = draw(st.sampled_from(["int16", "float32"])), 1
    elif b.modality == "audio":
        shape = [draw(st.integers(16, 400))] + draw(st.sampled_from([[], [1], [2]]))
        dtype, n = draw(st.sampled_from(["int16", "float32"])), (shape[1] if len(shape) > 1 else 1)
    else:
        shape, dtype, n = [draw(st.integers(8, 64)), b.channels], b.sample_dtype, 1
    code_shape = [n, b.latent_channels] + [-(-d // k) for d, k in zip(shape, blk)]
    coder = draw(st.sampled_from(available_coders()))
    codes = np.resize(np.frombuffer(draw(st.binary(min_size=1, max_size=64)), np.int8),
                      (n * code_shape[1],) + tuple(code_shape[2:]))
    data = get_coder(coder).encode(np.ascontiguousarray(codes))
    version, dcode = FRAME_VERSION, DTYPES.index(dtype)
    hostile = st.integers(0, 40) | st.sampled_from([1 << 20, 1 << 28, (1 << 32) - 1])
    what = draw(st.sampled_from(["none", "version", "coder", "dtype", "shape", "code_shape",
                                 "both_shapes", "ndim", "data", "flip", "truncate"]))
    if what == "version":
        version = draw(st.integers(0, 255))
    elif what == "coder":
        coder = draw(st.sampled_from(known_coders()) | st.text(max_size=8))
    elif what == "dtype":
        dcode = draw(st.integers(0, 255))
    elif what in ("shape", "both_shapes"):
        shape[draw(st.integers(0, len(shape) - 1))] = draw(hostile)
    if what in ("code_shape", "both_shapes"):
        code_shape[draw(st.integers(0, len(code_shape) - 1))] = draw(hostile)
    if what == "ndim":
        shape = draw(st.lists(hostile, max_size=9))
        code_shape = draw(st.lists(hostile, max_size=9))
    if what == "data":
        data = draw(st.binary(max_size=300))
    cb = coder.encode("utf-8")[:255]
    head = struct.pack("<BBB", version, len(cb), 0)[:2] + cb + struct.pack("<B", dcode)
    for dims in (shape, code_shape):
        head += struct.pack(f"<B{len(dims)}I", len(dims), *dims)
    blob = head + data
    if what == "flip" and data:
        i = draw(st.integers(len(head), len(blob) - 1))
        blob = blob[:i] + bytes([blob[i] ^ draw(st.integers(1, 255))]) + blob[i + 1:]
    if what == "truncate":
        blob = blob[:draw(st.integers(0, len(blob) - 1))]
    return blob


# ---- targets ---------------------------------------------------------------------------------

@fuzz(400)
@given(st.binary(max_size=600), st.booleans(), st.integers(1, 64))
def fuzz_stream_bytes(data: bytes, with_preamble: bool, chunk: int) -> None:
    """Any bytes through every container reader."""
    blob = (container.preamble() + data) if with_preamble else data
    for call in (lambda: container.read_stream(blob, "fuzz"),
                 lambda: list(container.iter_file_records(io.BytesIO(blob)))):
        try:
            call()
        except ContainerError:
            pass
    res = container.scan_records(blob, offset=min(len(blob), container.PREAMBLE.size), resync=True)
    assert res.good_bytes <= len(blob) and all(r.size <= len(blob) for r in res.records)
    reader = container.StreamReader(max_payload=1 << 16)
    try:
        for i in range(0, len(blob), chunk):
            reader.feed(blob[i:i + chunk])
    except ContainerError:
        pass


@fuzz(300)
@given(header_payloads(), st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255),
                                             st.binary(max_size=40)), max_size=4),
       st.integers(1, 2**32 - 1))
def fuzz_records_with_valid_crc(head, others, max_payload) -> None:
    """Records whose CRCs check out but whose contents are hostile; then the decoder for them."""
    text, flags = head
    blob = container.preamble() + _record(container.RecordType.HEADER, text, flags)
    blob += b"".join(_record(t, p, f) for t, f, p in others)
    try:
        header, records = container.read_stream(blob, "fuzz", max_payload=max_payload)
        for r in records:
            if r.type == container.RecordType.GAP:
                r.gap()
        Decoder.for_header(header)
    except CLEAN:
        pass


@fuzz(300)
@given(st.sampled_from(MODELS), header_payloads(), st.data())
def fuzz_decode_path(model: str, head, data) -> None:
    """Hostile headers and FRAME payloads through the real decoder of each modality."""
    text, flags = head
    payload = data.draw(frame_payloads(model))
    dec = _DECODERS[model]
    for header in (_HEADERS[model], None):
        try:
            if header is None:
                header = container.Record(container.RecordType.HEADER, 0, text, flags=flags).header_json()
            out = dec.decode_frame(header, payload)
        except CLEAN:
            continue
        info = parse_frame(payload)
        assert out.shape == info.shape and out.size <= dec.max_samples


@fuzz(300)
@given(st.sampled_from(available_coders()),
       st.lists(st.integers(1, 24), min_size=2, max_size=4),
       st.binary(min_size=1, max_size=200), st.data())
def fuzz_entropy_coders(name: str, shape, seed: bytes, data) -> None:
    """Each coder: exact round trip, then garbage / truncated / flipped / padded payloads."""
    coder = get_coder(name)
    shape = tuple(shape)
    codes = np.resize(np.frombuffer(seed, np.int8), shape)
    blob = coder.encode(np.ascontiguousarray(codes))
    assert np.array_equal(coder.decode(blob, shape), codes)
    i = data.draw(st.integers(0, len(blob)))
    variants = [data.draw(st.binary(max_size=300)), blob[:i], blob + data.draw(st.binary(min_size=1, max_size=8)),
                blob[:i] + bytes([blob[i] ^ data.draw(st.integers(1, 255))]) + blob[i + 1:]
                if i < len(blob) else blob[:-1]]
    other = data.draw(st.lists(st.integers(1, 64), min_size=2, max_size=4))
    for v in variants:
        for s in (shape, tuple(other)):
            try:
                out = coder.decode(v, s)
            except CorruptPayloadError:
                continue
            assert out.shape == s and out.dtype == np.int8


_MANIFEST_FIELDS = [("name",), ("modality",), ("sample",), ("sample", "channels"),
                    ("sample", "dtype"), ("transform",), ("transform", "block"),
                    ("transform", "dims"), ("latent",), ("latent", "channels"), ("coder",),
                    ("coder", "default"), ("files",), ("files", "decoder.onnx"),
                    ("files", "decoder.onnx", "sha256"), ("format_version",)]


@fuzz(200)
@given(st.sampled_from(_MANIFEST_FIELDS), json_values, st.booleans(), st.binary(max_size=100))
def fuzz_bundle_manifest(path, value, delete: bool, junk: bytes) -> None:
    """A real manifest with one field replaced or deleted (or junk bytes) → load, then decode."""
    src = MODELS_DIR / "imu6-l3c3"
    m = json.loads((src / "manifest.json").read_text())
    node = m
    for key in path[:-1]:
        node = node[key]
    if delete:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    with tempfile.TemporaryDirectory() as tmp:
        b = Path(tmp) / "imu6-l3c3"
        b.mkdir()
        for f in src.iterdir():
            if f.name != "manifest.json":
                (b / f.name).symlink_to(f)
        raw = junk if not junk.startswith(b"\0") and len(junk) > 90 else json.dumps(m).encode()
        (b / "manifest.json").write_bytes(raw)
        try:
            bundle = load_bundle(b)
            Decoder(bundle).decode_frame({"bundle": {"name": bundle.name}}, _PAYLOADS["imu6-l3c3"])
        except CLEAN:
            pass


TARGETS = {f.__name__: f for f in (fuzz_stream_bytes, fuzz_records_with_valid_crc,
                                    fuzz_decode_path, fuzz_entropy_coders, fuzz_bundle_manifest)}

_HEADERS: dict[str, dict] = {}
_DECODERS: dict[str, Decoder] = {}
_PAYLOADS: dict[str, bytes] = {}


def _setup() -> None:
    """Real headers, decoders and one real FRAME payload per model (loaded once)."""
    samples = {"image": np.full((16, 24, 3), 100, np.uint8), "audio": np.zeros(160, np.int16),
               "timeseries": np.zeros((24, 6), np.int16)}
    for name in MODELS:
        enc = Encoder.load(name)
        _HEADERS[name] = {k: v for k, v in enc.stream_header("fuzz").items() if k != "clock"}
        _DECODERS[name] = Decoder.load(name)
        _PAYLOADS[name] = enc.encode_frame(samples[enc.bundle.modality])


def run_targets(names: list[str]) -> dict[str, str]:
    """Run fuzz targets under the address-space cap; {name: "ok" or the failure's traceback}."""
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    _setup()
    results = {}
    for name in names:
        try:
            TARGETS[name]()
            results[name] = "ok"
        except BaseException:  # noqa: BLE001 - reported to the parent test as text
            results[name] = traceback.format_exc()[-4000:]
    return results


# ---- pytest: one subprocess, one test per target ---------------------------------------------

@pytest.fixture(scope="module")
def fuzz_results() -> dict[str, str]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, __file__, *TARGETS], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("target", list(TARGETS))
def test_fuzz_target_raises_only_clean_errors_under_1gib(fuzz_results, target):
    assert fuzz_results[target] == "ok", fuzz_results[target]


if __name__ == "__main__":
    print(json.dumps(run_targets(sys.argv[1:] or list(TARGETS))))
