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
    share = np.mean([b.prompt_split(n) == "test" for n in names])
    assert 0.18 < share < 0.32
    assert b.prompt_split("digits/1.wav") == b.prompt_split("digits/1.wav")


@pytest.mark.parametrize("c_in,t_in,learned", [(6, 1000, True), (16, 1000, True), (40, 101, False)])
def test_cnn_macs_match_the_network(c_in, t_in, learned):
    """The MACs the benchmark reports are those of the network it trains (conv/linear layers
    counted from their outputs; plus square and pool of the learned front end)."""
    import torch
    b = _bench()
    net = b._make_net(c_in, 16, 4, learned).eval()
    counted, front_t = [], []

    def hook(mod, inp, out):
        if isinstance(mod, torch.nn.Conv1d):
            counted.append(out.shape[1] * out.shape[2] * mod.in_channels * mod.kernel_size[0])
            if mod.out_channels == b.FRONT["filters"] and learned and not front_t:
                front_t.append(out.shape[2])
        else:
            counted.append(mod.in_features * mod.out_features)
    for m in net.modules():
        if isinstance(m, (torch.nn.Conv1d, torch.nn.Linear)):
            m.register_forward_hook(hook)
    with torch.no_grad():
        assert net(torch.zeros(1, c_in, t_in)).shape == (1, 4)
    extra = front_t[0] * b.FRONT["filters"] * 2 if learned else 0
    assert b.cnn_macs(c_in, t_in, 16, 4, learned) == sum(counted) + extra


def test_quick_run(tmp_path):
    b = _bench()
    if not all((b.SOUNDS_DIR / folder).is_dir() for _, folder in b.VOICES.values()):
        pytest.skip("asterisk-core-sounds-{es,fr,it,ru}-wav not installed "
                    "(scripts/apt/latents.txt)")
    from benchmarks.perception import FMNIST_DIR
    if not (FMNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("dataset-fashion-mnist not installed (scripts/apt/perception.txt)")
    assert b.main(["--quick", "--no-plot", "--out", str(tmp_path), "--train-windows", "16",
                   "--test-windows", "6", "--fm-train", "600", "--fm-test", "300"]) == 0
    res = json.loads((tmp_path / "latent_recognizers.json").read_text())
    sp = {r["method"]: r for r in res["speech"]["rows"]}
    assert set(sp) == {"clean", "decoded", "latents"}
    assert res["speech"]["test"]["per_language"] == [6, 6, 6, 6]
    test_names = {n.split("/", 1)[1] for n in res["speech"]["test"]["prompt_names"]}
    assert all(b.prompt_split(n) == "test" for n in test_names)
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
