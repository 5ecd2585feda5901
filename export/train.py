"""``sensor-train``: train a codec on real data and write a runtime bundle.

Loss = distortion + λ · rate proxy (bits per sample position, Gaussian entropy bound of the
noisy codes); distortion = 10·log10(MSE) by default, or with ``--loss mel|stft`` (audio) a
weighted sum of it and a log-mel / multi-resolution STFT dB distance, with ``--loss grad``
(images) of it and the image-gradient MSE in dB (export/losses.py).
Phase 1 trains encoder and decoder with additive uniform noise and the int8 weights the device
uses (quantization-aware); phase 2 freezes the encoder and fine-tunes the decoder on the exact
deployed integer codes. Checkpoints are safetensors + JSON (no pickles) and
resumable. CPU by default; CUDA when present (data and augmentation stay on the device).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.nn import functional as F
from tqdm import tqdm

from encoder_runtime.entropy import BUNDLE_CODER, get_coder, get_coder_or_fallback
from encoder_runtime.metrics import psnr_db, snr_db, spectral_angle_deg

from . import data as datasets
from .losses import AUDIO_LOSSES, IMAGE_LOSSES, LOSSES, distortion, log_mel_distance
from .model import Codec, CodecConfig, to_blocks
from .onnx_export import write_bundle
from .warmstart import scale_code_gain, widen

PRESETS: dict[str, dict] = {
    "image": dict(modality="image", dims=2, in_channels=3, levels=3, sample_dtype="uint8",
                  sample_center=128.0),
    "audio": dict(modality="audio", dims=1, in_channels=1, levels=4, sample_dtype="int16",
                  sample_center=0.0),
    # 6-channel IMU (BasicMotions, int16 = round(value * 512); see export/data.py)
    "timeseries": dict(modality="timeseries", dims=1, in_channels=6, levels=2,
                       sample_dtype="int16", sample_center=0.0),
    # RGB video: one 3-D block over (frames, rows, columns); export/video_data.py
    "video": dict(modality="video", dims=3, in_channels=3, levels=2, sample_dtype="uint8",
                  sample_center=128.0),
    # 3-D MRI volumes (export/volume_data.py): 8-bit, and 12-bit scanner data held in uint16
    "volume": dict(modality="volume", dims=3, in_channels=1, levels=2, sample_dtype="uint8",
                   sample_center=128.0),
    "volume16": dict(modality="volume16", dims=3, in_channels=1, levels=2, sample_dtype="uint16",
                     sample_center=2048.0, extra={"sample_bits": 12}),
    # stereo 44.1 kHz coded jointly: one projection mixes both channels (export/stereo_data.py)
    "audio-stereo": dict(modality="audio", dims=1, in_channels=2, levels=4, sample_dtype="int16",
                         sample_center=0.0),
    # the per-channel baseline: the same stereo data, each channel a mono signal
    "audio44k": dict(modality="audio", dims=1, in_channels=1, levels=4, sample_dtype="int16",
                     sample_center=0.0),
    # 32-band spectral cubes, 12-bit samples in uint16 (export/hyperspectral_data.py): the bands
    # are channels, one Haar level (2×2 blocks) keeps the folded kernel's int8 weights fine enough
    "hyperspectral": dict(modality="hyperspectral", dims=2, in_channels=32, levels=1,
                          sample_dtype="uint16", sample_center=256.0, extra={"sample_bits": 12}),
}
#: modality → volume_data kind
VOLUME_KINDS = {"volume": "u8", "volume16": "u12"}
#: sample rate recorded in the bundle's sample_info (audio presets not listed: 16 kHz)
PRESET_RATES = {"audio-stereo": 44100, "audio44k": 44100}


# --crop when not given: a few decoder receptive fields for photos, 0.26 s of 16 kHz audio,
# 96 of BasicMotions' 100 samples per series (a longer crop fits no IMU series at all) and 32³
# frames×rows×columns for video (a 128³ cube would not fit the shortest clips' frame size), 24³
# voxels of an MRI volume and 16³ of the 12-bit ones (the 24-slice training volumes), 32×32
# pixels of a 40×40 spectral cube.
DEFAULT_CROP = {"image": 128, "audio": 4096, "timeseries": 96, "video": 32, "volume": 24,
                "volume16": 16, "audio-stereo": 4096, "audio44k": 4096, "hyperspectral": 32}


def load_training_arrays(modality: str, split: str = "train") -> list[np.ndarray]:
    """Real training signals as (C, *spatial) integer arrays."""
    if modality == "timeseries":
        return list(datasets.basic_motions(split)[0])
    if modality == "video":
        from .video_data import video_arrays
        # evaluate groups of 16 frames (what the CLI codes per record), train on whole clips
        return video_arrays(split, group=16 if split == "test" else 0)
    if modality in VOLUME_KINDS:
        from .volume_data import volume_arrays
        return volume_arrays(VOLUME_KINDS[modality], split)
    if modality in ("audio-stereo", "audio44k"):
        from .stereo_data import stereo_arrays  # also the train files' "fit" / "val" parts
        stereo = stereo_arrays(split)
        return stereo if modality == "audio-stereo" else [a[i:i + 1] for a in stereo for i in (0, 1)]
    if modality == "hyperspectral":
        from .hyperspectral_data import training_arrays
        return training_arrays(split)
    datasets.fetch()
    if modality == "image":
        from PIL import Image
        return [np.asarray(Image.open(p).convert("RGB")).transpose(2, 0, 1).copy()
                for p in datasets.image_paths(split)]
    out = []
    for p in datasets.audio_paths(split):
        if p.suffix == ".npy":
            out.append(np.load(p, allow_pickle=False).reshape(1, -1))
            continue
        import soundfile as sf
        x, _ = sf.read(p, dtype="int16")
        out.append(x.reshape(1, -1))
    return out


def mix_in(arrays: list[np.ndarray], extra: list[np.ndarray], weight: float, flag: str
           ) -> list[np.ndarray]:
    """``arrays`` plus ``extra`` repeated so that about ``weight`` of the training crops come from
    ``extra`` (crops are drawn in proportion to signal size)."""
    if not 0 < weight < 1:
        raise SystemExit(f"{flag} {weight}: expected a fraction in (0, 1)")
    if not extra:
        raise SystemExit(f"{flag}: no signals to mix in")
    base = sum(a[0].size for a in arrays)
    reps = max(1, round(weight / (1 - weight) * base / sum(a[0].size for a in extra)))
    return arrays + extra * reps


def with_speech16k(arrays: list[np.ndarray], weight: float) -> list[np.ndarray]:
    """``arrays`` plus the real 16 kHz speech train split (export/data.py ``speech_clips``) as
    about ``weight`` of the crops."""
    import soundfile as sf
    speech = [sf.read(p, dtype="int16")[0].reshape(1, -1) for p, _ in datasets.speech_clips("train")]
    return mix_in(arrays, speech, weight, "--speech-train-weight")


class CropSampler:
    """Random crops (and flips, for images) drawn on the training device."""

    def __init__(self, arrays: list[np.ndarray], crop: int, dims: int, device: torch.device,
                 seed: int = 0, max_scale: float = 1.0) -> None:
        self.dims = dims
        self.crop = crop
        self.max_scale = max_scale if dims == 2 else 1.0
        need = math.ceil(crop * self.max_scale)
        self.items = [torch.from_numpy(a.astype(np.float32 if a.dtype != np.uint8 else np.uint8))
                      .to(device) for a in arrays if min(a.shape[1:]) >= need]
        if not self.items:
            raise SystemExit(f"no training signal is at least {need} samples long per axis")
        sizes = np.array([np.prod(t.shape[1:]) for t in self.items], dtype=np.float64)
        self.weights = sizes / sizes.sum()
        self.rng = np.random.default_rng(seed)
        self.device = device

    def batch(self, n: int) -> torch.Tensor:
        """n crops; with ``max_scale`` > 1 (images) each batch is a crop of ``crop``·s pixels,
        s uniform in [1, max_scale], downscaled to ``crop`` (antialiased, rounded to integers)
        so the model also sees finer detail per pixel than the training photos have."""
        idx = self.rng.choice(len(self.items), size=n, p=self.weights)
        scale = float(self.rng.uniform(1.0, self.max_scale))
        size = min(math.ceil(self.crop * scale), min(min(self.items[i].shape[1:]) for i in idx))
        out = []
        for i in idx:
            t = self.items[i]
            sl = [slice(None)]
            for s in t.shape[1:]:
                o = int(self.rng.integers(0, s - size + 1))
                sl.append(slice(o, o + size))
            c = t[tuple(sl)]
            if self.dims == 2 and self.rng.random() < 0.5:
                c = c.flip(-1)
            out.append(c)
        x = torch.stack(out).float()
        if size != self.crop:
            x = F.interpolate(x, size=(self.crop, self.crop), mode="bilinear", antialias=True,
                              align_corners=False).round().clamp(0, 255)
        return x


def sample_blocks(sampler: CropSampler, cfg: CodecConfig, n_batches: int = 8) -> torch.Tensor:
    """Training blocks for the PCA initialisation."""
    return to_blocks(torch.cat([sampler.batch(32).cpu() for _ in range(n_batches)]), cfg.block)


def fill_zero_codes(codes: torch.Tensor, width: float) -> torch.Tensor:
    """``codes`` whose zeros are U(-width/2, width/2) (the runtime's decoder-side noise fill,
    encoder_runtime/noisefill.py); unchanged when ``width`` is 0."""
    if not width:
        return codes
    return torch.where(codes == 0, (torch.rand_like(codes) - 0.5) * width, codes)


def save_checkpoint(path: Path, codec: Codec, opt: torch.optim.Optimizer, step: int, meta: dict) -> None:
    """Model + optimizer state as safetensors, metadata as JSON beside it."""
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in codec.state_dict().items()}
    for pid, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"opt.{pid}.{k}"] = v.detach().contiguous().cpu()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(path)
    path.with_suffix(".json").write_text(json.dumps({**meta, "step": step}, indent=1))


def load_checkpoint(path: Path) -> tuple[dict, dict]:
    """(tensors, metadata) of a checkpoint; clear error if missing or corrupt."""
    path = Path(path)
    meta_path = path.with_suffix(".json")
    if not path.is_file() or not meta_path.is_file():
        raise SystemExit(f"{path}: checkpoint not found (need {path.name} and {meta_path.name})")
    try:
        return load_file(str(path)), json.loads(meta_path.read_text())
    except Exception as exc:  # safetensors raises several types on corrupt files
        raise SystemExit(f"{path}: not a valid checkpoint ({exc.__class__.__name__}: {exc})") from None


def codec_from_checkpoint(path: Path) -> tuple[Codec, dict]:
    """Rebuild a trained Codec from a checkpoint."""
    tensors, meta = load_checkpoint(path)
    codec = Codec(CodecConfig(**meta["config"]))
    state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    missing, unexpected = codec.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise SystemExit(f"{path}: checkpoint does not match the model (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]})")
    return codec.eval(), meta


def codec_from_bundle(name_or_path: str | Path) -> tuple[Codec, dict]:
    """Rebuild a Codec from an installed bundle (warm start where the training checkpoint is not
    at hand): encoder kernel = w_int · 2**-shift from encoder_int.npz, decoder weights from the
    decoder.onnx initializers (named like the torch state dict). Checked: the rebuilt encoder's
    integer parameters equal the bundle's, so it produces the same codes."""
    import onnx
    from onnx import numpy_helper
    from encoder_runtime.bundle import load_bundle
    b = load_bundle(name_or_path, verify=False)
    codec = Codec(CodecConfig(**b.manifest["config"]))
    with np.load(b.file("encoder_int.npz"), allow_pickle=False) as z:
        w, shift = z["weight"].astype(np.float64), z["shift"].astype(np.float64)
    kernel = w * np.power(2.0, -shift).reshape(-1, *[1] * (w.ndim - 1))
    state = {"encoder.kernel": torch.from_numpy(kernel).float()}
    for init in onnx.load(str(b.file("decoder.onnx"))).graph.initializer:
        if init.name.startswith("decoder."):
            state[init.name] = torch.from_numpy(numpy_helper.to_array(init).copy())
    missing, unexpected = codec.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise SystemExit(f"{b.path}: decoder.onnx/encoder_int.npz do not match the config "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    got = [t.numpy() for t in codec.encoder.integer_params()]
    if not all(np.array_equal(g, z) for g, z in zip(got, (w, None, shift)) if z is not None):
        raise SystemExit(f"{b.path}: rebuilt encoder does not reproduce encoder_int.npz")
    card = b.manifest.get("model_card", {})
    return codec.eval(), {"step": int(card.get("steps", 0)), "wall_time_s": card.get("wall_time_s"),
                          "hardware": card.get("hardware"), "command": card.get("command"),
                          "torch": card.get("torch"), "train_log_tail": card.get("train_log_tail", [])}


# where the (git-ignored) training checkpoints of the bundled models live: the GPU rounds' results
# and the CPU fine-tunes derived from them (docs/models.md)
CHECKPOINT_FOLDERS = [datasets.REPO / d for d in (".gpu_results", ".gpu_results2", ".gpu_results3",
                                                  ".gpu_results3/ft")]


def checkpoints_for_bundles(names: list[str], folders: list[Path] = CHECKPOINT_FOLDERS
                            ) -> dict[str, Path]:
    """bundle name → a training checkpoint (under ``folders``) whose integer encoder
    parameters equal the bundle's, i.e. the torch model that produced the deployed codes."""
    from encoder_runtime.bundle import load_bundle
    from .onnx_export import integer_encoder_arrays
    out: dict[str, Path] = {}
    ref = {}
    for n in names:
        with np.load(load_bundle(n, verify=False).file("encoder_int.npz"), allow_pickle=False) as z:
            ref[n] = {k: z[k] for k in z.files}
    for ck in sorted(c for f in folders if Path(f).is_dir()
                     for c in Path(f).glob("*/checkpoint.safetensors")):
        try:
            codec, _ = codec_from_checkpoint(ck)
        except SystemExit:
            continue
        got = integer_encoder_arrays(codec)
        for n, r in ref.items():
            if n not in out and r["weight"].shape == got["weight"].shape and all(
                    np.array_equal(r[k], got[k]) for k in got):
                out[n] = ck
    return out


def evaluate(codec: Codec, arrays: list[np.ndarray], coder_name: str | None = None,
             fill_width: float = 0.0) -> dict:
    """Held-out metrics with the exact deployed codes and the real lossless coder (the decoder
    sees the codes with the bundle's noise fill of ``fill_width``, as the runtime decodes them)."""
    coder = get_coder(coder_name) if coder_name else get_coder_or_fallback(BUNDLE_CODER)
    cfg = codec.cfg
    dev = next(codec.parameters()).device
    sq_err, n_samples, bits, peak = 0.0, 0, 0, 255.0
    snrs, mel_db, sams = [], [], []
    codec.eval()
    with torch.no_grad():
        for a in tqdm(arrays, desc="evaluating (held out)", unit="file", mininterval=5):
            b = cfg.block
            crop = tuple(slice(0, (s // b) * b) for s in a.shape[1:])
            a = a[(slice(None),) + crop]
            x = torch.from_numpy(a.astype(np.float32))[None].to(dev)
            codes = codec.encoder.codes(x)
            rec = codec.decoder(fill_zero_codes(codes, fill_width))
            if cfg.sample_dtype == "uint8":
                rec = rec.round().clamp(0, 255)
            elif cfg.sample_dtype == "uint16":
                rec = rec.round().clamp(0, cfg.sample_max_abs)
            else:
                rec = rec.round().clamp(-32768, 32767)
            err = ((rec - x) ** 2).sum().item()
            sq_err += err
            n_samples += x.numel()
            snrs.append(snr_db((x ** 2).sum().item(), err))
            if cfg.modality == "hyperspectral":
                sams.append(spectral_angle_deg(x[0].cpu().numpy(), rec[0].cpu().numpy(),
                                               offset=cfg.sample_center, axis=0))
            if cfg.modality == "audio":
                mel_db.append(log_mel_distance(rec.double(), x.double()).item())
            bits += 8 * len(coder.encode(codes[0].cpu().numpy().astype(np.int8)))
    positions = n_samples / cfg.in_channels
    mse = sq_err / n_samples
    out = {"coder": coder.name, "frames": len(arrays), "bits_per_position": bits / positions,
           "mse": mse}
    if cfg.modality in VOLUME_KINDS:  # PSNR on the data's bit depth, bits per voxel
        out["bits_per_sample"] = bits / positions
        out["psnr_db"] = psnr_db(mse, cfg.sample_max_abs)
    elif cfg.sample_dtype == "uint8":  # images, video: per pixel
        out["bpp"] = bits / positions
        out["psnr_db"] = psnr_db(mse, peak)
    elif cfg.modality == "hyperspectral":  # per sample = per band value; PSNR on the 12-bit range
        out["bits_per_sample"] = bits / n_samples
        out["psnr_db"] = psnr_db(mse, cfg.sample_max_abs)
        out["sam_deg_mean"] = float(np.mean(sams))
    else:
        out["snr_db_mean"] = float(np.mean(snrs))
        if mel_db:
            out["log_mel_db_mean"] = float(np.mean(mel_db))
        out["bits_per_sample"] = bits / positions
    return out


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="sensor-train", description=__doc__.splitlines()[0])
    ap.add_argument("--modality", choices=sorted(PRESETS), default="image")
    ap.add_argument("--latent", type=int, default=16, help="latent channels")
    ap.add_argument("--levels", type=int, help="Haar WPT levels (block = 2**levels)")
    ap.add_argument("--lam", type=float, default=10.0, help="rate weight λ (dB per bit/sample)")
    ap.add_argument("--loss", choices=LOSSES, default="mse",
                    help="distortion: mse = 10·log10(MSE); mel / stft (audio) add a log-mel or "
                         "multi-resolution STFT dB distance (export/losses.py)")
    ap.add_argument("--mse-weight", type=float, default=0.25,
                    help="with --loss mel|stft|grad|msssim: weight of the 10·log10(MSE) term")
    ap.add_argument("--perceptual-weight", type=float, default=1.0,
                    help="with --loss mel|stft|grad|msssim: weight of the dB spectral / gradient / 10·log10(1 − MS-SSIM) distance")
    ap.add_argument("--speech-train-weight", type=float, default=0.0, metavar="F",
                    help="audio: draw about F of the crops from the real 16 kHz speech train split")
    ap.add_argument("--text-train-weight", type=float, default=0.0, metavar="F",
                    help="image: draw about F of the crops from rendered text pages "
                         "(export/text_data.py; never the benchmark's held-out texts)")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--time-budget", type=float, default=0,
                    help="train for this many seconds instead (schedule follows wall time)")
    ap.add_argument("--decoder-steps", type=float, default=0.3,
                    help="fraction of steps that fine-tune the decoder on exact codes")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=None,
                    help="training crop in samples per axis (default per modality: " +
                         ", ".join(f"{k} {v}" for k, v in DEFAULT_CROP.items()) + ")")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--decoder-width", type=int, default=96)
    ap.add_argument("--decoder-blocks", type=int, default=4)
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--name", default=None, help="bundle name (default: derived from the options)")
    ap.add_argument("--out", type=Path, default=Path("runs"), help="output folder")
    ap.add_argument("--resume", type=Path, help="checkpoint to resume from")
    ap.add_argument("--force", action="store_true",
                    help="overwrite the checkpoint and bundle an earlier run left in OUT/NAME")
    ap.add_argument("--init-bundle", metavar="NAME",
                    help="warm-start from an installed bundle's weights instead of a checkpoint "
                         "(combines with --code-gain / --widen-to)")
    ap.add_argument("--joint-from-mono", choices=("lr", "ms"), metavar="ROT",
                    help="--modality audio-stereo with --init-bundle/--resume of a mono model: start "
                         "as that model run per channel (lr) or on mid/side (ms); "
                         "export/stereo_init.py")
    ap.add_argument("--side-latents", type=int, default=0, metavar="K",
                    help="with --joint-from-mono: keep only K latents for the second (side) "
                         "channel, those with the largest code variance on it")
    ap.add_argument("--train-split", choices=("train", "fit"), default="train",
                    help="fit: the train files minus their validation part (audio-stereo, "
                         "audio44k: export/stereo_data.py), for choosing among runs on 'val'")
    ap.add_argument("--widen-to", type=int, default=0, metavar="C",
                    help="with --resume: warm-start a model with C latent channels from it")
    ap.add_argument("--code-gain", type=float, default=1.0, metavar="G",
                    help="with --resume: multiply the encoder gain by G (G < 1: coarser quantizer, "
                         "lower rate; the decoder's input layers absorb 1/G)")
    ap.add_argument("--scale-aug", type=float, default=1.0, metavar="S",
                    help="images: also train on crops downscaled by up to S (finer detail)")
    ap.add_argument("--checkpoint-every", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-train-files", type=int, default=0, help="(smoke tests) limit the data")
    ap.add_argument("--data", type=Path, metavar="DIR",
                    help="train on your own image/audio/video (.y4m, .mp4, ...)/hyperspectral (.npy) "
                         "files in DIR (split by file name into "
                         "train/val, never modified; see export/data.py user_split)")
    ap.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation")
    ap.add_argument("--default", action="store_true",
                    help="mark the bundle as its modality's default model")
    ap.add_argument("--postfilter-db", type=float, metavar="DB",
                    help="(audio) decoder-side spectral noise floor DB dB under each bin's level, "
                         "written to the bundle manifest (encoder_runtime/postfilter.py)")
    ap.add_argument("--noise-fill", type=float, metavar="W",
                    help="(audio) decoder-side latent noise fill: zero codes become U(-W/2, W/2) "
                         "before the decoder (encoder_runtime/noisefill.py); the decoder-only "
                         "phase trains with it and the bundle manifest records it")
    ap.add_argument("--int8-decoder", action="store_true",
                    help="(image, bundled photos) also write decoder_int8.onnx, a static-int8 "
                         "decoder calibrated on the train photos (export/decoder_int8.py; ~1 min)")
    ap.add_argument("--install", action="store_true",
                    help="also copy the bundle into encoder_runtime/models/NAME")
    return ap


def refuse_overwrite(ap: argparse.ArgumentParser, args: argparse.Namespace, out_dir: Path) -> None:
    """Exit 2 if ``out_dir`` holds an earlier run's checkpoint or bundle, unless --resume/--force."""
    if args.resume or args.force:
        return
    left = [p.name for p in (out_dir / "checkpoint.safetensors", out_dir / "bundle") if p.exists()]
    if left:
        ap.error(f"{out_dir} already holds {' and '.join(left)} of an earlier run; pass "
                 f"--resume {out_dir / 'checkpoint.safetensors'} to continue it, --force to overwrite "
                 "it, or another --name/--out")


class Progress:
    """The training bar: with --time-budget its total is the budget in seconds, so the time left
    shown is the budget's (not an estimate from --steps); otherwise steps with tqdm's ETA."""

    def __init__(self, name: str, start_step: int, steps: int, budget: float) -> None:
        self.budget, self.t0 = budget, time.time()
        if budget:
            self.bar = tqdm(total=budget, desc=name, unit="s", mininterval=5, smoothing=0,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s "
                                       "[{elapsed} elapsed, {remaining} left{postfix}]")
        else:
            self.bar = tqdm(total=steps, initial=start_step, desc=name, unit="step", mininterval=5)

    def fraction(self, step: int, steps: int) -> float:
        """How far the schedule is (wall time under a budget, else steps)."""
        return (time.time() - self.t0) / self.budget if self.budget else step / max(1, steps)

    def advance(self, step: int, **postfix) -> None:
        """One step done; ``postfix`` (if any) replaces the shown metrics."""
        if postfix:
            self.bar.set_postfix(step=step, **postfix, refresh=False)
        self.bar.update(min(time.time() - self.t0, self.budget) - self.bar.n if self.budget else 1)

    def close(self) -> None:
        self.bar.close()


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.loss in AUDIO_LOSSES and PRESETS[args.modality]["modality"] != "audio":
        ap.error(f"--loss {args.loss} is for audio (16 kHz spectra); use --loss mse for "
                 f"--modality {args.modality}")
    if args.loss in IMAGE_LOSSES and args.modality != "image":
        ap.error(f"--loss {args.loss} is for images; use --loss mse for --modality {args.modality}")
    if args.text_train_weight and args.modality != "image":
        ap.error("--text-train-weight is for --modality image")
    if args.noise_fill is not None and not 0.0 <= args.noise_fill <= 1.0:
        ap.error(f"--noise-fill {args.noise_fill}: expected a width in [0, 1] quantizer steps")
    if args.crop is None:
        args.crop = DEFAULT_CROP[args.modality]
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    preset = dict(PRESETS[args.modality])
    if args.levels:
        preset["levels"] = args.levels
    name = args.name or f"{args.modality}-c{args.latent}-l{args.lam:g}"
    out_dir = args.out / name
    ckpt_path = out_dir / "checkpoint.safetensors"
    refuse_overwrite(ap, args, out_dir)
    if args.train_split == "fit" and args.modality not in ("audio-stereo", "audio44k"):
        ap.error(f"--train-split fit: no validation split for --modality {args.modality}")
    if args.joint_from_mono and (args.modality != "audio-stereo"
                                 or not (args.init_bundle or args.resume)):
        ap.error("--joint-from-mono needs --modality audio-stereo and a mono --init-bundle/--resume")
    arrays = (datasets.user_arrays(args.data, args.modality, "train") if args.data
              else load_training_arrays(args.modality, args.train_split))
    if args.max_train_files:
        arrays = arrays[: args.max_train_files]
    wrong = [a.shape for a in arrays if a.ndim != preset["dims"] + 1
             or a.shape[0] != preset["in_channels"]]
    if wrong:
        raise SystemExit(f"--modality {args.modality}: expected signals with {preset['in_channels']} "
                         f"channels and {preset['dims']} axes, got shape (C, ...) {wrong[0]}")
    if args.speech_train_weight:
        arrays = with_speech16k(arrays, args.speech_train_weight)
    if args.text_train_weight:
        from .text_data import text_arrays
        arrays = mix_in(arrays, text_arrays("train"), args.text_train_weight, "--text-train-weight")
    sampler = CropSampler(arrays, args.crop, preset["dims"], device, args.seed, args.scale_aug)

    start_step, meta = 0, {}
    if args.resume or args.init_bundle:
        codec, meta = (codec_from_checkpoint(args.resume) if args.resume
                       else codec_from_bundle(args.init_bundle))
        start_step = meta["step"]
        if args.joint_from_mono:
            from .stereo_init import joint_from_mono, side_latent_choice
            side = (side_latent_choice(codec, torch.cat([sampler.batch(16).cpu() for _ in range(4)]),
                                       args.joint_from_mono, args.side_latents)
                    if args.side_latents else None)
            codec = joint_from_mono(codec, args.joint_from_mono, side)
        if args.code_gain != 1.0:
            codec = scale_code_gain(codec, args.code_gain)
        if args.widen_to:
            codec = widen(codec.to(device), args.widen_to,
                          torch.cat([sampler.batch(16) for _ in range(4)]))
    else:
        cfg = CodecConfig(latent_channels=args.latent, decoder_width=args.decoder_width,
                          decoder_blocks=args.decoder_blocks, **preset)
        codec = Codec(cfg)
        codec.encoder.init_from_pca(sample_blocks(sampler, cfg))
        codec.decoder.init_linear(codec.encoder)
    cfg = codec.cfg
    codec.to(device).train()
    enc_params = list(codec.encoder.parameters())
    opt = torch.optim.AdamW([{"params": enc_params, "lr": args.lr * 0.1},
                             {"params": list(codec.decoder.parameters()), "lr": args.lr}],
                            weight_decay=0.0)
    if args.resume and not args.widen_to and args.code_gain == 1.0 and not args.joint_from_mono:
        tensors, _ = load_checkpoint(args.resume)
        state = opt.state_dict()
        params = [p for g in opt.param_groups for p in g["params"]]
        for pid, param in enumerate(params):
            st = {k.split(".", 2)[2]: v.to(device) for k, v in tensors.items()
                  if k.startswith(f"opt.{pid}.")}
            if st and st.get("exp_avg", param).shape != param.shape:
                print(f"warning: {args.resume}: optimizer state of parameter {pid} has shape "
                      f"{tuple(st['exp_avg'].shape)}, the model's is {tuple(param.shape)} "
                      f"(parameter order changed): starting with a fresh optimizer",
                      file=sys.stderr)
                state["state"] = {}
                break
            if st:
                state["state"][pid] = st
        opt.load_state_dict(state)
    base_lrs = [g["lr"] for g in opt.param_groups]
    freeze_frac = 1 - args.decoder_steps
    fill_width = args.noise_fill if args.noise_fill and cfg.modality == "audio" else 0.0
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    total = args.steps if not args.time_budget else 10 ** 9
    resumed_meta = meta
    hardware = f"{device.type}: " + (torch.cuda.get_device_name(0) if device.type == "cuda"
                                     else platform.processor() or platform.machine())
    command = "sensor-train " + " ".join(argv if argv is not None else sys.argv[1:])
    meta = {"config": cfg.to_dict(), "args": {k: str(v) for k, v in vars(args).items()},
            "hardware": hardware, "command": command, "torch": torch.__version__}
    t0 = time.time()
    bar = Progress(name, start_step, args.steps, args.time_budget)
    log = []
    step = start_step
    for step in range(start_step, total):
        frac = bar.fraction(step, args.steps)
        if frac >= 1.0:
            break
        warm = min(1.0, (step + 1) / 100)
        for g, lr in zip(opt.param_groups, base_lrs):
            g["lr"] = lr * warm * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))
        x = sampler.batch(args.batch)
        frozen = frac >= freeze_frac
        if frozen:
            with torch.no_grad():
                codes = fill_zero_codes(codec.encoder.codes(x), fill_width)
            rate = torch.zeros((), device=device)
            rec = codec.decoder(codes)
        else:
            rec, rate = codec(x, noise=True)
        dist, mse = distortion(rec, x, args.loss, mse_weight=args.mse_weight,
                               perceptual_weight=args.perceptual_weight)
        loss = dist + args.lam * rate
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if frozen:
            for p in enc_params:
                p.grad = None
        torch.nn.utils.clip_grad_norm_(codec.parameters(), 5.0)
        opt.step()
        if step % 50 == 0:
            peak = 255.0 if cfg.sample_dtype == "uint8" else (
                cfg.sample_max_abs if cfg.extra.get("sample_bits") else 32768.0)
            psnr = psnr_db(mse.item(), peak)
            bar.advance(step, psnr=f"{psnr:.2f}", rate=f"{rate.item():.3f}")
            log.append({"step": step, "psnr": psnr, "rate_proxy": rate.item()})
        else:
            bar.advance(step)
        if (step + 1) % args.checkpoint_every == 0:
            save_checkpoint(ckpt_path, codec, opt, step + 1, meta)
    bar.close()
    wall = time.time() - t0
    steps_done = max(step, start_step)
    if steps_done > start_step or not (args.resume or args.init_bundle):
        if args.init_bundle or args.resume:  # provenance of the warm start
            src = f"bundle {args.init_bundle}" if args.init_bundle else str(args.resume)
            command += f"  (warm start: {src}, trained by: {resumed_meta.get('command')}; " \
                       f"{start_step} steps, {resumed_meta.get('wall_time_s') or 0:.0f} s)"
            meta["command"] = command
        save_checkpoint(ckpt_path, codec, opt, steps_done,
                        {**meta, "wall_time_s": wall, "train_log_tail": log[-5:]})
    else:  # export only: keep the provenance of the run that trained it
        wall = float(resumed_meta.get("wall_time_s", wall))
        hardware = resumed_meta.get("hardware", hardware)
        command = resumed_meta.get("command", command) + f"  (then: {command})"
        meta["torch"] = resumed_meta.get("torch", torch.__version__)
    codec.eval()
    metrics = {} if args.no_eval else evaluate(codec, datasets.user_arrays(args.data, args.modality, "val")
                                                if args.data else load_training_arrays(args.modality, "test"),
                                                fill_width=fill_width)
    codec.cpu()
    card = {
        "command": command,
        "data_manifest": "data/manifest.json",
        "train_split": f"{args.train_split} (by source file; see export/data.py"
                       + (", export/stereo_data.py)" if args.train_split == "fit" else ")"),
        "eval_split": "test (held out: never trained, tuned or initialised on)",
        "steps": steps_done, "wall_time_s": round(wall, 1),
        "hardware": hardware, "torch": meta["torch"], "metrics": metrics,
        "train_log_tail": log[-5:] or resumed_meta.get("train_log_tail", []),
    }
    op = {k: round(v, 4) for k, v in metrics.items() if k in ("bpp", "psnr_db", "snr_db_mean",
                                                              "bits_per_sample", "sam_deg_mean")}
    sample_info = {"rate_hz": PRESET_RATES.get(args.modality, 16000)} if cfg.modality == "audio" else {}
    if cfg.modality == "timeseries":
        sample_info = {"rate_hz": datasets.IMU_RATE_HZ, "scale": datasets.IMU_SCALE}
    if cfg.modality == "hyperspectral":
        from .hyperspectral_data import sample_info as hs_info
        sample_info = hs_info()
    print(f"{name}: exporting the bundle (ONNX encoder fp32 + int8, decoder) to {out_dir / 'bundle'} ...",
          file=sys.stderr, flush=True)
    t_export = time.time()
    postfilter = ({"kind": "spectral_floor", "floor_db": args.postfilter_db, "seed": 0}
                  if args.postfilter_db is not None and cfg.modality == "audio" else None)
    noise_fill = ({"kind": "uniform_zero", "width": fill_width, "seed": 0}
                  if fill_width else None)
    write_bundle(codec, out_dir / "bundle", name, card=card, operating_point=op,
                 sample_info=sample_info, default=args.default, postfilter=postfilter,
                 noise_fill=noise_fill)
    if args.int8_decoder and cfg.modality == "image" and not args.data:
        from .decoder_int8 import write_int8_decoder
        write_int8_decoder(out_dir / "bundle")
    print(f"{name}: bundle written in {time.time() - t_export:.1f} s", file=sys.stderr, flush=True)
    if args.install:
        import shutil
        from encoder_runtime.bundle import MODELS_DIR
        shutil.rmtree(MODELS_DIR / name, ignore_errors=True)
        shutil.copytree(out_dir / "bundle", MODELS_DIR / name)
    print(json.dumps({"name": name, "bundle": str(out_dir / "bundle"), "wall_s": round(wall, 1),
                      **metrics}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
