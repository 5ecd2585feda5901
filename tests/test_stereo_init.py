"""Joint stereo warm start from a per-channel mono model (export/stereo_init.py, issue 11): the
joint model starts as the mono model run per channel (lr) or on mid/side (ms), exactly in float;
its row-bounded integer kernel keeps every accumulator exact; the two-branch decoder exports to
ONNX and the runtime decodes what torch decodes. Real parts only: the per-channel baseline bundle
and the bundled stereo clip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from encoder_runtime.media import read_input
from export.model import CodecConfig
from export.onnx_export import decoder_graph
from export.stereo_init import ROTATIONS, joint_from_mono, side_latent_choice
from export.train import codec_from_bundle
from export.warmstart import scale_code_gain

REPO = Path(__file__).resolve().parents[1]
MONO = REPO / "benchmarks" / "baselines" / "audio44k-49k"


@pytest.fixture(scope="module")
def mono():
    codec, _ = codec_from_bundle(MONO)
    return codec


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    x = read_input(REPO / "encoder_runtime" / "samples" / "loop_amen_stereo_44k.wav")[0]
    return torch.from_numpy(np.ascontiguousarray(x[8192:8192 + 16384].T).astype(np.float32))[None]


@torch.no_grad()
def _per_channel(mono, clip: torch.Tensor, rotation: str, side: list[int] | None):
    """(analysis, codes, reconstruction) of ``mono`` run on each rotated channel, rotated back."""
    rot = torch.tensor(ROTATIONS[rotation]).float()
    virt = torch.einsum("vc,nct->nvt", rot, clip)
    mono.encoder.qat = False
    ana = [mono.encoder.analysis(virt[:, v:v + 1]) for v in range(2)]
    codes = [mono.encoder.codes(virt[:, v:v + 1]) for v in range(2)]
    keep = list(range(mono.cfg.latent_channels)) if side is None else side
    dropped = torch.zeros_like(codes[1])
    dropped[:, keep] = codes[1][:, keep]
    rec = torch.cat([mono.decoder(codes[0]), mono.decoder(dropped)], 1)
    mono.encoder.qat = True
    return (torch.cat([ana[0], ana[1][:, keep]], 1), torch.cat([codes[0], codes[1][:, keep]], 1),
            torch.einsum("vc,nvt->nct", rot, rec))


@pytest.mark.parametrize("rotation,side", [("lr", None), ("ms", None), ("ms", [1, 4, 6])])
@torch.no_grad()
def test_joint_starts_as_the_mono_model_per_rotated_channel(mono, clip, rotation, side):
    joint = joint_from_mono(mono, rotation, side).eval()
    assert joint.cfg.in_channels == 2 and joint.cfg.latent_channels == 8 + len(side or range(8))
    ana, codes, rec = _per_channel(mono, clip, rotation, side)
    joint.encoder.qat = False
    assert torch.allclose(joint.encoder.analysis(clip), ana, atol=1e-3)
    got = joint.decoder(codes)
    assert (got - rec).abs().max() < 0.05, (got - rec).abs().max()  # of ±20 000
    if rotation == "lr":  # one-channel rows keep the mono weight precision: same integer codes
        assert torch.equal(joint.encoder.codes(clip), codes)


def test_row_bounded_integer_kernel_keeps_accumulators_exact(mono):
    joint = joint_from_mono(mono, "ms")
    w, b, shift = joint.encoder.integer_params()
    l1 = w.abs().flatten(1).sum(1).double()
    assert (l1 * joint.cfg.sample_max_abs + b.abs()).max() < 2 ** 24
    assert joint.cfg.weight_max == 127 and w.abs().max() <= 127
    # never coarser than the per-tap bound (15 for 32 taps), finer on most rows
    tap = joint_from_mono(mono, "ms")
    tap.cfg.extra.pop("weight_bound")
    _, _, shift_tap = tap.encoder.integer_params()
    assert tap.cfg.weight_max == 15
    assert (shift >= shift_tap).all() and (shift > shift_tap).sum() >= 8
    with pytest.raises(ValueError, match="weight_bound"):
        CodecConfig(extra={"weight_bound": "l2"}).weight_max


@torch.no_grad()
def test_side_latents_are_the_strongest_on_the_side_signal(mono, clip):
    keep = side_latent_choice(mono, clip, "ms", 3)
    assert len(keep) == 3 and keep == sorted(keep)
    _, codes, _ = _per_channel(mono, clip, "ms", None)
    energy = codes[0, 8:].abs().sum(1)
    assert energy[keep].min() >= torch.sort(energy, descending=True).values[4]


@torch.no_grad()
def test_two_branch_decoder_exports_and_gain_scaling_covers_both(mono, clip):
    joint = joint_from_mono(mono, "ms").eval()
    codes = joint.encoder.codes(clip)[:, :, :300]
    sess = ort.InferenceSession(decoder_graph(joint).SerializeToString())
    got = sess.run(None, {"codes": codes.numpy()})[0]
    want = joint.decoder(codes).numpy()
    assert np.abs(got - want).max() < 0.05
    joint.encoder.qat = False
    y = joint.encoder.analysis(clip)
    rec = joint.decoder(y)
    scaled = scale_code_gain(joint, 0.5)
    assert torch.allclose(scaled.decoder(scaled.encoder.analysis(clip)), rec, atol=0.05)


def test_joint_init_rejects_a_stereo_source(mono):
    with pytest.raises(SystemExit, match="mono"):
        joint_from_mono(joint_from_mono(mono, "lr"), "ms")
    with pytest.raises(SystemExit, match="rotation"):
        joint_from_mono(mono, "xy")
    with pytest.raises(SystemExit, match="side latents"):
        joint_from_mono(mono, "ms", [9])


def test_validation_split_is_part_of_train_and_disjoint_from_fit():
    from export.stereo_data import stereo_paths
    train, fit, val = (set(stereo_paths(s)) for s in ("train", "fit", "val"))
    assert val and fit and not val & fit and val | fit == train
    assert not train & set(stereo_paths("test"))


def test_sensor_train_warm_starts_joint_from_mono(tmp_path):
    import json
    import subprocess
    import sys
    p = subprocess.run([sys.executable, "-m", "export.train", "--modality", "audio-stereo",
                        "--init-bundle", str(MONO), "--joint-from-mono", "ms", "--side-latents",
                        "4", "--train-split", "fit", "--steps", "2", "--batch", "2", "--crop",
                        "1024", "--device", "cpu", "--no-eval", "--out", str(tmp_path),
                        "--name", "j"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    m = json.loads((tmp_path / "j" / "bundle" / "manifest.json").read_text())
    assert m["config"]["in_channels"] == 2 and m["config"]["latent_channels"] == 12
    assert m["config"]["extra"] == {"decoder_branches": 2, "weight_bound": "row"}
    assert m["model_card"]["train_split"].startswith("fit")
    bad = subprocess.run([sys.executable, "-m", "export.train", "--modality", "audio44k",
                          "--joint-from-mono", "ms", "--out", str(tmp_path)],
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert bad.returncode == 2 and "--joint-from-mono needs" in bad.stderr
