"""benchmarks.metrics: SSIM agrees with scikit-image, MS-SSIM has the known properties."""

from pathlib import Path

import numpy as np
import pytest

from benchmarks import metrics

SAMPLES = Path(__file__).resolve().parent.parent / "encoder_runtime" / "samples"


def _photo() -> np.ndarray:
    from PIL import Image
    return np.asarray(Image.open(SAMPLES / "Kite.png").convert("RGB"))


def _degrade(img: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


def test_identical_is_one():
    img = _photo()
    assert metrics.ms_ssim(img, img) == pytest.approx(1.0, abs=1e-12)
    assert metrics.ssim(img, img) == pytest.approx(1.0, abs=1e-12)
    assert metrics.msssim_db(1.0) == pytest.approx(100.0)


@pytest.mark.parametrize("quality", [10, 50])
def test_ssim_matches_skimage_on_real_image(quality):
    skm = pytest.importorskip("skimage.metrics")
    import io
    from PIL import Image
    img = _photo()
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality)
    buf.seek(0)
    dec = np.asarray(Image.open(buf).convert("RGB"))
    ref = skm.structural_similarity(img, dec, channel_axis=-1, data_range=255, gaussian_weights=True,
                                    sigma=1.5, use_sample_covariance=False)
    assert metrics.ssim(img, dec) == pytest.approx(ref, abs=1e-3)
    # grey (2-D) too
    g1, g2 = img[..., 1], dec[..., 1]
    ref_g = skm.structural_similarity(g1, g2, data_range=255, gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False)
    assert metrics.ssim(g1, g2) == pytest.approx(ref_g, abs=1e-3)


def test_msssim_single_scale_is_ssim():
    img = _photo()
    noisy = _degrade(img, 10)
    assert metrics.ms_ssim(img, noisy, weights=(1.0,)) == pytest.approx(metrics.ssim(img, noisy), abs=1e-12)


def test_msssim_properties():
    img = _photo()[:256, :256]
    a, b = _degrade(img, 5), _degrade(img, 20)
    va, vb = metrics.ms_ssim(img, a), metrics.ms_ssim(img, b)
    assert 0 < vb < va < 1                                   # more noise, lower score
    assert metrics.ms_ssim(a, img) == pytest.approx(va, abs=1e-12)  # symmetric
    # mean over channels: equals the mean of the per-channel values
    per = [metrics.ms_ssim(img[..., c], a[..., c]) for c in range(3)]
    assert va == pytest.approx(float(np.mean(per)), abs=1e-12)
    assert metrics.msssim_db(va) > metrics.msssim_db(vb)


def test_msssim_too_small():
    x = np.zeros((100, 100), np.uint8)
    with pytest.raises(ValueError, match="at least 176"):
        metrics.ms_ssim(x, x)
