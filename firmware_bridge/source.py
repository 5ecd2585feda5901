"""Frames from a microcontroller for the ``sensor-encode`` pipeline (``--source serial:URL``).

:class:`SerialFrameSource` iterates ``(seq, t_mono_ns, t_wall_ns, array | None, gap | None)``:

* a DATA frame gives ``(seq, t_mono, t_wall, array, None)``: int16 ``(n, 6)`` IMU samples, int16
  ``(n, C)`` audio/time-series blocks, uint8 ``(h, w, c)`` camera tiles, or int8 ``(C_lat, n)``
  codes from an MCU-side encoder (:attr:`SerialFrameSource.last_kind` says which);
* a gap gives ``(first, t_mono, t_wall, None, (first, last))``: host sequence numbers that will
  never arrive (serial loss, CRC errors, queue full, a malformed payload) — never silent.

``seq`` is the link's 64-bit host sequence number (monotonic across MCU reboots and reconnects),
timestamps are MCU time mapped to host clocks via TIMESYNC. numpy + pyserial only.
"""

from __future__ import annotations

import threading
from typing import Any, Iterator

import numpy as np

from firmware_bridge import spec
from firmware_bridge.link import DataEvent, GapEvent, Link

Item = tuple[int, int, int, "np.ndarray | None", "tuple[int, int] | None"]


class SerialFrameSource:
    """Iterate DATA frames and gap records from ``url`` (see the module docstring).

    ``kinds`` restricts which DATA kinds are yielded (e.g. ``{"codes"}``); other kinds are counted
    in ``skipped`` and not reported as gaps. ``idle_timeout`` ends the iteration after that many
    seconds without any event (None: wait forever, until :meth:`close`).
    """

    def __init__(self, url: str, baudrate: int = 921600, *, kinds: set[str] | None = None,
                 idle_timeout: float | None = None, queue_size: int = 1024, **link_kwargs: Any):
        unknown = set(kinds or ()) - set(spec.KIND_NAMES.values())
        if unknown:
            raise ValueError(f"unknown DATA kinds {sorted(unknown)}; known: {sorted(spec.KIND_NAMES.values())}")
        self.url = url
        self.kinds = kinds
        self.idle_timeout = idle_timeout
        self.link = Link(url, baudrate, queue_size=queue_size, **link_kwargs)
        self.last_kind: str | None = None
        self.skipped = 0
        self._closed = threading.Event()

    def __enter__(self) -> "SerialFrameSource":
        self.link.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the link (an iteration in progress ends)."""
        self._closed.set()
        self.link.close()

    def counters(self) -> dict[str, Any]:
        """The link's counters (frames, bytes, crc_errors, gaps, lost_frames, reboots, ...)."""
        c = self.link.counters()
        c["skipped_kind"] = self.skipped
        return c

    def __iter__(self) -> Iterator[Item]:
        self.link.start()
        while not self._closed.is_set():
            ev = self.link.get(timeout=self.idle_timeout if self.idle_timeout is not None else 0.5)
            if ev is None:
                if self.idle_timeout is not None or self._closed.is_set():
                    return
                continue
            if isinstance(ev, GapEvent):
                yield ev.first, ev.t_mono_ns, ev.t_wall_ns, None, (ev.first, ev.last)
                continue
            assert isinstance(ev, DataEvent)
            if ev.array is None:  # CRC-valid frame with a malformed payload: report it as a gap
                yield ev.seq, ev.t_mono_ns, ev.t_wall_ns, None, (ev.seq, ev.seq)
                continue
            kind = spec.KIND_NAMES.get(ev.kind, f"kind{ev.kind}")
            if self.kinds is not None and kind not in self.kinds:
                self.skipped += 1
                continue
            self.last_kind = kind
            yield ev.seq, ev.t_mono_ns, ev.t_wall_ns, ev.array, None


def open_source(spec_str: str, **kwargs: Any) -> SerialFrameSource:
    """``serial:URL`` (as in ``sensor-encode --source serial:/dev/ttyACM0``) -> a source."""
    if not spec_str.startswith("serial:"):
        raise ValueError(f"source {spec_str!r} is not of the form serial:URL")
    return SerialFrameSource(spec_str[len("serial:"):], **kwargs)
