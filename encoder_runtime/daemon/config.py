"""Configuration for ``sensor-encode`` and ``sensor-receive``: TOML files plus flags (flags win).

A config file has sections whose keys map one-to-one onto the fields of a dataclass; unknown
sections or keys are errors (a typo must not silently fall back to a default). Sizes accept
``"512MiB"``/``"1MB"``/``1048576``; durations accept ``"1s"``/``"200ms"``/``"5m"``/``0.5``.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Jetson (Python 3.8-3.10)
    import tomli as tomllib


class ConfigError(ValueError):
    """A configuration value is missing, unknown or malformed."""


_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
               "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3}
_DURATION_UNITS = {"": 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_size(value: Any, field: str = "size") -> int:
    """Parse ``"512MiB"``, ``"1MB"``, ``"64k"`` or an int into a byte count."""
    if isinstance(value, bool):
        raise ConfigError(f"{field}: expected a size like '512MiB', got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ConfigError(f"{field}: size must be >= 0, got {value}")
        return int(value)
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", str(value))
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise ConfigError(f"{field}: expected a size like '512MiB' or '1MB', got {value!r}")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])


def parse_duration(value: Any, field: str = "duration") -> float:
    """Parse ``"1s"``, ``"200ms"``, ``"5m"`` or a number of seconds."""
    if isinstance(value, bool):
        raise ConfigError(f"{field}: expected a duration like '1s', got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ConfigError(f"{field}: duration must be >= 0, got {value}")
        return float(value)
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", str(value))
    if not m or m.group(2).lower() not in _DURATION_UNITS:
        raise ConfigError(f"{field}: expected a duration like '1s' or '200ms', got {value!r}")
    return float(m.group(1)) * _DURATION_UNITS[m.group(2).lower()]


def parse_hostport(value: str, field: str = "address") -> tuple[str, int]:
    """Parse ``HOST:PORT`` (``[v6]:PORT`` allowed)."""
    m = re.fullmatch(r"\[?([^\]]*?)\]?:([0-9]{1,5})", value.strip())
    if not m or not (0 <= int(m.group(2)) <= 65535):
        raise ConfigError(f"{field}: expected HOST:PORT, got {value!r}")
    return m.group(1) or "127.0.0.1", int(m.group(2))


def _kind(f: dataclasses.Field) -> str:
    return f.metadata.get("kind", "plain")


def _convert(f: dataclasses.Field, value: Any, where: str) -> Any:
    kind = _kind(f)
    if value is None:
        return None
    if kind == "size":
        return parse_size(value, where)
    if kind == "duration":
        return parse_duration(value, where)
    if kind == "choice":
        choices = f.metadata["choices"]
        if value not in choices:
            raise ConfigError(f"{where}: expected one of {', '.join(choices)}, got {value!r}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
        return value
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def field(default: Any, section: str, kind: str = "str", choices: tuple = (), help: str = "") -> Any:
    """A config field living in ``[section]`` of the TOML file."""
    return dataclasses.field(default=default, metadata={"section": section, "kind": kind,
                                                        "choices": choices, "help": help})


def load_config(cls: type, path: str | Path | None, overrides: dict[str, Any]) -> Any:
    """Build ``cls`` from a TOML file (optional) and flag overrides (``None`` = not given)."""
    values: dict[str, Any] = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{p}: config file not found") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{p}: not valid TOML: {exc}") from None
        sections = {f.metadata["section"] for f in fields.values()}
        for sec, body in data.items():
            if sec not in sections or not isinstance(body, dict):
                raise ConfigError(f"{p}: unknown section [{sec}] (expected one of: "
                                  f"{', '.join(sorted(sections))})")
            for key, val in body.items():
                f = fields.get(key)
                if f is None or f.metadata["section"] != sec:
                    known = sorted(n for n, ff in fields.items() if ff.metadata["section"] == sec)
                    raise ConfigError(f"{p}: unknown key {key!r} in [{sec}] "
                                      f"(known: {', '.join(known)})")
                values[key] = _convert(f, val, f"{p}: [{sec}] {key}")
    for key, val in overrides.items():
        if val is None:
            continue
        f = fields[key]
        values[key] = _convert(f, val, f"--{key.replace('_', '-')}")
    cfg = cls(**values)
    validate = getattr(cfg, "validate", None)
    if validate:
        validate()
    return cfg


def describe(cfg: Any) -> dict[str, dict[str, Any]]:
    """The effective configuration as ``{section: {key: value}}`` (secrets masked)."""
    out: dict[str, dict[str, Any]] = {}
    for f in dataclasses.fields(cfg):
        val = getattr(cfg, f.name)
        if f.name == "token" and val:
            val = "***"
        out.setdefault(f.metadata["section"], {})[f.name] = val
    return out


@dataclasses.dataclass
class EncodeConfig:
    """Everything ``sensor-encode`` needs."""

    source: str = field("synthetic:", "source", help="source URL")
    queue_size: int = field(4, "source", "int", help="frames buffered between capture and encoder")
    queue_policy: str = field("auto", "source", "choice", ("auto", "block", "gap", "latest"))
    model: str = field("default", "encoder",
                       help="bundle name or directory ('default' = the bundled default model for the "
                            "source's modality; 'quality:N' / 'bpp:X' = that rung of the modality's "
                            "bundled models by measured rate, as sensor-codec -q/--bpp; "
                            "'raw' = lossless debug pass-through)")
    variant: str = field("", "encoder", "choice", ("", "fp32", "int8"),
                         help="encoder graph (default: the target bundle's default_variant, else fp32)")
    threads: int = field(1, "encoder", "int")
    stream_id: str = field("", "encoder", help="stream id (default: hostname-derived, fixed per spool)")
    spool: str = field("./spool", "spool")
    spool_max_bytes: int = field(512 * 1024**2, "spool", "size")
    spool_min_free_bytes: int = field(64 * 1024**2, "spool", "size")
    when_full: str = field("drop_oldest", "spool", "choice", ("drop_oldest", "drop_newest", "block"))
    segment_max_bytes: int = field(1024**2, "spool", "size")
    segment_max_age: float = field(1.0, "spool", "duration")
    fsync: str = field("seal", "spool", "choice", ("always", "seal", "never"))
    sink: str = field("", "sink", help="tcp://HOST:PORT, tls://HOST:PORT or mqtt://HOST:PORT/TOPIC")
    token: str = field("", "sink")
    token_file: str = field("", "sink")
    tls: bool = field(False, "sink", "bool")
    tls_ca: str = field("", "sink", help="CA bundle to verify the receiver")
    tls_cert: str = field("", "sink", help="client certificate (mutual TLS)")
    tls_key: str = field("", "sink")
    tls_server_name: str = field("", "sink")
    window: int = field(4, "sink", "int", help="segments in flight before waiting for acks")
    ack_timeout: float = field(15.0, "sink", "duration")
    connect_timeout: float = field(10.0, "sink", "duration")
    backoff_base: float = field(0.5, "sink", "duration")
    backoff_cap: float = field(30.0, "sink", "duration")
    max_frames: int = field(0, "daemon", "int", help="exit 0 once this many frames are acknowledged")
    metrics: str = field("", "daemon", help="HOST:PORT for Prometheus text metrics")
    shutdown_timeout: float = field(10.0, "daemon", "duration")
    log_format: str = field("text", "daemon", "choice", ("text", "json"))
    log_level: str = field("info", "daemon", "choice", ("debug", "info", "warning", "error"))

    def validate(self) -> None:
        """Cross-field checks; raises ConfigError."""
        if not self.sink:
            raise ConfigError("sink: required (e.g. --sink tcp://127.0.0.1:7700)")
        if not re.match(r"^(tcp|tls|mqtt|mqtts)://", self.sink):
            raise ConfigError(f"sink: unsupported URL {self.sink!r} "
                              "(expected tcp://HOST:PORT, tls://HOST:PORT or mqtt://HOST:PORT/TOPIC)")
        if self.stream_id and not STREAM_ID_RE.fullmatch(self.stream_id):
            raise ConfigError(f"stream_id: {self.stream_id!r} must match {STREAM_ID_RE.pattern}")
        if self.queue_size < 1:
            raise ConfigError(f"queue_size: must be >= 1, got {self.queue_size}")
        if self.window < 1:
            raise ConfigError(f"window: must be >= 1, got {self.window}")
        if self.segment_max_bytes < 4096:
            raise ConfigError(f"segment_max_bytes: must be >= 4KiB, got {self.segment_max_bytes}")
        if self.spool_max_bytes < 2 * self.segment_max_bytes:
            raise ConfigError(f"spool_max_bytes ({self.spool_max_bytes}) must be at least twice "
                              f"segment_max_bytes ({self.segment_max_bytes})")
        if self.metrics:
            parse_hostport(self.metrics, "metrics")
        if self.token_file and not Path(self.token_file).is_file():
            raise ConfigError(f"token_file: {self.token_file} does not exist")
        for name in ("tls_ca", "tls_cert", "tls_key"):
            val = getattr(self, name)
            if val and not Path(val).is_file():
                raise ConfigError(f"{name}: {val} does not exist")

    def auth_token(self) -> str:
        """The bearer token from ``token`` or ``token_file`` (empty if none)."""
        if self.token_file:
            return Path(self.token_file).read_text(encoding="utf-8").strip()
        return self.token


@dataclasses.dataclass
class ReceiveConfig:
    """Everything ``sensor-receive`` needs."""

    listen: str = field("127.0.0.1:7700", "receiver")
    store: str = field("./store", "receiver")
    allow_anonymous: bool = field(False, "receiver", "bool",
                                  help="allow a non-loopback listen without token or client certificates")
    token: str = field("", "auth")
    token_file: str = field("", "auth")
    token_streams: str = field("*", "auth", help="comma-separated stream-id patterns token/token_file may write")
    tokens_file: str = field("", "auth", help="one 'TOKEN STREAM-PATTERN...' line per sender (# comments)")
    tls_cert: str = field("", "tls", help="server certificate (enables TLS)")
    tls_key: str = field("", "tls")
    tls_client_ca: str = field("", "tls", help="require client certificates signed by this CA")
    client_streams: str = field("cert", "tls", "choice", ("cert", "any"),
                                help="'cert': a client certificate may write only the streams its CN/DNS "
                                     "names match; 'any': no binding")
    max_record_bytes: int = field(16 * 1024**2, "receiver", "size")
    max_segment_bytes: int = field(64 * 1024**2, "receiver", "size")
    max_buffer_bytes: int = field(256 * 1024**2, "receiver", "size",
                                  help="memory all connections together may buffer")
    max_connections: int = field(64, "receiver", "int", help="authenticated connections")
    max_connections_per_peer: int = field(16, "receiver", "int", help="connections from one IP address")
    max_handshakes: int = field(32, "receiver", "int", help="connections not yet authenticated")
    max_handshakes_per_peer: int = field(4, "receiver", "int")
    handshake_timeout: float = field(5.0, "receiver", "duration", help="accept → verified hello (TLS included)")
    idle_timeout: float = field(120.0, "receiver", "duration")
    segment_timeout: float = field(120.0, "receiver", "duration", help="first byte → END of one segment")
    max_gap_frames: int = field(1 << 24, "receiver", "int", help="seqs one GAP record may span")
    max_seq_jump: int = field(1 << 24, "receiver", "int",
                              help="how far past the stream's highest seq a record may reach")
    file_max_bytes: int = field(64 * 1024**2, "receiver", "size")
    decode: str = field("", "receiver", help="write reconstructions (.npy) under this folder")
    decode_threads: int = field(1, "receiver", "int", help="cores --decode may use (frames of a "
                                "segment decode in parallel, one core each)")
    decode_variant: str = field("model", "receiver", "choice", ("model", "fp32", "int8", "text"),
                                help="--decode's decoder graph: the one the model's manifest "
                                "names (decoder.default, else fp32), fp32, or int8 (1.6x less "
                                "CPU, slightly lower PSNR) or text (for OCR of documents) where "
                                "the model has one, else the model's")
    mqtt: str = field("", "receiver", help="also take segments from an MQTT 5 shared subscription: "
                      "mqtt[s]://[user:pass@]HOST:PORT/PREFIX?group=NAME&client_id=ID (see docs/daemon.md)")
    metrics: str = field("", "daemon")
    log_format: str = field("text", "daemon", "choice", ("text", "json"))
    log_level: str = field("info", "daemon", "choice", ("debug", "info", "warning", "error"))

    def validate(self) -> None:
        """Cross-field checks; raises ConfigError."""
        parse_hostport(self.listen, "listen")
        if self.metrics:
            parse_hostport(self.metrics, "metrics")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("tls_cert and tls_key must be given together")
        if self.tls_client_ca and not self.tls_cert:
            raise ConfigError("tls_client_ca needs tls_cert/tls_key (client certificates need TLS)")
        for name in ("tls_cert", "tls_key", "tls_client_ca", "token_file", "tokens_file"):
            val = getattr(self, name)
            if val and not Path(val).is_file():
                raise ConfigError(f"{name}: {val} does not exist")
        if self.max_record_bytes < 1024:
            raise ConfigError(f"max_record_bytes: must be >= 1KiB, got {self.max_record_bytes}")
        for name in ("max_connections", "max_connections_per_peer", "max_handshakes",
                     "max_handshakes_per_peer", "max_gap_frames", "max_seq_jump"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.tokens_file:
            self.load_tokens()
        if self.mqtt:
            from .mqtt import import_paho
            from .mqtt_receiver import parse_subscribe_url

            parse_subscribe_url(self.mqtt)
            import_paho("mqtt")
        host = parse_hostport(self.listen, "listen")[0]
        if (host not in LOOPBACK_HOSTS and not self.allow_anonymous and not self.token
                and not self.token_file and not self.tokens_file and not self.tls_client_ca):
            raise ConfigError(f"listen: {self.listen} is not a loopback address, so senders must "
                              "authenticate: give token/token_file/tokens_file or tls_client_ca, or set "
                              "allow_anonymous = true to accept anyone")

    def auth_token(self) -> str:
        """The token clients must present (empty = no token auth)."""
        if self.token_file:
            return Path(self.token_file).read_text(encoding="utf-8").strip()
        return self.token

    def stream_patterns(self) -> tuple[str, ...]:
        """The stream-id patterns ``token``/``token_file`` may write."""
        pats = tuple(p.strip() for p in self.token_streams.split(",") if p.strip())
        if not pats:
            raise ConfigError("token_streams: expected comma-separated stream-id patterns, got none")
        return pats

    def load_tokens(self) -> dict[str, tuple[str, ...]]:
        """``tokens_file`` as {token: stream-id patterns}; raises ConfigError naming the line."""
        if not self.tokens_file:
            return {}
        path = Path(self.tokens_file)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"tokens_file: cannot read {path}: {exc}") from None
        out: dict[str, tuple[str, ...]] = {}
        for n, line in enumerate(lines, 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            if len(words) < 2:
                raise ConfigError(f"{path}:{n}: expected 'TOKEN STREAM-PATTERN...', got {len(words)} word")
            if words[0] in out:
                raise ConfigError(f"{path}:{n}: token listed twice")
            out[words[0]] = tuple(words[1:])
        if not out:
            raise ConfigError(f"tokens_file: {path} lists no tokens")
        return out


LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


STREAM_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def add_flags(parser, cls: type) -> None:
    """Add one ``--field-name`` flag per config field (all default to None = not given)."""
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        hint = f.metadata.get("help") or f"[{f.metadata['section']}] {f.name}"
        if _kind(f) == "bool":
            parser.add_argument(flag, dest=f.name, action="store_const", const=True, default=None, help=hint)
        else:
            choices = f.metadata.get("choices") or None
            parser.add_argument(flag, dest=f.name, default=None, choices=choices,
                                help=f"{hint} (default {f.default!r})")


def overrides_from_args(args, cls: type) -> dict[str, Any]:
    """The flag values of an argparse namespace, keyed by field name."""
    return {f.name: getattr(args, f.name, None) for f in dataclasses.fields(cls)}
