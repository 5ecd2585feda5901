"""NVIDIA Jetson on-module INA3221 power monitors, hwmon and iio layouts.

**hwmon layout** - mainline ``ina3221`` driver, JetPack 5/6 (L4T r35+): Jetson AGX Orin, Orin NX,
Orin Nano, and AGX Xavier / Xavier NX on JetPack 5.  Read below ``sysfs_root``::

    sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmonN/   (also found through sys/class/hwmon/*/name)
        name              "ina3221"
        in{1,2,3}_label   rail, e.g. VDD_IN, VDD_CPU_GPU_CV, VDD_SOC; "NC" = unconnected
        in{1,2,3}_input   bus voltage, mV
        curr{1,2,3}_input current, mA
        in{4,5,6}_input   shunt voltages (uV), in7 = "sum of shunt voltages": not used

**iio layout** - NVIDIA ``ina3221x`` driver, JetPack 4 (L4T r32): Nano, TX1, TX2 and AGX Xavier /
Xavier NX on JetPack 4::

    sys/bus/i2c/drivers/ina3221x/0-0040/iio:device0/
        rail_name_{0,1,2}        e.g. POM_5V_IN, POM_5V_GPU, POM_5V_CPU
        in_voltage{N}_input      mV
        in_current{N}_input      mA
        in_power{N}_input        mW (used when present, else V x I)

Rails: ``rails="auto"`` uses the module input rail (``VDD_IN`` on Orin/Xavier JetPack 5,
``POM_5V_IN`` on Nano/TX) when present (scope ``module-input``: the carrier board is not included),
otherwise the sum of all connected rails (scope ``sum-of-rails``).  Pass names to pick rails.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .energy import MeterError, PolledMeter, read_number, read_text

TOTAL_RAILS = ("VDD_IN", "POM_5V_IN")


def _channels_hwmon(dev: Path) -> dict[str, tuple[Path, Path | None, Path | None]]:
    out = {}
    for n in (1, 2, 3):
        label_f = dev / f"in{n}_label"
        if not label_f.exists():
            continue
        label = read_text(label_f, "jetson")
        if label.upper() == "NC" or not (dev / f"curr{n}_input").exists():
            continue
        enable = dev / f"in{n}_enable"
        if enable.exists() and read_text(enable, "jetson") == "0":
            continue
        out[label] = (dev / f"curr{n}_input", dev / f"in{n}_input", None)
    return out


def _channels_iio(dev: Path) -> dict[str, tuple[Path, Path | None, Path | None]]:
    out = {}
    for f in sorted(dev.glob("rail_name_*")):
        n = f.name.rsplit("_", 1)[1]
        label = read_text(f, "jetson")
        if label.upper() == "NC":
            continue
        power = dev / f"in_power{n}_input"
        out[label] = (dev / f"in_current{n}_input", dev / f"in_voltage{n}_input",
                      power if power.exists() else None)
    return out


def find_ina3221(sysfs_root: str | Path = "/") -> tuple[str, list[Path]]:
    """Return (layout, device folders) for the first layout found: "hwmon", "iio" or ("", [])."""
    root = Path(sysfs_root)
    seen, hw = set(), []
    cands = sorted(root.glob("sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*"))
    for d in sorted(root.glob("sys/class/hwmon/hwmon*")):
        try:
            if (d / "name").read_text().strip() == "ina3221":
                cands.append(d)
        except OSError:
            continue
    for d in cands:
        key = os.path.realpath(d)
        if key not in seen and list(d.glob("in*_label")):
            seen.add(key)
            hw.append(d)
    if hw:
        return "hwmon", hw
    iio = sorted(d for d in root.glob("sys/bus/i2c/drivers/ina3221x/*/iio:device*") if list(d.glob("rail_name_*")))
    if iio:
        return "iio", iio
    return "", []


class JetsonMeter(PolledMeter):
    """Power of Jetson INA3221 rails, sampled (default 20 Hz) and integrated (trapezoid)."""

    def __init__(self, sysfs_root: str | Path = "/", rails: str | list[str] = "auto", rate_hz: float = 20.0):
        super().__init__(rate_hz)
        self.layout, devices = find_ina3221(sysfs_root)
        if not devices:
            raise MeterError(f"jetson: no INA3221 found under {Path(sysfs_root)} (looked for "
                             "sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*, sys/class/hwmon/*/name=ina3221 "
                             "and sys/bus/i2c/drivers/ina3221x/*/iio:device*)")
        found: dict[str, tuple] = {}
        for d in devices:
            found.update(_channels_hwmon(d) if self.layout == "hwmon" else _channels_iio(d))
        if not found:
            raise MeterError(f"jetson: INA3221 ({self.layout}) has no connected channels")
        if rails == "auto":
            total = [r for r in TOTAL_RAILS if r in found]
            chosen = total[:1] or sorted(found)
            self.scope = "module-input" if total else "sum-of-rails"
        else:
            chosen = [r.strip() for r in (rails.split(",") if isinstance(rails, str) else rails)]
            missing = [r for r in chosen if r not in found]
            if missing:
                raise MeterError(f"jetson: no rail {', '.join(missing)} (rails: {', '.join(sorted(found))})")
            self.scope = "module-input" if chosen == [r for r in TOTAL_RAILS if r in chosen][:1] else "rails"
        self.channels = {r: found[r] for r in chosen}
        self.sample()

    @classmethod
    def detect(cls, sysfs_root: str | Path = "/") -> bool:
        """True if an INA3221 hwmon or iio device exists."""
        return bool(find_ina3221(sysfs_root)[1])

    def rails(self) -> list[str]:
        return list(self.channels)

    def sample(self) -> dict[str, float]:
        out = {}
        for rail, (curr, volt, power) in self.channels.items():
            if power is not None:
                out[rail] = read_number(power, "jetson") * 1e-3
            else:
                out[rail] = read_number(volt, "jetson") * read_number(curr, "jetson") * 1e-6
        return out

    def label(self) -> dict:
        return {"kind": "measured", "source": f"jetson-ina3221-{self.layout}", "rail": "+".join(self.rails()),
                "scope": self.scope, "sample_rate_hz": self.rate_hz}
