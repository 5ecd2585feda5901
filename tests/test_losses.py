"""Perceptual/machine training losses (export/losses.py) and their wiring into sensor-train."""

import json
import math

from pathlib import Path

import numpy as np
import pytest
import torch

from export.losses import distortion, gradient_mse, log_mel_distance, mel_filterbank, ms_ssim, stft_distance

SR = 16000


def _tone(freq: float, amp: float, n: int = 8192, phase: float = 0.0) -> torch.Tensor:
    t = torch.arange(n, dtype=torch.float64) / SR
    return (amp * torch.sin(2 * math.pi * freq * t + phase))[None, None]


def _voiced(n: int = 8192) -> torch.Tensor:
    """Low-frequency-heavy reference: 150 Hz harmonics with a -12 dB/octave tilt, plus faint noise."""
    g = torch.Generator().manual_seed(0)
    x = sum(_tone(150 * k, 8000 / k ** 2) for k in range(1, 20))
    return x + 30 * torch.randn(x.shape, generator=g, dtype=torch.float64)


def test_mel_filterbank_shape_and_order():
    fb = mel_filterbank(512, 64, SR, 60.0, 7000.0)
    assert fb.shape == (64, 257)
    assert (fb >= 0).all() and (fb.sum(1) > 0).all()
    peaks = fb.argmax(1)
    assert (peaks[1:] >= peaks[:-1]).all()
    assert fb[:, int(7200 / (SR / 512)):].abs().sum() == 0   # nothing above f_max
    with pytest.raises(ValueError, match="f_max"):
        mel_filterbank(512, 64, SR, 60.0, 9000.0)


@pytest.mark.parametrize("loss", ["mse", "mel", "stft"])
def test_zero_on_identity_and_scalar(loss):
    x = _voiced()
    d, mse = distortion(x, x.clone(), loss, mse_weight=0.0)
    assert d.dim() == 0 and mse.item() == 0.0
    if loss != "mse":
        assert abs(d.item()) < 1e-9


def test_unknown_loss_is_rejected():
    x = _voiced()
    with pytest.raises(ValueError, match="loss must be one of"):
        distortion(x, x, "l1")


@pytest.mark.parametrize("fn", [log_mel_distance, stft_distance])
def test_gradient_flows(fn):
    x = _voiced().float()
    rec = (x + 100 * torch.randn_like(x)).requires_grad_(True)
    fn(rec, x).backward()
    assert rec.grad is not None and torch.isfinite(rec.grad).all() and rec.grad.abs().sum() > 0


def test_high_frequency_error_costs_more_under_mel_than_mse():
    """Equal-energy errors at 200 Hz and 4 kHz: MSE cannot tell them apart; the log-mel and STFT
    distances charge the 4 kHz one (where the reference has little energy) much more."""
    x = _voiced()
    lf, hf = x + _tone(200, 300), x + _tone(4000, 300)
    mse_lf, mse_hf = ((lf - x) ** 2).mean(), ((hf - x) ** 2).mean()
    assert abs(mse_hf / mse_lf - 1) < 0.01
    assert log_mel_distance(hf, x) > 3 * log_mel_distance(lf, x)
    assert stft_distance(hf, x) > 2 * stft_distance(lf, x)
    # frequency weighting above 3 kHz raises the HF cost further
    assert stft_distance(hf, x, weight_above_hz=3000, weight=4) > stft_distance(hf, x)


def test_distances_are_in_db():
    """Doubling a broadband signal is a 6.02 dB change in every band and every STFT bin."""
    x = 3000 * torch.randn(1, 1, 8192, generator=torch.Generator().manual_seed(1),
                           dtype=torch.float64)
    assert abs(log_mel_distance(2 * x, x).item() - 20 * math.log10(2)) < 0.01
    assert abs(stft_distance(2 * x, x).item() - 20 * math.log10(2)) < 0.01


def test_sensor_train_mel_loss_smoke(tmp_path, monkeypatch):
    """A few real training steps with --loss mel write a checkpoint that records the loss. Trains
    on the bundled real 16 kHz samples (speech, drum loop) so CI needs no data fetch."""
    import soundfile as sf

    from encoder_runtime.bundle import MODELS_DIR
    from export import train
    clips = [sf.read(MODELS_DIR.parent / "samples" / f, dtype="int16")[0].reshape(1, -1)
             for f in ("speech_16k.wav", "loop_amen_16k.wav")]
    monkeypatch.setattr(train, "load_training_arrays", lambda modality, split="train": clips)
    main = train.main
    rc = main(["--modality", "audio", "--latent", "2", "--levels", "4", "--loss", "mel",
               "--steps", "3", "--batch", "2", "--crop", "1024", "--decoder-width", "16",
               "--decoder-blocks", "2", "--no-eval", "--device", "cpu",
               "--checkpoint-every", "1000", "--out", str(tmp_path), "--name", "t"])
    assert rc == 0
    meta = json.loads((tmp_path / "t" / "checkpoint.json").read_text())
    assert meta["args"]["loss"] == "mel" and meta["step"] >= 2
    assert (tmp_path / "t" / "bundle" / "manifest.json").is_file()


def _page() -> torch.Tensor:
    """A real rendered text page (BSD licence, the tests' text), (1, 3, H, W) float 0..255."""
    from benchmarks.doc_perception import TEST_TEXT, read_text, render_page
    img = render_page(read_text(*TEST_TEXT), "DejaVu Sans", 16).image[:128, :256]
    return torch.from_numpy(img.transpose(2, 0, 1).copy()).float()[None]


def test_gradient_loss_charges_blurred_glyphs_more_than_equal_mse_offset():
    """A blurred text crop and a flat offset of the same MSE: the pixel MSE cannot tell them
    apart, the gradient MSE is 0 for the offset and large for the blur; ``grad`` ranks them."""
    x = _page()
    blur = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    mse_blur = ((blur - x) ** 2).mean()
    flat = x + mse_blur.sqrt()
    assert abs(((flat - x) ** 2).mean() / mse_blur - 1) < 1e-4
    assert gradient_mse(flat, x).item() < 1e-6 < gradient_mse(blur, x).item()
    assert distortion(blur, x, "grad", mse_weight=0.5)[0] > distortion(flat, x, "grad", mse_weight=0.5)[0] + 10
    d, mse = distortion(x, x.clone(), "grad")
    assert mse.item() == 0.0 and d.dim() == 0
    blur.requires_grad_(True)
    distortion(blur, x, "grad")[0].backward()
    assert torch.isfinite(blur.grad).all() and blur.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="expected \\(N, C, H, W\\)"):
        gradient_mse(x[0, 0, 0], x[0, 0, 0])


def test_ms_ssim_matches_the_benchmark_metric_and_trains():
    """The differentiable MS-SSIM equals benchmarks/metrics.py's numpy MS-SSIM on a real held-out
    photo (5 scales) and a blur; ``msssim`` charges a blur more than a flat offset of equal MSE."""
    from PIL import Image
    from benchmarks.metrics import ms_ssim as ms_ssim_np
    samples = Path(__file__).resolve().parents[1] / "encoder_runtime" / "samples"
    im = np.asarray(Image.open(samples / "ColdRipple.png").convert("RGB"))[:176, :192]
    x = torch.from_numpy(im.transpose(2, 0, 1).copy()).double()[None]
    blur = torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False).round()
    want = ms_ssim_np(blur[0].numpy().transpose(1, 2, 0), im)
    assert ms_ssim(blur, x).item() == pytest.approx(want, abs=1e-6) and 0.5 < want < 0.9995
    assert ms_ssim(x, x.clone()).item() == pytest.approx(1.0)
    flat = x + ((blur - x) ** 2).mean().sqrt()
    assert distortion(blur, x, "msssim", mse_weight=0.5)[0] > distortion(flat, x, "msssim", mse_weight=0.5)[0] + 3
    crop = blur[..., :128, :128].float().requires_grad_(True)   # a training crop: 4 scales
    distortion(crop, x[..., :128, :128].float(), "msssim")[0].backward()
    assert torch.isfinite(crop.grad).all() and crop.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="at least 11"):
        ms_ssim(x[..., :8, :8], x[..., :8, :8])


def test_text_pages_avoid_the_benchmark_texts():
    from benchmarks.doc_perception import HELD_OUT_TEXTS, TEST_TEXT
    from export.text_data import TRAIN_TEXTS, VAL_TEXTS, text_arrays, text_pages
    assert not (set(TRAIN_TEXTS) | set(VAL_TEXTS)) & (set(HELD_OUT_TEXTS) | {TEST_TEXT[0]})
    assert not set(TRAIN_TEXTS) & set(VAL_TEXTS)
    val = text_pages("val", 2)
    assert all(p.source.split("@")[0] in VAL_TEXTS and p.text for p in val)
    a = text_arrays("train", 1)[0]
    assert a.shape == (3, 512, 768) and a.dtype == np.uint8 and a.min() == 0 and a.max() == 255
    with pytest.raises(ValueError, match="text split"):
        text_pages("test")


def test_sensor_train_grad_loss_with_text_smoke(tmp_path, monkeypatch):
    """A few decoder fine-tune steps of a tiny image model with --loss grad and rendered text
    pages mixed in; the checkpoint records both options."""
    from export import train
    photo = _page()[0].numpy().astype(np.uint8)[::-1].copy()  # stands in for the photo split
    monkeypatch.setattr(train, "load_training_arrays", lambda modality, split="train": [photo])
    rc = train.main(["--modality", "image", "--latent", "4", "--loss", "grad", "--mse-weight", "0.5",
                     "--text-train-weight", "0.5", "--steps", "3", "--batch", "2", "--crop", "32",
                     "--decoder-width", "8", "--decoder-blocks", "1", "--no-eval", "--device", "cpu",
                     "--checkpoint-every", "1000", "--out", str(tmp_path), "--name", "t"])
    assert rc == 0
    meta = json.loads((tmp_path / "t" / "checkpoint.json").read_text())
    assert meta["args"]["loss"] == "grad" and meta["args"]["text_train_weight"] == "0.5"


def test_mix_in_weight():
    from export.train import mix_in
    a, b = [np.zeros((3, 100, 100), np.uint8)], [np.zeros((3, 10, 10), np.uint8)]
    mixed = mix_in(a, b, 0.5, "--text-train-weight")
    assert len(mixed) == 1 + 100
    with pytest.raises(SystemExit, match="--text-train-weight 1.5"):
        mix_in(a, b, 1.5, "--text-train-weight")


@pytest.mark.parametrize("argv, msg", [
    (["--modality", "audio", "--loss", "grad"], "--loss grad is for images"),
    (["--modality", "audio", "--text-train-weight", "0.3"], "--text-train-weight is for --modality image")])
def test_sensor_train_rejects_image_options_for_audio(argv, msg, capsys):
    from export.train import main
    with pytest.raises(SystemExit) as exc:
        main(argv + ["--steps", "1"])
    assert exc.value.code == 2
    assert msg in capsys.readouterr().err


def test_sensor_train_rejects_mel_for_images(capsys):
    from export.train import main
    with pytest.raises(SystemExit) as exc:
        main(["--modality", "image", "--loss", "mel", "--steps", "1"])
    assert exc.value.code == 2
    assert "--loss mel is for audio" in capsys.readouterr().err


def test_codec_from_bundle_reproduces_bundle():
    """--init-bundle's rebuilt torch codec gives the bundle's codes and its decoder's output."""
    import onnxruntime as ort

    from encoder_runtime.bundle import load_bundle
    from export.onnx_export import integer_encoder_arrays
    from export.train import codec_from_bundle
    b = load_bundle("audio16k-c6")
    codec, meta = codec_from_bundle("audio16k-c6")
    assert meta["step"] == b.manifest["model_card"]["steps"]
    with np.load(b.file("encoder_int.npz")) as z:
        for k, v in integer_encoder_arrays(codec).items():
            assert np.array_equal(v, z[k]), k
    x = _voiced(4096).float()
    codes = codec.encoder.codes(x)
    with torch.no_grad():
        rec = codec.decoder(codes).numpy()
    sess = ort.InferenceSession(str(b.file("decoder.onnx")))
    ref = sess.run(None, {"codes": codes.numpy()})[0]
    assert np.abs(rec - ref).max() < 0.05
