"""The bit-exact matrix: every bundled model gives the same int8 codes on every path, on real data.

Paths compared, for each bundled model (generic over ``list_model_names()``):

* a numpy integer reference computed from ``encoder_int.npz`` alone (int64 sums, exact
  round-half-to-even of ``acc · 2**-shift`` done with integer shifts, clamp) — docs/bundle-format.md;
* ONNX Runtime on ``encoder.onnx`` (fp32 graph) and ``encoder_int8.onnx`` (ConvInteger), fed directly;
* ``Encoder.codes`` for both variants (the runtime's validation and edge padding included);
* the torch integer simulation ``BlockEncoder.codes`` (float64), with the module rebuilt from the
  bundle's integer parameters (so it runs on a fresh machine) and, where a training checkpoint under
  ``export.train.CHECKPOINT_FOLDERS`` matches the bundle, from that checkpoint too.

Data: the bundled held-out sample photos and clips (``encoder_runtime/samples``) plus the held-out
test split of ``sensor-data fetch`` when it is cached: whole 768×512 photos as batched frames
(every 8×8 tile of them) and hundreds of random crops of odd sizes; whole speech/wideband clips
and random excerpts for audio models; for video models the bundled held-out clip
(``city_8f.y4m``) and, when cached, three 16-frame groups of the held-out clips, each with random
frame-range crops. ``sensor-export --checkpoint`` is tested at the end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from encoder_runtime import Encoder
from encoder_runtime.bundle import list_model_names, load_bundle
from encoder_runtime.media import read_input

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "encoder_runtime" / "samples"
MODELS = list_model_names()
BUNDLES = {n: load_bundle(n) for n in MODELS}
IMAGE_MODELS = [n for n in MODELS if BUNDLES[n].modality == "image"]
AUDIO_MODELS = [n for n in MODELS if BUNDLES[n].modality == "audio"]
OTHER_MODELS = [n for n in MODELS if n not in IMAGE_MODELS and n not in AUDIO_MODELS]
ACC_LIMIT = 2 ** 24


# --- the integer reference -------------------------------------------------------------------
def integer_arrays(name: str) -> dict[str, np.ndarray]:
    """weight, bias, shift of a bundle's integer encoder."""
    with np.load(BUNDLES[name].file("encoder_int.npz"), allow_pickle=False) as z:
        return {k: z[k] for k in ("weight", "bias", "shift")}


def round_shift_half_even(acc: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """round_half_to_even(acc · 2**-shift) in exact int64 arithmetic (shift per channel, axis 1)."""
    shift = shift.astype(np.int64).reshape((1, -1) + (1,) * (acc.ndim - 2))
    left = np.maximum(-shift, 0)
    right = np.maximum(shift, 0)
    q = acc >> right                                      # floor
    r = acc - (q << right)                                # remainder in [0, 2**right)
    half = np.where(right > 0, np.left_shift(1, np.maximum(right - 1, 0)), 1 << 62)
    up = (r > half) | ((r == half) & (q & 1 == 1))
    return (q + up) << left


def reference_codes(batch: np.ndarray, arrays: dict, block: list[int], code_max: int,
                    stats: dict | None = None) -> np.ndarray:
    """Codes (N, C_lat, *latent) int8 of a channel-last batch (N, *spatial, C), sizes multiple of block."""
    w = arrays["weight"].astype(np.int64)                 # (C_lat, C_in, *block)
    x = batch.astype(np.int64)
    n, spatial, c = x.shape[0], x.shape[1:-1], x.shape[-1]
    lat = [s // b for s, b in zip(spatial, block)]
    split = [n]
    for s_lat, b in zip(lat, block):
        split += [s_lat, b]
    x = x.reshape(split + [c])                            # (N, L1, b1, L2, b2, ..., C)
    d = len(block)
    lat_axes = [1 + 2 * i for i in range(d)]
    blk_axes = [2 + 2 * i for i in range(d)]
    x = x.transpose([0] + lat_axes + [1 + 2 * d] + blk_axes)   # (N, *lat, C, *block)
    taps = c * int(np.prod(block))
    acc = x.reshape(-1, taps) @ w.reshape(w.shape[0], taps).T  # exact int64
    acc = acc.reshape([n] + lat + [w.shape[0]]) + arrays["bias"].astype(np.int64)
    acc = np.moveaxis(acc, -1, 1)                         # (N, C_lat, *lat)
    y = np.clip(round_shift_half_even(acc, arrays["shift"]), -code_max, code_max)
    if stats is not None:
        stats["max_abs_acc"] = max(stats.get("max_abs_acc", 0), int(np.abs(acc).max()))
        sh = arrays["shift"].astype(np.int64).reshape((1, -1) + (1,) * d)
        ties = (sh > 0) & ((acc & ((1 << np.maximum(sh, 1)) - 1)) == (1 << np.maximum(sh - 1, 0)))
        stats["ties"] = stats.get("ties", 0) + int(ties.sum())
        stats["clipped"] = stats.get("clipped", 0) + int((np.abs(y) == code_max).sum())
    return y.astype(np.int8)


def test_round_shift_half_even_matches_float_definition():
    rng = np.random.default_rng(0)
    acc = rng.integers(-(2 ** 23), 2 ** 23, size=(4, 6, 500), dtype=np.int64)
    acc[:, :, :40] = np.arange(-20, 20) * 8 + 4           # exact ties for shift 3
    shift = np.array([3, 0, -2, 5, 1, 16])
    got = round_shift_half_even(acc, shift)
    want = np.round(acc * np.ldexp(1.0, -shift).reshape(1, -1, 1))   # numpy rounds half to even
    assert np.array_equal(got, want.astype(np.int64))


# --- the other paths -------------------------------------------------------------------------
def edge_pad(batch: np.ndarray, block: list[int]) -> np.ndarray:
    """Edge-replicate a channel-last batch up to a multiple of the block (what the runtime does)."""
    pad = [(0, 0)] + [(0, (-s) % b) for s, b in zip(batch.shape[1:-1], block)] + [(0, 0)]
    return np.pad(batch, pad, mode="edge")


def session(path: Path) -> ort.InferenceSession:
    """A 1-thread CPU session."""
    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    o.log_severity_level = 3
    return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])


def torch_encoder_from_bundle(name: str):
    """BlockEncoder whose integer parameters are the bundle's (kernel = w · 2**-shift)."""
    torch = pytest.importorskip("torch")
    from export.model import BlockEncoder, CodecConfig
    m = BUNDLES[name].manifest
    arrays = integer_arrays(name)
    enc = BlockEncoder(CodecConfig(**m["config"]))
    w = torch.tensor(arrays["weight"], dtype=torch.float64)
    scale = torch.pow(2.0, -torch.tensor(arrays["shift"], dtype=torch.float64))
    with torch.no_grad():
        enc.kernel.copy_((w * scale.view(-1, *[1] * (w.dim() - 1))).float())
    return enc.eval()


def torch_codes(enc, batch: np.ndarray) -> np.ndarray:
    """Torch integer simulation on a channel-last batch."""
    import torch
    x = torch.from_numpy(np.moveaxis(batch, -1, 1).astype(np.float64))
    return enc.codes(x).numpy().astype(np.int8)


def assert_same(what: str, got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == np.int8 and got.shape == want.shape, (what, got.dtype, got.shape, want.shape)
    bad = int((got != want).sum())
    assert bad == 0, f"{what}: {bad} of {want.size} codes differ"


# --- real data -------------------------------------------------------------------------------
def held_out_photos() -> list[np.ndarray]:
    """Bundled sample photos plus the cached held-out test split (if fetched); uint8 H×W×3."""
    paths = sorted(SAMPLES.glob("*.png"))
    try:
        from export.data import DEFAULT_CACHE, image_paths
        if (DEFAULT_CACHE / ".derived").exists():
            have = {p.name for p in paths}
            paths += [p for p in image_paths("test") if p.name not in have]
    except ImportError:
        pass
    return [read_input(p)[0] for p in paths]


def held_out_clips(limit: int = 60, channels: int = 1) -> list[np.ndarray]:
    """Bundled sample clips plus cached held-out clips, int16: mono (the first channel of each
    file; speech/wideband test split) or ``channels``-channel (the files that have that many:
    the bundled stereo sample and the cached stereo 44.1 kHz test split)."""
    paths = sorted(SAMPLES.glob("*.wav"))
    try:
        from export.data import DEFAULT_CACHE, audio_paths
        if channels == 1 and (DEFAULT_CACHE / ".derived").exists():
            extra = [p for p in audio_paths("test") if p.suffix == ".wav"]
            wide = [p for p in extra if "wideband" in p.name]
            speech = [p for p in extra if "wideband" not in p.name]
            paths += wide + speech[: max(0, limit - len(wide))]
        if channels == 2:
            from export.stereo_data import SUB
            paths += sorted((DEFAULT_CACHE / SUB / "test").glob("*.wav"))
    except ImportError:
        pass
    out = []
    for p in paths:
        a, _ = read_input(p)
        a = a.reshape(len(a), -1)
        if channels == 1:
            out.append(a[:, 0])
        elif a.shape[1] == channels:
            out.append(a)
    return out


PHOTOS = held_out_photos() if IMAGE_MODELS else []
CLIPS = {c: held_out_clips(channels=c) for c in {BUNDLES[n].channels for n in AUDIO_MODELS}}


def _batches_by_shape(frames: list[np.ndarray]) -> list[np.ndarray]:
    groups: dict[tuple, list] = {}
    for f in frames:
        groups.setdefault(f.shape, []).append(f)
    return [np.stack(g) for g in groups.values()]


# --- the matrix ------------------------------------------------------------------------------
def encoder_paths(name: str):
    """(bundle, integer arrays, code_max, ORT fp32 session, ORT int8 session, Encoders by variant)."""
    b = BUNDLES[name]
    fp32, int8 = session(b.file("encoder.onnx")), session(b.file("encoder_int8.onnx"))
    encs = {v: Encoder(b, threads=1, variant=v) for v in ("fp32", "int8")}
    return b, integer_arrays(name), int(b.manifest["latent"]["code_max"]), fp32, int8, encs


def assert_graphs(fp32, int8, tenc, padded: np.ndarray, want: np.ndarray) -> None:
    """The two ORT graphs and the torch simulation give the reference codes on ``padded``."""
    assert_same("ORT fp32 graph", fp32.run(None, {"samples": padded})[0], want)
    assert_same("ORT int8 graph", int8.run(None, {"samples": padded})[0], want)
    assert_same("torch simulation", torch_codes(tenc, padded), want)


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_image_codes_bit_exact_everywhere(name):
    b, arrays, cmax, fp32, int8, encs = encoder_paths(name)
    enc2 = Encoder(b, threads=2, variant="fp32")
    tenc = torch_encoder_from_bundle(name)
    stats: dict = {}
    tiles = frames = 0
    # whole photos, batched: every 8x8 tile of every held-out photo
    assert len(PHOTOS) >= 3
    for batch in _batches_by_shape(PHOTOS):
        padded = edge_pad(batch, b.block)
        want = reference_codes(padded, arrays, b.block, cmax, stats)
        assert_graphs(fp32, int8, tenc, padded, want)
        for i, img in enumerate(batch):
            for v, enc in encs.items():
                assert_same(f"Encoder.codes {v}", enc.codes(img), want[i:i + 1])
        assert_same("Encoder.codes fp32, 2 threads", enc2.codes(batch[0]), want[:1])
        tiles += want[:, 0].size
        frames += len(batch)
    # random crops, odd sizes included (the runtime pads by edge replication)
    rng = np.random.default_rng(1234)
    for k in range(160):
        img = PHOTOS[k % len(PHOTOS)]
        h = int(rng.integers(8, 130)) if k % 4 else int(rng.integers(8, 17))
        w = int(rng.integers(8, 130)) if k % 3 else int(rng.integers(8, 17))
        y0 = int(rng.integers(0, img.shape[0] - h + 1))
        x0 = int(rng.integers(0, img.shape[1] - w + 1))
        crop = np.ascontiguousarray(img[y0:y0 + h, x0:x0 + w])
        padded = edge_pad(crop[None], b.block)
        want = reference_codes(padded, arrays, b.block, cmax, stats)
        for v, enc in encs.items():
            assert_same(f"Encoder.codes {v} on a {h}x{w} crop", enc.codes(crop), want)
        assert_same("ORT int8 graph on a crop", int8.run(None, {"samples": padded})[0], want)
        assert_same("torch simulation on a crop", torch_codes(tenc, padded), want)
        tiles += want[:, 0].size
        frames += 1
    assert stats["max_abs_acc"] < ACC_LIMIT
    assert tiles >= 10_000 and frames >= 160
    print(f"{name}: {frames} frames, {tiles} tiles, {tiles * b.latent_channels} codes, "
          f"{stats['ties']} exact .5 ties, {stats['clipped']} clipped codes, "
          f"max|acc| {stats['max_abs_acc']}")


@pytest.mark.parametrize("name", AUDIO_MODELS)
def test_audio_codes_bit_exact_everywhere(name):
    b, arrays, cmax, fp32, int8, encs = encoder_paths(name)
    tenc = torch_encoder_from_bundle(name)
    stats: dict = {}
    blocks = frames = 0
    clips = CLIPS[b.channels]
    assert len(clips) >= (2 if b.channels == 1 else 1)
    rng = np.random.default_rng(99)
    for k, clip in enumerate(clips):
        for part in (clip, *(clip[int(rng.integers(0, len(clip) // 2)):][: int(rng.integers(16, 4001))]
                             for _ in range(1 if b.channels == 1 else 4))):
            if len(part) < b.block[0]:
                continue
            padded = edge_pad(part.reshape(1, len(part), -1), b.block)
            want = reference_codes(padded, arrays, b.block, cmax, stats)
            assert_graphs(fp32, int8, tenc, padded, want)
            for v, enc in encs.items():
                assert_same(f"Encoder.codes {v} ({len(part)} samples)", enc.codes(part), want)
            blocks += want[:, 0].size
            frames += 1
    # float input in [-1, 1] is quantized to int16 by the runtime, then the same codes
    clip = clips[0]
    assert_same("Encoder.codes on float input", encs["fp32"].codes(clip / 32767.0),
                encs["int8"].codes(clip))
    assert stats["max_abs_acc"] < ACC_LIMIT
    assert blocks >= (10_000 if b.channels == 1 else 4_000)  # stereo: one bundled 1.8 s clip
    print(f"{name}: {frames} frames, {blocks} blocks, {blocks * b.latent_channels} codes, "
          f"{stats['ties']} exact .5 ties, {stats['clipped']} clipped, max|acc| {stats['max_abs_acc']}")


def held_out_signals(modality: str) -> list[np.ndarray]:
    """Real held-out signals of another modality (e.g. BasicMotions IMU) as channel-last arrays;
    spectral cubes: the three bundled held-out MUSE frames and their transposes (no fetch)."""
    if modality == "video":
        return held_out_video()
    if modality == "hyperspectral":
        cubes = [np.load(p, allow_pickle=False) for p in sorted(SAMPLES.glob("hsi_*.npy"))]
        return cubes + [np.ascontiguousarray(c.transpose(1, 0, 2)) for c in cubes]
    try:
        from export.train import load_training_arrays
        arrays = load_training_arrays(modality, "test")
    except (ImportError, SystemExit, OSError, ValueError, KeyError) as e:
        pytest.skip(f"no held-out {modality} data here ({e.__class__.__name__}: {e})")
    # at most ~1.5 M samples per signal along the first axis (a whole MRI volume is 7 M voxels)
    return [np.ascontiguousarray(np.moveaxis(a[:, :max(1, 1_500_000 * a.shape[1] // a.size)], 0, -1))
            for a in arrays]


def held_out_video(groups: int = 3) -> list[np.ndarray]:
    """The bundled held-out clip (8 frames) and, when the held-out test clips are cached
    (export/video_data.py), ``groups`` 16-frame groups spread over them (T, H, W, 3) uint8."""
    from encoder_runtime.video_io import read_y4m
    from export.data import DEFAULT_CACHE
    out = [read_y4m((SAMPLES / "city_8f.y4m").read_bytes())[0]]
    cached = sorted((DEFAULT_CACHE / "video" / "test").glob("*.npy"))
    for i in range(groups if cached else 0):
        clip = np.load(cached[i % len(cached)], mmap_mode="r")
        t = (i * 37) % (clip.shape[0] - 16)
        out.append(np.ascontiguousarray(clip[t:t + 16]))
    return out


@pytest.mark.parametrize("name", OTHER_MODELS)
def test_other_modality_codes_bit_exact_everywhere(name):
    b, arrays, cmax, fp32, int8, encs = encoder_paths(name)
    tenc = torch_encoder_from_bundle(name)
    stats: dict = {}
    positions = 0
    rng = np.random.default_rng(7)
    signals = held_out_signals(b.modality)
    assert signals
    for sig in signals:
        n = sig.shape[0]
        parts = [sig] + [sig[s:s + int(rng.integers(b.block[0], n - s + 1))]
                         for s in rng.integers(0, n - b.block[0], size=4)]
        for part in parts:
            part = np.ascontiguousarray(part)
            padded = edge_pad(part[None], b.block)
            want = reference_codes(padded, arrays, b.block, cmax, stats)
            assert_graphs(fp32, int8, tenc, padded, want)
            for v, enc in encs.items():
                assert_same(f"Encoder.codes {v} ({part.shape})", enc.codes(part), want)
            positions += want[:, 0].size
    assert stats["max_abs_acc"] < ACC_LIMIT
    assert positions >= 1000
    print(f"{name}: {positions} positions, {positions * b.latent_channels} codes, {stats['ties']} ties")


def _matching_checkpoints() -> list[tuple[str, Path]]:
    """(bundle, checkpoint) pairs whose integer parameters agree (checkpoints are git-ignored)."""
    try:
        from export.train import checkpoints_for_bundles
    except ImportError:
        return []
    return sorted(checkpoints_for_bundles(MODELS).items())


def test_training_checkpoints_simulate_the_bundled_codes():
    """The torch model loaded from its real training checkpoint gives the deployed codes."""
    pairs = _matching_checkpoints()
    if not pairs:
        pytest.skip("no training checkpoint in export.train.CHECKPOINT_FOLDERS matches a bundled model")
    import torch
    from export.train import codec_from_checkpoint
    for name, ck in pairs:
        b = BUNDLES[name]
        codec, _ = codec_from_checkpoint(ck)
        enc = Encoder(b, variant="int8")
        data = PHOTOS[:2] if b.modality == "image" else [c[:, None] for c in CLIPS[:4]]
        for a in data:
            batch = a[None]
            with torch.no_grad():
                got = torch_codes(codec.encoder, edge_pad(batch, b.block))
            assert_same(f"{ck.parent.name} checkpoint vs {name}", got, enc.codes(a if b.modality == "image" else a[:, 0]))


# --- sensor-export --checkpoint --------------------------------------------------------------
def _small_checkpoint(tmp_path: Path) -> Path:
    """A real (tiny, untrained but PCA-initialised on a real photo) checkpoint written by the trainer's saver."""
    torch = pytest.importorskip("torch")
    from export.model import Codec, CodecConfig, to_blocks
    from export.train import save_checkpoint
    cfg = CodecConfig(latent_channels=8, decoder_width=16, decoder_blocks=1, attention=False)
    torch.manual_seed(0)
    codec = Codec(cfg)
    img = torch.from_numpy(PHOTOS[0][:128, :128].astype(np.float32)).permute(2, 0, 1)
    codec.encoder.init_from_pca(to_blocks(img[None], 8))
    opt = torch.optim.Adam(codec.parameters())
    path = tmp_path / "ck" / "checkpoint.safetensors"
    save_checkpoint(path, codec, opt, 0, {"config": cfg.to_dict()})
    return path


def test_export_cli_checkpoint(tmp_path, capsys):
    from export import export_cli
    ck = _small_checkpoint(tmp_path)
    out = tmp_path / "out"
    rc = export_cli.main(["--checkpoint", str(ck), "--target", "x86_64", "--out", str(out),
                          "--no-wheelhouse"])
    assert rc == 0, capsys.readouterr().err
    m = load_bundle(out)
    assert m.manifest["target"]["name"] == "x86_64"
    # the packaged encoders give the codes of the integer reference (both variants)
    arrays = {k: v for k, v in np.load(out / "encoder_int.npz").items()}
    img = PHOTOS[1][:64, :96]
    want = reference_codes(img[None], arrays, [8, 8], 127)
    for v in ("fp32", "int8"):
        assert_same(f"exported {v}", Encoder(m, variant=v).codes(img), want)
    # missing and corrupt checkpoints: one clear line, non-zero exit
    capsys.readouterr()
    rc = export_cli.main(["--checkpoint", str(tmp_path / "nope.safetensors"), "--target", "rpi5",
                          "--out", str(tmp_path / "o2"), "--no-wheelhouse"])
    err = capsys.readouterr().err
    assert rc == 1 and "checkpoint not found" in err and len(err.strip().splitlines()) == 1
    bad = tmp_path / "bad" / "checkpoint.safetensors"
    bad.parent.mkdir()
    bad.write_bytes(b"\x00" * 64)
    bad.with_suffix(".json").write_text(ck.with_suffix(".json").read_text())
    rc = export_cli.main(["--checkpoint", str(bad), "--target", "rpi5", "--out",
                          str(tmp_path / "o3"), "--no-wheelhouse"])
    err = capsys.readouterr().err
    assert rc == 1 and "not a valid checkpoint" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()
