"""Protocol, framing and integer-encoder reference of firmware_bridge (no I/O)."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_bridge import cobs, frame, gen_protocol, reference, spec
from firmware_bridge.link import SeqTracker


def test_crc32_pinned_by_check_value():
    assert frame.crc32(b"123456789") == 0xCBF43926 == spec.PROTOCOL["crc"]["check_123456789"]


def test_bridge_never_imports_torch():
    code = ("import sys, firmware_bridge.link, firmware_bridge.source, firmware_bridge.cli, firmware_bridge.simulator, "
            "firmware_bridge.gen_header; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_c_protocol_header_matches_spec():
    assert gen_protocol.main(["--check"]) == 0


def test_generated_c_vectors_up_to_date():
    pytest.importorskip("pywt")
    pytest.importorskip("skimage")
    from firmware_bridge import gen_vectors
    assert gen_vectors.main(["--check"]) == 0


@given(st.binary(max_size=1200))
def test_cobs_roundtrip(data):
    enc = cobs.encode(data)
    assert b"\x00" not in enc
    assert len(enc) <= cobs.encoded_size_max(len(data))
    assert cobs.decode(enc) == data


def test_cobs_known_vectors():
    assert cobs.encode(b"") == b"\x01"
    assert cobs.encode(b"\x00") == b"\x01\x01"
    assert cobs.encode(b"\x11\x22\x00\x33") == b"\x03\x11\x22\x02\x33"
    assert cobs.encode(bytes(range(1, 255))) == b"\xff" + bytes(range(1, 255)) + b"\x01"
    assert len(cobs.encode(bytes(1024))) == 1025


@given(st.integers(0, 15), st.integers(0, 255), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF),
       st.binary(max_size=1000))
def test_frame_roundtrip(t, flags, seq, us, payload):
    f = frame.FrameDecoder().feed(frame.encode_frame(t, seq, us, payload, flags))
    assert f == [frame.Frame(t, flags, seq, us, payload)]


def test_frame_rejections_are_named():
    w = bytearray(frame.encode_frame(spec.T_DATA, 1, 2, b"abc"))
    w[3] ^= 0x40
    with pytest.raises(frame.FrameError) as e:
        frame.decode_frame(bytes(w[:-1]))
    assert e.value.reason in ("crc", "cobs")
    with pytest.raises(frame.FrameError, match="version 2"):
        frame.decode_frame(frame.encode_frame(spec.T_DATA, 1, 2, b"", version=2)[:-1])
    with pytest.raises(frame.FrameError, match="shorter"):
        frame.decode_frame(cobs.encode(b"\x13\x00"))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.binary(max_size=3000), max_size=8))
def test_decoder_fuzz_no_crash_bounded(chunks):
    d = frame.FrameDecoder(max_frame=256)
    for c in chunks:
        d.feed(c)
        assert d.buffered <= d.limit
    assert d.frames + d.bad_frames <= sum(c.count(0) for c in chunks)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=200), st.sampled_from(["ok", "flip", "cut", "junk"]),
                          st.integers(0, 10 ** 6)), min_size=1, max_size=30))
def test_decoder_recovers_every_intact_frame(items):
    """Damaged frames are dropped and counted; every intact frame after a delimiter survives."""
    stream, expect, bad = bytearray(), [], 0
    for i, (payload, fault, r) in enumerate(items):
        w = bytearray(frame.encode_frame(spec.T_DATA, i, r, payload))
        if fault == "flip":
            w[r % (len(w) - 1)] ^= 1 << (r % 8)
            bad += len([p for p in bytes(w).split(b"\x00")[:-1] if p])
        elif fault == "cut":
            w = w[: 1 + r % (len(w) - 2)] + b"\x00"
            bad += 1
        elif fault == "junk":
            stream += bytes([1 + r % 255]) * (1 + r % 17) + b"\x00"
            bad += 1
        if fault in ("ok", "junk"):
            expect.append(i)
        stream += w
    d = frame.FrameDecoder()
    got = []
    for k in range(0, len(stream), 7):  # arbitrary split points
        got += [f.seq for f in d.feed(bytes(stream[k:k + 7]))]
    assert got == expect
    assert d.bad_frames == bad


def test_decoder_overflow_discards_to_next_delimiter():
    d = frame.FrameDecoder(max_frame=64)
    good = frame.encode_frame(spec.T_DATA, 9, 0, b"x")
    assert d.feed(b"\x55" * 10_000) == []
    assert d.buffered <= d.limit and d.overflows == 1
    assert d.feed(b"\x55" * 50 + b"\x00" + good)[0].seq == 9  # the run's tail is skipped silently


def test_data_payload_roundtrip_and_errors():
    for a, k in [(np.arange(-6, 6, dtype=np.int16).reshape(2, 6), spec.KIND_IMU),
                 (np.zeros((8, 8, 3), np.uint8), spec.KIND_CAMERA_TILE), (np.ones((4, 5), np.int8), spec.KIND_CODES)]:
        kind, b = frame.parse_data(frame.data_payload(a, k))
        assert kind == k and b.dtype == a.dtype and np.array_equal(a, b)
    with pytest.raises(frame.FrameError, match="needs"):
        frame.parse_data(frame.data_payload(np.zeros((2, 2), np.int16), 1)[:-1])
    with pytest.raises(ValueError, match="dtype"):
        frame.data_payload(np.zeros(3, np.float32), 1)


def test_seq_tracker_wrap_gap_duplicate_reboot():
    t = SeqTracker()
    assert t.push(65534) == (0, None)
    assert t.push(65535) == (1, None)
    assert t.push(2) == (4, (2, 3))  # 0 and 1 lost across the wrap
    assert t.push(1) == (None, None)  # stale
    t.new_session()
    assert t.push(0) == (5, None)  # numbering continues after a reboot
    assert t.push(1) == (6, None)


def test_requantize_matches_exact_rational_half_even():
    rng = np.random.default_rng(0)
    acc = rng.integers(-(1 << 24), 1 << 24, (24, 300))
    acc[:, :40] = (rng.integers(-200, 200, (24, 40)) * 2 + 1) << 3  # many exact halves for shift 4
    shift = np.array(list(range(-4, 20)))
    q = reference.requantize(acc, shift, 10 ** 12)
    for c in range(24):
        for j in range(0, 300, 7):
            assert q[c, j] == round(Fraction(int(acc[c, j])) * Fraction(2) ** -int(shift[c]))
    # same as the float32-exact path the spec promises (|acc| < 2^24)
    f = np.clip(np.round(acc.astype(np.float64) * np.exp2(-shift[:, None].astype(np.float64))), -127, 127)
    assert np.array_equal(f, reference.requantize(acc, shift, 127))


def test_reference_encode_tiles_equal_crop_of_full_frame():
    m = reference.random_model(16, 3, (8, 8), seed=4)
    x = np.random.default_rng(1).integers(0, 256, (32, 48, 3)).astype(np.uint8)
    full = reference.encode(x, **m)
    assert np.array_equal(full[:, 1:3, 2:5], reference.encode(x[8:24, 16:40], **m))
    with pytest.raises(reference.ModelError, match="multiple of the block"):
        reference.encode(x[:30], **m)


def test_gen_header_from_npz_and_manifest(tmp_path):
    from firmware_bridge import gen_header
    m = reference.random_model(4, 1, (16,), seed=1)
    np.savez(tmp_path / "encoder_int.npz", **m)
    (tmp_path / "manifest.json").write_text('{"name": "audio-c4", "latent": {"code_max": 127, "rounding": '
                                            '"half_to_even"}, "transform": {"block": [16]}, "sample": {"dtype": "int16"}}')
    out = tmp_path / "m.h"
    assert gen_header.main([str(tmp_path), "-o", str(out)]) == 0
    text = out.read_text()
    assert "audio_c4_model" in text and "AUDIO_C4_K 16u" in text and "sha256" in text
    (tmp_path / "manifest.json").write_text('{"latent": {"rounding": "half_away"}}')
    assert gen_header.main([str(tmp_path), "-o", str(out)]) == 2
    assert gen_header.main([str(tmp_path / "nope"), "-o", str(out)]) == 2
