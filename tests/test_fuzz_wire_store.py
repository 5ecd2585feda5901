"""Property-based fuzz of the receiver's parsers: the wire session, the hello and the store.

Each property feeds arbitrary or mutated bytes and asserts that the parser either succeeds or
raises the one error type it documents (``ContainerError`` / ``ProtocolError``) — never any
other exception — and, for the store, that recovery keeps only records that verify and leaves
a store that reopens clean. The properties run in a child process under a 1 GiB address-space
limit (``RLIMIT_AS``), so a parser that tries to allocate what a length field claims fails the
test instead of the machine. Example counts are CI-sized (``FUZZ_EXAMPLES``, default 150).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from encoder_runtime.container import (ContainerError, GapReason, Record, RecordType, StreamReader,
                                       gap_record, header_record, preamble)
from encoder_runtime.daemon import wire
from encoder_runtime.daemon.store import StreamStore, format_summary, summarize
from encoder_runtime.daemon.wire import ProtocolError

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
ADDRESS_SPACE_LIMIT = 1 << 30
CHILD = os.environ.get("SENSORCODEC_FUZZ_CHILD") == "1"
# The properties run only in the limited child (test_parsers_under_an_address_space_limit).
child_only = pytest.mark.skipif(not CHILD, reason="runs in the child of test_parsers_under_an_address_space_limit")
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))
HEADER = {"codec": "raw-zstd", "stream_id": "s1", "format": 1}

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) |
                           st.text(max_size=20), lambda kids: st.lists(kids, max_size=4) |
                           st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=12)


def _record(kind: int, seq: int, payload: bytes) -> Record:
    return Record(kind, seq, payload)


records = st.one_of(
    st.builds(lambda s: header_record({**HEADER, "stream_id": s}),
              st.sampled_from(["s1", "../x", "", "a" * 80, "ok-2"])),
    st.builds(lambda seq, p: _record(RecordType.FRAME, seq, p), st.integers(0, 2**64 - 1), st.binary(max_size=64)),
    st.builds(lambda a, n, r: gap_record(a, a, min(a + n, 2**64 - 1), r),
              st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.sampled_from(list(GapReason))),
    st.builds(lambda seq, p: _record(RecordType.GAP, seq, p), st.integers(0, 9), st.binary(max_size=24)),
    st.builds(lambda obj: _record(RecordType.END, 0, json.dumps(obj).encode()),
              st.fixed_dictionaries({"segno": st.integers(-5, 2**70) | st.booleans() | st.text(max_size=3)})),
    st.builds(lambda obj: Record(RecordType.ANNOTATION, 0, json.dumps(obj).encode()), json_values),
    st.builds(lambda t, seq, p: _record(t, seq, p), st.integers(0, 255), st.integers(0, 9), st.binary(max_size=32)),
)


def _mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    buf = bytearray(data)
    for pos, val in edits:
        if not buf:
            break
        op, pos = val % 3, pos % len(buf)
        if op == 0:
            buf[pos] ^= 1 << (val % 8)
        elif op == 1:
            del buf[pos:pos + 1 + val % 7]
        else:
            buf[pos:pos] = bytes([val % 256]) * (1 + val % 5)
    return bytes(buf)


def _session(chunks: list[bytes]) -> None:
    """The receiver's post-hello parse path: StreamReader → SegmentAssembler."""
    reader = StreamReader(max_payload=64 * 1024)
    asm = wire.SegmentAssembler(max_segment_bytes=256 * 1024, max_gap_frames=1 << 20)
    try:
        for chunk in chunks:
            for rec in reader.feed(chunk):
                seg = asm.feed(rec)
                if seg is not None:
                    assert seg.stream_id == seg.header["stream_id"] and isinstance(seg.segno, int)
                    for r in seg.records:
                        a, b = wire.record_span(r)
                        assert a <= b and (r.type != RecordType.GAP or b - a < 1 << 20)
                assert asm.buffered <= 256 * 1024
    except (ContainerError, ProtocolError):
        pass


@child_only
@SETTINGS
@given(st.lists(records, max_size=12), st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)),
                                                max_size=4), st.integers(1, 97))
def test_wire_session_mutated(recs, edits, chunk):
    data = _mutate(preamble() + b"".join(r.encode() for r in recs), edits)
    _session([data[i:i + chunk] for i in range(0, len(data), chunk)])


@child_only
@SETTINGS
@given(st.binary(max_size=2048))
def test_wire_session_random_bytes(data):
    _session([preamble() + data])
    _session([data])


@child_only
@SETTINGS
@given(json_values, st.binary(max_size=64))
def test_hello(obj, raw):
    for rec in (Record(RecordType.ANNOTATION, 0, json.dumps(obj).encode()), Record(RecordType.ANNOTATION, 0, raw),
                Record(RecordType.FRAME, 0, raw)):
        try:
            hello = wire.parse_hello(rec)
        except ProtocolError:
            continue
        assert hello["type"] == "hello" and hello["proto"] == wire.PROTO
    if isinstance(obj, dict):
        try:
            hello = wire.parse_hello(Record(RecordType.ANNOTATION, 0, json.dumps(
                {**obj, "type": "hello", "proto": 1}).encode()))
        except ProtocolError:
            return
        assert all(isinstance(hello.get(k, ""), str) for k in ("token", "agent", "stream_id"))


@child_only
@SETTINGS
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 400), st.integers(0, 3), st.binary(max_size=40)),
                min_size=1, max_size=15),
       st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=5), st.booleans())
def test_store_recovery(items, edits, two_files):
    with tempfile.TemporaryDirectory() as tmp:
        store = StreamStore(tmp, "s1", fsync=False)
        for is_frame, seq, span, payload in items:
            rec = Record(RecordType.FRAME, seq, payload) if is_frame else \
                gap_record(seq, seq, seq + span, GapReason.QUEUE_FULL)
            store.commit(HEADER if not two_files or seq % 2 else {**HEADER, "codec": "other"}, [rec])
        store.close()
        before = set(store.frames.ranges())
        files = store.files()
        target = files[len(edits) % len(files)]
        target.write_bytes(_mutate(target.read_bytes(), edits))
        s = summarize(tmp)
        format_summary(s)
        again = StreamStore(tmp, "s1", fsync=False)  # recovery
        frames = {seq for a, b in again.frames.ranges() for seq in range(a, b + 1)}
        assert frames <= {seq for a, b in before for seq in range(a, b + 1)}
        again.close()
        clean = StreamStore(tmp, "s1", fsync=False)  # what recovery left reopens without damage
        assert clean.damage == [] and clean.frames.ranges() == again.frames.ranges()
        clean.close()
        assert summarize(tmp)["streams"][0]["frames"] == len(frames)


@child_only
@SETTINGS
@given(st.binary(max_size=4096))
def test_store_arbitrary_file(data):
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "s1"
        d.mkdir()
        (d / "00000000.scd").write_bytes(data)
        (d / "00000001.scd").write_bytes(preamble() + data)
        format_summary(summarize(tmp))
        StreamStore(tmp, "s1", fsync=False).close()
        format_summary(summarize(tmp))


def test_parsers_under_an_address_space_limit():
    """Run every property above in a child limited to 1 GiB of address space."""
    code = (
        "import resource, sys, pytest\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({ADDRESS_SPACE_LIMIT}, {ADDRESS_SPACE_LIMIT}))\n"
        f"sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '-k', 'not address_space', {__file__!r}]))\n"
    )
    env = dict(os.environ, SENSORCODEC_FUZZ_CHILD="1", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]

