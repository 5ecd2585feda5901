"""Hypothesis fuzz of a lossless coder's decoder, run in a subprocess by the coder tests
(:func:`run` from a test; the script itself: ``python tests/coder_fuzz.py CODER CODES.npz N``).

Each array in CODES.npz is encoded with CODER; the decoder then gets truncations, bit flips,
padding, garbage after the coded format byte and huge or wrong declared shapes, under a 1 GiB
address-space limit. Only ``CorruptPayloadError`` (or the MAX_CODES shape check) may come out;
prints "FUZZ OK" at the end (a crash, MemoryError or hang fails the calling test).
"""

import subprocess
import sys
from pathlib import Path

import numpy as np


def code_grid(f: np.ndarray) -> tuple[int, int, int]:
    """(channels, rows, cols) of a codes array as the C coders see it (middle axes flattened)."""
    return f.shape[0], int(np.prod(f.shape[1:-1])), f.shape[-1]


def edge_case_codes() -> dict[str, np.ndarray]:
    """Shapes and values every lossless coder must round-trip: constant planes at both int8 ends,
    one code, incompressible noise (stored), narrow and wide Laplace, 1-D and 3-D grids, one row,
    one column and wide rows."""
    rng = np.random.default_rng(12)
    small = rng.laplace(0, 2, (5, 9, 13)).round().astype(np.int8)
    big = np.clip(rng.laplace(0, 30, (3, 11, 17)), -128, 127).astype(np.int8)
    big[0, 0, :4] = (-128, 127, -127, 15)
    return {
        "zeros": np.zeros((12, 64, 96), np.int8),
        "const-minus128": np.full((3, 90, 10), -128, np.int8),
        "const-127": np.full((2, 80, 8), 127, np.int8),
        "one-code": np.array([[-128]], np.int8),
        "uniform-noise (stored)": rng.integers(-128, 128, (4, 16, 16), dtype=np.int8),
        "laplace-small": small,
        "laplace-wide": big,
        "1-D": small.reshape(5, -1).copy(),
        "1-D one channel": rng.laplace(0, 1, (1, 3000)).round().astype(np.int8),
        "3-D spatial": small.reshape(5, 3, 3, 13).copy(),
        "one row": small[:, :1, :].copy(),
        "one column": small[:, :, :1].copy(),
        "wide rows (column spans)": rng.laplace(0, 1.5, (2, 3, 600)).round().astype(np.int8),
    }


def run(coder: str, real_codes: dict[str, list[np.ndarray]], tmp_path: Path, examples: int) -> None:
    """Fuzz ``coder``'s decoder on crops of the first frame of every code set in a subprocess
    (``rans:format4``: rans payloads in format 4); AssertionError with its output unless it
    ends cleanly."""
    frames = {f"f{i}": np.ascontiguousarray(f[:, :8] if f.ndim == 3 else f[:, :300])
              for i, f in enumerate(v[0] for v in real_codes.values())}
    np.savez(tmp_path / "codes.npz", **frames)
    r = subprocess.run([sys.executable, __file__, coder, str(tmp_path / "codes.npz"), str(examples)],
                       capture_output=True, text=True, timeout=120,
                       cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 0 and "FUZZ OK" in r.stdout, (r.returncode, r.stdout[-2000:],
                                                          r.stderr[-4000:])


def main(coder_name: str, npz: str, examples: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    from hypothesis import HealthCheck, given, settings, strategies as st

    from encoder_runtime.entropy import CorruptPayloadError, get_coder

    coder = get_coder(coder_name.split(":")[0])
    encode = coder.encode
    if coder_name == "rans:format4":  # rans's format 4 also on crops (which it codes in format 2)
        from encoder_runtime import _sclossless

        def encode(c: np.ndarray) -> bytes:
            return _sclossless.rans_encode_format4(c, *code_grid(c))
    z = np.load(npz)
    cases = [(encode(z[k]), z[k]) for k in z.files]

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.integers(0, len(cases) - 1), st.sampled_from(["trunc", "flip", "pad", "garbage", "shape"]),
           st.integers(0, 1 << 30), st.binary(max_size=64), st.integers(1, 1 << 30))
    def fuzz(i, how, pos, extra, dim):
        blob, codes = cases[i]
        shape = codes.shape
        if how == "trunc":
            blob = blob[:pos % len(blob)]
        elif how == "flip":
            b = bytearray(blob)
            b[pos % len(b)] ^= 1 << (pos >> 20) % 8
            blob = bytes(b)
        elif how == "pad":
            blob = blob + extra
        elif how == "garbage":
            blob = blob[:1] + extra
        else:  # huge or wrong declared size
            shape = (shape[0], dim) if dim % 2 else (dim, *shape[1:])
        try:
            out = coder.decode(blob, shape)
        except CorruptPayloadError:
            return
        except ValueError as e:  # the shape checks (MAX_CODES) before any decoding
            assert "MAX_CODES" in str(e), e
            return
        assert out.shape == tuple(shape) and out.dtype == np.int8

    fuzz()
    print("FUZZ OK")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
