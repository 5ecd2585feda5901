"""Video rate–distortion benchmark: the bundled video models vs x264 and x265 (ffmpeg, CRF sweep)
and vs the bundled image models applied frame by frame, on the held-out video clips.

One command: ``python -m benchmarks.video_rd`` (fetches the clips, export/video_data.py; needs the
``ffmpeg`` program with libx264/libx265, scripts/apt/video.txt). Writes
benchmarks/results/video_rd.json + .png.

Every codec sees the same frames: the first ``--frames`` frames of each held-out clip (RGB, 1/2
scale, never trained, tuned or initialised on). Quality: PSNR on RGB over all frames of a clip
(from the clip's mean squared error), averaged over clips. Rate: bits per pixel of all frames, each
codec's coded data without container overhead: for ours and the image models the FRAME payloads
(what each further frame costs in a stream; the one stream header is left out), for x264/x265 the
raw elementary stream (``-f h264``/``-f hevc``). x264/x265 code 4:2:0 YCbCr (their usual setting,
preset medium, CRF sweep); the RGB → YCbCr → RGB conversion is part of their error.
BD-rates are on PSNR, each codec's curve being its RD front (settings beaten on both rate and PSNR
by another of the same codec, e.g. a decoder variant next to its model, are listed under
``dominated``).
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.rd import bd_rate, _tool_version
from benchmarks.report import write_results
from encoder_runtime import Decoder, Encoder
from encoder_runtime.bundle import list_models
from encoder_runtime.metrics import psnr_db
from encoder_runtime.video_io import frame_groups, group_size

RESULTS = Path(__file__).resolve().parent / "results"
X264_CRF = (22, 26, 30, 34, 38, 42, 46)
X265_CRF = (24, 28, 32, 36, 40, 44, 48)


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())


def _point(clips: list[np.ndarray], codec, setting: str) -> dict:
    """``codec(clip) -> (coded bytes, decoded clip)`` on every clip → one RD point."""
    bits, pixels, psnrs, t0 = 0, 0, [], time.time()
    for clip in clips:
        nbytes, dec = codec(clip)
        assert dec.shape == clip.shape, (setting, dec.shape, clip.shape)
        bits += 8 * nbytes
        pixels += int(np.prod(clip.shape[:3]))
        psnrs.append(psnr_db(_mse(clip, dec)))
    return {"bpp": bits / pixels, "psnr_db": float(np.mean(psnrs)),
            "psnr_db_per_clip": [round(p, 3) for p in psnrs], "setting": setting,
            "seconds": round(time.time() - t0, 2)}


def video_model_codec(name: str):
    """One FRAME payload per group of frames (as `sensor-codec encode` cuts a clip)."""
    enc, dec = Encoder.load(name), Decoder.load(name)
    header = enc.stream_header()

    def run(clip: np.ndarray) -> tuple[int, np.ndarray]:
        t = enc.bundle.block[0]
        nbytes, out = 0, []
        for a, b in frame_groups(len(clip), group_size(clip.shape, t), t):
            payload = enc.encode_frame(clip[a:b])
            nbytes += len(payload)
            out.append(dec.decode_frame(header, payload))
        return nbytes, np.concatenate(out)
    return run


def image_model_codec(name: str):
    """The image model on every frame (one FRAME payload per frame)."""
    enc, dec = Encoder.load(name), Decoder.load(name)
    header = enc.stream_header()

    def run(clip: np.ndarray) -> tuple[int, np.ndarray]:
        payloads = [enc.encode_frame(f) for f in clip]
        return (sum(len(p) for p in payloads),
                np.stack([dec.decode_frame(header, p) for p in payloads]))
    return run


def ffmpeg_codec(lib: str, crf: int):
    """x264 / x265 at ``crf`` (preset medium, 4:2:0), raw elementary stream bytes."""
    fmt = {"libx264": "h264", "libx265": "hevc"}[lib]

    def run(clip: np.ndarray) -> tuple[int, np.ndarray]:
        t, h, w, _ = clip.shape
        with tempfile.TemporaryDirectory() as tmp:
            es = Path(tmp) / f"c.{fmt}"
            extra = ["-x265-params", "log-level=error"] if lib == "libx265" else []
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                            "-s", f"{w}x{h}", "-r", "25", "-i", "-", "-c:v", lib, "-preset",
                            "medium", "-crf", str(crf), "-pix_fmt", "yuv420p", *extra, "-f", fmt,
                            str(es)], input=clip.tobytes(), check=True, capture_output=True)
            r = subprocess.run(["ffmpeg", "-v", "error", "-i", str(es), "-f", "rawvideo",
                                "-pix_fmt", "rgb24", "-"], check=True, capture_output=True)
            dec = np.frombuffer(r.stdout, np.uint8).reshape(t, h, w, 3)
            return es.stat().st_size, dec
    return run


def _even(clip: np.ndarray) -> np.ndarray:
    """Crop H and W to even sizes (4:2:0 needs them; every codec sees the same frames)."""
    return np.ascontiguousarray(clip[:, : clip.shape[1] // 2 * 2, : clip.shape[2] // 2 * 2])


def run(clips: list[np.ndarray], names: list[str], image_models: list[str] | None = None) -> dict:
    models = list_models()
    video = sorted(m["name"] for m in models if m["modality"] == "video")
    image = image_models if image_models is not None else sorted(
        m["name"] for m in models if m["modality"] == "image")
    curves: dict[str, list[dict]] = {"ours (video)": [], "image model per frame": []}
    for n in video:
        curves["ours (video)"].append(_point(clips, video_model_codec(n), n))
        print("ours", curves["ours (video)"][-1])
    for n in image:
        curves["image model per frame"].append(_point(clips, image_model_codec(n), n))
        print("image", curves["image model per frame"][-1])
    for lib, crfs, key in (("libx264", X264_CRF, "x264"), ("libx265", X265_CRF, "x265")):
        curves[key] = [_point(clips, ffmpeg_codec(lib, c), f"crf {c}") for c in crfs]
        print(key, curves[key][-1])
    return {"clips": names, **summarize(curves)}


def pareto(points: list[dict]) -> list[dict]:
    """The points no other point beats on both rate and PSNR, by rate."""
    pts = sorted(points, key=lambda p: (p["bpp"], -p["psnr_db"]))
    out: list[dict] = []
    for p in pts:
        if not out or p["psnr_db"] > out[-1]["psnr_db"]:
            out.append(p)
    return out


def summarize(curves: dict[str, list[dict]]) -> dict:
    """Each codec's RD front (dominated settings, e.g. an image model with a text-tuned decoder
    at the same rate, listed under ``dominated``) and the BD-rates of ours vs each front."""
    fronts = {k: pareto(v) for k, v in curves.items()}
    dominated = {k: [p["setting"] for p in v if p not in fronts[k]] for k, v in curves.items()}
    ours = [(p["bpp"], p["psnr_db"]) for p in fronts["ours (video)"]]
    bd = {f"ours (video) vs {k}": bd_rate([(p["bpp"], p["psnr_db"]) for p in v], ours)
          for k, v in fronts.items() if k != "ours (video)"}
    return {"curves": fronts, "dominated": {k: [p for p in v if p not in fronts[k]]
                                            for k, v in curves.items() if dominated[k]},
            "bd_rate_psnr_percent": bd}


def plot(result: dict, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for k, pts in result["curves"].items():
        ax.plot([p["bpp"] for p in pts], [p["psnr_db"] for p in pts], "o-", label=k)
    ax.set_xscale("log")
    ax.set_xlabel("bits per pixel (all frames)")
    ax.set_ylabel("PSNR (RGB, dB)")
    ax.set_title("held-out video: " + ", ".join(result["clips"]))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=64, help="frames per held-out clip")
    ap.add_argument("--image-models", nargs="*", help="image models to compare (default: all)")
    ap.add_argument("--out", type=Path, default=RESULTS / "video_rd.json")
    args = ap.parse_args(argv)
    if not shutil.which("ffmpeg"):
        raise SystemExit("benchmarks.video_rd needs ffmpeg (scripts/apt/video.txt)")
    import onnxruntime
    from export.video_data import video_clips
    paths = video_clips("test")
    clips = [_even(np.load(p)[: args.frames]) for p in paths]
    result = run(clips, [f"{p.stem} {c.shape[0]}×{c.shape[1]}×{c.shape[2]}"
                         for p, c in zip(paths, clips)], args.image_models)
    result["machine"] = {"machine": platform.machine(), "processor": platform.processor(),
                         "python": platform.python_version(),
                         "onnxruntime": onnxruntime.__version__,
                         "ffmpeg": _tool_version("ffmpeg"), "threads": 1}
    write_results(result, args.out, plot)
    for k, v in result["bd_rate_psnr_percent"].items():
        print(f"BD-rate {k}: {v:+.1f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
