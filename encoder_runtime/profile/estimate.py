"""The documented, versioned energy estimate used when no meter exists (always labelled ``estimated``).

Model ``sensorcodec-energy-linear`` version 1 (docs/energy-model.md has the derivation and sources)::

    E_incremental = sum_p MACs_p * e_mac[p]  +  bytes_moved * e_byte  +  p_static * threads * t_frame
    E_gross       = E_incremental + p_idle * t_frame

``p`` is the precision the MACs run in ("int8" for integer or QDQ-fed ops, else "fp32").  ``t_frame``
is the measured latency when the target is this machine, otherwise modelled as
``max(sum_p MACs_p / (mac_rate[p] * threads), bytes_moved / dram_bw)`` (labelled ``latency_source``).
The coefficients are priors derived from public figures (not yet measured on the boards); treat the
results as order-of-magnitude (about 3x either way).
"""

from __future__ import annotations

import platform
from pathlib import Path

MODEL = "sensorcodec-energy-linear"
VERSION = "1"

# e_mac_pj: incremental energy per MAC, SIMD code in ONNX Runtime, instruction overhead included.
# e_byte_pj: per byte moved between DRAM (or on-chip SRAM for MCUs) and the core.
# p_static_w: power of one busy core above idle that does not scale with MACs.
# p_idle_w: whole-scope idle power (for gross figures).  mac_rate: sustained MACs/s per core.
COEFFICIENTS: dict[str, dict] = {
    "x86_64": {
        "e_mac_pj": {"fp32": 30.0, "int8": 10.0}, "e_byte_pj": 120.0, "p_static_w": 2.0, "p_idle_w": 10.0,
        "mac_rate_per_core": {"fp32": 25e9, "int8": 60e9}, "dram_bw_bytes_s": 15e9,
        "scope": "cpu-package (RAPL-comparable)",
        "source": "derived: ~4-7 W per busy AVX2/AVX-512 server/desktop core at 2-3 GHz; 16-32 fp32 MAC/cycle "
                  "peak, ~24 GMAC/s measured for the folded encoder conv on this x86 VM (DESIGN §9: 675 MP/s x "
                  "36 MAC/px); DDR4 ~15 pJ/bit incl. I/O (Micron TN-40-07 power calculator class figures)",
    },
    "rpi4": {
        "e_mac_pj": {"fp32": 125.0, "int8": 60.0}, "e_byte_pj": 100.0, "p_static_w": 0.4, "p_idle_w": 2.7,
        "mac_rate_per_core": {"fp32": 4e9, "int8": 8e9}, "dram_bw_bytes_s": 4e9,
        "scope": "board (5 V input)",
        "source": "derived: Pi 4B board 2.7 W idle, 6.4 W with 4 cores loaded (third-party wall-meter reviews, "
                  "2019-2020) = ~0.9 W per busy Cortex-A72 core at 1.5 GHz, split 0.4 W static + 0.5 W dynamic; "
                  "A72 NEON without dot-product: ~4 GMAC/s fp32, ~8 GMAC/s int8 sustained (assumed ~35-65% of "
                  "peak); LPDDR4 ~4 GB/s memcpy",
    },
    "rpi5": {
        "e_mac_pj": {"fp32": 75.0, "int8": 24.0}, "e_byte_pj": 80.0, "p_static_w": 0.4, "p_idle_w": 2.7,
        "mac_rate_per_core": {"fp32": 8e9, "int8": 25e9}, "dram_bw_bytes_s": 10e9,
        "scope": "board (5 V input)",
        "source": "derived: Pi 5 VDD_CORE 0.39 W idle -> 3.27 W with 4 cores loaded, PMIC total 1.55 -> 4.51 W "
                  "(reference note §5.2, third-party) = ~0.75-1.0 W per busy Cortex-A76 core at 2.4 GHz, split "
                  "0.4 W static + 0.6 W dynamic; A76 8 fp32 MAC/cycle and 32 int8 MAC/cycle (SDOT) peak, "
                  "assumed ~40% sustained; LPDDR4X",
    },
    "jetson-orin": {
        "e_mac_pj": {"fp32": 65.0, "int8": 20.0}, "e_byte_pj": 60.0, "p_static_w": 0.3, "p_idle_w": 4.0,
        "mac_rate_per_core": {"fp32": 6e9, "int8": 20e9}, "dram_bw_bytes_s": 20e9,
        "scope": "module input (VDD_IN)",
        "source": "derived for the CPU execution provider (Cortex-A78AE, 8 nm, 1.5-2.2 GHz): per-core power "
                  "assumed ~0.7 W busy (0.3 static + 0.4 dynamic), rates as A76 at lower clock; VDD_IN idle "
                  "~4 W for Orin Nano/NX (assumed); LPDDR5. GPU/DLA paths are not modelled",
    },
    "cortex-m4": {
        "e_mac_pj": {"fp32": 2400.0, "int8": 1600.0}, "e_byte_pj": 200.0, "p_static_w": 0.0, "p_idle_w": 0.003,
        "mac_rate_per_core": {"fp32": 0.056e9, "int8": 0.084e9}, "dram_bw_bytes_s": 0.3e9,
        "scope": "MCU supply (VDD)",
        "source": "derived: STM32F4 at 168 MHz, ~40 mA x 3.3 V run mode with peripherals off (datasheet "
                  "typical) = ~0.8 nJ/cycle; CMSIS-NN int8 ~0.5 MAC/cycle, FPU fp32 ~1 MAC per 3 cycles "
                  "with loads; run power is all per-cycle (p_static 0); idle = stop mode (mW class)",
    },
}


# The encoder graph each target runs by default (the same choice ``sensor-export`` makes, tested
# against export.targets): int8 where the cores have dot-product instructions (and on the MCU, whose
# C kernel is int8), fp32 elsewhere. Codes are bit-identical either way; only speed and energy differ.
DEFAULT_GRAPH: dict[str, str] = {
    "x86_64": "encoder.onnx", "rpi4": "encoder.onnx", "rpi5": "encoder_int8.onnx",
    "jetson-orin": "encoder_int8.onnx", "cortex-m4": "encoder_int8.onnx",
}


class EstimateError(ValueError):
    """Unknown target or inputs the model cannot use."""


def host_target(sysfs_root: str | Path = "/") -> str | None:
    """Target name for this machine (x86_64, rpi4, rpi5, jetson-orin) or None if unknown."""
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        return "x86_64"
    root = Path(sysfs_root)
    try:
        model = (root / "proc/device-tree/model").read_text(errors="replace")
    except OSError:
        model = ""
    if "Raspberry Pi 5" in model:
        return "rpi5"
    if "Raspberry Pi 4" in model:
        return "rpi4"
    if "Orin" in model or (root / "etc/nv_tegra_release").exists():
        return "jetson-orin"
    return None


def coefficients(target: str) -> dict:
    """Coefficient set of a target (EstimateError naming the known ones)."""
    if target not in COEFFICIENTS:
        raise EstimateError(f"estimate: unknown target {target!r} (known: {', '.join(COEFFICIENTS)})")
    return COEFFICIENTS[target]


def estimate_energy(target: str, macs_by_precision: dict[str, int], bytes_moved: int,
                    latency_s: float | None = None, threads: int = 1) -> dict:
    """Estimated joules per frame for ``target``, labelled ``{"kind": "estimated", ...}``.

    ``latency_s`` is the measured frame time on the target; pass None for another target to model it.
    """
    c = coefficients(target)
    threads = max(1, int(threads))
    prec = {("int8" if p == "int8" else "fp32"): 0 for p in macs_by_precision}
    for p, n in macs_by_precision.items():
        prec["int8" if p == "int8" else "fp32"] += int(n)
    if latency_s is None:
        compute = sum(n / (c["mac_rate_per_core"][p] * threads) for p, n in prec.items())
        latency_s = max(compute, bytes_moved / c["dram_bw_bytes_s"])
        latency_source = "modelled (MACs / mac_rate, bytes / dram_bw)"
    else:
        latency_source = "measured on this machine"
    mac_j = sum(n * c["e_mac_pj"][p] for p, n in prec.items()) * 1e-12
    byte_j = bytes_moved * c["e_byte_pj"] * 1e-12
    static_j = c["p_static_w"] * threads * latency_s
    incremental = mac_j + byte_j + static_j
    return {
        "label": {"kind": "estimated", "model": MODEL, "version": VERSION, "target": target,
                  "scope": c["scope"], "coefficients": {k: v for k, v in c.items() if k != "scope"},
                  "latency_source": latency_source},
        "gross_j_per_frame": incremental + c["p_idle_w"] * latency_s,
        "incremental_j_per_frame": incremental,
        "terms_j": {"macs": mac_j, "bytes": byte_j, "static": static_j},
        "latency_s": latency_s, "threads": threads, "macs": prec, "bytes_moved": int(bytes_moved),
    }
