"""Recognizers on the integer latents (benchmarks/latent_recognizers.py): the runtime hands out the
codes of a stream without running the decoder, and the benchmark runs end to end on tiny sizes of
the real data with sane numbers (above chance, rates in range, the latent path cheaper)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from encoder_runtime import Decoder, Encoder, container
from encoder_runtime.errors import FrameError
from encoder_runtime.frame import pack_frame, parse_frame

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "encoder_runtime" / "samples"


def _stream_frame(blob: bytes) -> tuple[dict, bytes]:
    header, records = container.read_stream(blob)
    return header, next(r.payload for r in records if r.type == container.RecordType.FRAME)


@pytest.mark.parametrize("model", ["audio16k-8k", "rgb-c16"])
def test_stream_codes_are_the_encoder_codes(model):
    enc, dec = Encoder.load(model), Decoder.load(model)
    rng = np.random.default_rng(0)
    if enc.bundle.modality == "audio":
        x = (np.sin(np.arange(4000) * 0.07) * 8000 + rng.normal(0, 300, 4000)).astype(np.int16)
    else:
        x = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    blob = enc.encode(x)
    codes = dec.codes(blob)
    assert codes.dtype == np.int8
    assert np.array_equal(codes, enc.codes(x))
    assert np.any(codes != 0)
    header, payload = _stream_frame(blob)
    got, info = dec.frame_codes(header, payload)
    assert np.array_equal(got, codes) and info.shape == x.shape
    assert np.array_equal(dec.decode(blob), dec.decode_frame(header, payload))


def test_frame_codes_checks_the_frame():
    enc, dec = Encoder.load("rgb-c16"), Decoder.load("rgb-c16")
    header, payload = _stream_frame(enc.encode(np.zeros((16, 16, 3), np.uint8)))
    info = parse_frame(payload)
    bad = pack_frame(info.coder, info.dtype, info.shape, (1, 16, 3, 2),
                     bytes(payload[info.data_offset:]))
    with pytest.raises(FrameError, match="code_shape"):
        dec.frame_codes(header, bad)
    with pytest.raises(FrameError):
        Decoder.load("rgb-c12-low").frame_codes(header, payload)


def _bench():
    from benchmarks import latent_recognizers
    return latent_recognizers


def test_windows_and_split():
    b = _bench()
    x = np.zeros(4 * b.RATE, np.int16)
    x[b.RATE:2 * b.RATE] = 1000                                  # loud second 1..2 s
    assert b.active_windows(x) == [b.HOP, b.RATE, 3 * b.HOP]     # windows overlapping it
    assert b.active_windows(x[: b.RATE - 1]) == []
    names = [f"vm-{i}.wav" for i in range(400)]
    for split, lo, hi in (("test", 0.18, 0.32), ("val", 0.18, 0.32), ("train", 0.42, 0.58)):
        assert lo < np.mean([b.prompt_split(n) == split for n in names]) < hi
    assert b.prompt_split("digits/1.wav") == b.prompt_split("digits/1.wav")
    with pytest.raises(ValueError, match="split"):
        b.load_prompts("dev", ["es"], 1)


def _have_voices(b) -> bool:
    return all((b.SOUNDS_DIR / folder).is_dir() for _, folder in b.VOICES.values())


def test_selection_never_reads_test_prompts():
    """The validation prompts are carved out of the non-test ones: on the real voice files the
    three splits are disjoint by prompt name, the loaders return only their split, and
    check_splits refuses a test prompt among the selection's prompts."""
    b = _bench()
    if not _have_voices(b):
        pytest.skip("asterisk-core-sounds-{es,fr,it,ru}-wav not installed")
    by_split: dict[str, set] = {k: set() for k in b.SPLITS}
    for lang, (_, folder) in b.VOICES.items():
        for f in b.voice_files(lang):
            rel = f.relative_to(b.SOUNDS_DIR / folder).as_posix()
            by_split[b.prompt_split(rel)].add(rel)
    assert all(len(v) > 100 for v in by_split.values())
    assert not (by_split["test"] & (by_split["train"] | by_split["val"]))
    assert not by_split["train"] & by_split["val"]
    sets = {k: b.load_prompts(k, ["it", "ru"], 4) for k in b.SPLITS}
    b.check_splits(sets)
    for k, prompts in sets.items():
        assert prompts and all(p["name"].split("/", 1)[1] in by_split[k] for p in prompts)
    with pytest.raises(ValueError, match="loaded as 'val'"):
        b.check_splits({"train": sets["train"], "val": sets["val"] + sets["test"][:1]})
    relabelled = [{**p, "split": "val"} for p in sets["test"]]
    with pytest.raises(ValueError, match="'test'"):
        b.check_splits({"val": relabelled})


def test_selection_picks_the_best_mean_validation_accuracy():
    """select_latent_front trains each candidate on train, scores on val, and picks the highest
    mean: on codes whose class lies only in the channel energy, a fixed |code| pooling separates
    the classes on validation."""
    b = _bench()
    rng = np.random.default_rng(0)

    def fake(n):
        y = rng.integers(0, 4, n)
        x = rng.normal(0, 1, (n, 2, 100)) * (1 + 3 * (y[:, None, None] == np.arange(2)[:, None]))
        return x.astype(np.float32), y
    xtr, ytr = fake(64)
    xva, yva = fake(32)
    sel = b.select_latent_front({"m": (xtr, ytr, xva, yva)}, ["abs-pool", "log1p-abs"],
                                epochs=4, seeds=1, width=4)
    assert sel["chosen"] in ("abs-pool", "log1p-abs")
    assert sel["chosen"] == max(sel["mean_val_acc"], key=sel["mean_val_acc"].get)
    assert [r["front"] for r in sel["rows"]] == ["abs-pool", "log1p-abs"]
    assert all(len(r["accs"]) == 1 for r in sel["rows"])


@pytest.mark.parametrize("c_in,t_in,front", [(6, 1000, "log-energy"), (16, 1000, "log-energy"),
                                              (6, 1000, "linear"), (6, 1000, "abs-pool"),
                                              (16, 1000, "log1p-abs"), (40, 101, "none")])
def test_cnn_macs_match_the_network(c_in, t_in, front):
    """The MACs the benchmark reports are those of the network it trains (conv/linear layers
    counted from their outputs; plus square / |.| / log1p and the pooling adds of the front
    end)."""
    import torch
    b = _bench()
    net = b._make_net(c_in, 16, 4, front).eval()
    counted, front_t = [], []

    def hook(mod, inp, out):
        if isinstance(mod, torch.nn.Conv1d):
            counted.append(out.shape[1] * out.shape[2] * mod.in_channels * mod.kernel_size[0])
            if mod.kernel_size[0] == b.FRONT["kernel"] and not front_t:
                front_t.append(out.shape[2])
        else:
            counted.append(mod.in_features * mod.out_features)
    for m in net.modules():
        if isinstance(m, (torch.nn.Conv1d, torch.nn.Linear)):
            m.register_forward_hook(hook)
    with torch.no_grad():
        assert net(torch.zeros(1, c_in, t_in)).shape == (1, 4)
    extra = {"log-energy": 2 * b.FRONT["filters"] * front_t[0] if front_t else 0,
             "linear": b.FRONT["filters"] * front_t[0] if front_t else 0,
             "abs-pool": c_in * t_in, "log1p-abs": 2 * c_in * t_in, "none": 0}[front]
    assert bool(front_t) == (front in b.LEARNED)
    assert b.cnn_macs(c_in, t_in, 16, 4, front) == sum(counted) + extra
    with pytest.raises(ValueError, match="front 'mel'"):
        b.cnn_macs(c_in, t_in, 16, 4, "mel")


def test_quick_run(tmp_path):
    b = _bench()
    if not _have_voices(b):
        pytest.skip("asterisk-core-sounds-{es,fr,it,ru}-wav not installed "
                    "(scripts/apt/latents.txt)")
    from benchmarks.perception import FMNIST_DIR
    if not (FMNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("dataset-fashion-mnist not installed (scripts/apt/perception.txt)")
    assert b.main(["--quick", "--no-plot", "--out", str(tmp_path), "--train-windows", "16",
                   "--val-windows", "6", "--test-windows", "6", "--fm-train", "600",
                   "--fm-test", "300"]) == 0
    res = json.loads((tmp_path / "latent_recognizers.json").read_text())
    sp = {r["method"]: r for r in res["speech"]["rows"]}
    assert set(sp) == {"clean", "decoded", "latents"}
    assert res["speech"]["test"]["per_language"] == [6, 6, 6, 6]
    test_names = {n.split("/", 1)[1] for n in res["speech"]["test"]["prompt_names"]}
    assert all(b.prompt_split(n) == "test" for n in test_names)
    assert res["speech"]["val"]["per_language"] == [6, 6, 6, 6]
    sel = res["speech"]["selection"]
    assert set(sel["mean_val_acc"]) == set(b.LATENT_FRONTS) and len(sel["rows"]) == 4
    assert sp["latents"]["front"] == sel["chosen"]
    val_names = {n.split("/", 1)[1] for n in res["speech"]["val"]["prompt_names"]}
    assert val_names and not val_names & test_names
    assert sp["clean"]["acc"] > 0.4                              # 4 classes: chance 0.25
    assert 2.0 < sp["latents"]["kbps"] < 40 and sp["latents"]["kbps"] == sp["decoded"]["kbps"]
    assert sp["latents"]["input_shape"][1] == b.WIN // 16
    assert sp["latents"]["decoder_macs_avoided"] > 100 * sp["latents"]["recognizer_macs"]
    assert sp["latents"]["recognizer_macs"] < (sp["decoded"]["recognizer_macs"]
                                               + sp["decoded"]["decoder_macs"]) / 50
    im = {r["method"]: r for r in res["image"]["rows"]}
    assert im["clean"]["acc"] > 0.5 and im["latents"]["acc"] > 0.5 and im["decoded"]["acc"] > 0.5
    assert 0.05 < im["latents"]["bpp"] < 2.0
    assert im["latents"]["recognizer_macs"] < im["clean"]["recognizer_macs"]
    assert im["decoded"]["decoder_macs"] == im["latents"]["decoder_macs_avoided"] > 0
    assert res["speech"]["voices"]["it"]["files"] > 500
