"""Joint stereo audio models (issue 11): bundled and sized, picked by the input's channel count
(``sensor-codec`` and the daemon's ``dir:`` source), decoded to stereo WAV, on the real bundled
stereo clip (sonic-pi loop_amen, held out). Exactness: tests/test_exactness.py and friends."""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from encoder_runtime import Decoder, Encoder
from encoder_runtime.bundle import default_model, list_model_names, load_bundle
from encoder_runtime.codec import CodecError
from encoder_runtime.ladder import ladder
from encoder_runtime.media import read_input
from encoder_runtime.metrics import snr_db

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "encoder_runtime" / "samples"
CLIP = SAMPLES / "loop_amen_stereo_44k.wav"
STEREO = [n for n in list_model_names() if load_bundle(n, verify=False).modality == "audio"
          and load_bundle(n, verify=False).channels == 2]


def _snr(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x.astype(np.float64), y.astype(np.float64)
    return snr_db((x ** 2).sum(), ((x - y) ** 2).sum())


def codec(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "encoder_runtime.cli_codec", *map(str, args)],
                          capture_output=True, text=True, cwd=REPO)


def test_stereo_models_are_bundled_as_their_own_ladder():
    assert len(STEREO) >= 2
    for n in STEREO:
        m = load_bundle(n).manifest
        assert m["sample"]["rate_hz"] == 44100 and m["config"]["in_channels"] == 2
        assert m["macs_per_sample"]["folded"] <= 150
    assert sorted(n for n, _ in ladder("audio", 2)) == sorted(STEREO)
    assert not set(STEREO) & {n for n, _ in ladder("audio")}        # the mono ladder is unchanged
    assert default_model("audio", 2) in STEREO
    assert load_bundle(default_model("audio")).channels == 1


@pytest.mark.parametrize("name", STEREO)
def test_stereo_roundtrip_real_clip(name):
    x, meta = read_input(CLIP)
    assert x.shape[1] == 2 and meta["rate_hz"] == 44100
    enc = Encoder.load(name)
    codes = enc.codes(x)
    assert codes.shape == (1, enc.bundle.latent_channels, -(-len(x) // 16))  # one joint batch item
    blob = enc.encode(x, meta=meta)
    out = Decoder.for_stream(blob).decode(blob)
    assert out.shape == x.shape and out.dtype == np.int16
    assert _snr(x, out) > 10.0
    with pytest.raises(CodecError, match="2 audio channels"):
        enc.encode(x[:, :1])


def test_cli_picks_the_stereo_model_for_stereo_input(tmp_path):
    p = codec("encode", CLIP, "-o", tmp_path / "a.scd")
    assert p.returncode == 0, p.stderr
    info = json.loads(codec("info", tmp_path / "a.scd", "--json").stdout)
    assert json.dumps(info).count(default_model("audio", 2)) >= 1
    p = codec("decode", tmp_path / "a.scd", "-o", tmp_path / "b.wav")
    assert p.returncode == 0, p.stderr
    with wave.open(str(tmp_path / "b.wav")) as w:
        assert (w.getnchannels(), w.getframerate()) == (2, 44100)
        y = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    x = read_input(CLIP)[0]
    assert y.shape == x.shape and _snr(x, y) > 10.0
    lowest = ladder("audio", 2)[0][0]
    assert json.loads(codec("roundtrip", CLIP, "-q", "1").stdout)["model"] == lowest
    mono = json.loads(codec("roundtrip", SAMPLES / "speech_16k.wav").stdout)["model"]
    assert mono == default_model("audio")


def test_daemon_dir_source_of_stereo_files_uses_the_stereo_model(tmp_path):
    from tests.test_daemon_e2e import Rx, _wait_files, spawn, verify_stream, wait_exit
    src = tmp_path / "clips"
    src.mkdir()
    for i in range(2):
        (src / f"amen{i}.wav").write_bytes(CLIP.read_bytes())
    r = Rx(tmp_path, "--decode", str(tmp_path / "decoded")).start()
    try:
        p = spawn("encode_cli", ["--source", f"dir:{src},chunk=8192", "--sink",
                                 f"tcp://127.0.0.1:{r.port}", "--spool", str(tmp_path / "spool"),
                                 "--stream-id", "st", "--segment-max-age", "100ms",
                                 "--max-frames", "12"], tmp_path / "enc.log")
        assert wait_exit(p, 90, tmp_path / "enc.log") == 0
        res = verify_stream(r.store, "st", expect_count=12, expect_model=default_model("audio", 2))
        tail = len(read_input(CLIP)[0]) % 8192                   # each file's last, shorter chunk
        assert set(res["decoded"].values()) == {(8192, 2), (tail, 2)}
        wavs = _wait_files(tmp_path / "decoded" / "st", "*.wav", 12)
        assert len(wavs) == 12
        with wave.open(str(wavs[0])) as w:
            assert (w.getnchannels(), w.getframerate()) == (2, 44100)
    finally:
        r.stop()


def test_benchmark_runs_on_the_bundled_clip():
    from benchmarks import multichannel_audio as bench
    x = read_input(CLIP)[0]
    res = bench.run([x])
    assert [r["model"] for r in res["joint"]] == STEREO
    assert len(res["per_channel"]) >= 2                        # benchmarks/baselines/audio44k-*
    for r in res["joint"] + res["per_channel"]:
        assert 10 < r["kbps"] < res["pcm_kbps"] / 3 and r["kbps_file"] > r["kbps"] and r["snr_db"] > 10
    assert 0 < res["flac_kbps"] < res["pcm_kbps"]
    assert np.isfinite(res["bd_rate_percent"]["joint_vs_per_channel"])
