"""Count multiply-accumulates (MACs) and parameters of an ONNX graph for concrete input shapes.

Rule (DESIGN.md §8, reference note §6): MACs of a node = output elements × weight fan-in.

* Conv, ConvInteger, QLinearConv, FusedConv: ``prod(Y.shape) × prod(W.shape[1:])``.  ``W.shape[1]`` is
  already ``C_in / group``, so grouped and depthwise convolutions cannot be over-counted.
* ConvTranspose: ``prod(X.shape) × prod(W.shape[1:])`` (every input element meets ``C_out/group × k``
  weights).
* Gemm, QGemm: ``prod(Y.shape) × K``; MatMul, MatMulInteger, QLinearMatMul, MatMulIntegerToFloat,
  DynamicQuantizeMatMul: ``prod(Y.shape) × A.shape[-1]``.
* Bias adds, activations, Quantize/DequantizeLinear and other elementwise ops are not MACs; they are
  listed separately (``other_ops``), never folded into the total.

Shapes come from one of two sources, both concrete for the input shapes given:

* ``method="ort"`` (default, needs only onnxruntime): run the graph once in ONNX Runtime with all graph
  optimizations disabled and node profiling on, and read each node's actual input/output shapes from
  the profile.  The graph is exactly the file's graph (no fusion), so QDQ graphs count their float
  Conv nodes fed by DequantizeLinear, and QOperator graphs count QLinearConv.
* ``method="onnx"`` (imports the ``onnx`` package lazily): fix the input dims and run
  ``onnx.shape_inference.infer_shapes(strict_mode=True, data_prop=True)``.  Used to cross-check.

Parameters are the elements of the constants (initializers and Constant nodes) that feed the weight or
bias inputs of MAC ops, traced back through DequantizeLinear/QuantizeLinear/Cast/Reshape/Transpose and
the like, so an fp32 graph and its QDQ or QOperator versions report the same count (quantization
scales and zero points are not parameters).  ``initializer_elements``/``initializer_bytes`` give the
whole model's constant storage.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from math import prod
from pathlib import Path
from typing import Mapping, Sequence

from .onnx_graph import Graph, Node, load_graph, parse_model

Shape = tuple[int, ...]

# op_type -> (index of the weight input whose shape[1:] is the fan-in, kind)
_CONV_WEIGHT = {"Conv": 1, "FusedConv": 1, "ConvInteger": 1, "QLinearConv": 3, "ConvTranspose": 1}
_MATMUL_A = {"MatMul": 0, "MatMulInteger": 0, "QLinearMatMul": 0, "MatMulIntegerToFloat": 0,
             "DynamicQuantizeMatMul": 0, "FusedMatMul": 0}
_GEMM_B = {"Gemm": 1, "FusedGemm": 1, "QGemm": 3}
MAC_OPS = frozenset(_CONV_WEIGHT) | frozenset(_MATMUL_A) | frozenset(_GEMM_B)
_INTEGER_OPS = frozenset({"ConvInteger", "QLinearConv", "MatMulInteger", "QLinearMatMul", "QGemm",
                          "MatMulIntegerToFloat", "DynamicQuantizeMatMul"})
# inputs of MAC ops that hold parameters (weights, biases), by op type
_PARAM_INPUTS = {"Conv": (1, 2), "FusedConv": (1, 2), "ConvTranspose": (1, 2), "ConvInteger": (1,),
                 "QLinearConv": (3, 8), "Gemm": (0, 1, 2), "FusedGemm": (0, 1, 2), "QGemm": (0, 3, 6),
                 "MatMul": (0, 1), "FusedMatMul": (0, 1), "MatMulInteger": (0, 1),
                 "QLinearMatMul": (0, 3), "MatMulIntegerToFloat": (0, 1, 6),
                 "DynamicQuantizeMatMul": (1, 4)}
_PASS_THROUGH = frozenset({"DequantizeLinear", "QuantizeLinear", "Cast", "Reshape", "Transpose",
                           "Identity", "Squeeze", "Unsqueeze", "Flatten"})
_ORT_DTYPES = {"float": "fp32", "float16": "fp16", "double": "fp64", "bfloat16": "bf16",
               "int8": "int8", "uint8": "uint8"}


class ShapeError(ValueError):
    """Input shapes are missing, malformed or do not fit the graph."""


@dataclass
class OpMacs:
    """MACs of one node."""

    name: str
    op_type: str
    macs: int
    precision: str            # "int8" (integer or QDQ-fed weights) or the float type, e.g. "fp32"
    output_shape: list[int]
    weight_shape: list[int] | None


@dataclass
class MacReport:
    """MACs per op and in total, parameters, and how the shapes were obtained."""

    total_macs: int
    per_op: list[OpMacs]
    macs_by_op_type: dict[str, int]
    macs_by_precision: dict[str, int]
    parameters: int
    initializer_elements: int
    initializer_bytes: int
    other_ops: dict[str, int]
    input_shapes: dict[str, list[int]]
    method: str
    unsupported: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return asdict(self)


@dataclass
class _NodeShapes:
    node: Node
    in_shapes: list[Shape | None]
    out_shapes: list[Shape | None]
    in_dtypes: list[str | None]


def node_macs(op_type: str, in_shapes: Sequence[Shape | None], out_shapes: Sequence[Shape | None],
              attrs: Mapping[str, object] | None = None) -> tuple[int, Shape | None]:
    """MACs of one node from its concrete shapes; returns (macs, weight shape used)."""
    attrs = attrs or {}

    def need(seq, i, what):
        if i >= len(seq) or seq[i] is None:
            raise ShapeError(f"{op_type}: shape of {what} unknown")
        return tuple(int(d) for d in seq[i])

    if op_type in _CONV_WEIGHT:
        w = need(in_shapes, _CONV_WEIGHT[op_type], "weight")
        if op_type == "ConvTranspose":
            return prod(need(in_shapes, 0, "input")) * prod(w[1:]), w
        return prod(need(out_shapes, 0, "output")) * prod(w[1:]), w
    if op_type in _MATMUL_A:
        a = need(in_shapes, _MATMUL_A[op_type], "A")
        k = a[-2] if (op_type == "FusedMatMul" and attrs.get("transA", 0) and len(a) > 1) else a[-1]
        wi = 3 if op_type == "QLinearMatMul" else 1
        b = in_shapes[wi] if wi < len(in_shapes) else None
        return prod(need(out_shapes, 0, "output")) * k, (tuple(b) if b is not None else None)
    if op_type in _GEMM_B:
        b = need(in_shapes, _GEMM_B[op_type], "B")
        y = need(out_shapes, 0, "output")
        # B is (K, N) or, with transB, (N, K); when both dims equal N, K == N either way
        k = b[0] if b[1] == y[-1] else b[1]
        return prod(y) * k, b
    return 0, None


def _trace_constant(name: str, producers: dict[str, Node], constants: dict) -> str | None:
    seen = 0
    while name and name not in constants and seen < 16:
        node = producers.get(name)
        if node is None or node.op_type not in _PASS_THROUGH or not node.inputs:
            return None
        name, seen = node.inputs[0], seen + 1
    return name if name in constants else None


def _precision(ns: _NodeShapes, producers: dict[str, Node]) -> str:
    op = ns.node.op_type
    if op in _INTEGER_OPS:
        return "int8"
    for i in _PARAM_INPUTS.get(op, ()):
        if i < len(ns.node.inputs):
            p = producers.get(ns.node.inputs[i])
            if p is not None and p.op_type == "DequantizeLinear":
                return "int8"
    dt = ns.in_dtypes[0] if ns.in_dtypes else None
    return _ORT_DTYPES.get(dt, dt or "fp32")


def _parse_ort_type(t: str) -> str:
    return t[len("tensor("):-1] if t.startswith("tensor(") else t


def _numpy_dtype(ort_type: str):
    import numpy as np
    name = _parse_ort_type(ort_type)
    return {"float": np.float32, "double": np.float64, "float16": np.float16, "int64": np.int64,
            "int32": np.int32, "int16": np.int16, "int8": np.int8, "uint8": np.uint8,
            "uint16": np.uint16, "bool": np.bool_}.get(name, np.float32)


def resolve_input_shapes(declared: Sequence[tuple[str, Sequence[int | str | None]]],
                         given: Mapping[str, Sequence[int]] | Sequence[int] | None) -> dict[str, Shape]:
    """Combine graph input dims with user shapes; error on missing or conflicting dims.

    ``declared`` is [(name, dims)] with symbolic dims as str/None.  ``given`` maps input names to
    shapes, or is one shape for a single-input graph.
    """
    if given is not None and not isinstance(given, Mapping):
        if len(declared) != 1:
            raise ShapeError(f"graph has {len(declared)} inputs "
                             f"({', '.join(n for n, _ in declared)}); give shapes as name=shape")
        given = {declared[0][0]: tuple(given)}
    given = dict(given or {})
    names = [n for n, _ in declared]
    for k in given:
        if k not in names:
            raise ShapeError(f"no graph input named {k!r} (inputs: {', '.join(names)})")
    out: dict[str, Shape] = {}
    for name, dims in declared:
        if name in given:
            shape = tuple(int(d) for d in given[name])
            if dims is not None:
                if len(dims) != len(shape):
                    raise ShapeError(f"input {name!r}: expected rank {len(dims)} "
                                     f"({_fmt_dims(dims)}), got {_fmt_dims(shape)}")
                for i, (d, s) in enumerate(zip(dims, shape)):
                    if isinstance(d, int) and d > 0 and d != s:
                        raise ShapeError(f"input {name!r}: dim {i} is fixed at {d} in the graph "
                                         f"({_fmt_dims(dims)}), got {s}")
            if any(s <= 0 for s in shape):
                raise ShapeError(f"input {name!r}: dims must be positive, got {_fmt_dims(shape)}")
            out[name] = shape
        else:
            if dims is None or any(not (isinstance(d, int) and d > 0) for d in dims):
                raise ShapeError(f"input {name!r} has dynamic dims {_fmt_dims(dims)}; "
                                 "give a concrete shape (e.g. --shape 1x512x768x3)")
            out[name] = tuple(dims)
    return out


def _fmt_dims(dims) -> str:
    if dims is None:
        return "(unknown rank)"
    return "x".join(str(d) if d not in (None, "", -1) else "?" for d in dims)


def _shapes_from_ort(data: bytes, graph: Graph, shapes: dict[str, Shape]) -> list[_NodeShapes]:
    import numpy as np
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="sensorcodec-macs-") as tmp:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(tmp, "profile")
        so.intra_op_num_threads = 1
        so.log_severity_level = 3
        sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
        feeds = {i.name: np.zeros(shapes[i.name], dtype=_numpy_dtype(i.type)) for i in sess.get_inputs()}
        try:
            sess.run(None, feeds)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ShapeError(f"onnxruntime could not run the graph with shapes "
                             f"{ {k: _fmt_dims(v) for k, v in shapes.items()} }: "
                             f"{str(exc).splitlines()[0]}") from exc
        events = json.loads(Path(sess.end_profiling()).read_text())

    by_name = {n.name: n for n in graph.nodes if n.name}
    constants = graph.constants()
    non_const = [n for n in graph.nodes if n.op_type != "Constant"]
    out = []
    for ev in events:
        if ev.get("cat") != "Node" or not ev.get("name", "").endswith("_kernel_time"):
            continue
        args = ev.get("args", {})
        name = ev["name"][: -len("_kernel_time")]
        node = by_name.get(name)
        if node is None:
            idx = int(args.get("node_index", -1))
            if 0 <= idx < len(non_const) and non_const[idx].op_type == args.get("op_name"):
                node = non_const[idx]
            else:
                node = Node(name, args.get("op_name", "?"), "", [], [])

        def unpack(lst):
            shp, dts = [], []
            for d in lst:
                ((dt, dims),) = d.items()
                shp.append(tuple(dims))
                dts.append(dt)
            return shp, dts

        ins, in_dt = unpack(args.get("input_type_shape", []))
        outs, _ = unpack(args.get("output_type_shape", []))
        # The profile lists the present inputs in order but leaves out initializers that a kernel
        # pre-packed (e.g. ConvTranspose weights); take those shapes from the graph instead.
        if node.inputs:
            aligned: list = [None] * len(node.inputs)
            aligned_dt: list = [None] * len(node.inputs)
            j = 0
            for i, nm in enumerate(node.inputs):
                if not nm:
                    continue
                const = constants.get(nm)
                if j < len(ins) and (const is None or tuple(const.dims) == ins[j]):
                    aligned[i], aligned_dt[i] = ins[j], in_dt[j]
                    j += 1
                elif const is not None:
                    aligned[i] = tuple(const.dims)
            ins, in_dt = aligned, aligned_dt
        out.append(_NodeShapes(node, ins, outs, in_dt))
    return out


def _shapes_from_onnx(data: bytes, shapes: dict[str, Shape]) -> list[_NodeShapes]:
    try:
        import onnx  # lazy: only this cross-check path needs the onnx package
        from onnx import shape_inference
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("method='onnx' needs the onnx package (pip install onnx); "
                          "the default method='ort' needs only onnxruntime") from exc
    model = onnx.load_from_string(data)
    for vi in model.graph.input:
        if vi.name in shapes:
            dims = vi.type.tensor_type.shape.dim
            del dims[:]
            for d in shapes[vi.name]:
                dims.add().dim_value = int(d)
    try:
        model = shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except Exception as exc:
        raise ShapeError(f"onnx shape inference failed: {str(exc).splitlines()[0]}") from exc
    known: dict[str, tuple[Shape | None, str | None]] = {}
    tnames = {v: k for k, v in onnx.TensorProto.DataType.items()}
    for vi in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
        tt = vi.type.tensor_type
        dims = (tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
                if tt.HasField("shape") else (None,))
        known[vi.name] = (None if None in dims else dims,
                          {"FLOAT": "float", "DOUBLE": "double", "FLOAT16": "float16"}.get(
                              tnames.get(tt.elem_type, ""), tnames.get(tt.elem_type, "").lower()))
    for init in model.graph.initializer:
        known[init.name] = (tuple(init.dims), None)
    for node in model.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    known[node.output[0]] = (tuple(a.t.dims), None)
    graph = parse_model(data)
    out = []
    for node in graph.nodes:
        if node.op_type == "Constant":
            continue
        ins = [known.get(i, (None, None))[0] if i else None for i in node.inputs]
        dts = [known.get(i, (None, None))[1] if i else None for i in node.inputs]
        outs = [known.get(o, (None, None))[0] for o in node.outputs]
        out.append(_NodeShapes(node, ins, outs, dts))
    return out


def count_macs(model: str | Path | bytes, input_shapes: Mapping[str, Sequence[int]] | Sequence[int] | None = None,
               method: str = "ort") -> MacReport:
    """Count MACs per op and in total, and parameters, for concrete input shapes.

    ``model`` is a path or serialized bytes; ``input_shapes`` maps input names to shapes (or is one
    shape for a single-input graph); fixed graph dims may be omitted.  ``method`` is ``"ort"``
    (default, onnxruntime only) or ``"onnx"`` (lazy ``onnx`` import, shape inference).
    """
    if isinstance(model, (str, Path)):
        graph = load_graph(model)
        data = Path(model).read_bytes()
    else:
        data = bytes(model)
        graph = parse_model(data)
    declared = [(v.name, v.dims) for v in graph.real_inputs()]
    shapes = resolve_input_shapes(declared, input_shapes)
    if method == "ort":
        node_shapes = _shapes_from_ort(data, graph, shapes)
    elif method == "onnx":
        node_shapes = _shapes_from_onnx(data, shapes)
    else:
        raise ValueError(f"unknown MAC counting method {method!r} (expected 'ort' or 'onnx')")

    producers = graph.producers()
    constants = graph.constants()
    per_op: list[OpMacs] = []
    other: Counter = Counter()
    unsupported: list[str] = []
    params: set[str] = set()
    for ns in node_shapes:
        op = ns.node.op_type
        if op not in MAC_OPS:
            other[op] += 1
            if any(k in op for k in ("Conv", "MatMul", "Gemm", "Attention", "LSTM", "GRU", "RNN",
                                     "Einsum")):
                unsupported.append(f"{ns.node.name or op}:{op}")
            continue
        macs, wshape = node_macs(op, ns.in_shapes, ns.out_shapes, ns.node.attrs)
        per_op.append(OpMacs(ns.node.name or f"{op}_{len(per_op)}", op, int(macs), _precision(ns, producers),
                             list(ns.out_shapes[0]) if ns.out_shapes and ns.out_shapes[0] else [],
                             list(wshape) if wshape else None))
        for i in _PARAM_INPUTS.get(op, ()):
            if i < len(ns.node.inputs) and ns.node.inputs[i]:
                c = _trace_constant(ns.node.inputs[i], producers, constants)
                if c is not None:
                    params.add(c)
    by_type: Counter = Counter()
    by_prec: Counter = Counter()
    for o in per_op:
        by_type[o.op_type] += o.macs
        by_prec[o.precision] += o.macs
    return MacReport(
        total_macs=sum(o.macs for o in per_op),
        per_op=per_op,
        macs_by_op_type=dict(by_type),
        macs_by_precision=dict(by_prec),
        parameters=sum(constants[p].size for p in params),
        initializer_elements=sum(t.size for t in constants.values()),
        initializer_bytes=sum(t.nbytes for t in constants.values()),
        other_ops=dict(other),
        input_shapes={k: list(v) for k, v in shapes.items()},
        method=method,
        unsupported=unsupported,
    )
