"""The shipping protocol: the container format on a byte stream, plus JSON control records.

Both ends start with the container preamble (also when the server's first words are an
``error``). Control messages are ANNOTATION records whose payload is a JSON object (at most
``MAX_CONTROL_BYTES``) with a ``type``:

    client → server  {"type": "hello", "proto": 1, "token": "...", "agent": "sensor-encode/0.1",
                      "stream_id": "cam0"}                     (token, agent, stream_id optional)
    server → client  {"type": "welcome", "proto": 1, "next_seq": N}
                     |  {"type": "error", "code": ..., "message": ...}
    client → server  a sealed spool segment without its preamble: HEADER, FRAME/GAP..., END
    server → client  {"type": "ack", "segno": N, "stream_id": ..., "stored": k, "duplicates": d}

``next_seq`` is present when the hello named a ``stream_id`` this credential may write: the
lowest seq above everything stored for that stream (frames and GAPs; 0 if nothing is). A
sender whose own numbering state was lost resumes there instead of at 0.

The server acknowledges a segment only after its new records are fsynced. Anything malformed
ends the connection with an ``error`` message; the client resends every unacknowledged segment
on its next connection, and the server de-duplicates on (stream id, seq).

This module only parses and checks structure (no sockets, no policy): :func:`parse_hello` and
:class:`SegmentAssembler`, which turns post-handshake records into whole :class:`Segment` s.
"""

from __future__ import annotations

import dataclasses
import json

from ..container import ContainerError, Record, RecordType
from .config import STREAM_ID_RE

PROTO = 1
MAX_CONTROL_BYTES = 4096
MAX_SEQ = (1 << 64) - 1


class ProtocolError(Exception):
    """The peer broke the session protocol; ``code`` is what the ``error`` reply names."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


def control(obj: dict) -> bytes:
    """Encode one control message as a record."""
    return Record(RecordType.ANNOTATION, 0, json.dumps(obj, separators=(",", ":")).encode()).encode()


def _json_object(rec: Record, what: str) -> dict:
    try:
        obj = json.loads(rec.payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ContainerError(f"{what} is not UTF-8 JSON") from None
    if not isinstance(obj, dict):
        raise ContainerError(f"{what} is not a JSON object")
    return obj


def parse_control(rec: Record) -> dict:
    """Decode a control record; raises ContainerError if it is not one."""
    if rec.type != RecordType.ANNOTATION:
        raise ContainerError(f"expected a control record, got type {rec.type}")
    if len(rec.payload) > MAX_CONTROL_BYTES:
        raise ContainerError(f"control record of {len(rec.payload)} bytes (limit {MAX_CONTROL_BYTES})")
    obj = _json_object(rec, "control record")
    if not isinstance(obj.get("type"), str):
        raise ContainerError("control record lacks a string 'type'")
    return obj


def parse_hello(rec: Record) -> dict:
    """Decode and check a client hello; raises ProtocolError naming the bad field."""
    try:
        hello = parse_control(rec)
    except ContainerError as exc:
        raise ProtocolError("malformed", f"hello: {exc}") from None
    if hello["type"] != "hello":
        raise ProtocolError("bad_hello", f"expected a hello, got {hello['type']!r}")
    if hello.get("proto") != PROTO or isinstance(hello.get("proto"), bool):
        raise ProtocolError("bad_hello", f"hello: proto must be {PROTO}, got {hello.get('proto')!r}")
    for key in ("token", "agent", "stream_id"):
        if key in hello and not isinstance(hello[key], str):
            raise ProtocolError("bad_hello", f"hello: {key} must be a string, got {type(hello[key]).__name__}")
    sid = hello.get("stream_id")
    if sid is not None and not STREAM_ID_RE.fullmatch(sid):
        raise ProtocolError("bad_stream_id", f"hello: stream id {sid!r} must match {STREAM_ID_RE.pattern}")
    return hello


def end_info(rec: Record) -> dict:
    """The JSON payload of a segment's END record (segno, first, last, records)."""
    obj = _json_object(rec, "END record")
    if not isinstance(obj.get("segno"), int) or isinstance(obj.get("segno"), bool):
        raise ContainerError("END record lacks an integer 'segno'")
    return obj


@dataclasses.dataclass
class Segment:
    """One complete segment as received: header, FRAME/GAP records, END's segno, byte count."""

    header: dict
    records: list[Record]
    segno: int
    nbytes: int

    @property
    def stream_id(self) -> str:
        """The stream the segment belongs to (checked against STREAM_ID_RE)."""
        return self.header["stream_id"]


class SegmentAssembler:
    """Post-handshake records in, whole segments out; checks structure and size only.

    ``feed(rec)`` returns a :class:`Segment` at its END, else ``None``; raises ProtocolError for
    a record out of place, a bad header or stream id, a reversed GAP or one spanning more than
    ``max_gap_frames`` seqs, or a segment over ``max_segment_bytes``. ``on_header`` (if given)
    is called with the header as soon as it arrives, so the caller can refuse a stream before
    buffering its data. ``buffered`` is the bytes held for the open segment.
    """

    def __init__(self, max_segment_bytes: int, max_gap_frames: int = 1 << 24, on_header=None) -> None:
        self.max_segment_bytes, self.max_gap_frames = max_segment_bytes, max_gap_frames
        self.on_header = on_header
        self.header: dict | None = None
        self.records: list[Record] = []
        self.buffered = 0

    def feed(self, rec: Record) -> Segment | None:
        """Take one record; return the segment it completes, if any."""
        if rec.type == RecordType.HEADER:
            if self.header is not None:
                raise ProtocolError("protocol", "HEADER inside a segment")
            try:
                header = rec.header_json()
            except ContainerError as exc:
                raise ProtocolError("malformed", str(exc)) from None
            sid = header.get("stream_id")
            if not isinstance(sid, str) or not STREAM_ID_RE.fullmatch(sid):
                raise ProtocolError("bad_stream_id", f"stream id {sid!r} must match {STREAM_ID_RE.pattern}")
            if self.on_header is not None:
                self.on_header(header)
            self.header, self.records, self.buffered = header, [], rec.size
            return None
        if rec.type in (RecordType.FRAME, RecordType.GAP):
            if self.header is None:
                raise ProtocolError("protocol", "record outside a segment")
            if rec.type == RecordType.GAP:
                try:
                    a, b, _ = rec.gap()
                except ContainerError as exc:
                    raise ProtocolError("malformed", str(exc)) from None
                if b < a:
                    raise ProtocolError("malformed", f"GAP {a}..{b} is reversed")
                if b - a >= self.max_gap_frames:
                    raise ProtocolError("implausible_gap", f"GAP {a}..{b} spans {b - a + 1} seqs "
                                        f"(limit {self.max_gap_frames})")
            self._add(rec)
            self.records.append(rec)
            return None
        if rec.type == RecordType.END:
            if self.header is None:
                raise ProtocolError("protocol", "END outside a segment")
            try:
                info = end_info(rec)
            except ContainerError as exc:
                raise ProtocolError("malformed", str(exc)) from None
            seg = Segment(self.header, self.records, info["segno"], self.buffered + rec.size)
            self.header, self.records, self.buffered = None, [], 0
            return seg
        if rec.type == RecordType.ANNOTATION:
            self._add(rec)  # client control messages (none defined yet) are ignored but paid for
            return None
        raise ProtocolError("protocol", f"unknown record type {rec.type}")

    def _add(self, rec: Record) -> None:
        self.buffered += rec.size
        if self.buffered > self.max_segment_bytes:
            raise ProtocolError("too_large", f"segment exceeds {self.max_segment_bytes} bytes")


def record_span(rec: Record) -> tuple[int, int]:
    """The seqs a FRAME (its seq) or GAP (first..last lost) record names."""
    if rec.type == RecordType.GAP:
        a, b, _ = rec.gap()
        return a, b
    return rec.seq, rec.seq
