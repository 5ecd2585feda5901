"""The integer (QOperator) encoder graph: int32 accumulation on raw samples.

Same codes as the fp32 graph by construction (docs/bundle-format.md):

* uint8 samples: one ``QLinearConv`` with the weights stored as uint8 (w + 128, zero point 128;
  ORT's u8·s8 kernels on AVX2 without VNNI use saturating 16-bit pair sums and are NOT exact,
  u8·u8 is), per-channel weight scale 2**-shift, int32 bias, output zero point 128: ORT
  requantizes ``round_half_even((Σ x·w + bias)·2**-shift) + 128`` with saturation to uint8, and
  ``− 128`` with a clip to ±code_max gives the codes.
* int16 samples: split ``x + 32768 = 256·hi + lo`` into two uint8 planes, then
  ``acc = 256·ConvInteger(hi, w) + ConvInteger(lo, w) + bias − 32768·Σw`` (int32, exact),
  ``Cast`` to float32 (exact: |acc| < 2**24), ``Mul`` by 2**-shift (exact), ``Round``
  (half to even), ``Clip``, ``Cast`` int8.
"""

from __future__ import annotations

import numpy as np
import onnx  # noqa: F401  (ModelProto in annotations)
from onnx import TensorProto, helper, numpy_helper

from .model import CodecConfig
from .onnx_export import (ONNX_DTYPES, _spatial_names, conv_attrs, finish_model, interleave_nodes,
                          interleave_shape, interleaved_kernel, requantize_nodes, step_scales)


def int8_encoder_graph(cfg: CodecConfig, arrays: dict[str, np.ndarray]) -> onnx.ModelProto:
    """Integer encoder graph with the same I/O as the fp32 one."""
    d = cfg.dims
    sp = _spatial_names(d)
    if cfg.sample_dtype not in ("uint8", "int16", "uint16"):
        raise ValueError(f"int8 encoder graph supports uint8, int16 or uint16 samples, not "
                         f"{cfg.sample_dtype}")
    x = helper.make_tensor_value_info("samples", ONNX_DTYPES[cfg.sample_dtype], ["N", *sp, "C"])
    y = helper.make_tensor_value_info("codes", TensorProto.INT8, ["N", cfg.latent_channels]
                                      + [f"{s}_lat" for s in sp])
    layout = [interleave_shape(d), numpy_helper.from_array(np.array([1], np.int64), "axis1")]
    nodes = interleave_nodes("samples", "xc")
    if cfg.sample_dtype == "uint8":
        return _qlinear_graph(cfg, arrays, x, y, nodes, layout)
    return _split_int16_graph(cfg, arrays, x, y, nodes, layout)


def _split_int16_graph(cfg: CodecConfig, arrays: dict[str, np.ndarray], x, y, nodes, layout
                       ) -> onnx.ModelProto:
    """int16 / uint16 samples: two ConvInteger passes over the high and low bytes of the sample
    made unsigned (int16 + 32768), int32 accumulation."""
    d = cfg.dims
    w = arrays["weight"].astype(np.int8)
    offset = 32768 if cfg.sample_dtype == "int16" else 0
    bias = (arrays["bias"].astype(np.int64)
            - offset * w.reshape(w.shape[0], -1).astype(np.int64).sum(1))
    if np.abs(bias).max(initial=0) >= 2 ** 31:
        raise ValueError("bias does not fit int32")
    attrs = conv_attrs(cfg)
    inits = [numpy_helper.from_array(interleaved_kernel(w), "weight"), *layout,
             numpy_helper.from_array(step_scales(arrays).reshape((1, -1) + (1,) * d), "step_scale"),
             numpy_helper.from_array(np.array(-cfg.code_max, np.float32), "lo"),
             numpy_helper.from_array(np.array(cfg.code_max, np.float32), "hi"),
             numpy_helper.from_array(np.array(offset, np.int32), "offset"),
             numpy_helper.from_array(np.array(256, np.int32), "byte"),
             numpy_helper.from_array(bias.astype(np.int32).reshape((1, -1) + (1,) * d), "bias")]
    nodes = nodes + [
        helper.make_node("Cast", ["xc"], ["x32"], to=TensorProto.INT32),
        helper.make_node("Add", ["x32", "offset"], ["xoff"]),          # 0..65535
        helper.make_node("Div", ["xoff", "byte"], ["hi32"]),           # floor (non-negative)
        helper.make_node("Mul", ["hi32", "byte"], ["hi256"]),
        helper.make_node("Sub", ["xoff", "hi256"], ["lo32"]),
        helper.make_node("Cast", ["hi32"], ["hi8"], to=TensorProto.UINT8),
        helper.make_node("Cast", ["lo32"], ["lo8"], to=TensorProto.UINT8),
        helper.make_node("ConvInteger", ["hi8", "weight"], ["acc_hi"], **attrs),
        helper.make_node("ConvInteger", ["lo8", "weight"], ["acc_lo"], **attrs),
        helper.make_node("Mul", ["acc_hi", "byte"], ["acc_hi256"]),
        helper.make_node("Add", ["acc_hi256", "acc_lo"], ["acc0"]),
        helper.make_node("Add", ["acc0", "bias"], ["acc"]),
        helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT),
        *requantize_nodes("accf"),
    ]
    return finish_model(nodes, "sensorcodec_encoder_int8", x, y, inits)


def _qlinear_graph(cfg: CodecConfig, arrays: dict[str, np.ndarray], x, y, nodes, layout
                   ) -> onnx.ModelProto:
    """uint8 samples: QLinearConv with uint8 weights (exact u8·u8 kernels), requantized by ORT."""
    c = cfg.latent_channels
    w_u8 = (interleaved_kernel(arrays["weight"].astype(np.int16)) + 128).astype(np.uint8)
    inits = [*layout,
             numpy_helper.from_array(w_u8, "weight_u8"),
             numpy_helper.from_array(np.array(1.0, np.float32), "x_scale"),
             numpy_helper.from_array(np.array(0, np.uint8), "x_zero"),
             numpy_helper.from_array(step_scales(arrays), "w_scale"),
             numpy_helper.from_array(np.full(c, 128, np.uint8), "w_zero"),
             numpy_helper.from_array(np.array(1.0, np.float32), "y_scale"),
             numpy_helper.from_array(np.array(128, np.uint8), "y_zero"),
             numpy_helper.from_array(arrays["bias"].astype(np.int32), "bias"),
             numpy_helper.from_array(np.array(128, np.int32), "offset"),
             numpy_helper.from_array(np.array(-cfg.code_max, np.int32), "lo"),
             numpy_helper.from_array(np.array(cfg.code_max, np.int32), "hi")]
    nodes = nodes + [
        helper.make_node("QLinearConv", ["xc", "x_scale", "x_zero", "weight_u8", "w_scale", "w_zero",
                                         "y_scale", "y_zero", "bias"], ["yq"], **conv_attrs(cfg)),
        helper.make_node("Cast", ["yq"], ["y32"], to=TensorProto.INT32),
        helper.make_node("Sub", ["y32", "offset"], ["centred"]),
        helper.make_node("Clip", ["centred", "lo", "hi"], ["clipped"]),
        helper.make_node("Cast", ["clipped"], ["codes"], to=TensorProto.INT8),
    ]
    return finish_model(nodes, "sensorcodec_encoder_int8", x, y, inits)
