"""An external INA219-class meter on the board's supply: ``--meter ina219:URL``.

Two transports, chosen by the URL:

* **Linux hwmon** (the meter's I2C bus wired to the board itself; mainline ``ina2xx`` driver, e.g.
  ``echo ina219 0x40 > /sys/bus/i2c/devices/i2c-1/new_device``).  URLs: ``ina219:hwmon`` (first hwmon
  device named ina219/ina220/ina226/ina230/ina231/ina260 below ``sysfs_root``), ``ina219:hwmon3``,
  or ``ina219:/sys/class/hwmon/hwmon3`` (taken below ``sysfs_root``).  Files: ``power1_input``
  (microwatts) when present, else ``in1_input`` (bus mV) x ``curr1_input`` (mA).  Sampled at 20 Hz by
  default (the chip's default conversion time is ~0.5 ms; the driver may average).
* **Serial / socket stream** (the INA219 on a microcontroller or second Pi that prints one sample per
  line, e.g. a USB-serial Arduino): any pyserial URL, ``ina219:serial:///dev/ttyUSB0?baud=115200``,
  ``ina219:/dev/ttyACM0``, ``ina219:socket://host:port`` or ``ina219:rfc2217://...``.  A line holds
  either two numbers ``<bus volts>,<milliamps>`` (Adafruit_INA219 ``getBusVoltage_V()`` and
  ``getCurrent_mA()``) or one number, milliwatts (``getPower_mW()``); separators comma, space or tab;
  other lines are ignored.  Samples are integrated at host arrival time; the sample rate is whatever
  the device sends.  Needs pyserial (the ``bridge`` extra), imported only for these URLs.

Scope ``external-supply``: everything behind the meter (the whole board when it sits on the supply).
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from .energy import MeterError, PolledMeter, read_number, read_text

HWMON_NAMES = ("ina219", "ina220", "ina226", "ina230", "ina231", "ina260", "ina238")
_NUM = re.compile(r"[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")


def find_ina2xx_hwmon(sysfs_root: str | Path = "/") -> list[Path]:
    """hwmon folders below the root whose ``name`` is an INA2xx chip."""
    out = []
    for d in sorted(Path(sysfs_root).glob("sys/class/hwmon/hwmon*")):
        try:
            if (d / "name").read_text().strip() in HWMON_NAMES:
                out.append(d)
        except OSError:
            continue
    return out


def parse_sample_line(line: str) -> float | None:
    """Watts from one streamed line (``V,mA`` or ``mW``), or None if the line holds no sample."""
    nums = _NUM.findall(line)
    if len(nums) == 2:
        return float(nums[0]) * float(nums[1]) * 1e-3
    if len(nums) == 1:
        return float(nums[0]) * 1e-3
    return None


class Ina219HwmonMeter(PolledMeter):
    """INA2xx through the Linux hwmon driver."""

    def __init__(self, path: str | Path | None = None, sysfs_root: str | Path = "/", rate_hz: float = 20.0):
        super().__init__(rate_hz)
        root = Path(sysfs_root)
        if path in (None, "", "hwmon"):
            found = find_ina2xx_hwmon(root)
            if not found:
                raise MeterError(f"ina219: no hwmon device named {'/'.join(HWMON_NAMES)} under "
                                 f"{root / 'sys/class/hwmon'}")
            self.dev = found[0]
        else:
            p = str(path)
            self.dev = root / "sys/class/hwmon" / p if re.fullmatch(r"hwmon\d+", p) else root / p.lstrip("/")
            if not self.dev.is_dir():
                raise MeterError(f"ina219: hwmon folder {self.dev} does not exist")
        self.chip = read_text(self.dev / "name", "ina219")
        self.power_f = self.dev / "power1_input"
        if not self.power_f.exists() and not (self.dev / "curr1_input").exists():
            raise MeterError(f"ina219: {self.dev} has neither power1_input nor curr1_input")
        self.sample()

    def rails(self) -> list[str]:
        return ["supply"]

    def sample(self) -> dict[str, float]:
        if self.power_f.exists():
            return {"supply": read_number(self.power_f, "ina219") * 1e-6}
        return {"supply": read_number(self.dev / "in1_input", "ina219")
                * read_number(self.dev / "curr1_input", "ina219") * 1e-6}

    def label(self) -> dict:
        return {"kind": "measured", "source": f"{self.chip}-hwmon:{self.dev.name}", "rail": "supply",
                "scope": "external-supply", "sample_rate_hz": self.rate_hz}


class Ina219StreamMeter(PolledMeter):
    """INA219 samples streamed as text lines over a pyserial URL (serial port or socket)."""

    def __init__(self, url: str, timeout_s: float = 2.0):
        super().__init__(rate_hz=1e6)  # the stream sets the pace; readline() blocks
        try:
            import serial  # lazy: pyserial is optional (bridge extra)
        except ImportError:
            raise MeterError("ina219: serial/socket URLs need pyserial (pip install pyserial)") from None
        parts = urlsplit(url)
        baud = int(parse_qs(parts.query).get("baud", ["115200"])[0])
        # serial:///dev/ttyUSB0?baud=N and bare /dev/... are local ports; other schemes go to pyserial
        port_url = parts.path if parts.scheme in ("serial", "") else url
        self.url = url
        try:
            self.port = serial.serial_for_url(port_url, baudrate=baud, timeout=timeout_s)
        except (serial.SerialException, ValueError, OSError) as exc:
            raise MeterError(f"ina219: cannot open {url}: {exc}") from None
        self._latest: float | None = None
        self._n_lines = 0
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read_loop, daemon=True, name="ina219-reader")
        self._cond = threading.Condition()
        self._read_error: BaseException | None = None
        self._reader.start()
        self.sample()  # wait for the first sample (clear error if none arrives)

    def _read_loop(self) -> None:
        try:
            while not self._closed.is_set():
                raw = self.port.readline()
                if not raw:
                    continue
                w = parse_sample_line(raw.decode("ascii", "replace"))
                if w is not None:
                    with self._cond:
                        self._latest = w
                        self._n_lines += 1
                        self._cond.notify_all()
        except Exception as exc:  # port closed or device gone
            if not self._closed.is_set():
                with self._cond:
                    self._read_error = exc
                    self._cond.notify_all()

    def rails(self) -> list[str]:
        return ["supply"]

    def sample(self) -> dict[str, float]:
        """Block until the next streamed sample arrives (timeout: MeterError)."""
        with self._cond:
            n = self._n_lines
            ok = self._cond.wait_for(lambda: self._n_lines > n or self._read_error is not None,
                                     timeout=self.port.timeout or 2.0)
            if self._read_error is not None:
                raise MeterError(f"ina219: reading {self.url} failed: {self._read_error}")
            if not ok:
                raise MeterError(f"ina219: no sample line from {self.url} within {self.port.timeout:g} s "
                                 "(expected 'volts,milliamps' or 'milliwatts' per line)")
            return {"supply": self._latest}

    def label(self) -> dict:
        return {"kind": "measured", "source": f"ina219-stream:{self.url}", "rail": "supply",
                "scope": "external-supply", "sample_rate_hz": None}

    def close(self) -> None:
        super().close()
        self._closed.set()
        try:
            self.port.close()
        except Exception:
            pass
        self._reader.join(timeout=2)


def open_ina219(url: str, sysfs_root: str | Path = "/") -> PolledMeter:
    """Open the meter named by the part of ``ina219:URL`` after the colon."""
    if url in ("", "hwmon") or re.fullmatch(r"hwmon\d+", url) or url.startswith("/sys/"):
        return Ina219HwmonMeter(url or None, sysfs_root)
    return Ina219StreamMeter(url)
