"""The native encoder backend: the bundle's integer encoder run by ``encoder_runtime._scencoder``.

The extension (``encoder_runtime/_scencoder.c`` + ``csrc/sc_host_encoder.c``) computes the codes
of ``docs/bundle-format.md`` from the bundle's ``encoder_int.npz`` (int8 weights, int32 bias and
shift): block gather, dot products and round-half-even requantization in one pass, written into
the caller's int8 buffer. Its codes are bit-identical to the int8 ONNX graph
(tests/test_native_encoder.py). It is optional: without a C compiler, or for a bundle without
``encoder_int.npz``, :class:`~encoder_runtime.codec.Encoder` runs the ONNX graph.
"""

from __future__ import annotations

import io

import numpy as np

from .bundle import Bundle

INT_WEIGHTS = "encoder_int.npz"
DTYPE_CODES = {"uint8": 0, "int16": 1, "uint16": 2}
"""Sample dtypes the kernel reads, and their code in ``_scencoder.encode``."""
MAX_DIMS, MAX_LATENT = 3, 256


class NativeEncoderUnavailable(RuntimeError):
    """The extension is not built, or this bundle cannot run on it (the reason is the message)."""


def _extension():
    try:
        from . import _scencoder
    except ImportError as exc:
        raise NativeEncoderUnavailable(f"native extension encoder_runtime._scencoder is not built "
                                       f"({exc}); pip install with a C compiler") from None
    return _scencoder


def isa() -> str:
    """The instruction set the kernel runs with on this machine (e.g. "avx512f", "neon")."""
    return _extension().isa()


class NativeKernel:
    """The integer encoder of one bundle on the native kernel (``weight``, ``bias``, ``shift``:
    its checked integer parameters; ``block``, ``c_in``, ``c_lat``, ``code_max``: its geometry)."""

    def __init__(self, bundle: Bundle) -> None:
        self._ext = _extension()
        m, name = bundle.manifest, f"{bundle.path}/{INT_WEIGHTS}"
        if INT_WEIGHTS not in m["files"]:
            raise NativeEncoderUnavailable(f"{bundle.path}: manifest lists no {INT_WEIGHTS}")
        dtype = bundle.sample_dtype
        if dtype not in DTYPE_CODES:
            raise NativeEncoderUnavailable(f"model {bundle.name!r}: sample dtype {dtype}; the native "
                                           f"kernel reads {', '.join(DTYPE_CODES)}")
        with np.load(io.BytesIO(bundle.read_verified(INT_WEIGHTS)), allow_pickle=False) as z:
            missing = {"weight", "bias", "shift"} - set(z.files)
            if missing:
                raise NativeEncoderUnavailable(f"{name}: missing arrays {sorted(missing)}")
            w, b, s = z["weight"], z["bias"], z["shift"]
        block = tuple(int(n) for n in m["transform"]["block"])
        c_lat, c_in = int(m["latent"]["channels"]), bundle.channels
        want = (c_lat, c_in) + block
        if w.dtype != np.int8 or w.shape != want:
            raise NativeEncoderUnavailable(f"{name}: field 'weight': expected int8 {want}, got "
                                           f"{w.dtype} {w.shape}")
        for field, a in (("bias", b), ("shift", s)):
            if a.dtype != np.int32 or a.shape != (c_lat,):
                raise NativeEncoderUnavailable(f"{name}: field {field!r}: expected int32 ({c_lat},), "
                                               f"got {a.dtype} {a.shape}")
        code_max = int(m["latent"]["code_max"])
        if not 1 <= code_max <= 127 or not 1 <= len(block) <= MAX_DIMS or c_lat > MAX_LATENT:
            raise NativeEncoderUnavailable(f"model {bundle.name!r}: code_max {code_max}, "
                                           f"{len(block)}-D blocks, {c_lat} latent channels; the "
                                           f"native kernel takes 1..127, 1..{MAX_DIMS}-D, "
                                           f"<= {MAX_LATENT}")
        self.block, self.c_in, self.c_lat, self.code_max = block, c_in, c_lat, code_max
        self._dtype, self._code = np.dtype(dtype), DTYPE_CODES[dtype]
        self.weight, self.bias, self.shift = (np.ascontiguousarray(a) for a in (w, b, s))

    def code_shape(self, batch_shape: tuple[int, ...]) -> tuple[int, ...]:
        """(N, C_lat, *latent) for a (N, *spatial, C) batch whose spatial sizes fit the block."""
        return (batch_shape[0], self.c_lat) + tuple(
            n // k for n, k in zip(batch_shape[1:-1], self.block))

    def encode_into(self, batch: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Write the codes of a C-contiguous (N, *spatial, C) batch into int8 ``out``; returns it."""
        if batch.dtype != self._dtype:
            raise ValueError(f"native encoder: samples must be {self._dtype}, got {batch.dtype}")
        self._ext.encode(batch, self._code, batch.shape[1:-1], self.block, self.c_in, self.weight,
                         self.bias, self.shift, self.code_max, out)
        return out
