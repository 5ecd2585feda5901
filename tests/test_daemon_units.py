"""Component tests for the daemon: config, queue, spool recovery/bounds, store, sd_notify, metrics."""

from __future__ import annotations

import io
import json
import os
import socket
import urllib.request

import numpy as np
import pytest

from encoder_runtime.container import (PREAMBLE, GapReason, RecordType, scan_records)
from encoder_runtime.daemon import sdnotify
from encoder_runtime.daemon.codecs import RawDecoder, RawEncoder
from encoder_runtime.daemon.config import (ConfigError, EncodeConfig, load_config, parse_duration,
                                           parse_size)
from encoder_runtime.daemon.encode_cli import main as encode_main
from encoder_runtime.daemon.metrics import EncodeMetrics, serve
from encoder_runtime.daemon.pipeline import FrameQueue
from encoder_runtime.daemon.sources import SourceItem, StdinSource, open_source
from encoder_runtime.daemon.spool import Spool, inspect_segment
from encoder_runtime.daemon.store import RangeSet, StreamStore

pytestmark = pytest.mark.timeout(60)
HEADER = {"codec": "raw-zstd", "stream_id": "s1", "format": 1}


# -- config ----------------------------------------------------------------------------------
def test_sizes_and_durations():
    assert parse_size("512MiB") == 512 * 1024**2
    assert parse_size("1MB") == 1_000_000
    assert parse_size(4096) == 4096
    assert parse_duration("200ms") == pytest.approx(0.2)
    assert parse_duration("5m") == 300
    with pytest.raises(ConfigError, match="size"):
        parse_size("lots")


def test_toml_flags_win_and_unknown_keys_fail(tmp_path):
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text('[sink]\nurl = "x"\n')
    with pytest.raises(ConfigError, match="unknown key 'url' in \\[sink\\]"):
        load_config(EncodeConfig, cfg_file, {})
    cfg_file.write_text('[sink]\nsink = "tcp://127.0.0.1:9"\nwindow = 2\n[spool]\nspool_max_bytes = "8MiB"\n')
    cfg = load_config(EncodeConfig, cfg_file, {"window": "7"})
    assert cfg.window == 7 and cfg.spool_max_bytes == 8 * 1024**2 and cfg.sink == "tcp://127.0.0.1:9"
    with pytest.raises(ConfigError, match="stream_id"):
        load_config(EncodeConfig, cfg_file, {"stream_id": "../etc"})


def test_check_config_cli(tmp_path, capsys):
    assert encode_main(["check-config", "--sink", "tcp://127.0.0.1:1", "--source", "synthetic:8x8"]) == 0
    assert json.loads(capsys.readouterr().out)["sink"]["sink"] == "tcp://127.0.0.1:1"
    assert encode_main(["check-config", "--sink", "ftp://x"]) == 2
    assert "unsupported URL" in capsys.readouterr().err
    assert encode_main(["check-config", "--sink", "tcp://h:1", "--source", "mic:"]) == 2
    assert "sounddevice" in capsys.readouterr().err


def test_optional_sources_fail_clearly():
    for url in ("mic:", "camera:/dev/video99"):
        with pytest.raises(ConfigError) as exc:
            open_source(url)
        assert url.split(":")[0] in str(exc.value)
    with pytest.raises(ConfigError, match="unknown scheme"):
        open_source("tape:/dev/st0")


def test_stdin_and_dir_sources(tmp_path):
    frames = np.arange(2 * 4 * 3, dtype=np.uint16).reshape(2, 4, 3)
    src = StdinSource((4, 3), np.dtype("uint16"), stream=io.BytesIO(frames.tobytes() + b"\x01"))
    got = [item.array for item in src]
    assert len(got) == 2 and np.array_equal(got[1], frames[1])
    from skimage import data

    for i, img in enumerate((data.astronaut()[:64, :64], data.coffee()[:64, :64])):
        np.save(tmp_path / f"{i}.npy", img)
    items = list(open_source(f"dir:{tmp_path}"))
    assert [it.array.shape for it in items] == [(64, 64, 3)] * 2


# -- queue -----------------------------------------------------------------------------------
def _item(i):
    return SourceItem(np.full((2,), i, np.uint8), i, i)


def test_queue_gap_policy_records_losses_in_order():
    q = FrameQueue(2, "gap")
    for i in range(5):
        q.put(_item(i))
    out = [q.get(0) for _ in range(3)]
    assert [o.array[0] for o in out[:2]] == [0, 1]
    assert out[2].array is None and out[2].lost == 3 and out[2].reason == GapReason.QUEUE_FULL


def test_queue_latest_policy_keeps_newest():
    q = FrameQueue(2, "latest")
    for i in range(5):
        q.put(_item(i))
    assert [q.get(0).array[0] for _ in range(2)] == [3, 4]


# -- spool -----------------------------------------------------------------------------------
def _spool(tmp_path, **kw):
    kw.setdefault("segment_max_age", 100)
    sp = Spool(tmp_path / "spool", "s1", **kw)
    sp.open(HEADER)
    return sp


def test_spool_crash_recovery_truncates_and_resumes(tmp_path):
    sp = _spool(tmp_path)
    enc = RawEncoder()
    for i in range(10):
        sp.append_frame(enc.encode_frame(np.full((8, 8), i, np.uint8)), i, i)
    active = sp.dir / "active.scd.open"
    size = active.stat().st_size
    with open(active, "r+b") as f:  # corrupt the last record, append garbage
        f.seek(size - 3)
        f.write(b"\xff\xff\xff" + b"garbage")
    sp2 = _spool(tmp_path)
    assert sp2.recovery["sealed_active"] and sp2.recovery["truncated_bytes"] > 0
    assert sp2.next_seq > 9  # record 9 was cut off; its seq is never reused (restart GAP)
    assert sp2.recovery["restart_gap"] == (9, sp2.next_seq - 1)
    segs = sp2.pending()
    info = inspect_segment(segs[0].read())
    assert info.frames == 9 and info.first == 0 and info.last == 8
    dec = RawDecoder()
    assert all(dec.decode_frame(HEADER, r.payload)[0, 0] == r.seq for r in info.records
               if r.type == RecordType.FRAME)
    # After every segment is acknowledged the floor keeps seqs unique across restarts.
    for s in segs:
        sp2.ack(s)
    assert _spool(tmp_path).next_seq >= sp2.next_seq


def test_spool_drop_oldest_writes_gaps_and_carries_old_gaps(tmp_path):
    sp = _spool(tmp_path, max_bytes=16 * 1024, segment_max_bytes=4096)
    sp.append_gap(3, GapReason.QUEUE_FULL)      # seqs 0..2
    payload = os.urandom(1000)
    for _ in range(60):
        sp.append_frame(payload, 1, 1)
    assert sp.total_bytes() <= 16 * 1024
    sp.close()
    covered = RangeSet()
    for seg in sp.pending():
        for r in inspect_segment(seg.read()).records:
            if r.type == RecordType.FRAME:
                assert r.seq not in covered
                covered.add(r.seq, r.seq)
            elif r.type == RecordType.GAP:
                a, b, reason = r.gap()
                assert covered.uncovered(a, b) == [(a, b)]
                covered.add(a, b)
    assert covered.ranges() == [(0, 62)]


def test_spool_drop_newest(tmp_path):
    sp = _spool(tmp_path, max_bytes=8192, segment_max_bytes=4096, when_full="drop_newest")
    results = [sp.append_frame(os.urandom(1000), 0, 0) for _ in range(12)]
    assert None in results and sp.total_bytes() <= 8192 + 200


# -- store -----------------------------------------------------------------------------------
def test_rangeset():
    r = RangeSet()
    r.add(5, 9)
    r.add(1, 2)
    r.add(3, 4)
    assert r.ranges() == [(1, 9)] and 5 in r and 10 not in r
    assert r.uncovered(0, 12) == [(0, 0), (10, 12)]


def test_store_dedups_and_trims_gaps_and_recovers(tmp_path):
    from encoder_runtime.container import Record, gap_record

    st = StreamStore(tmp_path, "s1")
    frames = [Record(RecordType.FRAME, i, b"x" * 10) for i in range(5)]
    assert st.commit(HEADER, frames) == (5, 0, 0)
    assert st.commit(HEADER, frames[3:] + [gap_record(3, 3, 8, GapReason.SPOOL_FULL)]) == (0, 2, 1)
    assert st.gaps == [(5, 8, int(GapReason.SPOOL_FULL))]
    st.close()
    path = st.files()[-1]
    with open(path, "ab") as f:
        f.write(Record(RecordType.FRAME, 9, b"y" * 10).encode()[:-2])  # torn append
    st2 = StreamStore(tmp_path, "s1")
    assert st2.covered.ranges() == [(0, 8)]
    res = scan_records(path.read_bytes(), offset=PREAMBLE.size)
    assert not res.errors


# -- operations ------------------------------------------------------------------------------
def test_sd_notify_real_datagram_socket(tmp_path, monkeypatch):
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind(path)
        srv.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        monkeypatch.setenv("WATCHDOG_USEC", "2000000")
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
        assert sdnotify.notify("READY=1")
        assert srv.recv(100) == b"READY=1"
        assert sdnotify.watchdog_period() == pytest.approx(1.0)
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not sdnotify.notify("READY=1")


def test_metrics_http_exposition():
    m = EncodeMetrics()
    m.frames_captured.inc(3)
    m.frames_dropped.inc(2, "queue", "queue_full")
    m.encode_seconds.observe(0.003)
    srv = serve(m.registry, "127.0.0.1", 0)
    try:
        port = srv.server_address[1]
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        srv.shutdown()
    assert "sensor_encode_frames_captured_total 3" in text
    assert 'sensor_encode_frames_dropped_total{stage="queue",reason="queue_full"} 2' in text
    assert 'sensor_encode_encode_seconds_bucket{le="0.005"} 1' in text


# -- the real codec is the default path --------------------------------------------------------
def test_default_model_per_modality_and_target_variant(tmp_path):
    import shutil

    from encoder_runtime import Decoder, Encoder
    from encoder_runtime.bundle import MODELS_DIR, default_model
    from encoder_runtime.daemon.codecs import decoder_for_header, load_encoder

    img = load_encoder("default", modality="image")
    assert isinstance(img, Encoder) and img.name == default_model("image") == "rgb-c16"
    assert img.variant == "fp32"
    assert load_encoder("", modality="audio").name == default_model("audio")
    with pytest.raises(ValueError, match="audio model"):
        load_encoder(default_model("audio"), modality="image")
    with pytest.raises(ValueError, match="no default model"):
        load_encoder("default", modality=None)
    # A target bundle (sensor-export) names its device's fastest variant; the daemon runs it.
    tgt = tmp_path / "rgb-c16-rpi5"
    shutil.copytree(MODELS_DIR / "rgb-c16", tgt)
    manifest = json.loads((tgt / "manifest.json").read_text())
    manifest["target"] = {"name": "rpi5", "default_variant": "int8"}
    (tgt / "manifest.json").write_text(json.dumps(manifest))
    enc = load_encoder(str(tgt), modality="image")
    assert enc.variant == "int8" and enc.stream_header("x")["encoder_variant"] == "int8"
    assert load_encoder(str(tgt), modality="image", variant="fp32").variant == "fp32"
    frame = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    assert enc.encode_frame(frame) == img.encode_frame(frame)  # both variants: the same codes
    header = img.stream_header("s")
    dec = decoder_for_header(header)
    assert isinstance(dec, Decoder)
    assert dec.decode_frame(header, img.encode_frame(frame)).shape == frame.shape


def test_encode_config_default_model_and_variant_flag(tmp_path):
    cfg = load_config(EncodeConfig, None, {"sink": "tcp://127.0.0.1:1", "variant": "int8"})
    assert cfg.model == "default" and cfg.variant == "int8"
    with pytest.raises(ConfigError):
        load_config(EncodeConfig, None, {"sink": "tcp://127.0.0.1:1", "variant": "fp16"})


def test_dir_source_streams_one_kind(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "a.png")
    np.save(tmp_path / "b.npy", np.zeros((4, 4), np.float32))
    (tmp_path / "c.wav").write_bytes(b"")
    src = open_source(f"dir:{tmp_path}")
    assert src.modality == "image" and [p.name for p in src.files] == ["a.png"]
    assert [p.name for p in open_source(f"dir:{tmp_path},kind=npy").files] == ["b.npy"]
    with pytest.raises(ConfigError, match="kind"):
        open_source(f"dir:{tmp_path},kind=video")


def test_reconstructions_png_wav_y4m_npy(tmp_path, monkeypatch):
    import sys

    from encoder_runtime.daemon.receiver import write_reconstruction

    img = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    assert write_reconstruction(tmp_path, 1, {"modality": "image"}, img).suffix == ".png"
    audio = np.zeros((160, 1), np.int16)
    assert write_reconstruction(tmp_path, 2, {"modality": "audio", "sample": {"rate_hz": 16000}},
                                audio).suffix == ".wav"
    assert write_reconstruction(tmp_path, 3, {"modality": "timeseries"}, audio).suffix == ".npy"
    from encoder_runtime.video_io import read_y4m
    group = np.stack([img, img[::-1], img[:, ::-1], 255 - img])
    path = write_reconstruction(tmp_path, 5, {"modality": "video", "meta": {"fps": 12.5}}, group)
    back, meta = read_y4m(path.read_bytes(), path)
    assert path.name == "000000000005.y4m" and meta["fps"] == 12.5
    assert back.shape == group.shape and np.abs(back.astype(int) - group).max() <= 2
    monkeypatch.setitem(sys.modules, "PIL", None)  # no Pillow: .npy
    path = write_reconstruction(tmp_path, 4, {"modality": "image"}, img)
    assert path.suffix == ".npy" and np.array_equal(np.load(path, allow_pickle=False), img)


def test_demo_histogram_quantile_interpolates():
    from encoder_runtime.daemon.demo import histogram_quantile

    m = {'x_bucket{le="0.1"}': 0, 'x_bucket{le="0.2"}': 50, 'x_bucket{le="0.4"}': 100, 'x_bucket{le="+Inf"}': 100}
    assert histogram_quantile(m, "x", 0.5) == pytest.approx(0.2)
    assert histogram_quantile(m, "x", 0.75) == pytest.approx(0.3)
    assert np.isnan(histogram_quantile({}, "x", 0.5))
