"""Machine-perception benchmark: downstream accuracy against bits, on decoded data and on latents.

Two tasks, each held out by its official split (no codec was trained, tuned or initialised on a
test split: the image codecs were trained on Debian wallpaper photos, the IMU codecs on the
BasicMotions *train* split only):

* **Fashion-MNIST** (Debian ``dataset-fashion-mnist``, 28x28 uint8, 10 classes). A small MLP
  (784-256-10) is trained on the first ``--fm-train`` training images and tested on the official
  10 000 test images, for each representation:

  - ``clean`` (8 bpp raw; lossless PNG rate of the mosaic given for reference);
  - ``ours-decoded``: every bundled RGB image codec (rgb-c*; the 28x28 image is edge-padded to
    32x32, the grey image replicated to RGB as the runtime does) encoded and decoded;
  - ``ours-latents``: the int8 codes (C x 4 x 4) fed straight to the classifier (same rates);
  - ``jpeg``: Pillow/libjpeg grey JPEG at several qualities (optimised Huffman tables);
  - ``resolution``: box-downsampled x2, x4, x7, stored losslessly (PNG), bilinearly upsampled.

  **Rate** = bits of the coded payload per original pixel (28x28), measured on the test set coded
  as mosaics of 1024 images (32x32 grid) so that per-file headers are amortised (< 0.01 bpp for
  JPEG/PNG; our frame header is counted in full). Our mosaic is of 32x32 edge-padded tiles, whose
  8x8-block codes are exactly the per-image codes; JPEG codes the same 32x32 tiles (DCT blocks
  aligned, no block mixes two images); the PNG of the downsampled images is of unpadded tiles.
  Every classifier is trained on the *same* representation as it is tested on (matched); the
  accuracy of the clean-trained classifier on the compressed test set is reported too
  (``acc_clean_model``).

* **BasicMotions IMU** (UEA; 6 channels = 3-axis accelerometer + gyroscope, 10 Hz, 100 samples,
  4 classes; 40 train / 40 test; int16 = round(value x 512), see ``export/data.py``). Classifiers:
  a small 1-D CNN (mean +- std over ``--seeds`` seeds) and a linear model on per-channel
  statistics. Representations: raw int16, our IMU codecs (bundles ``imu6-*`` trained with
  ``sensor-train --modality timeseries``) decoded and as latents, time-resolution reduction
  (x2 ... x25 block means, upsampled linearly) and bit-depth reduction (uniform quantiser step 2^k),
  both coded losslessly with zstd-19. **Rate** = payload bits per scalar sample (per channel per
  time step; raw = 16), the 40 test series concatenated in time into one frame/stream.

Compute: MACs of the downstream classifier on pixels vs on latents (input dims, first layer), of
our encoder (from the deployed ONNX graph) and of the decoder that decoding would need.

Usage::

    python benchmarks/perception.py                 # full run (~10 min on 2 cores)
    python benchmarks/perception.py --quick --out /tmp/p   # smoke run (< 1 min)

Writes ``perception.json`` and ``perception.png`` into ``--out`` (default benchmarks/results) and
prints a headline table.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

FMNIST_DIR = Path(os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
IMAGE_MODELS = None              # default: every bundled RGB image model (see _image_models)
JPEG_QUALITIES = [2, 5, 10, 20, 50, 90]
RES_FACTORS = [2, 4, 7]
MOSAIC = 32                      # tiles per mosaic side -> 1024 images per mosaic
TILE = 32                        # our tile (28 edge-padded to the 8-pixel block)
IMU_RES_FACTORS = [2, 4, 8, 16, 25]
IMU_QUANT_SHIFTS = [6, 8, 10, 11, 12, 13]


# ---------------------------------------------------------------------------------------------
# small utilities

def _threads() -> int:
    """Intra-op threads: ``$OMP_NUM_THREADS`` when set to a positive integer, else up to 2."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, min(2, os.cpu_count() or 1))


def _torch():
    import torch
    torch.set_num_threads(_threads())
    return torch


def load_fmnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28) uint8, labels (N,) int64) of the Debian Fashion-MNIST files."""
    pre = "train" if split == "train" else "t10k"
    img_path = FMNIST_DIR / f"{pre}-images-idx3-ubyte.gz"
    if not img_path.is_file():
        raise SystemExit(f"{img_path} missing: install the Debian package dataset-fashion-mnist "
                         "(scripts/apt/perception.txt; bash scripts/install-system-deps.sh)")
    x = np.frombuffer(gzip.open(img_path).read(), np.uint8, offset=16).reshape(-1, 28, 28)
    y = np.frombuffer(gzip.open(FMNIST_DIR / f"{pre}-labels-idx1-ubyte.gz").read(), np.uint8,
                      offset=8).astype(np.int64)
    return x, y


def fmnist_subsets(n_train: int, n_test: int) -> tuple[np.ndarray, ...]:
    """(train images, labels, test images, labels): the first n of each official split."""
    xtr, ytr = load_fmnist("train")
    xte, yte = load_fmnist("test")
    return xtr[:n_train], ytr[:n_train], xte[:n_test], yte[:n_test]


def mosaics(tiles: np.ndarray, side: int = MOSAIC):
    """Yield (start, count, mosaic) for consecutive groups of side*side tiles (last one padded
    with copies of its final tile, which are not counted)."""
    n, th, tw = tiles.shape[:3]
    per = side * side
    for s in range(0, n, per):
        grp = tiles[s:s + per]
        k = len(grp)
        if k < per:
            grp = np.concatenate([grp, np.repeat(grp[-1:], per - k, axis=0)])
        mos = grp.reshape(side, side, th, tw).transpose(0, 2, 1, 3).reshape(side * th, side * tw)
        yield s, k, np.ascontiguousarray(mos)


def unmosaic(mos: np.ndarray, th: int, tw: int, side: int = MOSAIC) -> np.ndarray:
    return mos.reshape(side, th, side, tw).transpose(0, 2, 1, 3).reshape(side * side, th, tw)


# ---------------------------------------------------------------------------------------------
# classifiers (torch, CPU, deterministic seeds)

def fit_minibatch(net, opt, xt, yt, *, epochs: int, batch: int, seed: int, sched=None) -> None:
    """Cross-entropy training of ``net`` on tensors (xt, yt) in shuffled minibatches (order drawn
    from ``seed``), stepping ``sched`` after each step if given; leaves ``net`` in eval mode."""
    torch = _torch()
    from torch import nn
    g = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), batch):
            idx = perm[i:i + batch]
            loss = nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
    net.eval()


def train_mlp(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray, *,
              hidden: int = 256, epochs: int = 12, seed: int = 0, lr: float = 1e-3,
              batch: int = 128, n_classes: int = 10) -> dict:
    """Train a 1-hidden-layer MLP on standardised features; test accuracy and MACs per input."""
    torch = _torch()
    from torch import nn
    torch.manual_seed(seed)
    xtr = xtr.reshape(len(xtr), -1).astype(np.float32)
    xte = xte.reshape(len(xte), -1).astype(np.float32)
    mu, sd = xtr.mean(0), xtr.std(0)
    sd = np.maximum(sd, 0.1 * sd.mean() + 1e-6)      # floor: near-constant border pixels
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    d = xtr.shape[1]
    net = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-4)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    steps = epochs * ((len(xt) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr * 3, total_steps=steps)
    fit_minibatch(net, opt, xt, yt, epochs=epochs, batch=batch, seed=seed, sched=sched)
    with torch.no_grad():
        pred = net(torch.from_numpy(xte)).argmax(1).numpy()
    return {"acc": float((pred == yte).mean()), "input_dims": int(d),
            "macs": int(d * hidden + hidden * n_classes), "model": net, "norm": (mu, sd)}


def mlp_predict(fit: dict, x: np.ndarray) -> np.ndarray:
    torch = _torch()
    mu, sd = fit["norm"]
    x = (x.reshape(len(x), -1).astype(np.float32) - mu) / sd
    with torch.no_grad():
        return fit["model"](torch.from_numpy(x)).argmax(1).numpy()


def train_cnn1d(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray, *,
                seeds: int = 5, epochs: int = 150, width: int = 32, n_classes: int = 4) -> dict:
    """Small 1-D CNN (conv-conv-global pool-linear) on (N, C, T); mean/std accuracy over seeds."""
    torch = _torch()
    from torch import nn
    xtr = xtr.astype(np.float32)
    xte = xte.astype(np.float32)
    mu = xtr.mean(axis=(0, 2), keepdims=True)
    sd = xtr.std(axis=(0, 2), keepdims=True) + 1e-3
    xt = torch.from_numpy((xtr - mu) / sd)
    xe = torch.from_numpy((xte - mu) / sd)
    yt = torch.from_numpy(ytr)
    c, t = xt.shape[1], xt.shape[2]
    k = 5 if t >= 40 else 3

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv1d(c, width, k, padding=k // 2)
            self.c2 = nn.Conv1d(width, width, k, padding=k // 2)
            self.fc = nn.Linear(2 * width, n_classes)

        def forward(self, x):
            h = torch.relu(self.c2(torch.relu(self.c1(x))))
            return self.fc(torch.cat([h.mean(-1), h.amax(-1)], 1))

    accs = []
    for s in range(seeds):
        torch.manual_seed(s)
        net = Net()
        opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-3)
        for _ in range(epochs):
            loss = nn.functional.cross_entropy(net(xt), yt)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            accs.append(float((net(xe).argmax(1).numpy() == yte).mean()))
    macs = t * (c * width * k + width * width * k) + 2 * width * n_classes
    return {"acc": float(np.mean(accs)), "acc_std": float(np.std(accs)), "accs": accs,
            "input_dims": int(c * t), "macs": int(macs)}


def stat_features(x: np.ndarray) -> np.ndarray:
    """Per-channel mean, std, min, max, mean |first difference| of (N, C, T)."""
    x = x.astype(np.float64)
    return np.concatenate([x.mean(2), x.std(2), x.min(2), x.max(2),
                           np.abs(np.diff(x, axis=2)).mean(2)], axis=1)


def train_linear_stats(xtr, ytr, xte, yte, n_classes: int = 4) -> dict:
    """Multinomial logistic regression (L2, full-batch LBFGS) on stat_features."""
    torch = _torch()
    from torch import nn
    ftr, fte = stat_features(xtr), stat_features(xte)
    mu, sd = ftr.mean(0), ftr.std(0) + 1e-6
    ft = torch.from_numpy(((ftr - mu) / sd).astype(np.float32))
    fe = torch.from_numpy(((fte - mu) / sd).astype(np.float32))
    torch.manual_seed(0)
    lin = nn.Linear(ft.shape[1], n_classes)
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=200, line_search_fn="strong_wolfe")
    yt = torch.from_numpy(ytr)

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(lin(ft), yt) + 1e-2 * (lin.weight ** 2).sum()
        loss.backward()
        return loss
    opt.step(closure)
    with torch.no_grad():
        acc = float((lin(fe).argmax(1).numpy() == yte).mean())
    return {"acc": acc, "features": int(ft.shape[1])}


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST representations

def _pil_bytes(img: np.ndarray, fmt: str, **kw) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _pil_load(data: bytes) -> np.ndarray:
    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"))


def fm_jpeg(x: np.ndarray, quality: int) -> tuple[np.ndarray, int]:
    """(decoded images, payload bits) with JPEG on mosaics of 32x32 edge-padded tiles (8x8 DCT
    blocks aligned with the tiles, so no block mixes two images; same tiling as ours)."""
    out = np.empty_like(x)
    bits = 0
    tiles = np.pad(x, ((0, 0), (2, 2), (2, 2)), mode="edge")
    for s, k, mos in mosaics(tiles):
        data = _pil_bytes(mos, "JPEG", quality=quality, optimize=True)
        bits += 8 * len(data) * k / (MOSAIC * MOSAIC)
        out[s:s + k] = unmosaic(_pil_load(data), TILE, TILE)[:k, 2:30, 2:30]
    return out, bits


def fm_png_bits(x: np.ndarray) -> float:
    bits = 0.0
    for _, k, mos in mosaics(x):
        bits += 8 * len(_pil_bytes(mos, "PNG", optimize=True)) * k / (MOSAIC * MOSAIC)
    return bits


def fm_resolution(x: np.ndarray, f: int) -> tuple[np.ndarray, float]:
    """Box-downsample by f (28/f px), PNG rate of the small mosaic, bilinear upsample to 28."""
    from PIL import Image
    s = 28 // f
    small = np.stack([np.asarray(Image.fromarray(im).resize((s, s), Image.Resampling.BOX))
                      for im in x])
    up = np.stack([np.asarray(Image.fromarray(im).resize((28, 28), Image.Resampling.BILINEAR))
                   for im in small])
    return up, fm_png_bits(small)


def fm_ours(x: np.ndarray, model: str, *, rate: bool) -> dict:
    """Codes (N, C, 4, 4) int8, decoded images (N, 28, 28) uint8 and (if rate) payload bits."""
    from encoder_runtime import Decoder, Encoder
    enc = Encoder.load(model, threads=_threads())
    dec = Decoder.load(model, threads=_threads())
    tiles = np.pad(x, ((0, 0), (2, 2), (2, 2)), mode="edge")       # the runtime's edge padding
    n = len(x)
    codes = None
    bits = 0.0
    g = TILE // 8
    for s, k, mos in mosaics(tiles):
        c = enc.codes(mos)[0]                                       # (C, 128, 128)
        C = c.shape[0]
        per = c.reshape(C, MOSAIC, g, MOSAIC, g).transpose(1, 3, 0, 2, 4).reshape(-1, C, g, g)
        if codes is None:
            codes = np.empty((n, C, g, g), np.int8)
        codes[s:s + k] = per[:k]
        if rate:
            bits += 8 * len(enc.encode_frame(mos)) * k / (MOSAIC * MOSAIC)
    rec = np.empty_like(x)
    for s in range(0, n, 1024):
        out = dec.decode_codes(codes[s:s + 1024])                  # (n, 3, 32, 32) float
        rec[s:s + 1024] = np.clip(np.round(out.mean(1)[:, 2:30, 2:30]), 0, 255).astype(np.uint8)
    return {"codes": codes, "decoded": rec, "bits": bits}


def _model_macs(model: str, shape_codes: list[int], shape_in: list[int]) -> dict:
    from encoder_runtime.bundle import load_bundle
    from encoder_runtime.profile.macs import count_macs
    b = load_bundle(model)
    enc = count_macs(b.file("encoder.onnx"), {"samples": shape_in})
    dec = count_macs(b.file("decoder.onnx"), {"codes": shape_codes})
    return {"encoder_macs": int(enc.total_macs), "decoder_macs": int(dec.total_macs),
            "decoder_unsupported_ops": dec.unsupported}


def run_fashion(args) -> dict:
    t0 = time.time()
    xtr, ytr, xte, yte = fmnist_subsets(args.fm_train, args.fm_test)
    npx = xte.shape[0] * 28 * 28
    ep = args.fm_epochs
    rows = []

    def add(method, setting, bits, fit, xte_rep=None, **extra):
        row = {"task": "fashion-mnist", "method": method, "setting": setting,
               "bpp": None if bits is None else float(bits / npx), "acc": fit["acc"],
               "input_dims": fit["input_dims"], "classifier_macs": fit["macs"], **extra}
        if xte_rep is not None:
            row["acc_clean_model"] = float((mlp_predict(clean, xte_rep) == yte).mean())
        rows.append(row)
        extra_txt = (f"  (clean model {row['acc_clean_model']:.4f})"
                     if "acc_clean_model" in row else "")
        print(f"  fashion  {method:14s} {setting:12s} bpp={row['bpp']:<8.3f} "
              f"acc={row['acc']:.4f}{extra_txt}", flush=True)

    clean = train_mlp(xtr, ytr, xte, yte, epochs=ep)
    add("clean", "raw", 8.0 * npx, clean, png_bpp=float(fm_png_bits(xte) / npx))
    for q in args.jpeg:
        dtr, _ = fm_jpeg(xtr, q)
        dte, bits = fm_jpeg(xte, q)
        add("jpeg", f"q{q}", bits, train_mlp(dtr, ytr, dte, yte, epochs=ep), dte)
    for f in args.res:
        dtr, _ = fm_resolution(xtr, f)
        dte, bits = fm_resolution(xte, f)
        add("resolution", f"x{f}", bits, train_mlp(dtr, ytr, dte, yte, epochs=ep), dte,
            raw_bpp=8.0 / f ** 2)
    compute = {}
    for m in _image_models(args.models):
        tr = fm_ours(xtr, m, rate=False)
        te = fm_ours(xte, m, rate=True)
        C = te["codes"].shape[1]
        add("ours-decoded", m, te["bits"], train_mlp(tr["decoded"], ytr, te["decoded"], yte,
                                                     epochs=ep), te["decoded"])
        fit = train_mlp(tr["codes"], ytr, te["codes"], yte, epochs=ep)
        add("ours-latents", m, te["bits"], fit)
        compute[m] = {"latent_shape": [C, 4, 4], "classifier_input_dims": fit["input_dims"],
                      "classifier_macs": fit["macs"],
                      **_model_macs(m, [1, C, 4, 4], [1, TILE, TILE, 3])}
    compute["pixels"] = {"classifier_input_dims": clean["input_dims"],
                         "classifier_macs": clean["macs"]}
    return {"rows": rows, "compute": compute, "n_train": int(len(xtr)), "n_test": int(len(xte)),
            "classifier": f"MLP {28 * 28}-256-10 (Adam, {ep} epochs, standardised inputs)",
            "wall_s": round(time.time() - t0, 1)}


# ---------------------------------------------------------------------------------------------
# BasicMotions IMU representations

def _zstd_bits(a: np.ndarray) -> float:
    import zstandard
    return 8.0 * len(zstandard.ZstdCompressor(level=19).compress(np.ascontiguousarray(a).tobytes()))


def imu_resolution(x: np.ndarray, f: int) -> tuple[np.ndarray, float]:
    """Block means over f samples (int16), zstd-19 rate, linear upsampling back to T."""
    n, c, t = x.shape
    tp = -(-t // f) * f
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (0, tp - t)), mode="edge")
    small = np.round(xp.reshape(n, c, tp // f, f).mean(-1)).astype(np.int16)
    centres = np.arange(tp // f) * f + (f - 1) / 2
    up = np.stack([[np.interp(np.arange(t), centres, ch) for ch in s] for s in small])
    bits = _zstd_bits(small.transpose(0, 2, 1))                      # time-major, like a stream
    return np.round(up).astype(np.int16), bits


def imu_quant(x: np.ndarray, shift: int) -> tuple[np.ndarray, float]:
    """Uniform quantiser with step 2**shift (mid-tread), zstd-19 rate of the indices."""
    q = np.round(x.astype(np.float64) / 2 ** shift).astype(np.int16)
    return (q.astype(np.int32) << shift).clip(-32768, 32767).astype(np.int16), \
        _zstd_bits(q.transpose(0, 2, 1))


def imu_ours(x: np.ndarray, model: str) -> dict:
    """Codes (N, C, L), decoded (N, 6, T) int16 and payload bits for one time-concatenated frame."""
    from encoder_runtime import Decoder, Encoder
    enc = Encoder.load(model, threads=_threads())
    dec = Decoder.load(model, threads=_threads())
    b = enc.bundle.block[0]
    n, c, t = x.shape
    tp = -(-t // b) * b
    xp = np.pad(x, ((0, 0), (0, 0), (0, tp - t)), mode="edge")        # the runtime's edge padding
    stream = np.ascontiguousarray(xp.transpose(0, 2, 1).reshape(n * tp, c))   # (time, channels)
    allc = enc.codes(stream)[0]                                          # (C, n*tp/b)
    C = allc.shape[0]
    codes = allc.reshape(C, n, tp // b).transpose(1, 0, 2)
    single = np.stack([enc.codes(np.ascontiguousarray(s.T))[0] for s in xp[:3]])
    assert (single == codes[:3]).all(), "concatenated codes differ from per-series codes"
    bits = 8.0 * len(enc.encode_frame(stream))
    out = dec.decode_codes(np.ascontiguousarray(codes))[:, :, :t]
    rec = np.clip(np.round(out), -32768, 32767).astype(np.int16)
    return {"codes": np.ascontiguousarray(codes), "decoded": rec, "bits": bits, "block": b,
            "latent_channels": C}


def _image_models(names: list[str] | None) -> list[str]:
    """The given names, or every bundled 3-channel image model, by latent width then name."""
    from encoder_runtime.bundle import MODELS_DIR
    if names:
        return names
    found = []
    for p in MODELS_DIR.iterdir():
        try:
            m = json.loads((p / "manifest.json").read_text())
        except (OSError, ValueError):
            continue
        if m.get("modality") == "image" and m.get("sample", {}).get("channels") == 3:
            found.append((m["latent"]["channels"], p.name))
    return [n for _, n in sorted(found)]


def _imu_models(names: list[str] | None) -> list[str]:
    from encoder_runtime.bundle import MODELS_DIR
    if names:
        return names
    return sorted(p.name for p in MODELS_DIR.iterdir() if p.name.startswith("imu6-")
                  and (p / "manifest.json").is_file())


def run_imu(args) -> dict:
    from export.data import IMU_SCALE, basic_motions
    t0 = time.time()
    xtr, ytr = basic_motions("train")
    xte, yte = basic_motions("test")
    nsamp = xte.size                                                    # scalar samples (N*6*T)
    rows = []

    def add(method, setting, bits, rep_tr, rep_te, **extra):
        cnn = train_cnn1d(rep_tr, ytr, rep_te, yte, seeds=args.seeds, epochs=args.imu_epochs)
        lin = train_linear_stats(rep_tr, ytr, rep_te, yte)
        row = {"task": "basicmotions", "method": method, "setting": setting,
               "bits_per_sample": float(bits / nsamp), "acc": cnn["acc"], "acc_std": cnn["acc_std"],
               "acc_linear_stats": lin["acc"], "input_dims": cnn["input_dims"],
               "classifier_macs": cnn["macs"], **extra}
        rows.append(row)
        print(f"  imu      {method:14s} {setting:12s} b/s={row['bits_per_sample']:.3f}  "
              f"cnn={row['acc']:.3f}±{row['acc_std']:.3f}  linear-stats={lin['acc']:.3f}",
              flush=True)

    add("raw", "int16", 16.0 * nsamp, xtr, xte, zstd_bits_per_sample=_zstd_bits(
        xte.transpose(0, 2, 1)) / nsamp)
    for f in args.imu_res:
        rtr, _ = imu_resolution(xtr, f)
        rte, bits = imu_resolution(xte, f)
        add("resolution", f"x{f}", bits, rtr, rte, raw_bits_per_sample=16.0 / f)
    for k in args.imu_quant:
        qtr, _ = imu_quant(xtr, k)
        qte, bits = imu_quant(xte, k)
        add("bitdepth", f"step2^{k}", bits, qtr, qte)
    compute = {"raw": {"input_dims": int(xte.shape[1] * xte.shape[2])}}
    models = _imu_models(args.imu_models)
    for m in models:
        tr, te = imu_ours(xtr, m), imu_ours(xte, m)
        add("ours-decoded", m, te["bits"], tr["decoded"], te["decoded"])
        add("ours-latents", m, te["bits"], tr["codes"].astype(np.float32),
            te["codes"].astype(np.float32))
        L = te["codes"].shape[2]
        tp = L * te["block"]
        compute[m] = {"latent_shape": [te["latent_channels"], L],
                      **_model_macs(m, [1, te["latent_channels"], L], [1, tp, 6])}
    return {"rows": rows, "compute": compute, "models": models, "n_train": int(len(xtr)),
            "n_test": int(len(xte)), "int16_scale": IMU_SCALE,
            "classifier": f"1-D CNN conv(k)-conv(k)-[mean,max]-linear, width 32, Adam "
                          f"{args.imu_epochs} full-batch epochs, {args.seeds} seeds; and "
                          "logistic regression on per-channel mean/std/min/max/mean|diff|",
            "wall_s": round(time.time() - t0, 1)}


# ---------------------------------------------------------------------------------------------
# output

def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    styles = {"ours-decoded": ("o-", "C0"), "ours-latents": ("s--", "C3"), "jpeg": ("^-", "C1"),
              "resolution": ("v-", "C2"), "bitdepth": ("d-", "C4")}
    for ax, key, xkey, xlabel in [
            (axes[0], "fashion", "bpp", "bits per pixel (payload, mosaic-amortised)"),
            (axes[1], "imu", "bits_per_sample", "bits per sample (payload; raw = 16)")]:
        task = results.get(key)
        if not task:
            ax.set_visible(False)
            continue
        rows = task["rows"]
        for method, (st, col) in styles.items():
            pts = sorted((r[xkey], r["acc"]) for r in rows if r["method"] == method)
            if pts:
                ax.plot(*zip(*pts), st, color=col, label=method)
        ref = [r for r in rows if r["method"] in ("clean", "raw")]
        if ref:
            ax.axhline(ref[0]["acc"], color="k", lw=0.8, ls=":", label=f"{ref[0]['method']} "
                       f"({ref[0][xkey]:.0f} b)")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.set_xticks([t for t in (0.1, 0.2, 0.3, 0.5, 1, 2, 4, 8, 16)
                       if min(r[xkey] for r in rows) / 1.5 <= t <= max(r[xkey] for r in rows) * 1.5])
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    axes[0].set_title("Fashion-MNIST, MLP (train/test on same representation)")
    axes[1].set_title("BasicMotions IMU, 1-D CNN (mean over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def headline(results: dict) -> str:
    lines = []
    fm = results.get("fashion")
    if fm:
        lines.append("Fashion-MNIST (MLP; acc = matched train/test, clean-model acc in brackets)")
        lines.append(f"  {'method':14s} {'setting':12s} {'bpp':>7s} {'acc':>7s} {'(clean)':>8s} "
                     f"{'in dims':>7s}")
        for r in fm["rows"]:
            cm = f"{r['acc_clean_model']:.4f}" if "acc_clean_model" in r else "-"
            lines.append(f"  {r['method']:14s} {r['setting']:12s} {r['bpp']:7.3f} {r['acc']:7.4f} "
                         f"{cm:>8s} {r['input_dims']:7d}")
        lines.append("  compute per image (MACs): " + "; ".join(
            f"{k}: classifier {v['classifier_macs']}" + (f", encoder {v['encoder_macs']}, "
                                                         f"decoder {v['decoder_macs']}"
                                                         if "encoder_macs" in v else "")
            for k, v in fm["compute"].items()))
    imu = results.get("imu")
    if imu:
        lines.append("BasicMotions IMU (1-D CNN mean±std over seeds; linear on stats)")
        lines.append(f"  {'method':14s} {'setting':12s} {'b/sample':>8s} {'cnn acc':>13s} "
                     f"{'lin-stats':>9s} {'in dims':>7s}")
        for r in imu["rows"]:
            lines.append(f"  {r['method']:14s} {r['setting']:12s} {r['bits_per_sample']:8.3f} "
                         f"{r['acc']:7.3f}±{r['acc_std']:.3f} {r['acc_linear_stats']:9.3f} "
                         f"{r['input_dims']:7d}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny subsets, one point each")
    ap.add_argument("--tasks", default="fashion,imu")
    ap.add_argument("--fm-train", type=int, default=10000)
    ap.add_argument("--fm-test", type=int, default=10000)
    ap.add_argument("--fm-epochs", type=int, default=8)
    ap.add_argument("--models", nargs="*", default=IMAGE_MODELS,
                    help="image bundles (default: every bundled RGB model)")
    ap.add_argument("--jpeg", type=int, nargs="*", default=JPEG_QUALITIES)
    ap.add_argument("--res", type=int, nargs="*", default=RES_FACTORS)
    ap.add_argument("--imu-models", nargs="*", default=None, help="default: every bundled imu6-*")
    ap.add_argument("--imu-res", type=int, nargs="*", default=IMU_RES_FACTORS)
    ap.add_argument("--imu-quant", type=int, nargs="*", default=IMU_QUANT_SHIFTS)
    ap.add_argument("--imu-epochs", type=int, default=150)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--no-plot", action="store_true")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.fm_train, args.fm_test, args.fm_epochs = 1024, 1024, 3
        args.models, args.jpeg, args.res = _image_models(args.models)[:1], [50], [4]
        args.imu_res, args.imu_quant, args.imu_epochs, args.seeds = [4], [9], 40, 1
        if args.imu_models is None:
            args.imu_models = _imu_models(None)[:1]
    t0 = time.time()
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    results: dict = {"benchmark": "perception", "quick": bool(args.quick),
                     "command": "python benchmarks/perception.py "
                                + " ".join(argv if argv is not None else sys.argv[1:])}
    if "fashion" in tasks:
        print("Fashion-MNIST ...", flush=True)
        results["fashion"] = run_fashion(args)
    if "imu" in tasks:
        print("BasicMotions IMU ...", flush=True)
        results["imu"] = run_imu(args)
    import onnxruntime
    import PIL
    import torch
    results["environment"] = {"machine": platform.machine(), "processor": platform.processor(),
                              "python": platform.python_version(), "numpy": np.__version__,
                              "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
                              "pillow": PIL.__version__, "threads": _threads(),
                              "cpu_count": os.cpu_count()}
    results["wall_s"] = round(time.time() - t0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "perception.json").write_text(json.dumps(results, indent=1) + "\n")
    if not args.no_plot:
        plot(results, args.out / "perception.png")
    print(headline(results))
    print(f"wrote {args.out / 'perception.json'}" + ("" if args.no_plot else
                                                     f" and {args.out / 'perception.png'}")
          + f" in {results['wall_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
