"""Encoder / Decoder on ONNX Runtime: the public codec API.

    from encoder_runtime import Encoder, Decoder
    enc = Encoder.load("rgb-c16")        # bundled model name or bundle folder
    blob = enc.encode(image)             # bytes: a one-frame container stream
    out = Decoder.for_stream(blob).decode(blob)

Images are H×W×C or H×W uint8 of any size (edge-padded to the block size inside, cropped on
decode); audio is samples×channels (or samples) int16 or float in [-1, 1]; other modalities are
N-D arrays of the bundle's sample dtype. Each channel of a multi-channel signal that the model
sees as mono is coded as one batch item.

Decoding treats streams as hostile: the header must name a bundled model (or one in the
``models_dir`` the caller trusts) and pin its manifest sha256; a frame's declared array shape,
dtype and code shape must be exactly what the model makes of that array, and the array may hold
at most ``max_samples`` values (:data:`DEFAULT_MAX_SAMPLES`, or the environment variable
``SENSORCODEC_MAX_DECODE_SAMPLES``) — all checked before anything is decompressed or run.
Malformed input raises :class:`~encoder_runtime.errors.MalformedInputError` subclasses.
"""

from __future__ import annotations

import math
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from . import container
from .bundle import SHA256_PATTERN, Bundle, BundleError, check_model_name, load_bundle
from .entropy import DEFAULT_CODER, CoderUnavailableError, get_coder, get_coder_or_fallback
from .errors import ContainerError, DecodeLimitError, FrameError
from .frame import FrameInfo, pack_frame, parse_frame
from .native_encoder import NativeEncoderUnavailable, NativeKernel
from .noisefill import apply as apply_noise_fill, parse_noise_fill
from .postfilter import apply as apply_postfilter, parse_postfilter

#: Decoder graph file per variant (the int8 one reads its weights from decoder.onnx; the text one
#: is a self-contained decoder for the same codes, tuned for OCR of text pages).
DECODER_FILES = {"fp32": "decoder.onnx", "int8": "decoder_int8.onnx", "text": "decoder_text.onnx"}
#: decoder_int8.onnx metadata: sha256 of the decoder.onnx it takes its weights from.
INT8_WEIGHTS_KEY = "sensorcodec.weights_sha256"


def default_decoder_variant(bundle: Bundle) -> str:
    """The decoder variant a bundle declares in its manifest field ``decoder.default`` (a key of
    :data:`DECODER_FILES` whose file the bundle has); "fp32" when the field is absent."""
    spec = bundle.manifest.get("decoder", {"default": "fp32"})
    where = f"{bundle.path / 'manifest.json'}: field 'decoder"
    if not isinstance(spec, dict):
        raise BundleError(f"{where}': expected an object such as {{\"default\": \"int8\"}}, "
                          f"got {spec!r}")
    variant, where = spec.get("default"), where + ".default'"
    if variant not in DECODER_FILES:
        raise BundleError(f"{where}: expected one of {', '.join(map(repr, DECODER_FILES))}, got "
                          f"{variant!r}")
    if DECODER_FILES[variant] not in bundle.manifest["files"]:
        raise BundleError(f"{where} is {variant!r} but {DECODER_FILES[variant]} is not in "
                          f"'files'")
    return variant

#: Default cap on the values one decoded frame may hold (2**24: e.g. 2364x2364 RGB). Decoding
#: peaks at about 90 bytes per value (float32 activations of the decoder graph), ~1.5 GB here.
DEFAULT_MAX_SAMPLES = 1 << 24
MAX_SAMPLES_ENV = "SENSORCODEC_MAX_DECODE_SAMPLES"


class CodecError(ValueError):
    """The input does not fit the model (wrong modality, dtype, size...)."""


ENCODER_GRAPHS = {"fp32": "encoder.onnx", "int8": "encoder_int8.onnx"}
BACKENDS = ("native", "onnx", "auto")
BACKEND_ENV = "SENSORCODEC_ENCODER_BACKEND"
DEFAULT_BACKEND = "auto"
"""The backend when neither the caller nor the environment names one: the native kernel where
available (the same codes; rgb-c16 encodes 1.8x faster end to end than with the int8 graph)."""


def _pick_backend(bundle: Bundle, backend: str | None) -> tuple[NativeKernel | None, str]:
    """(native kernel or None, backend name) for ``backend`` (see :class:`Encoder`)."""
    env = os.environ.get(BACKEND_ENV, "").strip()
    want = backend or env or DEFAULT_BACKEND
    if want not in BACKENDS:
        where = "backend" if backend else f"environment variable {BACKEND_ENV}"
        raise CodecError(f"{where}: unknown encoder backend {want!r} (native, onnx or auto)")
    if want == "onnx":
        return None, "onnx"
    try:
        return NativeKernel(bundle), "native"
    except NativeEncoderUnavailable as exc:
        if want == "native":
            raise CodecError(f"encoder backend 'native' for model {bundle.name!r}: {exc}") from None
        return None, "onnx"


def _session(model: bytes, threads: int, spin: bool = True,
             external: dict[str, bytes] | None = None):
    """An ONNX Runtime session from verified model bytes (never from a path read later).

    ``external``: file name → verified bytes for tensors the model keeps as ONNX external data
    (the int8 decoder's weights live in the bundle's decoder.onnx).

    ``spin=False``: idle intra-op threads sleep instead of busy-waiting between nodes (the
    decoder's many nodes: ~30 % less CPU per frame on 2 threads, and faster on a shared machine).
    """
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    if external:
        if not hasattr(opts, "add_external_initializers_from_files_in_memory"):
            raise CodecError(f"onnxruntime {ort.__version__} cannot take external weights from "
                             f"memory (SessionOptions.add_external_initializers_from_files_in_"
                             f"memory); the int8 decoder needs a newer onnxruntime")
        names = list(external)
        opts.add_external_initializers_from_files_in_memory(
            names, [external[n] for n in names], [len(external[n]) for n in names])
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


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
    """Runs the integer encoder and the lossless coder.

    ``backend``: "native" (the integer kernel of ``encoder_runtime._scencoder`` on the bundle's
    ``encoder_int.npz``), "onnx" (the ``variant`` graph on ONNX Runtime), "auto" (native where
    the extension is built and the bundle can run on it, else onnx), or None: the environment
    variable ``SENSORCODEC_ENCODER_BACKEND`` if set, else :data:`DEFAULT_BACKEND`. Every backend
    and variant writes the same codes; ``variant`` names the graph the onnx backend runs (and the
    stream header keeps it).
    """

    def __init__(self, bundle: Bundle, threads: int = 1, variant: str = "fp32",
                 coder: str | None = None, backend: str | None = None) -> None:
        super().__init__(bundle, threads)
        if variant not in ENCODER_GRAPHS:
            raise CodecError(f"unknown encoder variant {variant!r} (fp32 or int8)")
        self.variant = variant
        spec = bundle.manifest["coder"]
        self.coder = (get_coder(coder) if coder else
                      get_coder_or_fallback(spec["default"], spec.get("fallback", DEFAULT_CODER)))
        self._local = threading.local()      # per thread: IOBinding + output buffers by shape
        self._onnx, self._onnx_lock = None, threading.Lock()
        bundle.file(ENCODER_GRAPHS[variant])  # BundleError now if the bundle lacks the graph
        self._native, self.backend = _pick_backend(bundle, backend)
        if self.backend == "onnx":
            _ = self._sess                   # load (and verify) the graph now, not on frame 1

    @property
    def _sess(self):
        """The ``variant`` graph's ONNX Runtime session (built on first use)."""
        with self._onnx_lock:
            if self._onnx is None:
                self._onnx = _session(self.bundle.read_verified(ENCODER_GRAPHS[self.variant]),
                                      self.threads)
        return self._onnx

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
            bits = b.manifest["sample"].get("bits")
            if bits and int(a.max()) > 2 ** int(bits) - 1:
                raise CodecError(f"model {b.name!r} encodes {bits}-bit samples (0..{2 ** int(bits) - 1}"
                                 f" in {want}); the array holds {int(a.max())}")
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

    def check_frame(self, shape: tuple[int, ...], dtype) -> None:
        """Raise :class:`CodecError` unless frames of ``shape`` and ``dtype`` can be encoded (the
        checks :meth:`encode_frame` makes, without running the model)."""
        self._to_batch(np.zeros(shape, dtype))

    # --- encoding -------------------------------------------------------------------------
    def codes(self, array: np.ndarray) -> np.ndarray:
        """The integer codes (N, C_lat, *latent) int8 for one frame."""
        batch, _ = self._to_batch(array)
        if self._native is not None:
            return self._native.encode_into(batch, np.empty(self._native.code_shape(batch.shape),
                                                            np.int8))
        return self._sess.run(None, {"samples": batch})[0]

    def _codes_into_buffer(self, batch: np.ndarray) -> np.ndarray:
        """The codes for ``batch`` in this thread's reused output buffer for its shape.

        The samples are read in place and the int8 codes land in a buffer allocated once per
        input shape (and thread): no per-frame allocation or copy between encoder and coder. The
        buffer is overwritten by the next frame of the same shape in the same thread.
        """
        loc = self._local
        if not hasattr(loc, "out"):
            loc.out = {}
        out = loc.out.get(batch.shape)
        if out is None:
            if len(loc.out) >= 8:                   # a stream of ever-new shapes: keep a few
                loc.out.clear()
            lat = tuple(n // k for n, k in zip(batch.shape[1:-1], self.bundle.block))
            buf = np.empty((batch.shape[0], self.bundle.latent_channels) + lat, np.int8)
            out = loc.out[batch.shape] = (buf, None)
        if self._native is not None:
            return self._native.encode_into(batch, out[0])
        import onnxruntime as ort
        if out[1] is None:
            out = loc.out[batch.shape] = (out[0], ort.OrtValue.ortvalue_from_numpy(out[0]))
        if not hasattr(loc, "io"):
            loc.io = self._sess.io_binding()
        loc.io.bind_cpu_input("samples", batch)
        loc.io.bind_ortvalue_output("codes", out[1])
        try:
            self._sess.run_with_iobinding(loc.io)
        finally:
            loc.io.clear_binding_inputs()           # do not keep the caller's frame alive
        return out[0]

    def encode_frame(self, array: np.ndarray) -> bytes:
        """FRAME record payload for one frame."""
        batch, dtype = self._to_batch(array)
        codes = self._codes_into_buffer(batch)
        flat = codes.reshape((-1,) + codes.shape[2:]) if codes.shape[0] > 1 else codes[0]
        data = self.coder.encode(flat)
        return pack_frame(self.coder.name, dtype, np.shape(array), codes.shape, data)

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
        return self.encode_frames([array], stream_id, meta)

    def encode_frames(self, arrays: list[np.ndarray], stream_id: str | None = None,
                      meta: dict | None = None) -> bytes:
        """A complete stream of one FRAME record per array (e.g. a video's frame groups)."""
        hdr = self.stream_header(stream_id, **({"meta": meta} if meta else {}))
        records = [container.header_record(hdr, 0, hdr["clock"]["mono_ns"],
                                           hdr["clock"]["wall_ns"])]
        for seq, array in enumerate(arrays):
            records.append(container.Record(container.RecordType.FRAME, seq,
                                            self.encode_frame(array), time.monotonic_ns(),
                                            time.time_ns()))
        return container.write_stream(records)


def default_max_samples() -> int:
    """The decode size cap: ``$SENSORCODEC_MAX_DECODE_SAMPLES`` if set, else the default."""
    env = os.environ.get(MAX_SAMPLES_ENV, "").strip()
    if not env:
        return DEFAULT_MAX_SAMPLES
    try:
        value = int(env)
    except ValueError:
        value = 0
    if value <= 0:
        raise ValueError(f"environment variable {MAX_SAMPLES_ENV}={env!r}: expected a positive "
                         f"integer (values per decoded frame)")
    return value


def stream_model(header: dict) -> tuple[str, str | None]:
    """(model name, manifest sha256 or None) that a stream header names; ContainerError if bad.

    The name is only ever a name (checked against the bundle name pattern), never a path.
    """
    info = header.get("bundle")
    if info is None:
        raise ContainerError("stream header field 'bundle': missing (expected an object naming "
                             "the model)")
    if not isinstance(info, dict):
        raise ContainerError(f"stream header field 'bundle': expected an object, got "
                             f"{type(info).__name__}")
    try:
        name = check_model_name(info.get("name"), "stream header field 'bundle.name'")
    except BundleError as exc:
        raise ContainerError(str(exc)) from None
    pin = info.get("manifest_sha256")
    if pin is not None and (not isinstance(pin, str) or not SHA256_PATTERN.fullmatch(pin)):
        raise ContainerError(f"stream header field 'bundle.manifest_sha256': expected 64 hex "
                             f"digits, got {pin!r:.80}")
    return name, pin


class Decoder(_Model):
    """Runs the lossless decoder and the decoder graph.

    ``max_samples`` caps the values one decoded frame may hold (default
    :func:`default_max_samples`); larger frames raise :class:`DecodeLimitError` before any
    allocation. The decoder graph is read through :meth:`Bundle.read_verified` when first used.
    Audio models whose manifest has a ``postfilter`` field run it on the decoded samples
    (:mod:`encoder_runtime.postfilter`) unless ``postfilter=False``, and those with a
    ``noise_fill`` field fill their zero codes before the decoder graph
    (:mod:`encoder_runtime.noisefill`) unless ``noise_fill=False`` (default: as ``postfilter``).
    ``variant="int8"`` runs the bundle's static-int8 decoder graph (``decoder_int8.onnx``, made by
    export/decoder_int8.py for some image models): faster, a little lower PSNR (docs/models.md).
    ``variant="text"`` runs the bundle's text-page decoder (``decoder_text.onnx``, made by
    export/text_variant.py): the same codes decoded for OCR (fewer character errors on documents).
    ``variant=None`` (default) runs the one the manifest's ``decoder.default`` names (fp32 when
    the field is absent; :func:`default_decoder_variant`).
    """

    def __init__(self, bundle: Bundle, threads: int = 1, max_samples: int | None = None,
                 postfilter: bool = True, noise_fill: bool | None = None,
                 variant: str | None = None) -> None:
        super().__init__(bundle, threads)
        variant = default_decoder_variant(bundle) if variant is None else variant
        if variant not in DECODER_FILES:
            raise CodecError(f"unknown decoder variant {variant!r} ({', '.join(DECODER_FILES)})")
        if DECODER_FILES[variant] not in bundle.manifest["files"]:
            have = [v for v, f in DECODER_FILES.items() if f in bundle.manifest["files"]]
            # no fp32 decoder: a broken bundle; no int8/text one: a variant this model does not ship
            raise (BundleError if variant == "fp32" else CodecError)(f"model {bundle.name!r} has no {variant} decoder "
                             f"({DECODER_FILES[variant]} is not in {bundle.path / 'manifest.json'});"
                             f" it has: {', '.join(have)}")
        self.variant = variant
        self.max_samples = default_max_samples() if max_samples is None else int(max_samples)
        where = str(bundle.path / "manifest.json")
        audio = bundle.modality == "audio"
        self.postfilter = (parse_postfilter(bundle.manifest.get("postfilter"), where)
                           if postfilter and audio else None)
        fill = postfilter if noise_fill is None else noise_fill
        self.noise_fill = (parse_noise_fill(bundle.manifest.get("noise_fill"),
                                            bundle.latent_channels, where)
                           if fill and audio else None)
        self._sessions: dict[int, object] = {}      # intra-op threads -> session
        self._lock = threading.Lock()

    @classmethod
    def for_header(cls, header: dict, *, threads: int = 1, models_dir: Path | None = None,
                   max_samples: int | None = None, postfilter: bool = True,
                   variant: str | None = None) -> "Decoder":
        """The decoder for a stream header: the model it names, sha256-checked.

        The name is looked up among the bundled models, or only in ``models_dir`` when given
        (a folder the caller trusts); the header must pin the model's manifest sha256, so a
        model edited since the stream was written (manifest and files alike) is refused.
        """
        if not isinstance(header, dict):
            raise ContainerError(f"stream header: expected an object, got {type(header).__name__}")
        name, want = stream_model(header)
        if want is None:
            raise BundleError(f"stream header field 'bundle.manifest_sha256': missing; a stream "
                              f"must pin the manifest of model {name!r} to be decoded")
        try:
            bundle = load_bundle(name, models_dir=models_dir)
        except BundleError as exc:
            raise BundleError(f"stream was encoded with model {name!r}: {exc}") from None
        if bundle.name != name:
            raise BundleError(f"stream names model {name!r} but {bundle.path} holds "
                              f"{bundle.name!r}")
        if want != bundle.manifest_sha256:
            raise BundleError(f"stream was encoded with a different version of model {name!r} "
                              f"(manifest sha256 {want[:12]}…, installed "
                              f"{bundle.manifest_sha256[:12]}…)")
        return cls(bundle, threads, max_samples, postfilter, variant=variant)

    @classmethod
    def for_stream(cls, blob: bytes, **kw) -> "Decoder":
        """The decoder for a container stream (reads its header)."""
        header, _ = container.read_stream(blob)
        return cls.for_header(header, **kw)

    def _check_header(self, header: dict) -> None:
        """The stream must name this decoder's model, and pin this manifest if it pins one."""
        if not isinstance(header, dict):
            raise ContainerError(f"stream header: expected an object, got {type(header).__name__}")
        name, pin = stream_model(header)
        if name != self.bundle.name:
            raise FrameError(f"stream was encoded with model {name!r}, not {self.bundle.name!r}")
        if pin is not None and pin != self.bundle.manifest_sha256:
            raise BundleError(f"stream was encoded with a different version of model {name!r} "
                              f"(manifest sha256 {pin[:12]}…, loaded "
                              f"{self.bundle.manifest_sha256[:12]}…)")

    def _session(self, threads: int):
        """The decoder graph's session with ``threads`` intra-op threads (built on first use)."""
        with self._lock:
            sess = self._sessions.get(threads)
            if sess is None:
                sess = self._sessions[threads] = self._build_session(threads)
        return sess

    def _build_session(self, threads: int):
        name = DECODER_FILES[self.variant]
        if self.variant != "int8":  # self-contained graphs
            return _session(self.bundle.read_verified(name), threads, spin=False)
        fp32 = self.bundle.read_verified(DECODER_FILES["fp32"])
        sess = _session(self.bundle.read_verified(name), threads, spin=False,
                        external={DECODER_FILES["fp32"]: fp32})
        made_for = sess.get_modelmeta().custom_metadata_map.get(INT8_WEIGHTS_KEY)
        have = self.bundle.manifest["files"][DECODER_FILES["fp32"]]["sha256"]
        if made_for != have:
            raise BundleError(f"{self.bundle.path / name}: metadata {INT8_WEIGHTS_KEY}="
                              f"{str(made_for)[:12]}… but the bundle's decoder.onnx is "
                              f"{have[:12]}… (remake it: python -m export.decoder_int8 "
                              f"{self.bundle.name})")
        return sess

    def decode_codes(self, codes: np.ndarray, *, threads: int | None = None) -> np.ndarray:
        """Raw decoder output (N, C, *spatial) float32 for codes (N, C_lat, *latent).

        ``threads``: intra-op threads for this call (default: the decoder's ``threads``).
        """
        sess = self._session(self.threads if threads is None else threads)
        return sess.run(None, {"codes": codes.astype(np.float32)})[0]

    def expected_code_shape(self, info: FrameInfo) -> tuple[int, ...]:
        """The code shape this model makes of an array of ``info.shape`` / ``info.dtype``.

        Raises :class:`FrameError` when the declared array cannot come from this model, and
        :class:`DecodeLimitError` when it holds more than ``max_samples`` values.
        """
        b, shape, dtype = self.bundle, info.shape, info.dtype
        mod, ch, dims = b.modality, b.channels, b.dims

        def bad(expected: str) -> FrameError:
            return FrameError(f"frame field 'shape': model {b.name!r} decodes {expected}; the "
                              f"frame declares {dtype} {shape}")

        if mod == "image":
            if dtype != "uint8" or len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] != ch):
                raise bad(f"uint8 H×W or H×W×{ch} images")
            n, spatial = 1, shape[:2]
        elif mod == "audio":
            if not (dtype == "int16" or dtype.startswith("float")) or len(shape) not in (1, 2):
                raise bad("int16 or float audio shaped samples or samples×channels")
            nch = shape[1] if len(shape) == 2 else 1
            if ch != 1 and nch != ch:
                raise bad(f"{ch}-channel audio")
            n, spatial = (nch if ch == 1 else 1), shape[:1]
        else:
            if dtype != b.sample_dtype or len(shape) not in (dims, dims + 1) or (
                    len(shape) == dims + 1 and shape[-1] != ch) or (len(shape) == dims and ch != 1):
                raise bad(f"{b.sample_dtype} {dims}-D arrays with {ch} channels (last axis)")
            n, spatial = 1, shape[:dims]
        values = math.prod(shape)
        if values > self.max_samples:
            raise DecodeLimitError(f"frame field 'shape': {shape} holds {values} values, more "
                                   f"than this decoder's limit of {self.max_samples} "
                                   f"(raise it with max_samples= or ${MAX_SAMPLES_ENV})")
        for axis, (size, blk) in enumerate(zip(spatial, b.block)):
            if size < blk:
                raise bad(f"at least {blk} samples along axis {axis}")
        return (n, b.latent_channels) + tuple(-(-size // blk) for size, blk in zip(spatial, b.block))

    def frame_codes(self, header: dict, payload: bytes) -> tuple[np.ndarray, FrameInfo]:
        """The integer codes (N, C_lat, *latent) int8 of one FRAME payload, and its FrameInfo.

        Lossless decoding only (the decoder graph is not run): what a recognizer that reads the
        latents needs. The payload is checked exactly as :meth:`decode_frame` checks it.
        """
        self._check_header(header)
        info = parse_frame(payload)
        want = self.expected_code_shape(info)
        if info.code_shape != want:
            raise FrameError(f"frame field 'code_shape': model {self.bundle.name!r} makes codes "
                             f"{want} from a {info.dtype} {info.shape} array; the frame declares "
                             f"{info.code_shape}")
        flat_shape = ((want[0] * want[1],) + want[2:] if want[0] > 1 else want[1:])
        try:
            coder = get_coder(info.coder)
        except CoderUnavailableError:
            raise
        except ValueError as exc:
            raise FrameError(f"frame field 'coder': {exc}") from None
        codes = coder.decode(bytes(payload[info.data_offset:]), flat_shape).reshape(want)
        return codes, info

    def decode_frame(self, header: dict, payload: bytes, *, threads: int | None = None) -> np.ndarray:
        """Reconstruct one frame from its FRAME payload (hostile input: see the module doc)."""
        codes, info = self.frame_codes(header, payload)
        out = self.decode_codes(apply_noise_fill(self.noise_fill, codes),
                                threads=threads)            # (N, C, *spatial) float
        return self._to_array(out, info)

    def decode_frames(self, header: dict, payloads: list[bytes]) -> list[np.ndarray]:
        """Reconstruct several FRAME payloads of one stream, in order.

        Frames are independent, so with ``threads`` > 1 up to ``threads`` frames are decoded at
        once, each on one core (ONNX Runtime runs are thread-safe and release the GIL): on 2
        cores this is ~2x one thread, where splitting one frame's graph over 2 threads is less.
        A single frame uses the ``threads`` intra-op threads instead.
        """
        payloads = list(payloads)
        if self.threads <= 1 or len(payloads) < 2:
            return [self.decode_frame(header, p) for p in payloads]
        with ThreadPoolExecutor(min(self.threads, len(payloads)), "decode") as pool:
            return list(pool.map(lambda p: self.decode_frame(header, p, threads=1), payloads))

    def _to_array(self, out: np.ndarray, info) -> np.ndarray:
        b = self.bundle
        shape = info.shape
        if b.modality == "image":
            h, w = shape[0], shape[1]
            img = out[0, :, :h, :w]                         # (C, h, w) float32
            if len(shape) == 2:
                img = img.mean(axis=0)
            else:   # round/clip/cast in the graph's channel-planar layout, then one uint8 copy
                img = np.rint(img, out=out[0, :, :h, :w])
                return np.clip(img, 0, 255, out=img).astype(np.uint8).transpose(1, 2, 0).copy()
            return np.clip(np.round(img), 0, 255).astype(np.uint8)
        out = np.moveaxis(out, 1, -1)                       # (N, *spatial, C)
        if b.modality == "audio":
            t = shape[0]
            x = out[:, :t, :]
            x = x[:, :, 0].T if b.channels == 1 else x[0]
            x = np.clip(np.round(apply_postfilter(self.postfilter, x)), -32768, 32767)
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
            bits = b.manifest["sample"].get("bits")
            x = np.clip(np.round(x), lim.min, 2 ** int(bits) - 1 if bits else lim.max)
        return x.astype(info_dt)

    def frames(self, blob: bytes) -> list[np.ndarray]:
        """Decode every FRAME of a stream."""
        header, records = container.read_stream(blob)
        return self.decode_frames(header, [r.payload for r in records
                                           if r.type == container.RecordType.FRAME])

    def _first_frame(self, blob: bytes) -> tuple[dict, bytes]:
        header, records = container.read_stream(blob)
        for r in records:
            if r.type == container.RecordType.FRAME:
                return header, r.payload
        raise container.ContainerError("stream holds no FRAME record")

    def decode(self, blob: bytes) -> np.ndarray:
        """Decode the first frame of a stream (a file written by `Encoder.encode`)."""
        return self.decode_frame(*self._first_frame(blob))

    def codes(self, blob: bytes) -> np.ndarray:
        """The integer codes of the first frame of a stream, without running the decoder graph
        (equal to ``Encoder.codes`` of the array that was encoded)."""
        return self.frame_codes(*self._first_frame(blob))[0]
