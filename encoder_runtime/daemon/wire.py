"""The shipping protocol: the container format on a byte stream, plus JSON control records.

Both ends start with the container preamble. Control messages are ANNOTATION records whose
payload is a JSON object with a ``type``:

    client → server  {"type": "hello", "proto": 1, "token": "...", "agent": "sensor-encode/0.1"}
    server → client  {"type": "welcome", "proto": 1}  |  {"type": "error", "code": ..., "message": ...}
    client → server  a sealed spool segment without its preamble: HEADER, FRAME/GAP..., END
    server → client  {"type": "ack", "segno": N, "stream_id": ..., "stored": k, "duplicates": d}

The server acknowledges a segment only after its new records are fsynced. Anything malformed
ends the connection with an ``error`` message; the client resends every unacknowledged segment
on its next connection, and the server de-duplicates on (stream id, seq).
"""

from __future__ import annotations

import json

from ..container import ContainerError, Record, RecordType

PROTO = 1
MAX_CONTROL_BYTES = 4096


def control(obj: dict) -> bytes:
    """Encode one control message as a record."""
    return Record(RecordType.ANNOTATION, 0, json.dumps(obj, separators=(",", ":")).encode()).encode()


def parse_control(rec: Record) -> dict:
    """Decode a control record; raises ContainerError if it is not one."""
    if rec.type != RecordType.ANNOTATION:
        raise ContainerError(f"expected a control record, got type {rec.type}")
    try:
        obj = json.loads(rec.payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ContainerError("control record is not UTF-8 JSON") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise ContainerError("control record lacks a 'type'")
    return obj


def end_info(rec: Record) -> dict:
    """The JSON payload of a segment's END record (segno, first, last, records)."""
    try:
        obj = json.loads(rec.payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ContainerError("END record is not UTF-8 JSON") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("segno"), int):
        raise ContainerError("END record lacks an integer 'segno'")
    return obj
