"""The one protocol description shared by the Python bridge and the C firmware.

Everything a peer must agree on lives in :data:`PROTOCOL` (plain data, no logic). The C header
``firmware/include/sc_protocol.h`` is generated from it by :mod:`firmware_bridge.gen_protocol`
and a test checks that the committed header is up to date. :data:`SCHEMA_HASH` is a CRC-32 of the
canonical JSON of :data:`PROTOCOL`; it travels in HELLO so a peer built against another schema is
refused instead of mis-parsed.

Frame on the wire (all little-endian)::

    0x00-delimited COBS( u8 (version<<4 | type)  u8 flags  u16 seq  u32 t_mcu_us
                         payload[...]  u32 crc32(header + payload) )

CRC-32 is the zlib/IEEE 802.3 one (reflected, poly 0xEDB88320, init and xorout 0xFFFFFFFF),
pinned by ``crc32(b"123456789") == 0xCBF43926`` on both sides.
"""

from __future__ import annotations

import json
import struct
import zlib

PROTOCOL: dict = {
    "name": "sensorcodec-bridge",
    "version": 1,
    "crc": {"name": "CRC-32/ISO-HDLC", "poly_reflected": 0xEDB88320, "check_123456789": 0xCBF43926},
    "header": {"format": "<BBHI", "fields": ["ver_type", "flags", "seq", "t_mcu_us"], "size": 8},
    "trailer": {"format": "<I", "fields": ["crc32"], "size": 4},
    "max_frame_default": 1024,
    "types": {
        "HELLO": 1,       # both ways: MCU announces itself; host asks for / acknowledges it
        "HELLO_ACK": 2,   # host -> MCU
        "DATA": 3,        # MCU -> host, unacknowledged, own sequence counter (gaps counted)
        "CMD": 4,         # host -> MCU, acknowledged, retried
        "ACK": 5,         # MCU -> host
        "NAK": 6,         # MCU -> host
        "TIMESYNC": 7,    # host -> MCU request, MCU -> host reply
        "LOG": 8,         # MCU -> host, UTF-8 text
        "ERROR": 9,       # MCU -> host, u16 code + text
    },
    "flags": {
        "BOOT": 0x01,     # first frame of its sequence counter after boot
        "RETRY": 0x02,    # retransmission of a CMD
        "MCU_OVERRUN": 0x04,  # the MCU itself dropped samples before this frame
    },
    "payloads": {
        "HELLO": {"format": "<BBHIII",
                  "fields": ["proto_version", "crc_kind", "max_frame", "schema_hash", "boot_nonce",
                             "fw_version"]},
        "HELLO_ACK": {"format": "<II", "fields": ["schema_hash", "boot_nonce"]},
        "TIMESYNC": {"format": "<QI", "fields": ["host_t1_ns", "mcu_rx_us"]},
        "DATA": {"format": "<BBHHH", "fields": ["kind", "dtype", "dim0", "dim1", "dim2"]},
        "CMD": {"format": "<B", "fields": ["cmd"]},
        "ACK": {"format": "<HB", "fields": ["acked_seq", "status"]},
        "NAK": {"format": "<HB", "fields": ["acked_seq", "reason"]},
        "ERROR": {"format": "<H", "fields": ["code"]},
    },
    "data_kinds": {"IMU": 1, "AUDIO": 2, "CAMERA_TILE": 3, "CODES": 4, "TIMESERIES": 5},
    "dtypes": {"INT8": 1, "UINT8": 2, "INT16": 3, "INT32": 4},
    "commands": {"PING": 1, "START": 2, "STOP": 3, "SET_RATE": 4, "REBOOT": 5, "SET_CONFIG": 6},
    "ack_status": {"OK": 0, "BAD_ARG": 1, "UNKNOWN_CMD": 2, "BUSY": 3},
    "crc_kinds": {"CRC32": 0},
}

VERSION: int = PROTOCOL["version"]
HEADER = struct.Struct(PROTOCOL["header"]["format"])
TRAILER = struct.Struct(PROTOCOL["trailer"]["format"])
MAX_FRAME_DEFAULT: int = PROTOCOL["max_frame_default"]
PAYLOADS: dict[str, struct.Struct] = {k: struct.Struct(v["format"]) for k, v in PROTOCOL["payloads"].items()}

T_HELLO, T_HELLO_ACK, T_DATA, T_CMD, T_ACK, T_NAK, T_TIMESYNC, T_LOG, T_ERROR = (
    PROTOCOL["types"][k] for k in ("HELLO", "HELLO_ACK", "DATA", "CMD", "ACK", "NAK", "TIMESYNC", "LOG", "ERROR"))
TYPE_NAMES: dict[int, str] = {v: k for k, v in PROTOCOL["types"].items()}
F_BOOT, F_RETRY, F_MCU_OVERRUN = (PROTOCOL["flags"][k] for k in ("BOOT", "RETRY", "MCU_OVERRUN"))

KIND_IMU, KIND_AUDIO, KIND_CAMERA_TILE, KIND_CODES, KIND_TIMESERIES = (
    PROTOCOL["data_kinds"][k] for k in ("IMU", "AUDIO", "CAMERA_TILE", "CODES", "TIMESERIES"))
KIND_NAMES: dict[int, str] = {v: k.lower() for k, v in PROTOCOL["data_kinds"].items()}
DTYPE_CODES: dict[int, str] = {1: "<i1", 2: "<u1", 3: "<i2", 4: "<i4"}
DTYPE_FROM_NUMPY: dict[str, int] = {"int8": 1, "uint8": 2, "int16": 3, "int32": 4}
CMD = PROTOCOL["commands"]
ACK_STATUS = PROTOCOL["ack_status"]


def canonical_json() -> str:
    """The canonical text of the protocol that :data:`SCHEMA_HASH` is computed from."""
    return json.dumps(PROTOCOL, sort_keys=True, separators=(",", ":"))


SCHEMA_HASH: int = zlib.crc32(canonical_json().encode("utf-8")) & 0xFFFFFFFF
