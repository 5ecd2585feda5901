"""Profiling of edge encoders: MACs and parameters from the ONNX graph, energy meters, sensor-profile.

Public API::

    from encoder_runtime.profile import count_macs, open_meter, measure_energy, estimate_energy
"""

from .macs import MacReport, OpMacs, ShapeError, count_macs, node_macs

__all__ = ["MacReport", "OpMacs", "ShapeError", "count_macs", "node_macs"]
