"""Video: y4m / ffmpeg / frame-folder I/O, the bundled video models on a real held-out clip
(CLI round trip, frame groups, tile == crop), and the daemon's frame-grouping sources."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from encoder_runtime import Decoder, Encoder, video_io
from encoder_runtime.bundle import default_model, list_models
from encoder_runtime.daemon.config import ConfigError
from encoder_runtime.daemon.sources import open_source
from encoder_runtime.metrics import psnr_db

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "encoder_runtime" / "samples" / "city_8f.y4m"
VIDEO_MODELS = sorted(m["name"] for m in list_models() if m["modality"] == "video")
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None,
                                  reason="ffmpeg not installed (scripts/apt/video.txt)")


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return video_io.read_y4m(CLIP.read_bytes(), CLIP)[0]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return psnr_db(float(((a.astype(np.float64) - b) ** 2).mean()))


def test_y4m_round_trip_and_errors(clip):
    assert clip.shape == (8, 96, 128, 3) and clip.dtype == np.uint8
    back, meta = video_io.read_y4m(video_io.write_y4m(clip, 25.0, "444"))
    assert meta["fps"] == 25.0 and np.abs(back.astype(int) - clip).max() <= 2 and _psnr(back, clip) > 45
    back420, _ = video_io.read_y4m(video_io.write_y4m(clip, 25.0, "420jpeg"))
    assert _psnr(back420, clip) > 30
    with pytest.raises(video_io.VideoError, match="not a YUV4MPEG2"):
        video_io.read_y4m(b"RIFF....", "x.y4m")
    with pytest.raises(video_io.VideoError, match="frame 2 is truncated"):
        video_io.read_y4m(CLIP.read_bytes()[:30000], CLIP)


@needs_ffmpeg
def test_y4m_reader_matches_ffmpeg(clip):
    r = subprocess.run(["ffmpeg", "-v", "error", "-i", str(CLIP), "-f", "rawvideo", "-pix_fmt",
                        "rgb24", "-sws_flags", "neighbor+accurate_rnd+full_chroma_int", "-"],
                       capture_output=True, check=True)
    ref = np.frombuffer(r.stdout, np.uint8).reshape(clip.shape)
    assert np.abs(ref.astype(int) - clip).max() <= 1


def test_ffmpeg_missing_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "c.mp4").write_bytes(b"\0" * 64)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(video_io.VideoError, match="needs the ffmpeg program"):
        video_io.read_video(tmp_path / "c.mp4")


def test_frame_groups_cover_the_clip():
    assert video_io.frame_groups(40, 16, 4) == [(0, 16), (16, 32), (32, 40)]
    assert video_io.frame_groups(34, 16, 4) == [(0, 16), (16, 34)]   # 2 left: joins the last
    assert video_io.frame_groups(4, 16, 4) == [(0, 4)]
    with pytest.raises(video_io.VideoError, match="at least 4"):
        video_io.frame_groups(3, 16, 4)
    assert video_io.group_size((100, 1080, 1920, 3), 4) == 4
    assert video_io.group_size((100, 96, 128, 3), 4) == 16


pytestmark_models = pytest.mark.skipif(not VIDEO_MODELS, reason="no bundled video model")


@pytestmark_models
@pytest.mark.parametrize("name", VIDEO_MODELS)
def test_tile_equals_crop_of_the_whole_group(name, clip):
    """The encoder is local: a block-aligned (frames, rows, columns) tile gives the codes of the
    same region of the whole group."""
    enc = Encoder.load(name)
    bt, bh, bw = enc.bundle.block
    full = enc.codes(clip)
    assert full.shape == (1, enc.bundle.latent_channels, 8 // bt, 96 // bh, 128 // bw)
    tile = enc.codes(clip[bt:2 * bt, 32:96, 16:80])
    assert np.array_equal(tile, full[:, :, 1:2, 32 // bh:96 // bh, 16 // bw:80 // bw])


@pytestmark_models
def test_cli_encodes_y4m_and_frame_folders_and_decodes_to_y4m_and_png(tmp_path, clip):
    from encoder_runtime.cli_codec import main
    name = default_model("video")
    assert main(["encode", str(CLIP), "-o", str(tmp_path / "a.sc")]) == 0
    assert main(["decode", str(tmp_path / "a.sc"), "-o", str(tmp_path / "out.y4m")]) == 0
    out, meta = video_io.read_y4m((tmp_path / "out.y4m").read_bytes())
    assert out.shape == clip.shape and meta["fps"] == 25.0
    flat = np.broadcast_to(clip.mean(axis=(0, 1, 2)).round().astype(np.uint8), clip.shape)
    assert _psnr(out, clip) > _psnr(flat, clip) + 4   # the hardest 96×128 patch of the clip
    # the same codes as the library, the same frames as PNG files
    assert main(["decode", str(tmp_path / "a.sc"), "-o", str(tmp_path / "f_%02d.png")]) == 0
    pngs = sorted(tmp_path.glob("f_*.png"))
    assert [p.name for p in pngs] == [f"f_{i:02d}.png" for i in range(1, 9)]
    folder = tmp_path / "frames"
    folder.mkdir()
    for p in pngs:
        p.rename(folder / p.name)
    dec_frames, _ = video_io.read_frame_dir(folder)
    ref = Decoder.load(name).decode(Encoder.load(name).encode(clip))
    assert np.array_equal(dec_frames, ref)
    # a folder of frames is a clip too
    assert main(["encode", str(folder), "-o", str(tmp_path / "b.sc")]) == 0
    assert (tmp_path / "b.sc").stat().st_size > 100


@pytestmark_models
def test_long_clip_is_coded_in_frame_groups(tmp_path, clip):
    from encoder_runtime import container
    from encoder_runtime.cli_codec import main
    long = np.concatenate([clip, clip[::-1], clip, clip[:2]])   # 26 frames: 16 + 10
    (tmp_path / "long.y4m").write_bytes(video_io.write_y4m(long, 30.0, "444"))
    assert main(["encode", str(tmp_path / "long.y4m"), "-o", str(tmp_path / "l.sc")]) == 0
    _, records = container.read_stream((tmp_path / "l.sc").read_bytes())
    frames = [r for r in records if r.type == container.RecordType.FRAME]
    assert len(frames) == 2
    assert main(["decode", str(tmp_path / "l.sc"), "-o", str(tmp_path / "l.y4m")]) == 0
    out, meta = video_io.read_y4m((tmp_path / "l.y4m").read_bytes())
    assert out.shape[0] == 26 and meta["fps"] == 30.0


@needs_ffmpeg
@pytestmark_models
def test_cli_reads_mp4_through_ffmpeg(tmp_path, clip):
    from encoder_runtime.cli_codec import main
    mp4 = tmp_path / "c.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(CLIP), "-c:v", "libx264", "-qp", "0",
                    "-pix_fmt", "yuv444p", str(mp4)], check=True)
    got, _ = video_io.read_video(mp4)
    assert got.shape == clip.shape and _psnr(got, clip) > 40
    assert main(["encode", str(mp4), "-o", str(tmp_path / "m.sc")]) == 0


def test_dir_source_groups_frames_for_the_video_model(tmp_path, clip):
    from PIL import Image
    for i, f in enumerate(clip):
        Image.fromarray(f).save(tmp_path / f"f{i:03d}.png")
    src = open_source(f"dir:{tmp_path},frames=4")
    assert src.modality == "video"
    groups = [item.array for item in src]
    assert len(groups) == 2 and all(g.shape == (4, 96, 128, 3) for g in groups)
    assert np.array_equal(np.concatenate(groups), clip)
    with pytest.raises(ConfigError, match="groups image frames"):
        open_source(f"file:{ROOT / 'encoder_runtime' / 'samples' / 'speech_16k.wav'},frames=4")


def test_synthetic_source_groups_and_drops_partial_groups():
    src = open_source("synthetic:32x48x3,count=10,frames=4")
    items = list(src)
    assert [i.array.shape for i in items] == [(4, 32, 48, 3)] * 2   # 2 left over: not a group


@pytestmark_models
def test_daemon_picks_the_video_model_for_a_grouped_source():
    from encoder_runtime.daemon.codecs import load_encoder
    enc = load_encoder("default", 1, "video")
    assert enc.bundle.modality == "video"
    with pytest.raises(ValueError, match="video model but the source gives image"):
        load_encoder(default_model("video"), 1, "image")


def test_sensor_train_video_smoke(tmp_path, clip):
    """``sensor-train --modality video`` for a few real steps on a folder of clips (the bundled
    held-out frames and their mirror image, as .y4m; one of the two is the validation split):
    a video bundle with 4×4×4 blocks and held-out metrics from the exact codes."""
    pytest.importorskip("torch")
    from export.data import user_split
    from export.train import main
    data = tmp_path / "clips"
    data.mkdir()
    (data / "city.y4m").write_bytes(CLIP.read_bytes())
    (data / "city_mirror.y4m").write_bytes(video_io.write_y4m(clip[:, :, ::-1], 25.0, "444"))
    split = user_split(data, "video")
    assert len(split["train"]) == len(split["val"]) == 1
    assert main(["--modality", "video", "--data", str(data), "--latent", "4", "--steps", "3",
                 "--batch", "2", "--crop", "8", "--decoder-width", "16", "--decoder-blocks", "1",
                 "--device", "cpu", "--out", str(tmp_path / "runs"), "--name", "v"]) == 0
    m = json.loads((tmp_path / "runs" / "v" / "bundle" / "manifest.json").read_text())
    assert m["modality"] == "video" and m["transform"]["block"] == [4, 4, 4]
    assert m["latent"]["channels"] == 4
    met = m["model_card"]["metrics"]
    assert met["frames"] == 1 and met["bpp"] > 0 and 5 < met["psnr_db"] < 60
    bundle = tmp_path / "runs" / "v" / "bundle"
    out = Decoder.load(bundle).decode(Encoder.load(bundle).encode(clip))
    assert out.shape == clip.shape and out.dtype == np.uint8
