"""Recognizers that read the integer latents directly (no decoder), next to the same recognizer on
the decoded signal and on the clean signal: accuracy, rate and MACs per example.

Two tasks, each held out by recording (no recognizer sees a test recording in training; no codec
was trained on any of these recordings; es-MX is read by the speaker of the English prompts the
audio codecs were trained on):

* **Speech: spoken-language identification, 4 voices** (Debian
  ``asterisk-core-sounds-{es,fr,it,ru}-wav`` 1.6.1-1, CC-BY-SA-3.0; IVR prompts, one professional
  voice per language: es-MX Allison, fr-CA June, it-IT Carlo, ru-RU; 8 kHz PCM16, resampled to
  16 kHz). A prompt goes to ``test`` when the sha256 of its path inside the voice folder is 0 mod 4
  (the same prompt name lands in the same split in every language), ``val`` when 1 mod 4 (carved
  out of the non-test prompts), else ``train``. Examples are
  1 s windows (hop 0.5 s) whose RMS is at least 10 % of the prompt's loudest window (the
  ``silence/`` folder is left out), capped per language (random prompts, fixed seed). Every prompt
  is encoded whole as one frame of a stream by each bundled 16 kHz audio model; the codes are read
  back from the stream with ``Decoder.frame_codes`` (lossless decoding only) and the decoded
  waveform with ``Decoder.decode_frame``. Recognizer: one small 1-D CNN
  (conv5-ReLU-conv5-ReLU-[mean, max]-linear, width 16) on 100 frames of 10 ms with 40 features:

  - decoded / clean: 40 log-mel bands (512-point STFT, 10 ms hop, 60-4000 Hz);
  - latents: a front end on the codes (C x 1000 per second) down to 10 ms frames, chosen on
    the validation split among ``LATENT_FRONTS`` (learned log-energy, learned linear, |code| and
    log(1 + |code|) pooling): each candidate is trained on ``train`` and scored on ``val`` for
    every model; the highest validation accuracy (mean over models and seeds) wins. Only then
    are the test prompts coded, and every recognizer (clean, decoded, latents with the chosen
    front end) is trained once on train+val and tested once.

* **Image: Fashion-MNIST** (Debian ``dataset-fashion-mnist``; official train / test split), the grey
  28x28 image edge-padded to 32x32 and replicated to RGB for the bundled rgb-* models (the loaders
  and the mosaic-amortised rate of ``benchmarks/perception.py``). Recognizer: the MLP (input-256-10)
  of that benchmark on the clean pixels, the decoded pixels, and the int8 codes (C x 4 x 4).

Every recognizer is trained on the training windows of the representation it is tested on (matched),
seeds fixed; accuracy is mean +- std over ``--seeds`` seeds (speech) or one seed (image). MACs per
example: the recognizer's, front end included (the log-mel one as an estimate: 2 N log2 N per
real FFT frame plus the window, the power and the mel filters' non-zero taps), and the decoder's
(counted from the bundled ONNX graph) that the latent path does not run.

Usage::

    OMP_NUM_THREADS=1 python -m benchmarks.latent_recognizers   # full run (speech 9 min on one
                                      # thread, image 23 min on two; wall, loaded 2-core VM)
    python -m benchmarks.latent_recognizers --tasks image # one task; the JSON keeps the other
    python -m benchmarks.latent_recognizers --quick --out /tmp/l  # smoke run

Writes ``latent_recognizers.json`` and ``latent_recognizers.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.perception import (_model_macs, _threads, _torch,  # noqa: E402
                                   fit_minibatch, fm_ours, fmnist_subsets, train_mlp)

SOUNDS_DIR = Path(os.environ.get("ASTERISK_SOUNDS_DIR", "/usr/share/asterisk/sounds"))
#: language -> (Debian package, voice folder); one voice per language
VOICES = {"es": ("asterisk-core-sounds-es-wav", "es_MX_f_Allison"),
          "fr": ("asterisk-core-sounds-fr-wav", "fr_CA_f_June"),
          "it": ("asterisk-core-sounds-it-wav", "it_IT_m_Carlo"),
          "ru": ("asterisk-core-sounds-ru-wav", "ru_RU_f_IvrvoiceRU")}
VOICE_VERSION = "1.6.1-1"
MANIFEST_KEY = "latent_speech"
RATE = 16000
WIN = RATE                       # 1 s examples
HOP = RATE // 2
ACTIVE_REL = 0.1                 # window RMS >= 10 % of the prompt's loudest window
MEL = {"n_fft": 512, "hop": 160, "n_mels": 40, "f_min": 60.0, "f_max": 4000.0}
SPEECH_MODELS = ["audio16k-4k", "audio16k-8k", "audio16k-16k"]
IMAGE_MODELS = ["rgb-c12-low", "rgb-c16", "rgb-c32"]


# ---------------------------------------------------------------------------------------------
# speech data

def voice_files(lang: str, root: Path = SOUNDS_DIR) -> list[Path]:
    """Sorted WAV files of one asterisk voice; SystemExit naming the package when missing."""
    pkg, folder = VOICES[lang]
    files = sorted(p for p in (root / folder).rglob("*.wav")
                   if p.relative_to(root / folder).parts[0] != "silence")
    if not files:
        raise SystemExit(f"{root / folder}: no WAV files; install the Debian package {pkg} "
                         f"(scripts/apt/latents.txt; bash scripts/install-system-deps.sh)")
    return files


def voice_digest(lang: str, root: Path = SOUNDS_DIR) -> dict:
    """Files and one sha256 over the sorted 'relative path  file sha256' lines of a voice."""
    folder = root / VOICES[lang][1]
    h = hashlib.sha256()
    files = voice_files(lang, root)
    for p in files:
        h.update(f"{p.relative_to(folder).as_posix()}  "
                 f"{hashlib.sha256(p.read_bytes()).hexdigest()}\n".encode())
    return {"package": VOICES[lang][0], "version": VOICE_VERSION, "folder": VOICES[lang][1],
            "files": len(files), "sha256": h.hexdigest()}


def check_voices(langs: list[str], root: Path = SOUNDS_DIR) -> dict:
    """Digests of the voices, checked against data/manifest.json (SystemExit on a difference)."""
    want = json.loads((REPO / "data" / "manifest.json").read_text()).get(MANIFEST_KEY, {})
    got = {lang: voice_digest(lang, root) for lang in langs}
    for lang, d in got.items():
        pin = want.get(lang)
        if pin and (pin["sha256"], pin["files"]) != (d["sha256"], d["files"]):
            raise SystemExit(f"{root / d['folder']}: {d['files']} files, digest "
                             f"{d['sha256'][:16]}…; data/manifest.json {MANIFEST_KEY}.{lang} "
                             f"pins {pin['files']} files, "
                             f"{pin['sha256'][:16]}… ({pin['package']} {pin['version']})")
    return got


SPLITS = ("train", "val", "test")


def prompt_split(rel: str) -> str:
    """Split of a prompt from the sha256 of its path in the voice folder: 'test' when 0 mod 4,
    'val' when 1 mod 4 (validation prompts carved out of the non-test ones; the latent front end
    is chosen on them), else 'train'; the same prompt name is in the same split in every
    language."""
    h = int(hashlib.sha256(rel.encode()).hexdigest(), 16) % 4
    return "test" if h == 0 else "val" if h == 1 else "train"


def active_windows(x: np.ndarray) -> list[int]:
    """Start offsets of the 1 s windows (hop 0.5 s) whose RMS is >= ACTIVE_REL of the loudest."""
    starts = list(range(0, len(x) - WIN + 1, HOP))
    if not starts:
        return []
    rms = np.array([np.sqrt(np.mean(x[s:s + WIN].astype(np.float64) ** 2)) for s in starts])
    return [s for s, r in zip(starts, rms) if r >= ACTIVE_REL * rms.max() and r > 0]


def load_prompts(split: str, langs: list[str], max_windows: int, seed: int = 0,
                 root: Path = SOUNDS_DIR) -> list[dict]:
    """Prompts of ``split`` as 16 kHz int16, random order per language until ``max_windows``."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r}: expected one of {SPLITS}")
    import soundfile as sf
    from export.data import _to_16k_mono
    out = []
    for li, lang in enumerate(langs):
        folder = root / VOICES[lang][1]
        files = [p for p in voice_files(lang, root)
                 if prompt_split(p.relative_to(folder).as_posix()) == split]
        order = np.random.default_rng(seed + li).permutation(len(files))
        n = 0
        for i in order:
            if n >= max_windows:
                break
            data, rate = sf.read(files[i], dtype="int16", always_2d=True)
            x = _to_16k_mono(data, rate)
            wins = active_windows(x)[: max_windows - n]
            if wins:
                out.append({"lang": li, "name": f"{lang}/{files[i].relative_to(folder).as_posix()}",
                            "split": split, "x": x, "windows": wins})
                n += len(wins)
    return out


# ---------------------------------------------------------------------------------------------
# speech representations

def log_mel(x: np.ndarray) -> np.ndarray:
    """(N, T) int16 windows -> (N, n_mels, frames) float32 log-mel power in dB."""
    torch = _torch()
    from export.losses import _db, _power_spec, mel_filterbank
    fb = mel_filterbank(MEL["n_fft"], MEL["n_mels"], RATE, MEL["f_min"], MEL["f_max"])
    with torch.no_grad():
        p = _power_spec(torch.from_numpy(x.astype(np.float32)), MEL["n_fft"], MEL["hop"])
        return _db(fb @ p, -80.0).numpy()


def log_mel_macs(frames: int) -> int:
    """Estimated multiply-adds of the log-mel front end for ``frames`` frames."""
    from export.losses import mel_filterbank
    n = MEL["n_fft"]
    taps = int((mel_filterbank(n, MEL["n_mels"], RATE, MEL["f_min"], MEL["f_max"]) > 0).sum())
    return frames * (n + 2 * n * int(math.log2(n)) + 2 * (n // 2 + 1) + taps)


def speech_codec(prompts: list[dict], model: str) -> dict:
    """Encode every prompt as one frame; codes (from the stream) and decoded int16 per prompt."""
    from encoder_runtime import Decoder, Encoder, container
    enc = Encoder.load(model, threads=_threads())
    dec = Decoder.load(model, threads=_threads())
    codes, decoded, bits, samples = [], [], 0, 0
    for i, p in enumerate(prompts):
        header, records = container.read_stream(enc.encode(p["x"]))
        frame = next(r for r in records if r.type == container.RecordType.FRAME)
        c, _ = dec.frame_codes(header, frame.payload)
        if i == 0 and not np.array_equal(c, enc.codes(p["x"])):
            raise AssertionError(f"{model}: codes read from the stream differ from Encoder.codes")
        codes.append(c[0])
        decoded.append(dec.decode_frame(header, frame.payload))
        bits += 8 * len(frame.payload)
        samples += len(p["x"])
    return {"codes": codes, "decoded": decoded, "kbps": bits / samples * RATE / 1000,
            "bits_per_sample": bits / samples, "block": enc.bundle.block[0],
            "latent_channels": int(codes[0].shape[0])}


def cut_windows(prompts: list[dict], signals: list[np.ndarray] | None = None,
                codes: list[np.ndarray] | None = None, block: int = 16) -> np.ndarray:
    """Stack the windows of every prompt: (N, WIN) samples, or (N, C, WIN/block) codes."""
    out = []
    for i, p in enumerate(prompts):
        for s in p["windows"]:
            if codes is not None:
                out.append(codes[i][:, s // block:(s + WIN) // block])
            else:
                out.append((signals[i] if signals is not None else p["x"])[s:s + WIN])
    return np.stack(out)


def labels(prompts: list[dict]) -> np.ndarray:
    return np.array([p["lang"] for p in prompts for _ in p["windows"]], np.int64)


# ---------------------------------------------------------------------------------------------
# recognizer: one small 1-D CNN family

#: learned front ends on the codes: conv(FILTERS, k, stride) [-> square] -> mean over POOL outputs
#: (10 ms at 1000 codes/s) [-> log]; the fixed ones average POOL_CODES codes (10 ms) per channel
FRONT = {"filters": 40, "kernel": 10, "stride": 2, "pool": 5}
POOL_CODES = 10
#: candidate front ends of the latent recognizer, chosen on the validation split (every one ends
#: in a batch norm that folds into the next convolution); "none" = the features as given (log-mel)
LATENT_FRONTS = {
    "log-energy": "learned: conv(40 filters x 10 codes, stride 2), squared, mean over 10 ms, log",
    "linear": "learned: conv(40 filters x 10 codes, stride 2), mean over 10 ms (linear)",
    "abs-pool": "fixed: |code| per channel, mean over 10 ms",
    "log1p-abs": "fixed: log(1 + |code|) per channel, mean over 10 ms",
}
LEARNED = ("log-energy", "linear")


def _check_front(front: str) -> None:
    if front != "none" and front not in LATENT_FRONTS:
        raise ValueError(f"front {front!r}: expected 'none' or one of {list(LATENT_FRONTS)}")


def cnn_macs(c_in: int, t_in: int, width: int, n_classes: int, front: str = "none") -> int:
    """Multiply-adds per example of :func:`train_cnn`'s network (front end included: a square,
    |.|, log or pooling add counts as one)."""
    _check_front(front)
    macs = 0
    if front in LEARNED:
        t = (t_in - FRONT["kernel"]) // FRONT["stride"] + 1
        ops = 2 if front == "log-energy" else 1                          # [square], pool
        macs += t * FRONT["filters"] * (c_in * FRONT["kernel"] + ops)
        c_in, t_in = FRONT["filters"], t // FRONT["pool"]
    elif front != "none":
        macs += c_in * t_in * (2 if front == "log1p-abs" else 1)        # [log1p], pool
        t_in //= POOL_CODES
    return macs + t_in * (c_in * 5 * width + width * width * 5) + 2 * width * n_classes


def _make_net(c_in: int, width: int, n_classes: int, front: str = "none"):
    _check_front(front)
    torch = _torch()
    from torch import nn

    class Learned(nn.Module):
        def __init__(self, energy: bool):
            super().__init__()
            self.energy = energy
            self.conv = nn.Conv1d(c_in, FRONT["filters"], FRONT["kernel"], stride=FRONT["stride"])
            self.pool = nn.AvgPool1d(FRONT["pool"])
            self.norm = nn.BatchNorm1d(FRONT["filters"])       # folds into the next conv

        def forward(self, x):
            h = self.conv(x)
            if self.energy:
                return self.norm(torch.log(self.pool(h ** 2) + 1e-3))
            return self.norm(self.pool(h))

    class Fixed(nn.Module):
        def __init__(self, log: bool):
            super().__init__()
            self.log = log
            self.pool = nn.AvgPool1d(POOL_CODES)
            self.norm = nn.BatchNorm1d(c_in)

        def forward(self, x):
            a = x.abs()
            return self.norm(self.pool(torch.log1p(a) if self.log else a))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            if front in LEARNED:
                self.front, c = Learned(front == "log-energy"), FRONT["filters"]
            elif front != "none":
                self.front, c = Fixed(front == "log1p-abs"), c_in
            else:
                self.front, c = nn.Identity(), c_in
            self.body = nn.Sequential(nn.Conv1d(c, width, 5, padding=2), nn.ReLU(),
                                      nn.Conv1d(width, width, 5, padding=2), nn.ReLU())
            self.fc = nn.Linear(2 * width, n_classes)

        def forward(self, x):
            h = self.body(self.front(x))
            return self.fc(torch.cat([h.mean(-1), h.amax(-1)], 1))
    return Net()


def train_cnn(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray, *,
              front: str = "none", width: int = 16, epochs: int = 12, seeds: int = 2,
              batch: int = 64, n_classes: int = 4) -> dict:
    """[front end]-conv(5)-ReLU-conv(5)-ReLU-[mean, max]-linear on per-channel standardised
    (N, C, T) inputs (statistics of ``xtr``); Adam, minibatches; accuracy on (xte, yte) mean/std
    over seeds, MACs."""
    torch = _torch()
    mu = xtr.mean(axis=(0, 2), keepdims=True, dtype=np.float64)
    sd = xtr.std(axis=(0, 2), keepdims=True, dtype=np.float64) + 1e-3
    xt = torch.from_numpy(((xtr - mu) / sd).astype(np.float32))
    xe = torch.from_numpy(((xte - mu) / sd).astype(np.float32))
    yt = torch.from_numpy(ytr)
    c_in, t_in = xt.shape[1], xt.shape[2]
    accs = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        net = _make_net(c_in, width, n_classes, front)
        opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-3)
        fit_minibatch(net, opt, xt, yt, epochs=epochs, batch=batch, seed=seed)
        with torch.no_grad():
            pred = torch.cat([net(xe[i:i + 256]).argmax(1) for i in range(0, len(xe), 256)])
        accs.append(float((pred.numpy() == yte).mean()))
    return {"acc": float(np.mean(accs)), "acc_std": float(np.std(accs)), "accs": accs,
            "input_shape": [int(c_in), int(t_in)],
            "macs": int(cnn_macs(c_in, t_in, width, n_classes, front))}


def select_latent_front(data: dict[str, tuple], fronts: list[str], **fit) -> dict:
    """Choose the latent front end on validation data only.

    ``data`` maps a model to (codes_train, y_train, codes_val, y_val); every candidate in
    ``fronts`` is trained on each model's train windows and scored on its val windows. The choice
    is the candidate with the highest validation accuracy averaged over models and seeds (the
    first listed on a tie). Returns {"chosen", "mean_val_acc", "rows"}."""
    rows = []
    for model, (xtr, ytr, xva, yva) in data.items():
        for f in fronts:
            r = train_cnn(xtr, ytr, xva, yva, front=f, **fit)
            rows.append({"model": model, "front": f, "val_acc": r["acc"],
                         "val_acc_std": r["acc_std"], "accs": r["accs"], "macs": r["macs"]})
            print(f"  select  {f:10s} {model:14s} val acc={r['acc']:.3f}±{r['acc_std']:.3f}",
                  flush=True)
    mean = {f: float(np.mean([a for r in rows if r["front"] == f for a in r["accs"]]))
            for f in fronts}
    return {"chosen": max(fronts, key=lambda f: (mean[f], -fronts.index(f))),
            "mean_val_acc": mean, "rows": rows}


def _split_info(prompts: list[dict], y: np.ndarray, n_langs: int) -> dict:
    return {"prompts": len(prompts), "windows": int(len(y)),
            "per_language": np.bincount(y, minlength=n_langs).tolist(),
            "prompt_names": [p["name"] for p in prompts]}


def check_splits(sets: dict[str, list[dict]]) -> None:
    """ValueError unless every prompt of ``sets[k]`` is in split k and no prompt name (the path in
    the voice folder, shared by the languages) is in two splits."""
    seen: dict[str, str] = {}
    for k, prompts in sets.items():
        for p in prompts:
            rel = p["name"].split("/", 1)[1]
            if p["split"] != k or prompt_split(rel) != k:
                raise ValueError(f"prompt {p['name']}: split {p['split']!r} / "
                                 f"{prompt_split(rel)!r}, loaded as {k!r}")
            if seen.setdefault(rel, k) != k:
                raise ValueError(f"prompt {rel} is in both {seen[rel]!r} and {k!r}")


def run_speech(args) -> dict:
    t0 = time.time()
    langs = list(VOICES)
    voices = check_voices(langs)
    sets = {"train": load_prompts("train", langs, args.train_windows),
            "val": load_prompts("val", langs, args.val_windows),
            "test": load_prompts("test", langs, args.test_windows)}
    check_splits(sets)
    full = sets["train"] + sets["val"]            # every recognizer's final training set
    y = {k: labels(v) for k, v in sets.items()}
    yfull, yte = labels(full), y["test"]
    fit = {"epochs": args.epochs, "seeds": args.seeds, "width": args.width}
    rows = []

    def add(method, setting, res, **extra):
        rows.append({"task": "speech-language-id", "method": method, "setting": setting,
                     "acc": res["acc"], "acc_std": res["acc_std"], "accs": res["accs"],
                     "input_shape": res["input_shape"], **extra})
        print(f"  speech  {method:8s} {setting:14s} acc={res['acc']:.3f}±{res['acc_std']:.3f}"
              + (f"  {extra['kbps']:.2f} kbit/s" if "kbps" in extra else ""), flush=True)

    # 1. the latent front end, chosen on the validation prompts (no test prompt is read before)
    coded = {m: {k: speech_codec(sets[k], m) for k in ("train", "val")}
             for m in args.speech_models}

    def codes(m: str, k: str) -> np.ndarray:
        c = coded[m][k]
        return cut_windows(sets[k], codes=c["codes"], block=c["block"]).astype(np.float32)
    sel = select_latent_front({m: (codes(m, "train"), y["train"], codes(m, "val"), y["val"])
                               for m in args.speech_models}, args.fronts, **fit)
    chosen = sel["chosen"]
    print(f"  chosen latent front end: {chosen} (mean val acc {sel['mean_val_acc'][chosen]:.3f})",
          flush=True)

    # 2. every recognizer trained on train+val, tested once on the test prompts
    mel_te = log_mel(cut_windows(sets["test"]))
    front = log_mel_macs(mel_te.shape[2])
    clean = train_cnn(log_mel(cut_windows(full)), yfull, mel_te, yte, **fit)
    add("clean", "log-mel", clean, kbps=RATE * 16 / 1000, source_kbps=8000 * 16 / 1000,
        recognizer_macs=clean["macs"] + front, frontend_macs=front, decoder_macs=0)
    for m in args.speech_models:
        ctr, cva = coded[m]["train"], coded[m]["val"]
        cte = speech_codec(sets["test"], m)
        b, C = cte["block"], cte["latent_channels"]
        macs = _model_macs(m, [1, C, WIN // b], [1, WIN, 1])
        common = {"kbps": cte["kbps"], "bits_per_sample": cte["bits_per_sample"],
                  "encoder_macs": macs["encoder_macs"], "decoder_macs_avoided": 0}
        d = train_cnn(log_mel(cut_windows(full, ctr["decoded"] + cva["decoded"])), yfull,
                      log_mel(cut_windows(sets["test"], cte["decoded"])), yte, **fit)
        add("decoded", m, d, **common, recognizer_macs=d["macs"] + front, frontend_macs=front,
            decoder_macs=macs["decoder_macs"])
        lat = train_cnn(np.concatenate([codes(m, "train"), codes(m, "val")]), yfull,
                        cut_windows(sets["test"], codes=cte["codes"], block=b).astype(np.float32),
                        yte, front=chosen, **fit)
        add("latents", m, lat, **{**common, "decoder_macs_avoided": macs["decoder_macs"]},
            recognizer_macs=lat["macs"], frontend_macs=0, decoder_macs=0, front=chosen)
    return {"rows": rows, "voices": voices, "languages": langs, "example_seconds": WIN / RATE,
            **{k: _split_info(v, y[k], len(langs)) for k, v in sets.items()},
            "selection": {
                "rule": "latent front end with the highest validation accuracy, mean over the "
                        "models and seeds; chosen before any test prompt is coded; the test run "
                        "then trains every recognizer once on train+val",
                "candidates": {f: LATENT_FRONTS[f] for f in args.fronts}, **sel},
            "recognizer": f"1-D CNN conv(5)-ReLU-conv(5)-ReLU-[mean,max]-linear, width "
                          f"{args.width}, Adam lr 3e-3, batch 64, {args.epochs} epochs, "
                          f"{args.seeds} seeds; on log-mel {MEL} (clean, decoded) or on the "
                          f"front end chosen on validation, {chosen}: {LATENT_FRONTS[chosen]} "
                          f"{FRONT if chosen in LEARNED else {'pool': POOL_CODES}} (latents)",
            "wall_s": round(time.time() - t0, 1)}


# ---------------------------------------------------------------------------------------------
# image task

def run_image(args) -> dict:
    t0 = time.time()
    xtr, ytr, xte, yte = fmnist_subsets(args.fm_train, args.fm_test)
    npx = xte.shape[0] * 28 * 28
    rows = []

    def add(method, setting, fit, bpp, **extra):
        rows.append({"task": "fashion-mnist", "method": method, "setting": setting,
                     "acc": fit["acc"],
                     "bpp": bpp, "input_dims": fit["input_dims"], "recognizer_macs": fit["macs"],
                     **extra})
        print(f"  image   {method:8s} {setting:14s} acc={fit['acc']:.4f}  {bpp:.3f} bpp",
              flush=True)

    add("clean", "pixels", train_mlp(xtr, ytr, xte, yte, epochs=args.fm_epochs), 8.0,
        decoder_macs=0)
    for m in args.image_models:
        ctr, cte = fm_ours(xtr, m, rate=False), fm_ours(xte, m, rate=True)
        C = cte["codes"].shape[1]
        macs = _model_macs(m, [1, C, 4, 4], [1, 32, 32, 3])
        bpp = float(cte["bits"] / npx)
        common = {"encoder_macs": macs["encoder_macs"], "latent_shape": [C, 4, 4]}
        add("decoded", m,
            train_mlp(ctr["decoded"], ytr, cte["decoded"], yte, epochs=args.fm_epochs),
            bpp, **common, decoder_macs=macs["decoder_macs"], decoder_macs_avoided=0)
        add("latents", m, train_mlp(ctr["codes"], ytr, cte["codes"], yte, epochs=args.fm_epochs),
            bpp, **common, decoder_macs=0, decoder_macs_avoided=macs["decoder_macs"])
    return {"rows": rows, "n_train": int(len(xtr)), "n_test": int(len(xte)),
            "recognizer": f"MLP input-256-10 (benchmarks/perception.py train_mlp, Adam, "
                          f"{args.fm_epochs} epochs, seed 0)",
            "wall_s": round(time.time() - t0, 1)}


# ---------------------------------------------------------------------------------------------
# output

def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    for ax, key, xkey, xlabel, title in [
            (axes[0], "speech", "kbps", "kbit/s (FRAME payload)",
             "Spoken-language ID (4 voices), 1-D CNN"),
            (axes[1], "image", "bpp", "bits per pixel (mosaic-amortised)", "Fashion-MNIST, MLP")]:
        task = results.get(key)
        if not task:
            ax.set_visible(False)
            continue
        for method, st in (("latents", "s--C3"), ("decoded", "o-C0")):
            pts = sorted((r[xkey], r["acc"]) for r in task["rows"] if r["method"] == method)
            if pts:
                ax.plot(*zip(*pts), st[:-2], color=st[-2:], label=f"{method}")
        clean = [r for r in task["rows"] if r["method"] == "clean"]
        if clean:
            ax.axhline(clean[0]["acc"], color="k", ls=":", lw=0.8, label="clean")
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("held-out accuracy")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def headline(results: dict) -> str:
    lines = []
    sel = results.get("speech", {}).get("selection")
    if sel:
        models = list(dict.fromkeys(r["model"] for r in sel["rows"]))
        lines.append(f"speech latent front end on validation: {'front':10s} "
                     + " ".join(f"{m:>14s}" for m in models) + f" {'mean':>6s}")
        for f, mean in sel["mean_val_acc"].items():
            accs = {r["model"]: r["val_acc"] for r in sel["rows"] if r["front"] == f}
            lines.append(f"{'':39s}{f:10s} " + " ".join(f"{accs[m]:14.3f}" for m in models)
                         + f" {mean:6.3f}" + ("  <- chosen" if f == sel["chosen"] else ""))
    for key, rate in (("speech", "kbps"), ("image", "bpp")):
        task = results.get(key)
        if not task:
            continue
        lines.append(f"{key}: {'method':8s} {'setting':14s} {rate:>7s} {'acc':>13s} "
                     f"{'recog. MACs':>12s} {'decoder MACs':>12s}")
        for r in task["rows"]:
            acc = f"{r['acc']:.3f}" + (f"±{r['acc_std']:.3f}" if "acc_std" in r else "")
            dm = r.get("decoder_macs", 0) or r.get("decoder_macs_avoided", 0)
            tag = " (avoided)" if r["method"] == "latents" else ""
            lines.append(f"        {r['method']:8s} {r['setting']:14s} {r[rate]:7.3f} {acc:>13s} "
                         f"{r['recognizer_macs']:12d} {dm:12d}{tag}")
    return "\n".join(lines)


def _versions() -> dict:
    import onnxruntime
    import torch
    deb = {}
    for pkg in [v[0] for v in VOICES.values()] + ["dataset-fashion-mnist"]:
        try:
            deb[pkg] = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg],
                                      capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            deb[pkg] = None
    return {"machine": platform.machine(), "processor": platform.processor(),
            "python": platform.python_version(), "numpy": np.__version__,
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__, "threads": _threads(),
            "cpu_count": os.cpu_count(), "debian_packages": deb}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, one model each")
    ap.add_argument("--tasks", default="speech,image")
    ap.add_argument("--speech-models", nargs="*", default=SPEECH_MODELS)
    ap.add_argument("--image-models", nargs="*", default=IMAGE_MODELS)
    ap.add_argument("--train-windows", type=int, default=150, help="1 s windows per language")
    ap.add_argument("--val-windows", type=int, default=50,
                    help="1 s windows per language (validation prompts; added to the final "
                         "training)")
    ap.add_argument("--fronts", nargs="+", default=list(LATENT_FRONTS),
                    choices=list(LATENT_FRONTS),
                    help="candidate latent front ends, chosen on the validation split")
    ap.add_argument("--test-windows", type=int, default=100, help="1 s windows per language")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--fm-train", type=int, default=5000)
    ap.add_argument("--fm-test", type=int, default=5000)
    ap.add_argument("--fm-epochs", type=int, default=8)
    ap.add_argument("--no-plot", action="store_true")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.quick:                               # smaller defaults; explicit options still win
        ap.set_defaults(speech_models=SPEECH_MODELS[:1], image_models=IMAGE_MODELS[:1],
                        train_windows=16, val_windows=6, test_windows=6, epochs=3, seeds=1,
                        fm_train=600, fm_test=300, fm_epochs=3)
        args = ap.parse_args(argv)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    command = "python -m benchmarks.latent_recognizers " + " ".join(
        argv if argv is not None else sys.argv[1:])
    env = _versions()
    runners = {"speech": run_speech, "image": run_image}
    results: dict = {"benchmark": "latent_recognizers", "quick": bool(args.quick)}
    for task in tasks:
        if task not in runners:
            raise SystemExit(f"--tasks: unknown task {task!r} (expected speech, image)")
        print(f"{task} ...", flush=True)
        results[task] = {**runners[task](args), "command": command, "environment": env}
    path = args.out / "latent_recognizers.json"
    args.out.mkdir(parents=True, exist_ok=True)
    if path.is_file():                           # keep the tasks not run now (--tasks image ...)
        old = json.loads(path.read_text())
        if old.get("quick") == results["quick"]:
            results = {**{k: v for k, v in old.items() if k in runners}, **results}
    path.write_text(json.dumps(results, indent=1) + "\n")
    if not args.no_plot:
        plot(results, args.out / "latent_recognizers.png")
    print(headline(results))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
