"""Property-based fuzz of the spool's parsers: segments, ``state.json`` and salvage.

Whatever the bytes, the parsers either return or raise ``ValueError`` (ContainerError is one)
naming the problem — never another exception — and salvage always returns records that cover
the requested seq range exactly once. The whole module also runs once more in a child process
under a 1 GiB address-space limit (bounded memory). Example counts are CI-sized; raise them
with ``SENSORCODEC_FUZZ_EXAMPLES``.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from encoder_runtime.container import RecordType, gap_record, header_record, preamble
from encoder_runtime.daemon.spool import (Record, Spool, inspect_segment, parse_state, salvage_records)
from encoder_runtime.daemon.store import RangeSet

EXAMPLES = int(os.environ.get("SENSORCODEC_FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
HEADER = {"stream_id": "s1", "codec": "raw-zstd", "modality": "image"}


def _segment(n_frames: int, gap_at: int | None, payload: bytes) -> bytes:
    recs = [header_record(HEADER, seq=0)]
    for i in range(n_frames):
        if i == gap_at:
            recs.append(gap_record(i, i, i, 1))
        else:
            recs.append(Record(RecordType.FRAME, i, payload + bytes([i % 256]), i, i))
    recs.append(Record(RecordType.END, max(n_frames - 1, 0), b'{"segno": 0}'))
    return preamble() + b"".join(r.encode() for r in recs)


segments = st.builds(_segment, st.integers(0, 12), st.one_of(st.none(), st.integers(0, 11)),
                     st.binary(min_size=0, max_size=64))


@st.composite
def damaged_segments(draw):
    data = bytearray(draw(segments))
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=40))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 40))]
    return bytes(data)


@FUZZ
@given(st.one_of(damaged_segments(), st.binary(max_size=300)), st.booleans(), st.booleans())
def test_inspect_segment_never_crashes(data, strict, resync):
    try:
        info = inspect_segment(data, strict=strict, resync=resync)
    except ValueError:
        return
    assert info.frames == len(info.frame_seqs)
    for a, b, _r in info.gaps:
        assert a <= b


@FUZZ
@given(damaged_segments(), st.integers(0, 15), st.integers(0, 2**40))
def test_salvage_covers_the_range_exactly_once(data, last, offset):
    _hdr, records, lost = salvage_records(data, 0, last, offset=offset, header=None)
    covered = RangeSet()
    for r in records:
        if r.type == RecordType.FRAME:
            assert r.seq not in covered
            covered.add(r.seq, r.seq)
        else:
            a, b, _reason = r.gap()
            assert covered.uncovered(a, b) == [(a, b)]
            covered.add(a, b)
    assert covered.ranges() == [(offset, offset + last)]
    assert 0 <= lost <= last + 1


json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.text(max_size=8),
                           lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=4),
                           max_leaves=20)
state_keys = st.sampled_from(["seq_reserved", "segno_floor", "prov_base", "prov_segno", "provisional",
                              "renumber", "offset", "names", "x"])


@FUZZ
@given(st.one_of(st.binary(max_size=200),
                 st.dictionaries(state_keys, json_values, max_size=6).map(lambda d: __import__("json").dumps(d))))
def test_parse_state_never_crashes(text):
    try:
        state = parse_state(text)
    except ValueError:   # JSONDecodeError and UnicodeDecodeError are ValueErrors too
        return
    assert all(isinstance(state[k], int) and state[k] >= 0 for k in ("seq_reserved", "segno_floor"))


@settings(FUZZ, max_examples=max(EXAMPLES // 3, 10))
@given(damaged_segments(), st.binary(max_size=120))
def test_spool_open_survives_any_active_segment_and_state(tmp_path_factory, data, state):
    root = tmp_path_factory.mktemp("fz")
    d = root / "s1"
    (d / "ready").mkdir(parents=True)
    (d / "active.scd.open").write_bytes(data)
    (d / "state.json").write_bytes(state)
    (d / "ready" / f"{0:012d}-{0:020d}-{3:020d}.scd").write_bytes(data)
    sp = Spool(root, "s1", segment_max_age=100, fsync="never")
    sp.open(HEADER)
    sp.append_frame(b"x", 0, 0)
    sp.close()
    for seg in sp.sealed():   # what the uploader does: verify, else salvage, then it must verify
        try:
            inspect_segment(seg.read(), strict=True)
        except ValueError as exc:
            fixed = sp.salvage(seg, str(exc))
            assert fixed is not None
            inspect_segment(fixed.read(), strict=True)


def test_fuzz_under_a_1gib_address_space_limit():
    if os.environ.get("SENSORCODEC_FUZZ_CHILD"):
        pytest.skip("already the child")

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    env = dict(os.environ, SENSORCODEC_FUZZ_CHILD="1", SENSORCODEC_FUZZ_EXAMPLES=str(max(EXAMPLES // 4, 20)))
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(Path(__file__))],
                         env=env, preexec_fn=limit, capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[1])
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
