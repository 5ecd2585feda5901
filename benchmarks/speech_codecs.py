"""Round trips for the speech benchmark: ``roundtrip(x) -> (decoded int16 samples, payload bits)``.

Every factory returns a callable taking one 16 kHz mono int16 clip. Payload bits are what a stream
would carry for the clip, without per-file containers where a stream would not repeat them:

* :class:`OurCodec` — a bundled sensorcodec model. Returned bits = the FRAME record of the clip
  (record header + payload + CRC: what each frame of a stream costs; the stream HEADER is sent
  once). ``file_bits`` accumulates the whole one-frame stream (header included) for reference.
  ``postfilter=False`` skips the bundle's decoder-side post-filter (:mod:`encoder_runtime.postfilter`).
* :func:`opus` — opus-tools ``opusenc --bitrate B`` (VBR, default 20 ms frames) + ``opusdec``.
  Returned bits = the Opus packet payload bytes (Ogg pages and the OpusHead/OpusTags header packets
  excluded); ``file_bits`` on the callable accumulates the .opus file size.
* :func:`resample` — polyphase down to ``rate`` Hz and back; bits = PCM16 at that rate (16·rate per
  second), or 8-bit G.711 μ-law with ``mulaw=True``.
* :func:`bit_depth` — uniform requantisation to ``bits`` bits (drop the low 16 - bits bits, round to
  nearest); bits = ``bits`` per sample (raw PCM; no entropy coding).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from math import gcd
from pathlib import Path
from typing import Callable

import numpy as np

from encoder_runtime import Decoder, Encoder, container

RATE = 16000
Roundtrip = Callable[[np.ndarray], tuple[np.ndarray, int]]


class OurCodec:
    """Round trip through a bundled model (in-stream bits returned; whole-file bits in file_bits)."""

    def __init__(self, name: str, postfilter: bool = True) -> None:
        self.name = name
        self.enc, self.dec = Encoder.load(name), Decoder.load(name, postfilter=postfilter)
        self.file_bits = 0

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        blob = self.enc.encode(np.asarray(x, dtype=np.int16))
        _, recs = container.read_stream(blob, f"{self.name} stream")
        self.file_bits += 8 * len(blob)
        y = np.asarray(self.dec.decode(blob)).reshape(-1)[: len(x)]
        return y.astype(np.int16), 8 * sum(r.size for r in recs)


def ogg_packets(data: bytes) -> list[bytes]:
    """The logical packets of a single-stream Ogg file (pages concatenated, lacing resolved)."""
    packets, cur, pos = [], b"", 0
    while pos < len(data):
        if data[pos:pos + 4] != b"OggS" or pos + 27 > len(data):
            raise ValueError(f"ogg: no page at byte {pos} (expected 'OggS')")
        nseg = data[pos + 26]
        lacing = data[pos + 27: pos + 27 + nseg]
        pos += 27 + nseg
        for lace in lacing:
            cur += data[pos: pos + lace]
            pos += lace
            if lace < 255:
                packets.append(cur)
                cur = b""
    return packets


def opus_available() -> bool:
    """True when opus-tools (opusenc and opusdec) are on PATH."""
    return bool(shutil.which("opusenc") and shutil.which("opusdec"))


def opus(kbps: float) -> Roundtrip:
    """Opus round trip at ``--bitrate kbps`` (bits = Opus packet payloads; .opus size in file_bits)."""
    import soundfile as sf

    def run(x: np.ndarray) -> tuple[np.ndarray, int]:
        with tempfile.TemporaryDirectory() as td:
            wav, enc, back = Path(td) / "in.wav", Path(td) / "c.opus", Path(td) / "out.wav"
            sf.write(wav, np.asarray(x, dtype=np.int16), RATE, subtype="PCM_16")
            subprocess.run(["opusenc", "--quiet", "--bitrate", f"{kbps:g}", str(wav), str(enc)],
                           check=True)
            subprocess.run(["opusdec", "--quiet", "--rate", str(RATE), str(enc), str(back)],
                           check=True)
            data = enc.read_bytes()
            y, _ = sf.read(back, dtype="int16")
        run.file_bits += 8 * len(data)
        y = y if y.ndim == 1 else y[:, 0]
        y = np.pad(y[: len(x)], (0, max(0, len(x) - len(y))))
        return y, 8 * sum(len(p) for p in ogg_packets(data)[2:])

    run.file_bits = 0
    return run


def _resample(x: np.ndarray, up: int, down: int) -> np.ndarray:
    from scipy.signal import resample_poly
    g = gcd(up, down)
    return resample_poly(x.astype(np.float64), up // g, down // g)


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def mulaw_encode(x: np.ndarray) -> np.ndarray:
    """Continuous μ-law (μ = 255) companding of int16 samples, quantised to 8 bits (codes 0..255)."""
    v = np.clip(x.astype(np.float64) / 32768.0, -1.0, 1.0)
    c = np.sign(v) * np.log1p(255.0 * np.abs(v)) / np.log1p(255.0)
    return np.clip(np.round((c + 1.0) * 127.5), 0, 255).astype(np.uint8)


def mulaw_decode(codes: np.ndarray) -> np.ndarray:
    """Inverse of :func:`mulaw_encode` (float samples on the int16 scale)."""
    c = codes.astype(np.float64) / 127.5 - 1.0
    return np.sign(c) * np.expm1(np.abs(c) * np.log1p(255.0)) / 255.0 * 32768.0


def resample(rate: int, mulaw: bool = False) -> Roundtrip:
    """Down to ``rate`` Hz (int16, or 8-bit μ-law), back up to 16 kHz."""

    def run(x: np.ndarray) -> tuple[np.ndarray, int]:
        low = _to_int16(_resample(x, rate, RATE))
        if mulaw:
            low = mulaw_decode(mulaw_encode(low))
        y = _to_int16(_resample(low, RATE, rate))[: len(x)]
        return np.pad(y, (0, max(0, len(x) - len(y)))), len(low) * (8 if mulaw else 16)

    return run


def bit_depth(bits: int) -> Roundtrip:
    """Uniform requantisation of int16 samples to ``bits`` bits (step 2^(16 - bits))."""
    if not 1 <= bits <= 16:
        raise ValueError(f"bit_depth: bits must be 1..16, got {bits}")
    step = 2 ** (16 - bits)

    def run(x: np.ndarray) -> tuple[np.ndarray, int]:
        q = np.clip(np.round(x.astype(np.float64) / step), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        return _to_int16(q * step), bits * len(x)

    return run
