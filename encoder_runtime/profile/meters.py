"""Choose an energy meter from a ``--meter`` spec: auto|rapl|jetson|rpi5|ina219:URL|estimate[:TARGET]."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .energy import Meter, MeterError
from .estimate import COEFFICIENTS, EstimateError, estimate_energy, host_target

METER_NAMES = ("auto", "rapl", "jetson", "rpi5", "ina219:URL", "estimate[:TARGET]")


@dataclass
class EstimateMeter:
    """Stands in for a meter when none exists: energy comes from :func:`estimate_energy`."""

    target: str
    reason: str = ""
    kind: str = field(default="estimated", init=False)

    def estimate(self, macs_by_precision: dict, bytes_moved: int, latency_s: float | None,
                 threads: int = 1, host: str | None = None) -> dict:
        """Estimated J/frame; the measured latency is used only when the target is the host."""
        lat = latency_s if host == self.target else None
        out = estimate_energy(self.target, macs_by_precision, bytes_moved, lat, threads)
        if self.reason:
            out["label"]["why_estimated"] = self.reason
        return out


def _estimate(target: str | None, sysfs_root, reason: str = "") -> EstimateMeter:
    if target:
        if target not in COEFFICIENTS:
            raise EstimateError(f"estimate: unknown target {target!r} (known: {', '.join(COEFFICIENTS)})")
        return EstimateMeter(target, reason)
    host = host_target(sysfs_root)
    if host is None:
        raise EstimateError("estimate: cannot tell which target this machine is; use --meter "
                            f"estimate:TARGET (one of {', '.join(COEFFICIENTS)})")
    return EstimateMeter(host, reason)


def open_meter(spec: str = "auto", sysfs_root: str | Path = "/", *, rpi5_command: list[str] | None = None,
               rpi5_fixture: str | Path | None = None) -> Meter | EstimateMeter:
    """Open the meter named by ``spec``; ``auto`` tries RAPL, Jetson, Pi 5, an INA2xx hwmon, then estimate.

    Raises MeterError (explicit meter missing/unreadable) or ValueError (unknown spec).
    """
    from .meter_ina219 import Ina219HwmonMeter, find_ina2xx_hwmon, open_ina219
    from .meter_jetson import JetsonMeter
    from .meter_rapl import RaplMeter
    from .meter_rpi5 import Rpi5PmicMeter, is_pi5

    spec = (spec or "auto").strip()
    if spec == "rapl":
        return RaplMeter(sysfs_root)
    if spec == "jetson":
        return JetsonMeter(sysfs_root)
    if spec == "rpi5":
        return Rpi5PmicMeter(command=rpi5_command, fixture=rpi5_fixture)
    if spec.startswith("ina219:") or spec == "ina219":
        return open_ina219(spec.partition(":")[2], sysfs_root)
    if spec == "estimate" or spec.startswith("estimate:"):
        return _estimate(spec.partition(":")[2] or None, sysfs_root)
    if spec != "auto":
        raise ValueError(f"unknown meter {spec!r} (expected one of: {', '.join(METER_NAMES)})")

    tried = []
    candidates = [
        ("rapl", lambda: RaplMeter.detect(sysfs_root), lambda: RaplMeter(sysfs_root)),
        ("jetson", lambda: JetsonMeter.detect(sysfs_root), lambda: JetsonMeter(sysfs_root)),
        ("rpi5", lambda: rpi5_fixture is not None or Rpi5PmicMeter.detect(sysfs_root) or
         (rpi5_command is not None and is_pi5(sysfs_root)),
         lambda: Rpi5PmicMeter(command=rpi5_command, fixture=rpi5_fixture)),
        ("ina219", lambda: bool(find_ina2xx_hwmon(sysfs_root)), lambda: Ina219HwmonMeter(None, sysfs_root)),
    ]
    for name, detect, make in candidates:
        if not detect():
            continue
        try:
            return make()
        except MeterError as exc:
            tried.append(str(exc))
    reason = "; ".join(tried) if tried else "no energy meter found (RAPL, Jetson INA3221, Pi 5 PMIC, INA2xx)"
    return _estimate(None, sysfs_root, reason)
