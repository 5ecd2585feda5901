"""One interface for energy meters, and the per-frame measurement protocol.

A :class:`Meter` measures joules over a window (``start()`` ... ``stop()``).  Every reading carries a
label, ``{"kind": "measured", "source", "rail", "scope", "sample_rate_hz"}``; estimates (see
:mod:`.estimate`) carry ``{"kind": "estimated", "model", "version", "coefficients"}``.  Numbers are
never reported without one.

Backends (each reads below a configurable ``sysfs_root`` so tests run on fake trees):
:mod:`.meter_rapl`, :mod:`.meter_jetson`, :mod:`.meter_rpi5`, :mod:`.meter_ina219`.
:func:`measure_energy` implements the protocol of reference note §5.4: idle power over the same
duration first, then many frames back to back for at least ``seconds``, and reports gross and
idle-subtracted (incremental) joules per frame.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


class MeterError(RuntimeError):
    """A meter is missing, unreadable or returned something unparsable (one-line message)."""


@dataclass(frozen=True)
class EnergyReading:
    """Joules over one window, labelled with where they came from."""

    joules: float
    seconds: float
    label: dict
    rails_joules: dict = field(default_factory=dict)
    samples: int = 0

    @property
    def watts(self) -> float:
        """Mean power over the window."""
        return self.joules / self.seconds if self.seconds > 0 else 0.0


def read_text(path: Path, what: str) -> str:
    """Read a sysfs attribute; MeterError naming the file if it is missing or unreadable."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise MeterError(f"{what}: {path} does not exist") from None
    except PermissionError:
        raise MeterError(f"{what}: {path} is not readable (permission denied; run as root or "
                         "grant read access)") from None
    except OSError as exc:
        raise MeterError(f"{what}: cannot read {path}: {exc.strerror or exc}") from None


def read_number(path: Path, what: str) -> float:
    """Read a numeric sysfs attribute (MeterError on missing file or bad content)."""
    text = read_text(path, what)
    try:
        return float(text.split()[0])
    except (ValueError, IndexError):
        raise MeterError(f"{what}: {path} holds {text!r}, expected a number") from None


class Meter(ABC):
    """A source of measured energy over a window."""

    kind = "measured"

    @abstractmethod
    def label(self) -> dict:
        """``{"kind": "measured", "source", "rail", "scope", "sample_rate_hz"}``."""

    @abstractmethod
    def start(self) -> None:
        """Begin a measurement window."""

    @abstractmethod
    def stop(self) -> EnergyReading:
        """End the window and return its energy."""

    def close(self) -> None:
        """Release resources (serial ports, threads)."""

    def __enter__(self) -> "Meter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class PolledMeter(Meter):
    """A meter sampled by a background thread.

    Subclasses return per-rail values from :meth:`sample`.  ``counter=False``: values are watts and
    are integrated with the trapezoid rule over host timestamps.  ``counter=True``: values are
    monotonic joule counters; :meth:`counter_delta` turns consecutive readings into joules (handling
    wraparound), and polling only has to be faster than one wrap.
    """

    counter = False

    def __init__(self, rate_hz: float):
        if rate_hz <= 0:
            raise ValueError(f"sample rate must be positive, got {rate_hz}")
        self.rate_hz = float(rate_hz)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    @abstractmethod
    def sample(self) -> dict[str, float]:
        """Read every selected rail once: watts, or joules for counters."""

    @abstractmethod
    def rails(self) -> list[str]:
        """Names of the rails that are summed into the reading."""

    def counter_delta(self, rail: str, prev: float, cur: float) -> float:
        """Joules between two counter readings (counters only)."""
        return cur - prev

    def _accumulate(self, t: float, values: dict[str, float]) -> None:
        with self._lock:
            dt = t - self._t_prev
            for rail, v in values.items():
                prev = self._prev.get(rail, v)
                if self.counter:
                    self._joules[rail] = self._joules.get(rail, 0.0) + self.counter_delta(rail, prev, v)
                else:
                    self._joules[rail] = self._joules.get(rail, 0.0) + 0.5 * (prev + v) * dt
            self._prev, self._t_prev = values, t
            self._n += 1

    def _run(self) -> None:
        period = 1.0 / self.rate_hz
        try:
            while not self._stop.wait(period):
                values = self.sample()
                self._accumulate(time.perf_counter(), values)
        except BaseException as exc:  # surfaced by stop()
            self._error = exc

    def start(self) -> None:
        self._error: BaseException | None = None
        self._joules: dict[str, float] = {}
        self._n = 0
        self._stop.clear()
        self._prev = self.sample()
        self._t0 = self._t_prev = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name=f"{type(self).__name__}-sampler",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> EnergyReading:
        if self._thread is None:
            raise MeterError(f"{type(self).__name__}: stop() without start()")
        self._stop.set()
        self._thread.join()
        self._thread = None
        if self._error is not None:
            err = self._error
            raise err if isinstance(err, MeterError) else MeterError(f"{type(self).__name__}: {err}")
        self._accumulate(time.perf_counter(), self.sample())
        seconds = self._t_prev - self._t0
        label = dict(self.label())
        if seconds > 0 and not self.counter:
            label["sample_rate_hz"] = round(self._n / seconds, 2)
        return EnergyReading(sum(self._joules.values()), seconds, label, dict(self._joules), self._n + 1)

    def close(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None


@dataclass
class EnergyMeasurement:
    """Result of :func:`measure_energy`: gross and idle-subtracted joules per frame, labelled."""

    label: dict
    frames: int
    seconds: float
    idle_seconds: float
    idle_w: float
    active_w: float
    gross_j_per_frame: float
    incremental_j_per_frame: float
    rails_joules: dict

    def to_dict(self) -> dict:
        """JSON-ready dict; ``label`` first."""
        return {"label": self.label, "gross_j_per_frame": self.gross_j_per_frame,
                "incremental_j_per_frame": self.incremental_j_per_frame, "idle_w": self.idle_w,
                "active_w": self.active_w, "frames": self.frames, "seconds": self.seconds,
                "idle_seconds": self.idle_seconds, "rails_joules": self.rails_joules}


def measure_energy(meter: Meter, run_frame: Callable[[], object], *, seconds: float = 2.0,
                   min_frames: int = 1, idle_seconds: float | None = None) -> EnergyMeasurement:
    """Measure joules per frame: idle first, then frames back to back for >= ``seconds``.

    ``idle_seconds`` defaults to ``seconds``.  Incremental J/frame = (E - P_idle * T) / N.
    """
    idle_seconds = seconds if idle_seconds is None else idle_seconds
    meter.start()
    time.sleep(idle_seconds)
    idle = meter.stop()
    meter.start()
    t0 = time.perf_counter()
    frames = 0
    while frames < min_frames or time.perf_counter() - t0 < seconds:
        run_frame()
        frames += 1
    active = meter.stop()
    idle_w = idle.watts
    label = dict(active.label)
    return EnergyMeasurement(
        label=label, frames=frames, seconds=active.seconds, idle_seconds=idle.seconds,
        idle_w=idle_w, active_w=active.watts,
        gross_j_per_frame=active.joules / frames,
        incremental_j_per_frame=(active.joules - idle_w * active.seconds) / frames,
        rails_joules=active.rails_joules)
