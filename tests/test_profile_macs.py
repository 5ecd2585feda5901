"""MAC and parameter counts from ONNX graphs against hand counts (fp32, dynamic, QDQ, QOperator)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from encoder_runtime.profile import ShapeError, count_macs
from encoder_runtime.profile.onnx_graph import OnnxFormatError, load_graph

RNG = np.random.default_rng(0)


def _model(nodes, inputs, outputs, inits, opset=17):
    g = helper.make_graph(nodes, "g", inputs, outputs, [numpy_helper.from_array(a, n) for n, a in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    return m


def _w(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _save(m, tmp_path, name="m.onnx"):
    p = tmp_path / name
    p.write_bytes(m.SerializeToString())
    return p


def _conv_chain(dynamic: bool):
    """2-D: strided conv 3->8 k3 s2 p1; grouped conv 8->16 g=4 k3 p1; depthwise 16 k3 p1; pw 16->4."""
    inits = {"w1": _w(8, 3, 3, 3), "b1": _w(8), "w2": _w(16, 2, 3, 3), "w3": _w(16, 1, 3, 3),
             "w4": _w(4, 16, 1, 1), "b4": _w(4)}
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["y1"], strides=[2, 2], pads=[1, 1, 1, 1], name="strided"),
        helper.make_node("Relu", ["y1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["y2"], group=4, pads=[1, 1, 1, 1], name="grouped"),
        helper.make_node("Conv", ["y2", "w3"], ["y3"], group=16, pads=[1, 1, 1, 1], name="depthwise"),
        helper.make_node("Conv", ["y3", "w4", "b4"], ["y"], name="pointwise"),
    ]
    dims = ["N", 3, "H", "W"] if dynamic else [1, 3, 32, 48]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
                  [onnx.ValueInfoProto(name="y")], inits)


def _hand_conv_chain(n, h, w):
    ho, wo = (h + 2 - 3) // 2 + 1, (w + 2 - 3) // 2 + 1
    pos = n * ho * wo
    return {"strided": pos * 8 * 3 * 9, "grouped": pos * 16 * 2 * 9, "depthwise": pos * 16 * 1 * 9,
            "pointwise": pos * 4 * 16}


PARAMS_CHAIN = 8 * 27 + 8 + 16 * 18 + 16 * 9 + 4 * 16 + 4


@pytest.mark.parametrize("method", ["ort", "onnx"])
def test_conv_chain_static(tmp_path, method):
    r = count_macs(_save(_conv_chain(False), tmp_path), method=method)
    hand = _hand_conv_chain(1, 32, 48)
    assert {o.name: o.macs for o in r.per_op} == hand
    assert r.total_macs == sum(hand.values())
    assert r.parameters == PARAMS_CHAIN
    assert r.other_ops == {"Relu": 1}
    assert r.macs_by_precision == {"fp32": sum(hand.values())}


@pytest.mark.parametrize("method", ["ort", "onnx"])
def test_dynamic_shapes_need_concrete_shape(tmp_path, method):
    p = _save(_conv_chain(True), tmp_path)
    with pytest.raises(ShapeError, match="dynamic dims"):
        count_macs(p, method=method)
    r = count_macs(p, {"x": (2, 3, 65, 31)}, method=method)
    assert r.total_macs == sum(_hand_conv_chain(2, 65, 31).values())
    with pytest.raises(ShapeError, match="fixed at 3"):
        count_macs(p, (1, 4, 8, 8), method=method)
    with pytest.raises(ShapeError, match="expected rank 4"):
        count_macs(p, (1, 3, 8), method=method)
    with pytest.raises(ShapeError, match="no graph input named 'y'"):
        count_macs(p, {"y": (1, 3, 8, 8)}, method=method)


@pytest.mark.parametrize("method", ["ort", "onnx"])
def test_conv_1d_3d_and_transpose(tmp_path, method):
    inits = {"w1": _w(6, 2, 5), "w3": _w(4, 1, 3, 3, 3), "wt": _w(2, 3, 4, 4)}
    m1 = _model([helper.make_node("Conv", ["x", "w1"], ["y"], strides=[3], group=2, name="c1")],
                [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 100])],
                [onnx.ValueInfoProto(name="y")], {"w1": inits["w1"]})
    r = count_macs(_save(m1, tmp_path, "c1.onnx"), method=method)
    assert r.total_macs == ((100 - 5) // 3 + 1) * 6 * 2 * 5
    m3 = _model([helper.make_node("Conv", ["x", "w3"], ["y"], strides=[2, 2, 2], group=4, name="c3")],
                [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, 9, 10, 11])],
                [onnx.ValueInfoProto(name="y")], {"w3": inits["w3"]})
    r = count_macs(_save(m3, tmp_path, "c3.onnx"), method=method)
    assert r.total_macs == 2 * 4 * 4 * 4 * 5 * 27
    mt = _model([helper.make_node("ConvTranspose", ["x", "wt"], ["y"], strides=[2, 2], name="ct")],
                [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 7, 5])],
                [onnx.ValueInfoProto(name="y")], {"wt": inits["wt"]})
    r = count_macs(_save(mt, tmp_path, "ct.onnx"), method=method)
    # each of the 2*7*5 input values meets 3 output channels x 4x4 taps
    assert r.total_macs == 2 * 7 * 5 * 3 * 16
    assert r.per_op[0].output_shape == [1, 3, 16, 12]  # (7-1)*2+4, (5-1)*2+4


@pytest.mark.parametrize("method", ["ort", "onnx"])
def test_matmul_and_gemm(tmp_path, method):
    inits = {"B": _w(12, 5), "G": _w(7, 5), "c": _w(7)}
    nodes = [helper.make_node("MatMul", ["x", "B"], ["y"], name="mm"),           # (2,3,12)@(12,5)
             helper.make_node("Reshape", ["y", "shape"], ["y2"]),
             helper.make_node("Gemm", ["y2", "G", "c"], ["z"], transB=1, name="gemm")]  # (6,5)x(5,7)
    m = _model(nodes + [], [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 12])],
               [onnx.ValueInfoProto(name="z")],
               {**inits, "shape": np.array([6, 5], dtype=np.int64)})
    r = count_macs(_save(m, tmp_path), method=method)
    assert {o.name: o.macs for o in r.per_op} == {"mm": 2 * 3 * 5 * 12, "gemm": 6 * 7 * 5}
    assert r.parameters == 12 * 5 + 7 * 5 + 7
    assert r.initializer_elements == 12 * 5 + 7 * 5 + 7 + 2


def _torch_encoder_onnx(path, dynamic=True):
    """The reference note's stand-in: Haar (depthwise s2) x2 as functional conv, grouped 1x1 convs."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F
    from torch import nn

    class Haar(nn.Module):
        def __init__(self, cin):
            super().__init__()
            h = torch.tensor([[[1, 1], [1, 1]], [[1, 1], [-1, -1]], [[1, -1], [1, -1]], [[1, -1], [-1, 1]]],
                             dtype=torch.float32) * 0.5
            self.register_buffer("w", h.unsqueeze(1).repeat(cin, 1, 1, 1))
            self.cin = cin

        def forward(self, x):
            return F.conv2d(x, self.w, stride=2, groups=self.cin)

    class Enc(nn.Module):
        def __init__(self):
            super().__init__()
            self.w1, self.w2 = Haar(4), Haar(16)
            self.pw1 = nn.Conv2d(64, 32, 1, groups=4)
            self.pw2 = nn.Conv2d(32, 16, 1, groups=4)

        def forward(self, x):
            return self.pw2(torch.relu(self.pw1(self.w2(self.w1(x)))))

    torch.manual_seed(0)
    m = Enc().eval()
    x = torch.randn(1, 4, 64, 64)
    kw = {}
    if dynamic:
        kw["dynamic_shapes"] = {"x": {2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC}}
    torch.onnx.export(m, (x,), str(path), input_names=["x"], output_names=["y"], dynamo=True,
                      external_data=False, **kw)
    return m


# reference note §6: input 1x4x240x320 -> 5,529,600 MACs (ignoring groups would give 36,864,000)
REF_MACS = 16 * 120 * 160 * 4 + 64 * 60 * 80 * 4 + 32 * 4800 * 16 + 16 * 4800 * 8
REF_PARAMS = 16 * 4 + 64 * 4 + 32 * 16 + 32 + 16 * 8 + 16


@pytest.fixture(scope="module")
def quantized_models(tmp_path_factory):
    """fp32 (torch dynamo export, dynamic H/W), its QDQ and QOperator versions via quantize_static."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    d = tmp_path_factory.mktemp("q")
    fp32 = d / "fp32.onnx"
    _torch_encoder_onnx(fp32)

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(1)
            self.it = iter([{"x": rng.standard_normal((1, 4, 32, 32)).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.it, None)

    out = {"fp32": fp32}
    for fmt in ("QDQ", "QOperator"):
        p = d / f"{fmt}.onnx"
        quantize_static(str(fp32), str(p), Reader(), quant_format=getattr(QuantFormat, fmt), per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        out[fmt] = p
    return out


@pytest.mark.parametrize("fmt", ["fp32", "QDQ", "QOperator"])
def test_reference_encoder_fp32_qdq_qoperator(quantized_models, fmt):
    p = quantized_models[fmt]
    ops = {n.op_type for n in load_graph(p).nodes}
    if fmt == "QDQ":
        assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    if fmt == "QOperator":
        assert "QLinearConv" in ops and "Conv" not in ops
    r = count_macs(p, {"x": (1, 4, 240, 320)})
    assert r.total_macs == REF_MACS == 5_529_600
    assert r.parameters == REF_PARAMS
    assert len(r.per_op) == 4
    if fmt == "fp32":
        assert r.macs_by_precision == {"fp32": REF_MACS}
    else:
        assert r.macs_by_precision == {"int8": REF_MACS}
        assert r.initializer_elements > REF_PARAMS  # scales and zero points are storage, not parameters
    assert count_macs(p, {"x": (1, 4, 240, 320)}, method="onnx").total_macs == REF_MACS


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        count_macs(tmp_path / "missing.onnx", (1,))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\xff\xff\xff\xff not onnx")
    with pytest.raises(OnnxFormatError, match="bad.onnx"):
        count_macs(bad, (1,))
    with pytest.raises(ValueError, match="unknown MAC counting method"):
        count_macs(_save(_conv_chain(False), tmp_path), method="fvcore")
