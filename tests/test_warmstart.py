"""Deriving operating points from a trained model: quantizer gain scaling and latent widening."""

import pytest
import torch
from skimage import data

from encoder_runtime.metrics import psnr_db
from export.warmstart import scale_code_gain, widen


def _image() -> torch.Tensor:
    return torch.tensor(data.astronaut()).permute(2, 0, 1)[None].float()[:, :, :128, :128]


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return psnr_db(((a.clamp(0, 255) - b) ** 2).mean().item())


@torch.no_grad()
def test_code_gain_keeps_the_float_model_and_coarsens_the_codes(small_codec):
    x = _image()
    ref = small_codec(latent_channels=8)
    scaled = scale_code_gain(small_codec(latent_channels=8), 0.5)
    for m in (ref, scaled):
        m.encoder.qat = False                      # unquantized analysis: exactly linear
    y_ref, y = ref.encoder.analysis(x), scaled.encoder.analysis(x)
    assert torch.allclose(y, 0.5 * y_ref, rtol=1e-5, atol=1e-4)
    assert torch.allclose(scaled.decoder(y), ref.decoder(y_ref), atol=1e-3)
    # deployed codes: half the gain → fewer distinct values
    assert scaled.encoder.codes(x).abs().sum() < 0.6 * ref.encoder.codes(x).abs().sum()


def test_code_gain_rejects_nonsense(small_codec):
    with pytest.raises(SystemExit, match="code-gain"):
        scale_code_gain(small_codec(latent_channels=8), 0.0)


@torch.no_grad()
def test_widen_keeps_trained_channels_and_reconstruction(small_codec):
    x = _image()
    base = small_codec(latent_channels=8)
    crops = torch.tensor(data.chelsea()).permute(2, 0, 1)[None].float()[:, :, :256, :256]
    wide = widen(base, 16, crops).eval()
    assert wide.cfg.latent_channels == 16
    codes = wide.encoder.codes(x)
    assert torch.equal(codes[:, :8], base.encoder.codes(x))
    assert codes[:, 8:].abs().sum() > 0            # the new channels carry something
    before = _psnr(base.decoder(base.encoder.codes(x)), x)
    after = _psnr(wide.decoder(codes), x)
    assert after > before - 0.5, (before, after)


def test_widen_only_grows(small_codec):
    with pytest.raises(SystemExit, match="can only widen"):
        widen(small_codec(latent_channels=8), 8, _image())
