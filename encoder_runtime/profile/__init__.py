"""Profiling of edge encoders: MACs and parameters from the ONNX graph, energy meters, sensor-profile.

Public API::

    from encoder_runtime.profile import count_macs, open_meter, measure_energy, estimate_energy, profile

``count_macs`` needs only onnxruntime (``method="onnx"`` imports the onnx package lazily).
"""

from .energy import EnergyMeasurement, EnergyReading, Meter, MeterError, measure_energy
from .estimate import COEFFICIENTS, MODEL, VERSION, EstimateError, estimate_energy, host_target
from .macs import MacReport, OpMacs, ShapeError, count_macs, node_macs
from .meters import EstimateMeter, open_meter
from .runner import BundleError, Target, load_bundle, profile, resolve_model

__all__ = ["COEFFICIENTS", "MODEL", "VERSION", "BundleError", "EnergyMeasurement", "EnergyReading",
           "EstimateError", "EstimateMeter", "MacReport", "Meter", "MeterError", "OpMacs", "ShapeError",
           "Target", "count_macs", "estimate_energy", "host_target", "load_bundle", "measure_energy",
           "node_macs", "open_meter", "profile", "resolve_model"]
