"""Read the structure of an ONNX model without the ``onnx`` package.

The edge runtime depends on onnxruntime only.  Profiling needs the graph's structure (nodes, their
inputs and outputs, initializer shapes, graph input shapes), not its weights, so this module decodes
just those fields of the protobuf wire format (about a hundred lines) and skips everything else,
including ``raw_data``.  Field numbers are those of ``onnx/onnx.proto3`` (IR version 3 onwards).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

# TensorProto.DataType -> (numpy-style name, bytes per element)
TENSOR_TYPES: dict[int, tuple[str, int]] = {
    1: ("float32", 4), 2: ("uint8", 1), 3: ("int8", 1), 4: ("uint16", 2), 5: ("int16", 2),
    6: ("int32", 4), 7: ("int64", 8), 8: ("string", 0), 9: ("bool", 1), 10: ("float16", 2),
    11: ("float64", 8), 12: ("uint32", 4), 13: ("uint64", 8), 16: ("bfloat16", 2),
}


class OnnxFormatError(ValueError):
    """The bytes are not a readable ONNX ModelProto."""


@dataclass
class TensorInfo:
    """Name, element type and dims of an initializer or Constant value (no data)."""

    name: str
    dtype: str
    dims: tuple[int, ...]

    @property
    def size(self) -> int:
        """Number of elements."""
        n = 1
        for d in self.dims:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        """Bytes of data (0 for strings)."""
        for code, (name, width) in TENSOR_TYPES.items():
            if name == self.dtype:
                return self.size * width
        return 0


@dataclass
class ValueInfo:
    """A graph input or output: name, element type and dims (int, or str for symbolic/unknown)."""

    name: str
    dtype: str
    dims: tuple[int | str, ...] | None


@dataclass
class Node:
    """One graph node with the attributes profiling needs (ints, int lists, floats, strings)."""

    name: str
    op_type: str
    domain: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, object] = field(default_factory=dict)
    value: TensorInfo | None = None  # for Constant nodes: the shape of the constant


@dataclass
class Graph:
    """The main graph of a model: nodes in file order, initializers, inputs, outputs, opsets."""

    nodes: list[Node]
    initializers: dict[str, TensorInfo]
    inputs: list[ValueInfo]
    outputs: list[ValueInfo]
    opsets: dict[str, int]

    def constants(self) -> dict[str, TensorInfo]:
        """Initializers plus the outputs of Constant nodes."""
        out = dict(self.initializers)
        for n in self.nodes:
            if n.op_type == "Constant" and n.value is not None and n.outputs:
                out[n.outputs[0]] = TensorInfo(n.outputs[0], n.value.dtype, n.value.dims)
        return out

    def real_inputs(self) -> list[ValueInfo]:
        """Graph inputs that are not initializers (old IR versions list both)."""
        return [v for v in self.inputs if v.name not in self.initializers]

    def producers(self) -> dict[str, Node]:
        """Map each value name to the node that produces it."""
        return {o: n for n in self.nodes for o in n.outputs if o}


# ---------------------------------------------------------------- wire format

def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise OnnxFormatError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise OnnxFormatError("varint too long")


def _fields(buf: memoryview):
    """Yield (field_number, wire_type, value); value is int for varint/fixed, memoryview for bytes."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = _varint(buf, pos)
        elif wt == 1:
            val, pos = struct.unpack_from("<q", buf, pos)[0], pos + 8
        elif wt == 2:
            n, pos = _varint(buf, pos)
            if pos + n > end:
                raise OnnxFormatError("truncated length-delimited field")
            val, pos = buf[pos:pos + n], pos + n
        elif wt == 5:
            val, pos = struct.unpack_from("<i", buf, pos)[0], pos + 4
        else:
            raise OnnxFormatError(f"unsupported wire type {wt}")
        yield num, wt, val


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _ints(wt: int, val) -> list[int]:
    if wt == 2:  # packed
        out, pos = [], 0
        while pos < len(val):
            v, pos = _varint(val, pos)
            out.append(_signed(v))
        return out
    return [_signed(val)]


def _str(val) -> str:
    return bytes(val).decode("utf-8", "replace")


def _tensor(buf) -> TensorInfo:
    name, dtype, dims = "", 0, []
    for num, wt, val in _fields(buf):
        if num == 1:
            dims.extend(_ints(wt, val))
        elif num == 2:
            dtype = val
        elif num == 8:
            name = _str(val)
    return TensorInfo(name, TENSOR_TYPES.get(dtype, (f"type{dtype}", 0))[0], tuple(dims))


def _attribute(buf) -> tuple[str, object, TensorInfo | None]:
    name, value, tensor, ints = "", None, None, []
    for num, wt, val in _fields(buf):
        if num == 1:
            name = _str(val)
        elif num == 2:
            value = struct.unpack("<f", struct.pack("<i", val))[0]
        elif num == 3:
            value = _signed(val)
        elif num == 4:
            value = _str(val)
        elif num == 5:
            tensor = _tensor(val)
        elif num == 8:
            ints.extend(_ints(wt, val))
    if ints:
        value = tuple(ints)
    return name, value, tensor


def _node(buf) -> Node:
    n = Node("", "", "", [], [])
    for num, wt, val in _fields(buf):
        if num == 1:
            n.inputs.append(_str(val))
        elif num == 2:
            n.outputs.append(_str(val))
        elif num == 3:
            n.name = _str(val)
        elif num == 4:
            n.op_type = _str(val)
        elif num == 5:
            aname, aval, tensor = _attribute(val)
            n.attrs[aname] = aval
            if aname == "value" and tensor is not None:
                n.value = tensor
        elif num == 7:
            n.domain = _str(val)
    return n


def _value_info(buf) -> ValueInfo:
    name, dtype, dims = "", "", None
    for num, wt, val in _fields(buf):
        if num == 1:
            name = _str(val)
        elif num == 2:  # TypeProto
            for tnum, _, tval in _fields(val):
                if tnum != 1:  # tensor_type only
                    continue
                for ttnum, _, ttval in _fields(tval):
                    if ttnum == 1:
                        dtype = TENSOR_TYPES.get(ttval, (f"type{ttval}", 0))[0]
                    elif ttnum == 2:  # TensorShapeProto
                        dims = []
                        for snum, _, sval in _fields(ttval):
                            if snum != 1:
                                continue
                            d: int | str = "?"
                            for dnum, _, dval in _fields(sval):
                                if dnum == 1:
                                    d = _signed(dval)
                                elif dnum == 2:
                                    d = _str(dval)
                            dims.append(d)
                        dims = tuple(dims)
    return ValueInfo(name, dtype, dims)


def parse_model(data: bytes) -> Graph:
    """Decode the main graph's structure from serialized ModelProto bytes."""
    buf = memoryview(data)
    graph_buf, opsets = None, {}
    try:
        for num, wt, val in _fields(buf):
            if num == 7 and wt == 2:
                graph_buf = val
            elif num == 8 and wt == 2:
                domain, version = "", 0
                for onum, _, oval in _fields(val):
                    if onum == 1:
                        domain = _str(oval)
                    elif onum == 2:
                        version = oval
                opsets[domain] = version
        if graph_buf is None:
            raise OnnxFormatError("no graph in model (is this an ONNX file?)")
        g = Graph([], {}, [], [], opsets)
        for num, wt, val in _fields(graph_buf):
            if wt != 2:
                continue
            if num == 1:
                g.nodes.append(_node(val))
            elif num == 5:
                t = _tensor(val)
                g.initializers[t.name] = t
            elif num == 11:
                g.inputs.append(_value_info(val))
            elif num == 12:
                g.outputs.append(_value_info(val))
    except (struct.error, IndexError) as exc:
        raise OnnxFormatError(f"malformed protobuf: {exc}") from exc
    return g


def load_graph(path: str | Path) -> Graph:
    """Read an ONNX file's graph structure; clear error if the file is missing or not ONNX."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"ONNX file not found: {p}")
    try:
        return parse_model(p.read_bytes())
    except OnnxFormatError as exc:
        raise OnnxFormatError(f"{p}: not a readable ONNX model ({exc})") from exc
