"""Loading encoders and decoders for the daemon.

``--model NAME|DIR`` loads the learned codec (``encoder_runtime.Encoder``); the default
(``--model default``) is the bundled default model for the source's modality
(:func:`encoder_runtime.bundle.default_model`). ``--model raw`` is a lossless pass-through (zstd of the raw samples) for debugging links and for sources whose
samples the learned bundles do not cover; its header says ``"codec": "raw-zstd"`` so any
receiver can decode it.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Protocol

import numpy as np
import zstandard

RAW_CODEC = "raw-zstd"
_RAW_HEAD = struct.Struct("<B")


class FrameEncoder(Protocol):
    """What the daemon needs from an encoder."""

    def stream_header(self, stream_id: str) -> dict: ...

    def encode_frame(self, array: np.ndarray) -> bytes: ...


class RawEncoder:
    """Lossless pass-through encoder: zstd over the raw sample bytes, shape and dtype inline."""

    def __init__(self, level: int = 1) -> None:
        self._cctx = zstandard.ZstdCompressor(level=level)

    def stream_header(self, stream_id: str) -> dict:
        """HEADER json for a raw stream."""
        return {"codec": RAW_CODEC, "stream_id": stream_id, "format": 1}

    def encode_frame(self, array: np.ndarray) -> bytes:
        """Payload = u8 meta_len, JSON {shape, dtype}, zstd(samples)."""
        arr = np.ascontiguousarray(array)
        meta = json.dumps({"s": list(arr.shape), "d": arr.dtype.str}).encode()
        return _RAW_HEAD.pack(len(meta)) + meta + self._cctx.compress(arr.tobytes())


class RawDecoder:
    """Decoder for :class:`RawEncoder` payloads, bounded like the learned decoder.

    A frame may hold at most ``max_samples`` values (the learned decoder's cap, see
    :func:`encoder_runtime.codec.default_max_samples`); the declared shape and dtype are checked
    and the zstd frame's declared size must match them before anything is decompressed.
    """

    def __init__(self, max_samples: int | None = None) -> None:
        from encoder_runtime.codec import default_max_samples

        self.max_samples = default_max_samples() if max_samples is None else int(max_samples)

    def decode_frame(self, header: dict, payload: bytes) -> np.ndarray:
        """Inverse of :meth:`RawEncoder.encode_frame`; FrameError on anything malformed."""
        from encoder_runtime.entropy import zstd_decompress_bounded
        from encoder_runtime.errors import DecodeLimitError, FrameError

        if len(payload) < 1:
            raise FrameError("raw frame: empty payload")
        (n,) = _RAW_HEAD.unpack_from(payload)
        try:
            meta = json.loads(payload[1:1 + n])
            shape, dtype = tuple(meta["s"]), np.dtype(meta["d"])
        except (ValueError, KeyError, TypeError) as e:
            raise FrameError(f"raw frame: meta must be JSON {{'s': shape, 'd': dtype}} ({e})") from None
        if not (1 <= len(shape) <= 8 and all(type(d) is int and d >= 0 for d in shape)):
            raise FrameError(f"raw frame: shape must be 1 to 8 non-negative ints, got {meta['s']!r}")
        if dtype.hasobject or dtype.kind not in "biuf":
            raise FrameError(f"raw frame: dtype must be numeric, got {dtype.str!r}")
        values = int(np.prod(shape, dtype=np.float64))
        if values > self.max_samples:
            raise DecodeLimitError(f"raw frame: shape {list(shape)} holds {values} values, "
                                   f"at most {self.max_samples} allowed")
        expect = values * dtype.itemsize
        data = zstd_decompress_bounded(payload[1 + n:], expect, "raw frame", error=FrameError)
        if len(data) != expect:
            raise FrameError(f"raw frame: expected {expect} bytes for shape {list(shape)}, got {len(data)}")
        return np.frombuffer(data, dtype).reshape(shape)


def resolve_model(model: str, modality: str | None, channels: int = 1) -> str:
    """``""``/``"default"`` → the bundled default model for the source's modality;
    ``"quality:N"`` / ``"bpp:X"`` → that rung of the modality's quality ladder (the bundled models
    ordered by measured rate, as ``sensor-codec encode -q N`` / ``--bpp X``). Audio of
    ``channels`` > 1 picks among the models coding that many channels jointly when one is
    bundled (else the mono models, each channel a batch item)."""
    from encoder_runtime.bundle import joint_channels
    joint = joint_channels(modality, channels) if modality else None
    knob, sep, value = model.partition(":")
    if sep and knob in ("quality", "bpp"):
        if modality is None:
            raise ValueError(f"model {model!r}: this source has no modality to pick a rung from; "
                             "name a model")
        from encoder_runtime.ladder import model_for_quality, model_for_rate
        try:
            return (model_for_quality(modality, int(value), joint) if knob == "quality"
                    else model_for_rate(modality, float(value), joint))
        except ValueError as exc:  # BundleError is a ValueError too
            raise ValueError(f"model {model!r}: expected quality:N (an integer) or bpp:X (a "
                             f"number): {str(exc).splitlines()[0]}") from None
    if model not in ("", "default"):
        return model
    if modality is None:
        raise ValueError("this source has no default model; name one with --model (or --model raw)")
    from encoder_runtime.bundle import default_model

    name = default_model(modality, joint)
    if not name:
        raise ValueError(f"no bundled {modality} model; name one with --model (or --model raw)")
    return name


def encoder_variant(bundle, requested: str = "") -> str:
    """The encoder graph to run: ``requested``, else the target bundle's choice, else fp32.

    A bundle written by ``sensor-export`` for a device names the variant that is fastest there
    (``manifest["target"]["default_variant"]``: ``int8`` where the CPU has dot-product
    instructions); both variants give the same codes bit for bit.
    """
    if requested:
        return requested
    target = bundle.manifest.get("target") or {}
    return str(target.get("default_variant") or "fp32")


def load_encoder(model: str, threads: int = 1, modality: str | None = "image", variant: str = "",
                 channels: int = 1) -> Any:
    """Load the encoder named by ``--model`` (``default``, a bundle name/directory, or ``raw``);
    ``channels``: the source's channel count (see :func:`resolve_model`).

    ``default`` is the bundled default model for the source's modality; the learned
    :class:`encoder_runtime.Encoder` is the normal path, ``raw`` only a debugging pass-through.
    """
    if model == "raw":
        return RawEncoder()
    from encoder_runtime import Encoder  # the learned codec (onnxruntime)
    from encoder_runtime.bundle import load_bundle

    name = resolve_model(model, modality, channels)
    bundle = load_bundle(name, verify=False)  # Encoder.load verifies every file's sha256
    if modality and bundle.modality != modality:
        raise ValueError(f"model {bundle.name!r} is a {bundle.modality} model but the source gives "
                         f"{modality} frames")
    return Encoder.load(name, threads=threads, variant=encoder_variant(bundle, variant))


def decoder_for_header(header: dict, threads: int = 1, variant: str = "model") -> Any:
    """A decoder for a stream header: raw pass-through or the learned codec (``threads`` cores);
    ``variant`` "model" runs the decoder graph the model's manifest names (``decoder.default``,
    else fp32), "fp32" the fp32 graph, "int8" / "text" the model's int8 / text-page decoder graph
    where its bundle has one, else the "model" one."""
    if header.get("codec") == RAW_CODEC:
        return RawDecoder()
    from encoder_runtime import Decoder
    from encoder_runtime.codec import DECODER_FILES

    dec = Decoder.for_header(header, threads=threads)
    if variant in ("model", dec.variant) or DECODER_FILES[variant] not in dec.bundle.manifest["files"]:
        return dec
    return Decoder(dec.bundle, threads, variant=variant)
