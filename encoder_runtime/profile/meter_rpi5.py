"""Raspberry Pi 5 PMIC rails via ``vcgencmd pmic_read_adc``.

The command prints one line per ADC channel, currents then voltages::

     VDD_CORE_A current(7)=0.76640000A
     VDD_CORE_V volt(15)=0.88000000V
     EXT5V_V volt(24)=5.12591000V

Power = sum over rails that have both ``_A`` and ``_V`` of V x I.  These are PMIC *output* rails only:
``EXT5V`` has a voltage but no current, so the 5 V input, USB, fan and conversion losses are missing
(scope ``pmic-output-rails``).  Each sample spawns a process; the default rate is 5 Hz (one project saw
a 50 Hz sampler slow its workload ~6x).  The command is configurable (``command=``), and a fixture
file can stand in for it (``fixture=``), for tests and for boards where vcgencmd lives elsewhere.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from .energy import MeterError, PolledMeter

LINE = re.compile(r"^\s*(\S+)_([AV])\s+(?:current|volt)\(\d+\)=([0-9.eE+-]+)[AV]\s*$")
DEFAULT_COMMAND = ("vcgencmd", "pmic_read_adc")


def parse_pmic_adc(text: str) -> dict[str, float]:
    """Parse ``pmic_read_adc`` output into rail -> watts (rails with both current and voltage)."""
    amps, volts = {}, {}
    for line in text.splitlines():
        m = LINE.match(line)
        if m:
            (amps if m.group(2) == "A" else volts)[m.group(1)] = float(m.group(3))
    rails = {r: volts[r] * amps[r] for r in amps if r in volts}
    if not rails:
        first = text.strip().splitlines()[0] if text.strip() else "(empty output)"
        raise MeterError(f"rpi5: no 'RAIL_A current(n)=xA' / 'RAIL_V volt(n)=xV' pairs in pmic_read_adc "
                         f"output (first line: {first!r})")
    return rails


def is_pi5(sysfs_root: str | Path = "/") -> bool:
    """True if ``proc/device-tree/model`` below the root names a Raspberry Pi 5."""
    try:
        return "Raspberry Pi 5" in (Path(sysfs_root) / "proc/device-tree/model").read_text(errors="replace")
    except OSError:
        return False


class Rpi5PmicMeter(PolledMeter):
    """Sum of Pi 5 PMIC output rails, sampled by running a command (default 5 Hz)."""

    def __init__(self, command: list[str] | tuple[str, ...] | None = None, fixture: str | Path | None = None,
                 rate_hz: float = 5.0):
        super().__init__(rate_hz)
        self.fixture = Path(fixture) if fixture is not None else None
        self.command = list(command or DEFAULT_COMMAND)
        if self.fixture is None and shutil.which(self.command[0]) is None:
            raise MeterError(f"rpi5: command {self.command[0]!r} not found (install raspberrypi-utils; "
                             "the user needs the 'video' group)")
        if self.fixture is not None and not self.fixture.is_file():
            raise MeterError(f"rpi5: fixture file {self.fixture} does not exist")
        self._rails = sorted(self.sample())

    @classmethod
    def detect(cls, sysfs_root: str | Path = "/") -> bool:
        """True on a Pi 5 with vcgencmd on PATH."""
        return is_pi5(sysfs_root) and shutil.which(DEFAULT_COMMAND[0]) is not None

    def _text(self) -> str:
        if self.fixture is not None:
            return self.fixture.read_text()
        try:
            res = subprocess.run(self.command, capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise MeterError(f"rpi5: running {' '.join(self.command)} failed: {exc}") from None
        if res.returncode != 0:
            raise MeterError(f"rpi5: {' '.join(self.command)} exited {res.returncode}: "
                             f"{(res.stderr or res.stdout).strip()[:200]}")
        return res.stdout

    def rails(self) -> list[str]:
        return self._rails

    def sample(self) -> dict[str, float]:
        return parse_pmic_adc(self._text())

    def label(self) -> dict:
        return {"kind": "measured", "source": "rpi5-pmic:vcgencmd pmic_read_adc", "rail": "sum(V*I of PMIC rails)",
                "scope": "pmic-output-rails", "sample_rate_hz": self.rate_hz,
                "note": "excludes 5 V input, USB, fan and PMIC conversion losses"}
