"""Encoder / Decoder on ONNX Runtime: the public codec API.

    from encoder_runtime import Encoder, Decoder
    enc = Encoder.load("rgb-c16")        # bundled model name or bundle folder
    blob = enc.encode(image)             # bytes: a one-frame container stream
    out = Decoder.for_stream(blob).decode(blob)

Images are H×W×C or H×W uint8 of any size (edge-padded to the block size inside, cropped on
decode); audio is samples×channels (or samples) int16 or float in [-1, 1]; other modalities are
N-D arrays of the bundle's sample dtype. Each channel of a multi-channel signal that the model
sees as mono is coded as one batch item.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np

from . import container
from .bundle import Bundle, BundleError, load_bundle
from .entropy import get_coder
from .frame import FrameError, pack_frame, parse_frame


class CodecError(ValueError):
    """The input does not fit the model (wrong modality, dtype, size...)."""


def _session(path: Path, threads: int):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class _Model:
    """What Encoder and Decoder share: a verified bundle and its geometry."""

    def __init__(self, bundle: Bundle, threads: int = 1) -> None:
        self.bundle = bundle
        self.threads = threads

    @classmethod
    def load(cls, name_or_path: str | Path, *, threads: int = 1, **kw):
        """Load a bundled model by name, or a bundle folder."""
        return cls(load_bundle(name_or_path), threads=threads, **kw)

    @property
    def name(self) -> str:
        return self.bundle.name


class Encoder(_Model):
    """Runs the integer-exact encoder graph and the lossless coder."""

    def __init__(self, bundle: Bundle, threads: int = 1, variant: str = "fp32",
                 coder: str | None = None) -> None:
        super().__init__(bundle, threads)
        files = {"fp32": "encoder.onnx", "int8": "encoder_int8.onnx"}
        if variant not in files:
            raise CodecError(f"unknown encoder variant {variant!r} (fp32 or int8)")
        self.variant = variant
        self._sess = _session(bundle.file(files[variant]), threads)
        self.coder = get_coder(coder or bundle.manifest["coder"]["default"])

    # --- input handling -------------------------------------------------------------------
    def _to_batch(self, array: np.ndarray) -> tuple[np.ndarray, str]:
        """Validate and convert an input array to the graph's (N, *spatial, C) sample layout."""
        b = self.bundle
        a = np.asarray(array)
        mod, ch, dims = b.modality, b.channels, b.dims
        if a.size == 0:
            raise CodecError("input array is empty")
        dtype = str(a.dtype)
        if mod == "image":
            if a.dtype != np.uint8:
                raise CodecError(f"model {b.name!r} encodes uint8 images; got dtype {a.dtype}")
            if a.ndim == 2:
                a = np.repeat(a[:, :, None], ch, axis=2)
            if a.ndim != 3 or a.shape[2] != ch:
                raise CodecError(f"model {b.name!r} expects an H×W or H×W×{ch} image; got shape "
                                 f"{tuple(np.asarray(array).shape)}")
            batch = a[None]
        elif mod == "audio":
            if a.ndim == 1:
                a = a[:, None]
            if a.ndim != 2:
                raise CodecError(f"model {b.name!r} expects samples or samples×channels audio; "
                                 f"got shape {a.shape}")
            if a.dtype.kind == "f":
                a = np.clip(np.round(a * 32767.0), -32768, 32767).astype(np.int16)
            elif a.dtype != np.int16:
                raise CodecError(f"model {b.name!r} encodes int16 or float audio; got {a.dtype}")
            if ch == 1:
                batch = np.ascontiguousarray(a.T)[:, :, None]     # each channel a batch item
            elif a.shape[1] == ch:
                batch = a[None]
            else:
                raise CodecError(f"model {b.name!r} expects {ch} audio channels; got {a.shape[1]}")
        else:
            want = np.dtype(b.sample_dtype)
            if a.dtype != want:
                raise CodecError(f"model {b.name!r} encodes {want} arrays; got {a.dtype}")
            if a.ndim == dims:
                a = a[..., None]
            if a.ndim != dims + 1 or a.shape[-1] != ch:
                raise CodecError(f"model {b.name!r} expects {dims}-D arrays with {ch} channels "
                                 f"(last axis); got shape {a.shape}")
            batch = a[None]
        spatial = batch.shape[1:-1]
        for axis, (n, blk) in enumerate(zip(spatial, b.block)):
            if n < blk:
                raise CodecError(f"input is too small: axis {axis} has {n} samples, model "
                                 f"{b.name!r} needs at least {blk} (one {blk}-sample block)")
        pad = [(0, 0)] + [(0, (-n) % blk) for n, blk in zip(spatial, b.block)] + [(0, 0)]
        if any(p[1] for p in pad):
            batch = np.pad(batch, pad, mode="edge")
        return np.ascontiguousarray(batch), dtype

    # --- encoding -------------------------------------------------------------------------
    def codes(self, array: np.ndarray) -> np.ndarray:
        """The integer codes (N, C_lat, *latent) int8 for one frame."""
        batch, _ = self._to_batch(array)
        return self._sess.run(None, {"samples": batch})[0]

    def encode_frame(self, array: np.ndarray) -> bytes:
        """FRAME record payload for one frame."""
        batch, dtype = self._to_batch(array)
        codes = self._sess.run(None, {"samples": batch})[0]
        flat = codes.reshape((-1,) + codes.shape[2:]) if codes.shape[0] > 1 else codes[0]
        data = self.coder.encode(np.ascontiguousarray(flat))
        return pack_frame(self.coder.name, dtype, tuple(np.asarray(array).shape),
                          tuple(codes.shape), data)

    def stream_header(self, stream_id: str | None = None, **extra) -> dict:
        """HEADER record contents for a stream produced by this encoder."""
        m = self.bundle.manifest
        return {"format": "sensorcodec-stream", "bundle": {"name": m["name"],
                "manifest_sha256": self.bundle.manifest_sha256},
                "modality": m["modality"], "sample": m["sample"],
                # the rest of the transform is pinned by the manifest sha256; keep what a reader
                # without the bundle needs to interpret the codes
                "transform": {"block": m["transform"]["block"]},
                "latent": {k: m["latent"][k] for k in ("channels", "code_max")},
                "coder": self.coder.name, "encoder_variant": self.variant,
                "stream_id": stream_id or uuid.uuid4().hex,
                "clock": {"mono_ns": time.monotonic_ns(), "wall_ns": time.time_ns()}, **extra}

    def encode(self, array: np.ndarray, stream_id: str | None = None,
               meta: dict | None = None) -> bytes:
        """A complete one-frame stream (what `sensor-codec encode` writes).

        ``meta`` (JSON-serialisable, e.g. ``{"rate_hz": 16000}``) is kept in the header.
        """
        payload = self.encode_frame(array)
        hdr = self.stream_header(stream_id, **({"meta": meta} if meta else {}))
        return container.write_stream([
            container.header_record(hdr, 0, hdr["clock"]["mono_ns"], hdr["clock"]["wall_ns"]),
            container.Record(container.RecordType.FRAME, 0, payload, time.monotonic_ns(),
                             time.time_ns())])


class Decoder(_Model):
    """Runs the lossless decoder and the decoder graph."""

    def __init__(self, bundle: Bundle, threads: int = 1) -> None:
        super().__init__(bundle, threads)
        self._sess = None

    @classmethod
    def for_header(cls, header: dict, *, threads: int = 1, models_dir: Path | None = None
                   ) -> "Decoder":
        """The decoder for a stream header: the bundled model it names, sha256-checked."""
        info = header.get("bundle") or {}
        name = info.get("name")
        if not name:
            raise container.ContainerError("stream header names no model bundle")
        where = (Path(models_dir) / name) if models_dir else name
        try:
            bundle = load_bundle(where)
        except BundleError as exc:
            raise BundleError(f"stream was encoded with model {name!r}: {exc}") from None
        want = info.get("manifest_sha256")
        if want and want != bundle.manifest_sha256:
            raise BundleError(f"stream was encoded with a different version of model {name!r} "
                              f"(manifest sha256 {want[:12]}…, installed {bundle.manifest_sha256[:12]}…)")
        return cls(bundle, threads)

    @classmethod
    def for_stream(cls, blob: bytes, **kw) -> "Decoder":
        """The decoder for a container stream (reads its header)."""
        header, _ = container.read_stream(blob)
        return cls.for_header(header, **kw)

    def _check_header(self, header: dict) -> None:
        name = (header.get("bundle") or {}).get("name")
        if name and name != self.bundle.name:
            raise CodecError(f"stream was encoded with model {name!r}, not {self.bundle.name!r}")

    def decode_codes(self, codes: np.ndarray) -> np.ndarray:
        """Raw decoder output (N, C, *spatial) float32 for codes (N, C_lat, *latent)."""
        if self._sess is None:
            self._sess = _session(self.bundle.file("decoder.onnx"), self.threads)
        return self._sess.run(None, {"codes": codes.astype(np.float32)})[0]

    def decode_frame(self, header: dict, payload: bytes) -> np.ndarray:
        """Reconstruct one frame from its FRAME payload."""
        self._check_header(header)
        info = parse_frame(payload)
        b = self.bundle
        if info.code_shape[1] != b.latent_channels or len(info.code_shape) != b.dims + 2:
            raise FrameError(f"frame codes {info.code_shape} do not fit model {b.name!r}")
        n = int(np.prod(info.code_shape))
        if n > (1 << 30):
            raise FrameError(f"frame declares {n} codes; refusing")
        flat_shape = ((info.code_shape[0] * info.code_shape[1],) + info.code_shape[2:]
                      if info.code_shape[0] > 1 else info.code_shape[1:])
        coder = get_coder(info.coder)
        codes = coder.decode(bytes(payload[info.data_offset:]), flat_shape).reshape(info.code_shape)
        out = self.decode_codes(codes)                      # (N, C, *spatial) float
        return self._to_array(out, info)

    def _to_array(self, out: np.ndarray, info) -> np.ndarray:
        b = self.bundle
        out = np.moveaxis(out, 1, -1)                       # (N, *spatial, C)
        shape = info.shape
        if b.modality == "image":
            h, w = shape[0], shape[1]
            img = out[0, :h, :w]
            if len(shape) == 2:
                img = img.mean(axis=-1)
            return np.clip(np.round(img), 0, 255).astype(np.uint8)
        if b.modality == "audio":
            t = shape[0]
            x = out[:, :t, :]
            x = x[:, :, 0].T if b.channels == 1 else x[0]
            x = np.clip(np.round(x), -32768, 32767)
            if info.dtype.startswith("float"):
                x = (x / 32767.0).astype(info.dtype)
            else:
                x = x.astype(np.int16)
            return x.reshape(shape)
        crop = tuple(slice(0, n) for n in shape[: b.dims])
        x = out[(0,) + crop]
        if len(shape) == b.dims:
            x = x[..., 0]
        info_dt = np.dtype(info.dtype)
        if info_dt.kind in "iu":
            lim = np.iinfo(info_dt)
            x = np.clip(np.round(x), lim.min, lim.max)
        return x.astype(info_dt)

    def frames(self, blob: bytes) -> list[np.ndarray]:
        """Decode every FRAME of a stream."""
        header, records = container.read_stream(blob)
        return [self.decode_frame(header, r.payload) for r in records
                if r.type == container.RecordType.FRAME]

    def decode(self, blob: bytes) -> np.ndarray:
        """Decode the first frame of a stream (a file written by `Encoder.encode`)."""
        header, records = container.read_stream(blob)
        for r in records:
            if r.type == container.RecordType.FRAME:
                return self.decode_frame(header, r.payload)
        raise container.ContainerError("stream holds no FRAME record")
