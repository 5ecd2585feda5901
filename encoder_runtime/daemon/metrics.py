"""Prometheus text exposition (format 0.0.4) without a dependency, served on localhost.

>>> reg = Registry("sensor_encode")
>>> frames = reg.counter("frames_captured_total", "Frames read from the source")
>>> frames.inc()
>>> "sensor_encode_frames_captured_total 1" in reg.render()
True
"""

from __future__ import annotations

import bisect
import http.server
import math
import threading
from typing import Callable

from .config import ConfigError


def _fmt(v: float) -> str:
    if v == math.inf:
        return "+Inf"
    if float(v).is_integer():
        return str(int(v))
    return repr(float(v))


def _labels(names: tuple[str, ...], values: tuple[str, ...], extra: str = "") -> str:
    parts = [f'{n}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
             for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help: str, labelnames: tuple[str, ...]) -> None:
        self.name, self.help, self.labelnames = name, help, labelnames
        self._lock = threading.Lock()

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class Counter(_Metric):
    """Monotonic counter, optionally labelled."""

    kind = "counter"

    def __init__(self, name, help, labelnames=()):
        super().__init__(name, help, tuple(labelnames))
        self._values: dict[tuple, float] = {} if labelnames else {(): 0.0}

    def inc(self, amount: float = 1.0, *labels: str) -> None:
        """Add ``amount`` to the series for ``labels``."""
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        """Current value of one series."""
        return self._values.get(labels, 0.0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return self.header() + [f"{self.name}{_labels(self.labelnames, k)} {_fmt(v)}" for k, v in items]


class Gauge(Counter):
    """A value that goes up and down, or is computed at scrape time by ``fn``."""

    kind = "gauge"

    def __init__(self, name, help, labelnames=(), fn: Callable[[], float] | None = None):
        super().__init__(name, help, labelnames)
        self._fn = fn

    def set(self, value: float, *labels: str) -> None:
        """Set the series for ``labels``."""
        with self._lock:
            self._values[labels] = float(value)

    def render(self) -> list[str]:
        if self._fn is not None:
            try:
                self.set(self._fn())
            except Exception:  # a scrape must never crash the daemon
                pass
        return super().render()


class Histogram(_Metric):
    """Cumulative histogram with fixed buckets (seconds by default)."""

    kind = "histogram"
    DEFAULT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

    def __init__(self, name, help, buckets=DEFAULT_BUCKETS):
        super().__init__(name, help, ())
        self.buckets = tuple(buckets)
        self._counts = [0] * (len(self.buckets) + 1)
        self._sum = 0.0
        self._n = 0

    def observe(self, value: float) -> None:
        """Record one observation."""
        with self._lock:
            self._counts[bisect.bisect_left(self.buckets, value)] += 1
            self._sum += value
            self._n += 1

    @property
    def count(self) -> int:
        """Number of observations."""
        return self._n

    def render(self) -> list[str]:
        with self._lock:
            counts, total, n = list(self._counts), self._sum, self._n
        out, acc = self.header(), 0
        for b, c in zip(self.buckets + (math.inf,), counts):
            acc += c
            out.append(f'{self.name}_bucket{{le="{_fmt(b)}"}} {acc}')
        out += [f"{self.name}_sum {_fmt(total)}", f"{self.name}_count {n}"]
        return out


class Registry:
    """A set of metrics sharing a name prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._metrics: list[_Metric] = []

    def _add(self, m):
        self._metrics.append(m)
        return m

    def counter(self, name: str, help: str, labelnames=()) -> Counter:
        """Register a counter ``<prefix>_<name>``."""
        return self._add(Counter(f"{self.prefix}_{name}", help, labelnames))

    def gauge(self, name: str, help: str, labelnames=(), fn=None) -> Gauge:
        """Register a gauge; ``fn`` computes it at scrape time."""
        return self._add(Gauge(f"{self.prefix}_{name}", help, labelnames, fn))

    def histogram(self, name: str, help: str, buckets=Histogram.DEFAULT_BUCKETS) -> Histogram:
        """Register a histogram."""
        return self._add(Histogram(f"{self.prefix}_{name}", help, buckets))

    def render(self) -> str:
        """The whole exposition as text."""
        lines: list[str] = []
        for m in self._metrics:
            lines += m.render()
        return "\n".join(lines) + "\n"


def serve(registry: Registry, host: str, port: int) -> http.server.ThreadingHTTPServer:
    """Serve ``/metrics`` on ``host:port`` in a daemon thread; returns the server."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server API
            if self.path.split("?")[0] not in ("/metrics", "/"):
                self.send_error(404)
                return
            body = registry.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # keep stderr for structured logs
            pass

    try:
        server = http.server.ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        raise ConfigError(f"metrics: cannot serve on {host}:{port}: {exc.strerror or exc} (is another process "
                          f"using the port? pick another --metrics HOST:PORT, or '' to turn metrics off)") from None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


class EncodeMetrics:
    """The metrics ``sensor-encode`` exports."""

    def __init__(self) -> None:
        r = self.registry = Registry("sensor_encode")
        self.frames_captured = r.counter("frames_captured_total", "Frames read from the source")
        self.frames_encoded = r.counter("frames_encoded_total", "Frames encoded and spooled")
        self.frames_acked = r.counter("frames_acked_total", "Frames acknowledged by the sink")
        self.frames_dropped = r.counter("frames_dropped_total", "Frames dropped", ("stage", "reason"))
        self.gaps = r.counter("gap_records_total", "GAP records written", ("reason",))
        self.bytes_in = r.counter("bytes_raw_total", "Raw sample bytes captured")
        self.bytes_encoded = r.counter("bytes_encoded_total", "Encoded payload bytes")
        self.bytes_sent = r.counter("bytes_sent_total", "Bytes sent to the sink")
        self.queue_depth = r.gauge("queue_depth", "Frames waiting for the encoder")
        self.spool_bytes = r.gauge("spool_bytes", "Bytes in the spool")
        self.spool_segments = r.gauge("spool_segments", "Sealed segments waiting for upload")
        self.spool_dropped_bytes = r.counter("spool_dropped_bytes_total", "Bytes evicted from a full spool")
        self.encode_seconds = r.histogram("encode_seconds", "Encoder time per frame")
        self.ack_seconds = r.histogram("ack_seconds", "Segment send to acknowledgement")
        self.latency_seconds = r.histogram("capture_to_ack_seconds", "Capture to acknowledgement (newest frame)")
        self.uploads = r.counter("upload_attempts_total", "Segment uploads", ("result",))
        self.reconnects = r.counter("reconnects_total", "Connections (re)opened to the sink")
        self.last_progress = r.gauge("last_progress_timestamp_seconds", "Wall time of the last frame")


LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5,
                   0.75, 1, 1.5, 2, 3, 5, 10, 30, 60)


class ReceiveMetrics:
    """The metrics ``sensor-receive`` exports."""

    def __init__(self) -> None:
        r = self.registry = Registry("sensor_receive")
        self.connections = r.counter("connections_total", "Connections accepted", ("result",))
        self.segments = r.counter("segments_total", "Segments processed", ("result",))
        self.frames_stored = r.counter("frames_stored_total", "Frames stored")
        self.frames_duplicate = r.counter("frames_duplicate_total", "Frames dropped as duplicates")
        self.gaps_stored = r.counter("gap_records_total", "GAP records stored")
        self.bytes_stored = r.counter("bytes_stored_total", "Bytes appended to the store")
        self.rejected = r.counter("rejected_total", "Connections or records rejected", ("reason",))
        self.commit_seconds = r.histogram("commit_seconds", "Write + fsync per segment")
        self.capture_to_stored = r.histogram(
            "capture_to_stored_seconds", "Per frame: capture (sender wall clock) to durably stored here",
            LATENCY_BUCKETS)
