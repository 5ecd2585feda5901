"""Energy meters on fake sysfs trees that mirror the real RAPL, Jetson, Pi 5 and INA219 layouts."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from encoder_runtime.profile.energy import MeterError, measure_energy
from encoder_runtime.profile.estimate import COEFFICIENTS, EstimateError, estimate_energy
from encoder_runtime.profile.meter_ina219 import Ina219StreamMeter, parse_sample_line
from encoder_runtime.profile.meter_jetson import JetsonMeter
from encoder_runtime.profile.meter_rapl import RaplMeter
from encoder_runtime.profile.meter_rpi5 import Rpi5PmicMeter, parse_pmic_adc
from encoder_runtime.profile.meters import EstimateMeter, open_meter


def put(path: Path, value) -> None:
    """Atomic write (the sampler thread may read at any moment)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{value}\n")
    os.replace(tmp, path)


def link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(os.path.relpath(src, dst.parent))


# ------------------------------------------------------------------ RAPL

MAX_UJ = 262143328850


def rapl_tree(root: Path, packages=(0,)) -> dict[int, Path]:
    zones = {}
    for p in packages:
        z = root / f"sys/devices/virtual/powercap/intel-rapl/intel-rapl:{p}"
        put(z / "name", f"package-{p}")
        put(z / "energy_uj", 1_000_000)
        put(z / "max_energy_range_uj", MAX_UJ)
        put(z / "enabled", 1)
        put(z / f"intel-rapl:{p}:0/name", "core")
        put(z / f"intel-rapl:{p}:0/energy_uj", 5)
        link(z, root / f"sys/class/powercap/intel-rapl:{p}")
        link(z / f"intel-rapl:{p}:0", root / f"sys/class/powercap/intel-rapl:{p}:0")
        zones[p] = z
    link(root / "sys/devices/virtual/powercap/intel-rapl", root / "sys/class/powercap/intel-rapl")
    return zones


def test_rapl_counts_and_wraps(tmp_path):
    zones = rapl_tree(tmp_path, packages=(0, 1))
    m = open_meter("rapl", tmp_path)
    assert isinstance(m, RaplMeter) and m.rails() == ["package-0", "package-1"]
    put(zones[0] / "energy_uj", MAX_UJ - 500_000)    # 0.5 J before the wrap
    put(zones[1] / "energy_uj", 10_000_000)
    m.start()
    time.sleep(0.05)
    put(zones[0] / "energy_uj", 1_500_000)            # wrapped: 0.5 J + 1 uJ + 1.5 J
    put(zones[1] / "energy_uj", 13_000_000)           # 3 J
    time.sleep(0.15)
    r = m.stop()
    assert r.rails_joules["package-0"] == pytest.approx(2.000001)
    assert r.rails_joules["package-1"] == pytest.approx(3.0)
    assert r.joules == pytest.approx(5.000001)
    assert r.label == {"kind": "measured", "source": "rapl:powercap", "rail": "package-0+package-1",
                       "scope": "cpu-package", "sample_rate_hz": None, "note": r.label["note"]}
    assert m.counter_delta("package-0", MAX_UJ, 0) == pytest.approx(1e-6)


def test_rapl_missing_and_unreadable(tmp_path):
    with pytest.raises(MeterError, match="no powercap zones"):
        RaplMeter(tmp_path)
    zones = rapl_tree(tmp_path)
    (zones[0] / "max_energy_range_uj").unlink()
    with pytest.raises(MeterError, match="max_energy_range_uj does not exist"):
        RaplMeter(tmp_path)
    put(zones[0] / "max_energy_range_uj", MAX_UJ)
    put(zones[0] / "energy_uj", "garbage")
    with pytest.raises(MeterError, match="holds 'garbage', expected a number"):
        RaplMeter(tmp_path)


# ------------------------------------------------------------------ Jetson

def jetson_hwmon_tree(root: Path, rails=("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"), mv=(5000, 5000, 5000),
                      ma=(1000, 300, 200)) -> Path:
    """Orin Nano / NX style: ina3221 at 1-0040, hwmon1, channels 1-3 plus the sum channel."""
    dev = root / "sys/devices/platform/bus@0/c240000.i2c/i2c-1/1-0040/hwmon/hwmon1"
    put(dev / "name", "ina3221")
    for n, (rail, v, i) in enumerate(zip(rails, mv, ma), start=1):
        put(dev / f"in{n}_label", rail)
        put(dev / f"in{n}_input", v)
        put(dev / f"curr{n}_input", i)
        put(dev / f"curr{n}_crit", 32760)
        put(dev / f"curr{n}_max", 32760)
        put(dev / f"shunt{n}_resistor", 5000)
        put(dev / f"in{n + 3}_input", 8)  # shunt voltage, uV: not a rail
    put(dev / "in7_label", "sum of shunt voltages")
    put(dev / "in7_input", 24)
    put(dev / "curr4_input", sum(ma))
    put(dev / "update_interval", 2)
    put(dev / "samples", 512)
    link(dev.parent.parent, root / "sys/bus/i2c/drivers/ina3221/1-0040")
    link(dev, root / "sys/class/hwmon/hwmon1")
    return dev


def jetson_iio_tree(root: Path, with_power=True) -> Path:
    """Nano / TX2 (JetPack 4) style: ina3221x at 6-0040, iio:device0."""
    dev = root / "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0"
    for n, (rail, v, i) in enumerate([("POM_5V_IN", 5080, 600), ("POM_5V_GPU", 5080, 40), ("POM_5V_CPU", 5080, 200)]):
        put(dev / f"rail_name_{n}", rail)
        put(dev / f"in_voltage{n}_input", v)
        put(dev / f"in_current{n}_input", i)
        if with_power:
            put(dev / f"in_power{n}_input", v * i // 1000)
    put(dev / "name", "ina3221x")
    return dev


def test_jetson_hwmon_module_input(tmp_path):
    dev = jetson_hwmon_tree(tmp_path)
    m = open_meter("jetson", tmp_path)
    assert isinstance(m, JetsonMeter) and m.layout == "hwmon" and m.rails() == ["VDD_IN"]
    assert m.sample() == {"VDD_IN": pytest.approx(5.0)}
    m.start()
    time.sleep(0.3)
    r = m.stop()
    assert r.joules == pytest.approx(5.0 * r.seconds, rel=1e-9)
    assert r.label["source"] == "jetson-ina3221-hwmon" and r.label["scope"] == "module-input"
    assert r.label["kind"] == "measured" and r.label["sample_rate_hz"] > 0
    # without VDD_IN: the sum of connected rails; NC channels skipped
    put(dev / "in1_label", "NC")
    m2 = JetsonMeter(tmp_path)
    assert m2.rails() == ["VDD_CPU_GPU_CV", "VDD_SOC"] and m2.scope == "sum-of-rails"
    assert sum(m2.sample().values()) == pytest.approx(2.5)
    assert JetsonMeter(tmp_path, rails="VDD_SOC").sample() == {"VDD_SOC": pytest.approx(1.0)}
    with pytest.raises(MeterError, match="no rail VDD_GPU"):
        JetsonMeter(tmp_path, rails="VDD_GPU")


def test_jetson_iio_power_and_volt_amp(tmp_path):
    jetson_iio_tree(tmp_path, with_power=True)
    m = JetsonMeter(tmp_path)
    assert m.layout == "iio" and m.rails() == ["POM_5V_IN"]
    assert m.sample()["POM_5V_IN"] == pytest.approx(3.048)
    other = tmp_path / "b"
    jetson_iio_tree(other, with_power=False)
    assert JetsonMeter(other).sample()["POM_5V_IN"] == pytest.approx(5.080 * 0.600)


def test_jetson_missing_tree_and_file_vanishing(tmp_path):
    with pytest.raises(MeterError, match="no INA3221 found"):
        JetsonMeter(tmp_path)
    dev = jetson_hwmon_tree(tmp_path)
    m = JetsonMeter(tmp_path, rate_hz=50)
    m.start()
    (dev / "curr1_input").unlink()
    time.sleep(0.1)
    with pytest.raises(MeterError, match="curr1_input does not exist"):
        m.stop()


def test_measure_energy_subtracts_idle(tmp_path):
    dev = jetson_hwmon_tree(tmp_path)
    m = JetsonMeter(tmp_path, rate_hz=50)
    state = {"n": 0}

    def frame():
        if state["n"] == 0:
            put(dev / "curr1_input", 3000)  # 15 W while frames run
        state["n"] += 1
        time.sleep(0.002)

    res = measure_energy(m, frame, seconds=0.5)
    assert res.idle_w == pytest.approx(5.0)
    assert res.active_w == pytest.approx(15.0, rel=0.05)
    assert res.frames == state["n"] > 10
    assert res.incremental_j_per_frame == pytest.approx(
        (res.active_w - res.idle_w) * res.seconds / res.frames, rel=1e-9)
    assert res.gross_j_per_frame > res.incremental_j_per_frame > 0
    assert res.to_dict()["label"]["kind"] == "measured"


# ------------------------------------------------------------------ Raspberry Pi 5

PMIC = """\
     3V7_WL_SW_A current(0)=0.00390372A
       3V3_SYS_A current(1)=0.05074836A
       1V8_SYS_A current(2)=0.17370480A
      DDR_VDD2_A current(3)=0.02049453A
      DDR_VDDQ_A current(4)=0.00000000A
       1V1_SYS_A current(5)=0.18542340A
       0V8_SYS_A current(6)=0.34839600A
      VDD_CORE_A current(7)=0.76640000A
     3V3_DAC_A current(17)=0.00048840A
     3V3_ADC_A current(18)=0.00054945A
      0V8_AON_A current(16)=0.00036630A
        HDMI_A current(22)=0.02344320A
     3V7_WL_SW_V volt(8)=3.71197200V
       3V3_SYS_V volt(9)=3.30366000V
       1V8_SYS_V volt(10)=1.79767800V
      DDR_VDD2_V volt(11)=1.11086400V
      DDR_VDDQ_V volt(12)=0.60680160V
       1V1_SYS_V volt(13)=1.10402000V
       0V8_SYS_V volt(14)=0.80200200V
      VDD_CORE_V volt(15)=0.88000000V
       3V3_DAC_V volt(20)=3.30366000V
       3V3_ADC_V volt(21)=3.30366000V
       0V8_AON_V volt(19)=0.80212300V
          HDMI_V volt(23)=5.14826000V
         EXT5V_V volt(24)=5.14826000V
          BATT_V volt(25)=0.00000000V
"""


def _pmic_watts():
    amps, volts = {}, {}
    for line in PMIC.splitlines():
        name, rest = line.split()
        val = float(rest.split("=")[1][:-1])
        (amps if name.endswith("_A") else volts)[name[:-2]] = val
    return sum(amps[k] * volts[k] for k in amps)


def test_rpi5_parse_and_measure(tmp_path):
    rails = parse_pmic_adc(PMIC)
    assert "EXT5V" not in rails and len(rails) == 12
    assert rails["VDD_CORE"] == pytest.approx(0.7664 * 0.88)
    fx = tmp_path / "pmic.txt"
    fx.write_text(PMIC)
    m = open_meter("rpi5", tmp_path, rpi5_command=["cat", str(fx)])  # a real subprocess per sample
    m.start()
    time.sleep(0.5)
    r = m.stop()
    assert r.watts == pytest.approx(_pmic_watts(), rel=1e-6)
    assert r.label["scope"] == "pmic-output-rails" and r.label["kind"] == "measured"
    assert Rpi5PmicMeter(fixture=fx).sample()["VDD_CORE"] == pytest.approx(0.7664 * 0.88)


def test_rpi5_errors(tmp_path):
    with pytest.raises(MeterError, match="not found"):
        Rpi5PmicMeter(command=["no-such-vcgencmd-here", "pmic_read_adc"])
    with pytest.raises(MeterError, match="fixture file .* does not exist"):
        Rpi5PmicMeter(fixture=tmp_path / "none.txt")
    with pytest.raises(MeterError, match="no 'RAIL_A current"):
        Rpi5PmicMeter(command=["echo", "error=2 error_msg=\"Command not registered\""])
    with pytest.raises(MeterError, match="exited 3"):
        Rpi5PmicMeter(command=["sh", "-c", "echo nope >&2; exit 3"])


# ------------------------------------------------------------------ INA219

def test_ina219_hwmon(tmp_path):
    dev = tmp_path / "sys/devices/platform/soc/fe804000.i2c/i2c-1/1-0040/hwmon/hwmon2"
    for f, v in {"name": "ina219", "in0_input": 41, "in1_input": 5012, "curr1_input": 410,
                 "power1_input": 2055000, "shunt_resistor": 100000, "update_interval": 1}.items():
        put(dev / f, v)
    link(dev, tmp_path / "sys/class/hwmon/hwmon2")
    for spec in ("ina219:hwmon", "ina219:hwmon2", "ina219:/sys/class/hwmon/hwmon2"):
        m = open_meter(spec, tmp_path)
        assert m.sample() == {"supply": pytest.approx(2.055)}
        assert m.label()["scope"] == "external-supply"
    (dev / "power1_input").unlink()
    assert open_meter("ina219:hwmon", tmp_path).sample()["supply"] == pytest.approx(5.012 * 0.410)
    with pytest.raises(MeterError, match="hwmon folder .*hwmon7 does not exist"):
        open_meter("ina219:hwmon7", tmp_path)
    with pytest.raises(MeterError, match="no hwmon device named ina219"):
        open_meter("ina219:hwmon", tmp_path / "empty")


def test_ina219_stream_over_loopback_socket():
    assert parse_sample_line("5.02,400") == pytest.approx(2.008)
    assert parse_sample_line("1500.5") == pytest.approx(1.5005)
    assert parse_sample_line("Bus Voltage:") is None
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    stop = threading.Event()

    def serve():
        conn, _ = srv.accept()
        with conn:
            conn.sendall(b"INA219 logger v1\r\n")
            while not stop.is_set():
                try:
                    conn.sendall(b"5.000,400.0\r\n")
                except OSError:
                    return
                time.sleep(0.01)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    m = open_meter(f"ina219:socket://127.0.0.1:{srv.getsockname()[1]}")
    try:
        m.start()
        time.sleep(0.4)
        r = m.stop()
    finally:
        m.close()
        stop.set()
        srv.close()
    assert r.watts == pytest.approx(2.0, rel=1e-6)
    assert r.label["source"].startswith("ina219-stream:socket://") and r.label["sample_rate_hz"] > 10


def test_ina219_stream_silent_device():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    try:
        with pytest.raises(MeterError, match="no sample line"):
            Ina219StreamMeter(f"socket://127.0.0.1:{srv.getsockname()[1]}", timeout_s=0.3)
    finally:
        srv.close()


# ------------------------------------------------------------------ auto and estimate

def test_auto_picks_first_meter_else_estimate(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    m = open_meter("auto", empty)
    assert isinstance(m, EstimateMeter) and m.kind == "estimated" and "no energy meter found" in m.reason
    jetson_hwmon_tree(tmp_path / "j")
    assert isinstance(open_meter("auto", tmp_path / "j"), JetsonMeter)
    rapl_tree(tmp_path / "r")
    assert isinstance(open_meter("auto", tmp_path / "r"), RaplMeter)
    with pytest.raises(ValueError, match="unknown meter 'joulescope'"):
        open_meter("joulescope", tmp_path)


def test_estimate_model_by_hand():
    c = COEFFICIENTS["cortex-m4"]
    e = estimate_energy("cortex-m4", {"int8": 1_000_000, "fp32": 10_000}, 50_000, latency_s=None, threads=1)
    lat = max(1e6 / c["mac_rate_per_core"]["int8"] + 1e4 / c["mac_rate_per_core"]["fp32"],
              50_000 / c["dram_bw_bytes_s"])
    inc = 1e6 * 1600e-12 + 1e4 * 2400e-12 + 50_000 * 200e-12 + 0.0 * lat
    assert e["incremental_j_per_frame"] == pytest.approx(inc)
    assert e["gross_j_per_frame"] == pytest.approx(inc + c["p_idle_w"] * lat)
    assert e["label"]["kind"] == "estimated" and e["label"]["version"] == "1"
    assert e["label"]["coefficients"]["e_mac_pj"] == {"fp32": 2400.0, "int8": 1600.0}
    assert "modelled" in e["label"]["latency_source"]
    e2 = estimate_energy("x86_64", {"fp32": 1000}, 0, latency_s=0.001, threads=2)
    assert e2["terms_j"]["static"] == pytest.approx(2.0 * 2 * 0.001)
    assert e2["label"]["latency_source"] == "measured on this machine"
    for t in ("x86_64", "rpi4", "rpi5", "jetson-orin", "cortex-m4"):
        assert t in COEFFICIENTS and COEFFICIENTS[t]["source"]
    with pytest.raises(EstimateError, match="unknown target 'pdp11'"):
        open_meter("estimate:pdp11")
