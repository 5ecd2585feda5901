"""Bounded frame queue between capture and encoder, and the encode → spool worker.

Queue policies when full:

- ``block``: the producer waits (file and synthetic sources: nothing is ever lost)
- ``gap``: the new frame is dropped and becomes (part of) a QUEUE_FULL GAP marker queued in its
  place, so the loss is recorded at the right position of the stream (audio, serial)
- ``latest``: the oldest queued frame is dropped and counted (camera: the newest frame wins)
"""

from __future__ import annotations

import collections
import logging
import queue as _queue
import threading
import time

from ..container import GapReason
from .sources import SourceItem

log = logging.getLogger("sensorcodec.pipeline")


class FrameQueue:
    """A bounded queue of :class:`SourceItem` with a drop policy (see module docstring)."""

    def __init__(self, maxsize: int, policy: str, metrics=None) -> None:
        if policy not in ("block", "gap", "latest"):
            raise ValueError(f"unknown queue policy {policy!r}")
        self.maxsize, self.policy, self.metrics = maxsize, policy, metrics
        self._items: collections.deque[SourceItem] = collections.deque()
        self._frames = 0
        self._cond = threading.Condition()
        self.closed = False

    def __len__(self) -> int:
        return len(self._items)

    def _gauge(self) -> None:
        if self.metrics:
            self.metrics.queue_depth.set(self._frames)

    def _add_marker(self, lost: int, reason: GapReason, mono: int, wall: int) -> None:
        last = self._items[-1] if self._items else None
        if last is not None and last.array is None and last.reason == reason:
            last.lost += lost
        else:
            self._items.append(SourceItem(None, mono, wall, lost, reason))

    def put(self, item: SourceItem) -> None:
        """Queue one item, applying the policy when full."""
        with self._cond:
            if item.array is None:
                self._add_marker(item.lost, item.reason, item.t_mono_ns, item.t_wall_ns)
                self._cond.notify_all()
                return
            if self._frames >= self.maxsize:
                if self.policy == "block":
                    while self._frames >= self.maxsize and not self.closed:
                        self._cond.wait(0.5)
                elif self.policy == "latest":
                    for i, old in enumerate(self._items):
                        if old.array is not None:
                            del self._items[i]
                            self._frames -= 1
                            break
                    if self.metrics:
                        self.metrics.frames_dropped.inc(1, "queue", "superseded")
                else:
                    self._add_marker(1, GapReason.QUEUE_FULL, item.t_mono_ns, item.t_wall_ns)
                    if self.metrics:
                        self.metrics.frames_dropped.inc(1, "queue", "queue_full")
                    self._cond.notify_all()
                    return
            self._items.append(item)
            self._frames += 1
            self._gauge()
            self._cond.notify_all()

    def get(self, timeout: float) -> SourceItem | None:
        """Next item, or None after ``timeout`` (or when closed and empty)."""
        with self._cond:
            if not self._items and not self.closed:
                self._cond.wait(timeout)
            if not self._items:
                return None
            item = self._items.popleft()
            if item.array is not None:
                self._frames -= 1
                self._gauge()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        """No more puts; wakes waiters."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def drained(self) -> bool:
        """Closed and empty."""
        with self._cond:
            return self.closed and not self._items


class SpoolWriter(threading.Thread):
    """Appends encoded frames and gaps to the spool, so fsync at seal never stalls the encoder."""

    def __init__(self, spool, maxsize: int = 64) -> None:
        super().__init__(name="spool-writer", daemon=True)
        self.spool = spool
        self.q: _queue.Queue = _queue.Queue(maxsize=maxsize)
        self.error: BaseException | None = None

    def append_frame(self, payload: bytes, t_mono_ns: int, t_wall_ns: int) -> None:
        """Queue one encoded frame (blocks when the writer is behind: back-pressure)."""
        self.q.put((payload, t_mono_ns, t_wall_ns, 0, None))

    def append_gap(self, lost: int, reason: GapReason, t_mono_ns: int = 0, t_wall_ns: int = 0) -> None:
        """Queue a GAP for ``lost`` frames."""
        self.q.put((None, t_mono_ns, t_wall_ns, lost, reason))

    def finish(self) -> None:
        """No more records: the thread exits once everything queued is in the spool."""
        self.q.put(None)

    def run(self) -> None:
        try:
            while True:
                item = self.q.get()
                if item is None:
                    return
                payload, mono, wall, lost, reason = item
                if payload is None:
                    self.spool.append_gap(lost, reason, mono, wall)
                else:
                    self.spool.append_frame(payload, mono, wall)
        except BaseException as exc:  # surfaced by the daemon, which exits non-zero
            self.error = exc
            log.exception("spool writer failed")


class EncodeWorker(threading.Thread):
    """Takes items off the queue, encodes frames and hands FRAME/GAP records to the spool writer."""

    def __init__(self, queue: FrameQueue, encoder, spool, metrics=None) -> None:
        super().__init__(name="encoder", daemon=True)
        self.queue, self.encoder, self.metrics = queue, encoder, metrics
        self.writer = SpoolWriter(spool)
        self.spool = self.writer
        self.deadline: float | None = None   # monotonic; set on shutdown to bound the drain
        self.frames = 0
        self.error: BaseException | None = None

    def start(self) -> None:
        """Start the spool writer and the encoder thread."""
        self.writer.start()
        super().start()

    def done(self) -> bool:
        """Everything this worker produced is in the spool."""
        return not self.is_alive() and not self.writer.is_alive()

    def run(self) -> None:
        try:
            while True:
                item = self.queue.get(0.1)
                if item is None:
                    if self.queue.drained():
                        return
                    continue
                if self.deadline is not None and time.monotonic() > self.deadline:
                    self._account_rest(item)
                    return
                self.process(item)
        except BaseException as exc:  # surfaced by the daemon, which exits non-zero
            self.error = exc
            log.exception("encoder worker failed")
        finally:
            self.writer.finish()

    def _account_rest(self, item: SourceItem) -> None:
        """Shutdown budget exhausted: every frame still queued becomes part of a GAP."""
        lost = 0
        first_t = (item.t_mono_ns, item.t_wall_ns)
        while item is not None:
            lost += item.lost if item.array is None else 1
            item = self.queue.get(0)
        if lost:
            log.warning("shutdown budget exhausted: %d queued frames recorded as a gap", lost)
            self.spool.append_gap(lost, GapReason.QUEUE_FULL, *first_t)

    def process(self, item: SourceItem) -> None:
        """Encode and spool one item."""
        m = self.metrics
        if item.array is None:
            self.spool.append_gap(item.lost, item.reason, item.t_mono_ns, item.t_wall_ns)
            return
        t0 = time.perf_counter()
        try:
            payload = self.encoder.encode_frame(item.array)
        except Exception as exc:
            log.error("encode failed (shape %s, dtype %s): %s", item.array.shape, item.array.dtype, exc)
            self.spool.append_gap(1, GapReason.ENCODE_ERROR, item.t_mono_ns, item.t_wall_ns)
            if m:
                m.frames_dropped.inc(1, "encoder", "encode_error")
            return
        dt = time.perf_counter() - t0
        self.spool.append_frame(payload, item.t_mono_ns, item.t_wall_ns)
        self.frames += 1
        if m:
            m.encode_seconds.observe(dt)
            m.frames_encoded.inc()
            m.bytes_in.inc(item.array.nbytes)
            m.bytes_encoded.inc(len(payload))
            m.last_progress.set(time.time())
