"""The ``sensor-encode`` service: wires source → queue → encoder → spool → uploader together.

Threads: capture (source → queue), encoder (queue → spool), uploader (spool → sink) and the
main thread, which seals aged segments, pings the systemd watchdog while the pipeline makes
progress, and runs the shutdown sequence:

1. stop capture; 2. drain the queue (bounded by ``shutdown_timeout``; anything left becomes a
GAP); 3. seal the active segment; 4. keep uploading for the rest of the budget; 5. ``STOPPING=1``.
Unsent segments stay in the spool for the next start.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from typing import Callable

from . import sdnotify
from .config import EncodeConfig, parse_hostport
from .metrics import EncodeMetrics, serve
from .pipeline import EncodeWorker, FrameQueue
from .preflight import prepare
from .sources import Source
from .spool import Spool

log = logging.getLogger("sensorcodec.encode")


def default_stream_id(source_url: str) -> str:
    """``<hostname>-<scheme>``, restricted to the stream-id alphabet."""
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname()) or "host"
    return f"{host}-{source_url.split(':', 1)[0]}"[:64]


def make_uploader(cfg: EncodeConfig, spool: Spool, metrics, on_ack=None):
    """The uploader for ``cfg.sink`` (tcp://, tls://, mqtt://, mqtts://)."""
    from .tcp import TcpUploader, client_ssl_context

    scheme, rest = cfg.sink.split("://", 1)
    tls = cfg.tls or scheme in ("tls", "mqtts")
    ctx = client_ssl_context(cfg.tls_ca, cfg.tls_cert, cfg.tls_key) if tls else None
    common = dict(token=cfg.auth_token(), ssl_context=ctx, window=cfg.window, ack_timeout=cfg.ack_timeout,
                  connect_timeout=cfg.connect_timeout, backoff_base=cfg.backoff_base,
                  backoff_cap=cfg.backoff_cap, metrics=metrics, on_ack=on_ack)
    if scheme in ("mqtt", "mqtts"):
        from .mqtt import MqttUploader

        return MqttUploader(spool, cfg.sink, client_id=f"sensor-encode-{spool.stream_id}", **common)
    host, port = parse_hostport(rest.rstrip("/"), "sink")
    return TcpUploader(spool, host, port, server_name=cfg.tls_server_name, **common)


class EncodeService:
    """One running ``sensor-encode``."""

    def __init__(self, cfg: EncodeConfig, source: Source | None = None, encoder=None) -> None:
        self.cfg = cfg
        self.metrics = EncodeMetrics()
        prepared = prepare(cfg, source, encoder)   # the checks check-config makes
        self.source, self.encoder = prepared.source, prepared.encoder
        self.stream_id = cfg.stream_id or default_stream_id(cfg.source)
        self.spool = Spool(cfg.spool, self.stream_id, max_bytes=cfg.spool_max_bytes,
                           min_free_bytes=cfg.spool_min_free_bytes, when_full=cfg.when_full,
                           segment_max_bytes=cfg.segment_max_bytes, segment_max_age=cfg.segment_max_age,
                           fsync=cfg.fsync, metrics=self.metrics)
        policy = cfg.queue_policy if cfg.queue_policy != "auto" else self.source.policy
        self.queue = FrameQueue(cfg.queue_size, policy, self.metrics)
        self.worker = EncodeWorker(self.queue, self.encoder, self.spool, self.metrics)
        self.uploader = None
        self.metrics_server = None
        self.reload: Callable[[], bool] | None = None   # set by the CLI: SIGHUP → re-read the config
        self.reload_requested = threading.Event()
        self.reloading = False
        self.stop_event = threading.Event()
        self.source_done = threading.Event()
        self.source_error: BaseException | None = None
        self.captured = 0

    def _capture(self) -> None:
        m, limit = self.metrics, self.cfg.max_frames
        try:
            for item in self.source:
                if self.stop_event.is_set():
                    break
                if item.array is not None:
                    self.captured += 1
                    m.frames_captured.inc()
                self.queue.put(item)
                if limit and self.captured >= limit:
                    break
        except BaseException as exc:
            self.source_error = exc
            log.error("source %s failed: %s", self.cfg.source, exc)
        finally:
            self.queue.close()
            self.source_done.set()

    def run(self) -> int:
        """Run until the source ends and everything is acknowledged, or until :meth:`stop`."""
        cfg = self.cfg
        if cfg.metrics:   # first: a busy port is a ConfigError before anything else starts
            self.metrics_server = serve(self.metrics.registry, *parse_hostport(cfg.metrics, "metrics"))
        header = self.encoder.stream_header(self.stream_id)
        header.setdefault("stream_id", self.stream_id)
        if self.source.modality == "video" and self.source.fps > 0:  # the frame rate of a clip
            header["meta"] = {**(header.get("meta") or {}), "fps": float(self.source.fps)}
        try:
            report = self.spool.open(header)
        except OSError as exc:   # e.g. permissions; a full disk is handled inside the spool
            log.error("spool %s: cannot open: %s", self.spool.dir, exc)
            self._stop_metrics()
            return 1
        if report["truncated_bytes"] or report["sealed_active"]:
            log.warning("spool recovered after an unclean stop: %s", report)
        self.uploader = make_uploader(cfg, self.spool, self.metrics)
        self.spool.on_seal = self.uploader.wake
        self.uploader.start()
        self.worker.start()
        capture = threading.Thread(target=self._capture, name="capture", daemon=True)
        capture.start()
        sdnotify.notify(f"READY=1\nSTATUS=streaming {self.stream_id} to {cfg.sink}")
        log.info("sensor-encode started: source=%s model=%s variant=%s backend=%s stream=%s sink=%s "
                 "next_seq=%d", cfg.source, getattr(self.encoder, "name", cfg.model),
                 getattr(self.encoder, "variant", "-"), getattr(self.encoder, "backend", "-"),
                 self.stream_id, cfg.sink, self.spool.next_seq)
        wd = sdnotify.watchdog_period()
        last_wd, last_frames = 0.0, -1
        rc = 0
        while not self.stop_event.is_set():
            time.sleep(0.02)
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                if self.reload is not None and self.reload():
                    self.reloading = True
                    break   # the new config checked out: stop this pipeline, the CLI starts the next
            self.spool.tick()
            now = time.monotonic()
            if wd and now - last_wd >= wd:
                # Ping only while making progress (or idle with nothing to do).
                progressed = self.worker.frames != last_frames or len(self.queue) == 0
                if (progressed and self.worker.is_alive()) or self.source_done.is_set():
                    sdnotify.notify("WATCHDOG=1")
                last_wd, last_frames = now, self.worker.frames
            if self.worker.error is not None or self.worker.writer.error is not None:
                log.error("encoder failed; stopping")
                rc = 1
                break
            if self.source_done.is_set() and self.worker.done():
                self.spool.seal()
                if self.spool.empty():
                    log.info("source finished and every segment is acknowledged (%d frames acked)",
                             self.uploader.acked_frames)
                    rc = 1 if self.source_error else 0
                    break
        return self.shutdown(rc)

    def stop(self) -> None:
        """Request a graceful shutdown (signal-handler safe)."""
        self.stop_event.set()

    def request_reload(self) -> None:
        """Ask the main loop to call :attr:`reload` (signal-handler safe)."""
        self.reload_requested.set()

    def _stop_metrics(self) -> None:
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server.server_close()
            self.metrics_server = None

    def shutdown(self, rc: int = 0) -> int:
        """Drain, seal, upload for the rest of the budget, then stop; returns the exit code."""
        deadline = time.monotonic() + self.cfg.shutdown_timeout
        sdnotify.notify("RELOADING=1" if self.reloading else "STOPPING=1")
        self.stop_event.set()
        self.source.close()
        self.queue.close()
        self.worker.deadline = time.monotonic() + self.cfg.shutdown_timeout * 0.5
        self.worker.join(max(0.0, deadline - time.monotonic()))
        self.worker.writer.join(max(0.0, deadline - time.monotonic()))
        self.spool.close()
        while self.uploader is not None and not self.spool.empty() and time.monotonic() < deadline \
                and self.uploader.connected.is_set():
            time.sleep(0.05)
        if self.uploader is not None:
            self.uploader.stop()
            self.uploader.join(max(0.1, deadline - time.monotonic()))
        self._stop_metrics()
        left = len(self.spool.pending())
        log.info("sensor-encode stopped: %d frames encoded, %d acked, %d segments left in the spool",
                 self.worker.frames, self.uploader.acked_frames if self.uploader else 0, left)
        return rc
