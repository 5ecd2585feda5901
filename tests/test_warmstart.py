"""Deriving operating points from a trained model: quantizer gain scaling and latent widening."""

import math

import pytest
import torch
from skimage import data

from export.model import Codec, CodecConfig
from export.warmstart import scale_code_gain, widen


def _codec(latent: int = 8) -> Codec:
    cfg = CodecConfig(decoder_width=32, decoder_blocks=2, latent_channels=latent)
    torch.manual_seed(0)
    c = Codec(cfg)
    img = torch.tensor(data.coffee()).permute(2, 0, 1)[None].float()
    blocks = img.unfold(2, 8, 8).unfold(3, 8, 8).permute(0, 2, 3, 1, 4, 5).reshape(-1, 3, 8, 8)
    c.encoder.init_from_pca(blocks)
    c.decoder.init_linear(c.encoder)
    return c.eval()


def _image() -> torch.Tensor:
    return torch.tensor(data.astronaut()).permute(2, 0, 1)[None].float()[:, :, :128, :128]


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(255 ** 2 / ((a.clamp(0, 255) - b) ** 2).mean().item())


@torch.no_grad()
def test_code_gain_keeps_the_float_model_and_coarsens_the_codes():
    x = _image()
    ref = _codec()
    scaled = scale_code_gain(_codec(), 0.5)
    for m in (ref, scaled):
        m.encoder.qat = False                      # unquantized analysis: exactly linear
    y_ref, y = ref.encoder.analysis(x), scaled.encoder.analysis(x)
    assert torch.allclose(y, 0.5 * y_ref, rtol=1e-5, atol=1e-4)
    assert torch.allclose(scaled.decoder(y), ref.decoder(y_ref), atol=1e-3)
    # deployed codes: half the gain → fewer distinct values
    assert scaled.encoder.codes(x).abs().sum() < 0.6 * ref.encoder.codes(x).abs().sum()


def test_code_gain_rejects_nonsense():
    with pytest.raises(SystemExit, match="code-gain"):
        scale_code_gain(_codec(), 0.0)


@torch.no_grad()
def test_widen_keeps_trained_channels_and_reconstruction():
    x = _image()
    base = _codec(8)
    crops = torch.tensor(data.chelsea()).permute(2, 0, 1)[None].float()[:, :, :256, :256]
    wide = widen(base, 16, crops).eval()
    assert wide.cfg.latent_channels == 16
    codes = wide.encoder.codes(x)
    assert torch.equal(codes[:, :8], base.encoder.codes(x))
    assert codes[:, 8:].abs().sum() > 0            # the new channels carry something
    before = _psnr(base.decoder(base.encoder.codes(x)), x)
    after = _psnr(wide.decoder(codes), x)
    assert after > before - 0.5, (before, after)


def test_widen_only_grows():
    with pytest.raises(SystemExit, match="can only widen"):
        widen(_codec(8), 8, _image())
