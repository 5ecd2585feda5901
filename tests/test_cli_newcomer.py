"""Issue 14 items 1 and 6: a newcomer's first hour with ``sensor-data``, ``sensor-train`` and
``sensor-codec``.

Real files only: the bundled samples (encoder_runtime/samples), streams the real encoder writes,
the real CLIs as subprocesses (pipes, stdin/stdout, exit codes). "Offline" is real too: apt and
pip are pointed at a closed loopback port (127.0.0.1:9), so nothing leaves the machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from encoder_runtime import Decoder, Encoder, container
from encoder_runtime.bundle import default_model, list_model_names, load_bundle
from encoder_runtime.media import read_input

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "encoder_runtime" / "samples"
OFFLINE = "http://127.0.0.1:9/"  # discard port: connection refused at once


def run(*args: str, input: bytes | None = None, env: dict | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], input=input, capture_output=True, cwd=REPO,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def codec(*args: str, **kw) -> subprocess.CompletedProcess:
    return run("-m", "encoder_runtime.cli_codec", *args, **kw)


def err_lines(p: subprocess.CompletedProcess) -> list[str]:
    return p.stderr.decode().splitlines()


def assert_clean_error(p: subprocess.CompletedProcess, *needles: str) -> str:
    """Non-zero exit, no traceback, the last stderr line is the error and names ``needles``."""
    text = p.stderr.decode()
    assert p.returncode != 0, text
    assert "Traceback" not in text and "Exception" not in text, text
    last = text.strip().splitlines()[-1]
    for n in needles:
        assert n in last, last
    return last


def snapshot(folder: Path) -> dict[str, str]:
    """relative path → sha256 of every file (and '/' for every folder) under ``folder``."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest()
                                         if p.is_file() else "/") for p in folder.rglob("*")}


def offline_env(tmp_path: Path) -> dict:
    conf = tmp_path / "apt-offline.conf"
    conf.write_text(f'Acquire::http::Proxy "{OFFLINE}";\nAcquire::https::Proxy "{OFFLINE}";\n'
                    'Acquire::Retries "0";\n')
    return {"APT_CONFIG": str(conf), "PIP_INDEX_URL": OFFLINE, "PIP_NO_CACHE_DIR": "1",
            "http_proxy": OFFLINE, "https_proxy": OFFLINE}


def user_images(folder: Path, n: int = 4, size: int = 96) -> Path:
    """``n`` small real photos (crops of the bundled samples) as a user's own folder."""
    folder.mkdir(parents=True)
    srcs = sorted(SAMPLES.glob("*.png"))
    for i in range(n):
        img = Image.open(srcs[i % len(srcs)]).convert("RGB")
        img.crop((40 * i, 30 * i, 40 * i + size, 30 * i + size)).save(folder / f"photo_{i}.png")
    return folder


# --- item 1: your own training data ---------------------------------------------------------------

needs_apt = pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs Debian apt-get")


@needs_apt
def test_fetch_never_touches_a_users_folder(tmp_path):
    """SENSORCODEC_DATA pointing at the user's images/{train,test}: fetch refuses before any
    download, in one line that points at --data, and the folder stays byte-identical."""
    user = tmp_path / "mine"
    user_images(user / "images" / "train", 2)
    user_images(user / "images" / "test", 1)
    before = snapshot(user)
    p = run("-m", "export.data", "fetch", env={"SENSORCODEC_DATA": str(user),
                                               **offline_env(tmp_path)}, timeout=120)
    last = assert_clean_error(p, "sensor-data: error:", str(user / "images"), "--data")
    assert "not made by sensor-data fetch" in last
    assert snapshot(user) == before  # nothing deleted, overwritten or added


@needs_apt
def test_fetch_offline_reports_progress_and_one_line_error(tmp_path):
    cache = tmp_path / "cache"
    p = run("-m", "export.data", "fetch", "--cache", str(cache), env=offline_env(tmp_path),
            timeout=120)
    first = "plasma-workspace-wallpapers"
    assert_clean_error(p, "sensor-data: error:", f"package {first}=", "download failed",
                       "127.0.0.1")
    assert any(line.startswith(f"sensor-data: [1/5] {first}") and "downloading" in line
               for line in err_lines(p)), p.stderr.decode()
    # what fetch made is marked as its own, so a later fetch may rebuild it
    assert (cache / "debs" / ".sensorcodec-cache").is_file()


def test_pip_download_offline_is_one_line(tmp_path):
    code = ("import sys; from pathlib import Path; from export.data import fetch_speech; "
            "fetch_speech(Path(sys.argv[1]), ('praatio',))")
    p = run("-c", code, str(tmp_path / "cache"), env=offline_env(tmp_path), timeout=120)
    assert_clean_error(p, "package praatio==", "download failed")


def test_user_split_is_by_file_name(tmp_path):
    """val = files whose sha256(relative name) % 100 < USER_VAL_PERCENT: fixed per file, so
    adding files never moves existing ones between train and val."""
    from export.data import USER_VAL_PERCENT, user_split
    folder = user_images(tmp_path / "photos", 30, 16)

    def by_hash(p: Path) -> bool:
        return int(hashlib.sha256(p.name.encode()).hexdigest(), 16) % 100 < USER_VAL_PERCENT

    split = user_split(folder, "image")
    assert split["val"] == [p for p in sorted(folder.glob("*.png")) if by_hash(p)] != []
    assert sorted(split["train"] + split["val"]) == sorted(folder.glob("*.png"))
    shutil.copy(folder / "photo_0.png", folder / "zz_new.png")
    again = user_split(folder, "image")
    assert set(split["val"]) <= set(again["val"]) and set(split["train"]) <= set(again["train"])


def test_sensor_train_on_own_data(tmp_path):
    """sensor-train --data DIR trains on the user's files (val split evaluated), reads only."""
    from export.data import user_split
    folder = user_images(tmp_path / "photos", 4)
    before = snapshot(folder)
    p = run("-m", "export.train", "--data", str(folder), "--steps", "2", "--batch", "2",
            "--crop", "32", "--decoder-width", "16", "--decoder-blocks", "1", "--device", "cpu",
            "--out", str(tmp_path / "runs"), "--name", "mine", "--checkpoint-every", "100",
            env={"OMP_NUM_THREADS": "1"}, timeout=300)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    result = json.loads(p.stdout.decode().strip().splitlines()[-1])
    assert result["frames"] == len(user_split(folder, "image")["val"]) >= 1
    assert (tmp_path / "runs" / "mine" / "bundle" / "manifest.json").is_file()
    assert snapshot(folder) == before


# --- item 6: sensor-codec like the codec CLIs people know -----------------------------------------

def image_rungs() -> list[tuple[float, str]]:
    """(measured held-out bpp from the model card, name) of every bundled image model."""
    out = []
    for n in list_model_names():
        m = load_bundle(n, verify=False).manifest
        if m["modality"] == "image":
            out.append((m["model_card"]["metrics"]["bpp"], n))
    return sorted(out)


def test_stdin_stdout_roundtrip():
    png = (SAMPLES / "Kite.png").read_bytes()
    enc = codec("encode", "-", "--format", "png", "-o", "-", input=png)
    assert enc.returncode == 0, enc.stderr.decode()
    pre = container.preamble()
    assert enc.stdout[:len(pre)] == pre  # stdout holds the stream only
    container.read_stream(enc.stdout, "stdout")
    assert json.loads(enc.stderr.decode().splitlines()[-1])["output"] == "-"
    dec = codec("decode", "-", "-o", "-", input=enc.stdout)
    assert dec.returncode == 0, dec.stderr.decode()
    assert dec.stdout[:8] == b"\x89PNG\r\n\x1a\n"
    ref, _ = read_input(SAMPLES / "Kite.png")
    out, _ = read_input(Path("-.png"), data=dec.stdout)
    assert out.shape == ref.shape
    assert np.abs(out.astype(int) - ref.astype(int)).mean() < 12
    no_fmt = codec("encode", "-", "-o", "-", input=png)
    assert_clean_error(no_fmt, "--format")


def test_quality_knob_maps_onto_the_ladder(tmp_path):
    rungs = image_rungs()
    sizes = []
    for q in (1, len(rungs)):
        p = codec("encode", str(SAMPLES / "Kite.png"), "-o", str(tmp_path / f"q{q}.scd"),
                  "-q", str(q))
        assert p.returncode == 0, p.stderr.decode()
        row = json.loads(p.stdout)
        assert row["model"] == rungs[q - 1][1]
        sizes.append(row["bytes"])
    assert sizes[0] < sizes[1]
    want = min(rungs, key=lambda r: abs(r[0] - 0.3))[1]
    p = codec("encode", str(SAMPLES / "Kite.png"), "-o", str(tmp_path / "b.scd"), "--bpp", "0.3")
    assert json.loads(p.stdout)["model"] == want
    assert_clean_error(codec("encode", str(SAMPLES / "Kite.png"), "-o", str(tmp_path / "x.scd"),
                             "-q", str(len(rungs) + 1)), f"1..{len(rungs)}")


def test_models_marks_the_default_and_rungs():
    p = codec("models")
    assert p.returncode == 0, p.stderr.decode()
    starred = [line.split()[1] for line in p.stdout.decode().splitlines() if line.startswith("*")]
    bundles = [load_bundle(n, verify=False) for n in list_model_names()]
    families = {(b.modality, b.channels if b.modality == "audio" and b.channels > 1 else None)
                for b in bundles}  # audio: one default per jointly coded channel count
    assert sorted(starred) == sorted(default_model(*f) for f in families)
    rows = json.loads(codec("models", "--json").stdout)
    ladder = [r["name"] for r in sorted((r for r in rows if r["modality"] == "image"),
                                        key=lambda r: r["quality"])]
    assert ladder == [n for _, n in image_rungs()]
    assert "-q N" in p.stdout.decode() and "--bpp" in p.stdout.decode()


@pytest.fixture(scope="module")
def multi_frame(tmp_path_factory) -> tuple[Path, list[np.ndarray]]:
    """A real 3-frame image stream (three crops of two samples) and its decoded frames."""
    a, _ = read_input(SAMPLES / "Kite.png")
    b, _ = read_input(SAMPLES / "ColdRipple.png")
    enc = Encoder.load("rgb-c12-low")
    hdr = enc.stream_header()
    records = [container.header_record(hdr, 0, hdr["clock"]["mono_ns"], hdr["clock"]["wall_ns"])]
    for seq, x in enumerate((a[:64, :96], b[:64, :96], a[64:128, :96]), 1):
        records.append(container.Record(container.RecordType.FRAME, seq, enc.encode_frame(x),
                                        time.monotonic_ns(), time.time_ns()))
    blob = container.write_stream(records)
    path = tmp_path_factory.mktemp("multi") / "multi.scd"
    path.write_bytes(blob)
    return path, Decoder.load("rgb-c12-low").frames(blob)


def test_decode_writes_every_frame(multi_frame, tmp_path):
    path, frames = multi_frame
    p = codec("decode", str(path), "-o", str(tmp_path / "m.png"))
    assert p.returncode == 0, p.stderr.decode()
    for i, want in enumerate(frames, 1):
        got, _ = read_input(tmp_path / f"m-{i:04d}.png")
        np.testing.assert_array_equal(got, want)
    assert codec("decode", str(path), "-o", str(tmp_path / "out_%04d.png")).returncode == 0
    assert sorted(p.name for p in tmp_path.glob("out_*.png")) == [
        f"out_{i:04d}.png" for i in range(1, 4)]
    assert codec("decode", str(path), "-o", str(tmp_path / "two.png"), "--frame", "2"
                 ).returncode == 0
    np.testing.assert_array_equal(read_input(tmp_path / "two.png")[0], frames[1])
    assert_clean_error(codec("decode", str(path), "-o", str(tmp_path / "x.png"), "--frame", "4"),
                       "--frame 4", "1..3")


def test_refuses_cross_modality_outputs(tmp_path):
    img = tmp_path / "k.scd"
    assert codec("encode", str(SAMPLES / "Kite.png"), "-o", str(img)).returncode == 0
    assert_clean_error(codec("decode", str(img), "-o", str(tmp_path / "k.wav")), "k.wav", "image")
    snd = tmp_path / "s.scd"
    assert codec("encode", str(SAMPLES / "speech_16k.wav"), "-o", str(snd)).returncode == 0
    assert_clean_error(codec("decode", str(snd), "-o", str(tmp_path / "s.png")), "s.png", "audio")
    assert not (tmp_path / "k.wav").exists() and not (tmp_path / "s.png").exists()


def test_warns_on_lossy_or_guessed_input(tmp_path):
    a, _ = read_input(SAMPLES / "Kite.png")
    rgba = np.dstack([a[:64, :64], np.full((64, 64), 255, np.uint8)])
    rgba[:8, :8, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    np.save(tmp_path / "img.npy", a[:64, :64])
    import soundfile as sf
    x, _ = read_input(SAMPLES / "speech_16k.wav")
    sf.write(tmp_path / "s32k.wav", np.repeat(x[:8000], 2, axis=0), 32000, subtype="PCM_16")
    cases = {"alpha.png": "alpha", "img.npy": "guessed", "s32k.wav": "resampled"}
    for name, word in cases.items():
        p = codec("encode", str(tmp_path / name), "-o", str(tmp_path / f"{name}.scd"))
        assert p.returncode == 0, p.stderr.decode()
        warns = [w for w in err_lines(p) if w.startswith("sensor-codec: warning:")]
        assert len(warns) == 1 and word in warns[0] and name in warns[0], p.stderr.decode()
    out = tmp_path / "s.wav"
    assert codec("decode", str(tmp_path / "s32k.wav.scd"), "-o", str(out)).returncode == 0
    assert sf.info(out).samplerate == 16000  # the model's rate, as the warning said
    quiet = codec("encode", str(tmp_path / "img.npy"), "--modality", "image", "-o",
                  str(tmp_path / "q.scd"))
    assert quiet.returncode == 0 and "warning" not in quiet.stderr.decode()


def test_version():
    from encoder_runtime import __version__
    p = codec("--version")
    assert p.returncode == 0 and p.stdout.decode().strip() == f"sensor-codec {__version__}"


def test_no_broken_pipe_traceback(multi_frame):
    """`sensor-codec info f.scd --json | head -1`: the reader leaves; no error, no traceback."""
    path, _ = multi_frame
    proc = subprocess.Popen([sys.executable, "-m", "encoder_runtime.cli_codec", "info",
                             str(path), "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=REPO)
    proc.stdout.close()  # like `| head -1` having read its line and exited
    _, err = proc.communicate(timeout=60)
    assert err == b"", err  # was "sensor-codec: error: [Errno 32] Broken pipe" (or a traceback)


def test_daemon_model_knob():
    """sensor-encode's ``model`` setting takes the same knob: quality:N / bpp:X."""
    from encoder_runtime.daemon.codecs import load_encoder, resolve_model
    rungs = image_rungs()
    assert load_encoder("quality:1", modality="image").name == rungs[0][1]
    assert resolve_model("quality:1", "image") == rungs[0][1]
    assert resolve_model(f"quality:{len(rungs)}", "image") == rungs[-1][1]
    assert resolve_model("bpp:0.3", "image") == min(rungs, key=lambda r: abs(r[0] - 0.3))[1]
    with pytest.raises(ValueError, match="quality:N"):
        resolve_model("quality:x", "image")
    with pytest.raises(ValueError, match=f"1..{len(rungs)}"):
        resolve_model("quality:0", "image")


# --- item 8: training UX ---------------------------------------------------------------------------

def imu_like_series(n: int = 8) -> list[np.ndarray]:
    """Real signals at BasicMotions' size: 6 channels × 100 int16 samples cut from the bundled
    speech sample (CI has no IMU data; the smoke run only needs a signal of the right length)."""
    import soundfile as sf
    x = sf.read(SAMPLES / "speech_16k.wav", dtype="int16")[0]
    return [x[i * 600:(i + 1) * 600].reshape(6, 100).copy() for i in range(n)]


def test_sensor_train_ux_timeseries(tmp_path, monkeypatch, capsys):
    """Time series train with the default crop (128 > 100 samples failed), the bar under
    --time-budget counts down the budget, evaluation and export say what they do, and a second
    run into the same folder is refused unless --force."""
    from export import train
    assert set(train.DEFAULT_CROP) == set(train.PRESETS)   # every modality has a default crop
    monkeypatch.setattr(train, "load_training_arrays", lambda modality, split="train": imu_like_series())
    args = ["--modality", "timeseries", "--latent", "2", "--batch", "2", "--decoder-width", "16",
            "--decoder-blocks", "1", "--device", "cpu", "--checkpoint-every", "1000",
            "--out", str(tmp_path), "--name", "ts"]
    assert train.main(args + ["--time-budget", "2"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"ts: 100%\|.*\| 2/2 s \[.* elapsed, .* left", err), err[-2000:]
    assert "evaluating (held out)" in err and "ts: exporting the bundle" in err, err[-2000:]
    with pytest.raises(SystemExit) as exc:
        train.main(args + ["--steps", "1"])
    assert exc.value.code == 2
    assert "already holds checkpoint.safetensors and bundle" in capsys.readouterr().err
    before = (tmp_path / "ts" / "checkpoint.json").read_text()
    assert train.main(args + ["--steps", "1", "--force", "--no-eval"]) == 0
    assert (tmp_path / "ts" / "checkpoint.json").read_text() != before
