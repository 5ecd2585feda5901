"""Container format 1.1: compressed HEADER records (zstd + fixed dictionary, clock in the record
timestamps) round-trip, 1.0 streams still read, bad compressed headers fail clearly, and a one-frame
file carries little overhead."""

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import zstandard

from encoder_runtime import Decoder, Encoder, container
from encoder_runtime.container import (CRC, HEADER_CLOCK, HEADER_ZSTD, MAGIC, PREAMBLE, RECORD_HEADER,
                                       ContainerError, Record, RecordType, header_record)
from encoder_runtime.daemon.codecs import RawEncoder
from encoder_runtime.frame import parse_frame
from encoder_runtime.header_dict import HEADER_DICT
from encoder_runtime.media import read_input

SAMPLES = Path(__file__).resolve().parent.parent / "encoder_runtime" / "samples"
CLOCK = {"mono_ns": 9195917121688, "wall_ns": 1795662934959316311}


def _headers() -> dict[str, dict]:
    img = Encoder.load("rgb-c16").stream_header()
    return {"image": img,
            "image+meta": Encoder.load("rgb-c16").stream_header(meta={"kind": "image", "source": "K.png"}),
            "audio": Encoder.load("audio16k-c6").stream_header(meta={"rate_hz": 16000}),
            "timeseries": Encoder.load("imu6-l3c3").stream_header("s1"),
            "raw": RawEncoder().stream_header("s2"),
            "other": {"stream_id": "x", "clock": CLOCK, "meta": {"note": "ünïcode"}}}


def _one_frame(name: str, sample: str) -> bytes:
    array, _ = read_input(SAMPLES / sample)
    return Encoder.load(name).encode(array)


def _overhead(blob: bytes) -> tuple[int, int]:
    """(bytes that are not codes, HEADER record size) of a one-frame stream."""
    res = container.scan_records(blob, offset=PREAMBLE.size)
    head, frame = res.records
    return len(blob) - (len(frame.payload) - parse_frame(frame.payload).data_offset), head.size


def _zstd_header(payload: bytes, flags: int = HEADER_ZSTD) -> Record:
    return Record(RecordType.HEADER, 0, payload, flags=flags)


def test_header_dictionary_is_frozen():
    assert hashlib.sha256(HEADER_DICT).hexdigest() == \
        "130234670402c457179f661cbeef2c637f574eb648f1f0ea410e4d5e8fb477b4"
    assert container.FORMAT_MINOR == 1 and container.preamble() == PREAMBLE.pack(MAGIC, 1, 1)


@pytest.mark.parametrize("kind", list(_headers()))
def test_compressed_header_round_trips(kind):
    header = _headers()[kind]
    rec = header_record(header, seq=7)
    assert rec.flags & HEADER_ZSTD and len(rec.payload) < 130
    assert bool(rec.flags & HEADER_CLOCK) == ("clock" in header)
    assert rec.header_json() == header
    blob = container.write_stream([rec])
    got, rest = container.read_stream(blob)
    assert got == header and not rest
    assert container.StreamReader().feed(blob)[0].header_json() == header
    assert next(container.iter_file_records(io.BytesIO(blob))).header_json() == header


def test_clock_stays_in_json_unless_it_moves_without_loss():
    odd = [{"mono_ns": 1, "wall_ns": True}, {"mono_ns": 1.5, "wall_ns": 2},
           {"mono_ns": 1, "wall_ns": 2, "tz": "UTC"}, {"mono_ns": 1 << 63, "wall_ns": 2}, "now"]
    for clock in odd:
        rec = header_record({"stream_id": "s", "clock": clock})
        assert not rec.flags & HEADER_CLOCK and rec.header_json() == {"stream_id": "s", "clock": clock}
    rec = header_record({"stream_id": "s", "clock": CLOCK}, 0, 5, 6)  # record times differ
    assert rec.flags == HEADER_ZSTD and (rec.t_mono_ns, rec.t_wall_ns) == (5, 6)
    assert rec.header_json()["clock"] == CLOCK
    rec = header_record({"stream_id": "s", "clock": CLOCK}, 0, CLOCK["mono_ns"], CLOCK["wall_ns"])
    assert rec.flags & HEADER_CLOCK and (rec.t_mono_ns, rec.t_wall_ns) == tuple(CLOCK.values())


def test_large_or_incompressible_header_stays_plain_json():
    big = {"stream_id": "s", "clock": CLOCK, "meta": {"blob": "x" * (container.MAX_HEADER_JSON + 1)}}
    rec = header_record(big)
    assert rec.flags == HEADER_CLOCK and rec.payload.startswith(b"{")
    assert rec.header_json() == big
    tiny = header_record({})
    assert tiny.flags == 0 and tiny.payload == b"{}" and tiny.header_json() == {}


def test_minor0_stream_with_plain_json_header_still_decodes():
    blob = _one_frame("rgb-c16", "Kite.png")
    header, (frame,) = container.read_stream(blob)
    legacy_head = header_record(header, 0, CLOCK["mono_ns"], CLOCK["wall_ns"], compact=False)
    assert legacy_head.flags == 0 and json.loads(legacy_head.payload) == header
    old = PREAMBLE.pack(MAGIC, 1, 0) + legacy_head.encode() + frame.encode()
    got, (old_frame,) = container.read_stream(old)
    assert got == header and old_frame.payload == frame.payload
    assert np.array_equal(Decoder.for_stream(old).decode(old), Decoder.for_stream(blob).decode(blob))
    assert len(old) - len(blob) > 300


@pytest.mark.parametrize("payload, flags, words", [
    (b"not zstd at all", HEADER_ZSTD, "not a zstd frame"),
    (b"", HEADER_ZSTD, "not a zstd frame"),
    (zstandard.ZstdCompressor().compress(b" " * (1 << 20)), HEADER_ZSTD, "claims 1048576 bytes, at most 65536"),
    (zstandard.ZstdCompressor(write_content_size=False).compress(b"{}"), HEADER_ZSTD, "does not declare its content size"),
    (zstandard.ZstdCompressor().compress(b'{"a":1}') + b"junk", HEADER_ZSTD, "4 bytes after the zstd frame"),
    (zstandard.ZstdCompressor().compress(b'{"a":' + b"1" * 200 + b"}")[:-3], HEADER_ZSTD, "truncated zstd frame"),
    (zstandard.ZstdCompressor().compress(b"\xff\xfe not json"), HEADER_ZSTD, "not valid UTF-8"),
    (zstandard.ZstdCompressor().compress(b"[1, 2]"), HEADER_ZSTD, "not a JSON object"),
    (b"{}", 0x04, "unknown flags 0x04"),
    (b"{", 0, "stream header: not valid JSON"),
])
def test_bad_header_payload_gives_clear_container_error(payload, flags, words):
    rec = _zstd_header(payload, flags)
    with pytest.raises(ContainerError, match=words):
        rec.header_json()
    with pytest.raises(ContainerError, match=words):  # intact CRC: the header layer catches it
        container.read_stream(container.write_stream([rec]))


def test_one_frame_file_overhead_is_small():
    # 1.0 wrote 576 (rgb-c16) / 585 (audio16k-c6) bytes besides the codes; 1.1 writes 225 / 223.
    for name, sample in (("rgb-c16", "Kite.png"), ("audio16k-c6", "speech_16k.wav")):
        overhead, head = _overhead(_one_frame(name, sample))
        assert overhead < 240 and head < 150, (name, overhead, head)
    assert PREAMBLE.size + RECORD_HEADER.size + CRC.size == 48
