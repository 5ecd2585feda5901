"""Issue 12 speed paths give the same results as the plain ones: frame-parallel decoding on 2
threads, and the benchmarks' smoke runs."""

import json
from pathlib import Path

import numpy as np

from encoder_runtime import Decoder, Encoder, container
from encoder_runtime.bundle import default_model
from encoder_runtime.media import read_input

SAMPLES = Path(__file__).resolve().parent.parent / "encoder_runtime" / "samples"
NAME = default_model("image")


def _photos() -> list[np.ndarray]:
    """Real photos of mixed sizes (cropped small to keep the decoder seconds low), one grey."""
    out = []
    for f, (h, w) in (("Kite.png", (96, 160)), ("ColdRipple.png", (131, 77)), ("ColorfulCups.png", (64, 64))):
        out.append(np.ascontiguousarray(read_input(SAMPLES / f)[0][:h, :w]))
    out.append(np.ascontiguousarray(out[0][:, :, 1]))
    return out


def test_parallel_frames_equal_sequential_decode():
    photos = _photos()
    blob = Encoder.load(NAME).encode_frames(photos)
    header, records = container.read_stream(blob)
    seq = Decoder.load(NAME, threads=1)
    one = [seq.decode_frame(header, r.payload) for r in records if r.type == container.RecordType.FRAME]
    par = Decoder.load(NAME, threads=2).frames(blob)
    assert [a.shape for a in par] == [p.shape for p in photos]
    assert all(a.dtype == np.uint8 and a.flags.c_contiguous for a in par)
    assert all(np.array_equal(a, b) for a, b in zip(par, one))
    # the image layout path (round/clip in the graph's planar layout) equals numpy's HWC recipe
    raw = seq.decode_codes(seq.frame_codes(header, records[0].payload)[0])
    ref = np.clip(np.round(np.moveaxis(raw, 1, -1)[0, :96, :160]), 0, 255).astype(np.uint8)
    assert np.array_equal(one[0], ref)


def test_decoder_speed_benchmark_smoke(tmp_path):
    from benchmarks import decoder_speed
    out = tmp_path / "d.json"
    assert decoder_speed.main(["--quick", "--no-plot", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert set(r["rows"]) == {"1 thread", "2 threads, intra-op", "2 threads, frames in parallel",
                              "int8, 1 thread", "int8, 2 threads, frames in parallel"}
    assert all(v["mps"] > 0 and v["mps_cpu"] > 0 and v["psnr_db"] > 20 for v in r["rows"].values())
    assert r["two_cores"]["goal_mps"] == 3.0 and r["two_cores"]["idle_estimate_mps"] > 0
    assert r["two_cores"]["int8"]["idle_estimate_mps"] > 0
    assert -1 < r["two_cores"]["int8"]["psnr_delta_db"] < 0.5


def _plain_encode_frame(enc: Encoder, array: np.ndarray) -> bytes:
    """The recipe before issue 12: session.run's fresh output → coder → frame packing."""
    from encoder_runtime.frame import pack_frame
    batch, dtype = enc._to_batch(array)
    codes = enc._sess.run(None, {"samples": batch})[0]
    flat = codes.reshape((-1,) + codes.shape[2:]) if codes.shape[0] > 1 else codes[0]
    return pack_frame(enc.coder.name, dtype, array.shape, codes.shape,
                      enc.coder.encode(np.ascontiguousarray(flat)))


def test_reused_buffers_give_the_same_bytes_for_every_bundled_model():
    """encode_frame (bound input, reused output buffer per shape) == the plain recipe, for every
    bundled model on its real bundled sample, twice in a row and after a different shape."""
    from benchmarks.lossless import bundled_sample_inputs, sample_kind
    from encoder_runtime.bundle import list_model_names, load_bundle
    inputs = bundled_sample_inputs()
    for name in list_model_names():
        kind = sample_kind(load_bundle(name, verify=False).manifest)
        if kind not in inputs:
            continue
        x = inputs[kind][0]
        axis = 0 if kind.startswith("audio") or kind == "timeseries" else 1   # time / width
        x = x[: 4 * 1024] if axis == 0 else x
        small = np.ascontiguousarray(np.take(x, np.arange(x.shape[axis] // 2), axis=axis))
        for variant in ("fp32", "int8"):
            enc = Encoder.load(name, variant=variant)
            want = _plain_encode_frame(enc, x)
            assert enc.encode_frame(x) == want, (name, variant)
            assert enc.encode_frame(small) == _plain_encode_frame(enc, small), (name, variant)
            assert enc.encode_frame(x) == want, (name, variant)


def test_receiver_decode_thread_uses_two_cores_and_writes_every_frame(tmp_path):
    """sensor-receive --decode with decode_threads=2: every FRAME of a segment is written, equal
    to the single-thread decode, in seq order."""
    import time

    from PIL import Image

    from encoder_runtime.daemon.receiver import Decoder as DecodeThread
    photos = _photos()[:3]
    blob = Encoder.load(NAME).encode_frames(photos, stream_id="s1")
    header, records = container.read_stream(blob)
    thread = DecodeThread(str(tmp_path), threads=2)
    thread.start()
    thread.submit("s1", header, records)
    deadline = time.monotonic() + 60
    while thread.written < len(photos) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert thread.written == len(photos) and thread.skipped == 0
    want = Decoder.load(NAME).frames(blob)
    for rec, w in zip(records, want):
        got = np.asarray(Image.open(tmp_path / "s1" / f"{rec.seq:012d}.png"))
        assert np.array_equal(got, w)
