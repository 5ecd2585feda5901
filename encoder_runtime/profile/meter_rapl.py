"""Intel/AMD RAPL energy counters through the Linux powercap interface.

Layout read (relative to ``sysfs_root``)::

    sys/class/powercap/intel-rapl:0/name                  "package-0"
    sys/class/powercap/intel-rapl:0/energy_uj             monotonic counter, microjoules
    sys/class/powercap/intel-rapl:0/max_energy_range_uj   the counter wraps to 0 after this value
    sys/class/powercap/intel-rapl:0:0/name                "core" (sub-zones: core, uncore, dram)

Top-level zones ``intel-rapl:N`` named ``package-N`` are summed (scope ``cpu-package``).  AMD Zen
exposes the same files (the kernel reuses the ``intel-rapl`` names).  ``energy_uj`` is root-only since
the 2020 PLATYPUS fix.  The counter is polled (default 10 Hz) only to catch wraps; the energy is the
counter difference, not a sampled integral.
"""

from __future__ import annotations

import re
from pathlib import Path

from .energy import MeterError, PolledMeter, read_number, read_text

POWERCAP = "sys/class/powercap"


def find_rapl_zones(sysfs_root: str | Path = "/", domains: tuple[str, ...] = ("package",)) -> list[Path]:
    """Zone folders whose ``name`` starts with one of ``domains`` (top-level and sub-zones)."""
    base = Path(sysfs_root) / POWERCAP
    if not base.is_dir():
        return []
    zones = []
    for z in sorted(base.iterdir()):
        if not re.fullmatch(r"intel-rapl(:\d+)+", z.name) or not (z / "name").exists():
            continue
        try:
            name = (z / "name").read_text().strip()
        except OSError:
            continue
        if any(name.startswith(d) for d in domains):
            zones.append(z)
    return zones


class RaplMeter(PolledMeter):
    """Sum of RAPL ``package-*`` (or other ``domains``) counters."""

    counter = True

    def __init__(self, sysfs_root: str | Path = "/", domains: tuple[str, ...] = ("package",),
                 rate_hz: float = 10.0):
        super().__init__(rate_hz)
        self.root = Path(sysfs_root)
        self.zones = find_rapl_zones(sysfs_root, domains)
        if not self.zones:
            raise MeterError(f"rapl: no powercap zones named {'/'.join(domains)}-* under "
                             f"{self.root / POWERCAP} (needs the intel_rapl_common driver; absent in "
                             "most VMs)")
        self.names = {z: read_text(z / "name", "rapl") for z in self.zones}
        self.max_uj = {}
        for z in self.zones:
            self.max_uj[self.names[z]] = read_number(z / "max_energy_range_uj", "rapl")
        self.sample()  # fail now, with the file named, if energy_uj is unreadable

    @classmethod
    def detect(cls, sysfs_root: str | Path = "/") -> bool:
        """True if package zones exist (readability is checked when opening)."""
        return bool(find_rapl_zones(sysfs_root))

    def rails(self) -> list[str]:
        return [self.names[z] for z in self.zones]

    def sample(self) -> dict[str, float]:
        return {self.names[z]: read_number(z / "energy_uj", "rapl") for z in self.zones}

    def counter_delta(self, rail: str, prev: float, cur: float) -> float:
        delta = cur - prev
        if delta < 0:  # wrapped: the counter runs 0..max_energy_range_uj
            delta += self.max_uj[rail] + 1
        return delta * 1e-6

    def label(self) -> dict:
        return {"kind": "measured", "source": "rapl:powercap", "rail": "+".join(self.rails()),
                "scope": "cpu-package", "sample_rate_hz": None,
                "note": f"counter read at window edges, polled at {self.rate_hz:g} Hz for wraparound"}
