"""Warm-start a joint stereo codec from a per-channel mono codec (issue 11).

A joint model can express per-channel coding exactly: the stereo encoder's rows are the mono
kernel applied to one channel (block-diagonal, ``"lr"``), or to the mid / side signals
(L ± R)/√2 (``"ms"``, an orthogonal rotation of the channels). The decoder gets one refinement
path per rotated channel (``extra["decoder_branches"]`` = 2), each a copy of the mono refinement
path that sees only its channel's codes and writes its residual back through the transposed
rotation; the linear skip path is rotated the same way. In float arithmetic the joint model then
reconstructs exactly what the mono model run on each rotated channel would, rotated back: the
starting point equals per-channel (``"lr"``) or per-channel mid/side (``"ms"``) coding, and
training can only move it by learning cross-channel weights. The integer encoder differs only by
rounding: the joint model bounds each kernel row's L1 norm (``extra["weight_bound"] = "row"``,
export/model.py), so a row that reads one channel keeps the mono model's weight precision.

``side_latents`` < C keeps only that many latents for the second rotated channel (the mono latents
with the largest code variance on it), e.g. fewer latents for the side signal.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from .model import Codec, CodecConfig

ROTATIONS = {"lr": np.eye(2), "ms": np.array([[1.0, 1.0], [1.0, -1.0]]) / math.sqrt(2.0)}


def _rotation(name: str) -> torch.Tensor:
    if name not in ROTATIONS:
        raise SystemExit(f"stereo rotation {name!r}: expected one of {', '.join(ROTATIONS)}")
    return torch.tensor(ROTATIONS[name])


@torch.no_grad()
def side_latent_choice(mono: Codec, crops: torch.Tensor, rotation: str, keep: int) -> list[int]:
    """The ``keep`` mono latents with the largest code variance on the second rotated channel of
    ``crops`` (N, 2, T) raw stereo samples, in their mono order."""
    rot = _rotation(rotation).to(crops.dtype)
    side = torch.einsum("c,nct->nt", rot[1], crops - mono.cfg.sample_center)[:, None]
    mono.encoder.qat = False
    var = mono.encoder.analysis(side + mono.cfg.sample_center).transpose(0, 1).flatten(1).var(1)
    mono.encoder.qat = True
    return sorted(torch.argsort(var, descending=True)[:keep].tolist())


@torch.no_grad()
def joint_from_mono(mono: Codec, rotation: str = "ms", side: list[int] | None = None) -> Codec:
    """A 2-channel Codec that starts as ``mono`` run per (rotated) channel; ``side`` = the mono
    latents the second rotated channel keeps (default all)."""
    cfg = mono.cfg
    if cfg.in_channels != 1 or cfg.projection != "dense":
        raise SystemExit(f"joint stereo init: the source model must be mono with a dense "
                         f"projection (got in_channels={cfg.in_channels}, {cfg.projection})")
    rot = _rotation(rotation).float()
    c = cfg.latent_channels
    groups = [list(range(c)), list(range(c)) if side is None else list(side)]
    if not groups[1] or not all(0 <= i < c for i in groups[1]):
        raise SystemExit(f"joint stereo init: side latents {groups[1]} must be a non-empty subset "
                         f"of 0..{c - 1}")
    joint_cfg = CodecConfig(**{**dataclasses.asdict(cfg), "in_channels": 2,
                               "latent_channels": len(groups[0]) + len(groups[1]),
                               "extra": {**cfg.extra, "decoder_branches": 2,
                                         "weight_bound": "row"}})
    joint = Codec(joint_cfg)
    src = {k: v.detach().cpu().float() for k, v in mono.state_dict().items()}
    dst = joint.state_dict()
    taps = cfg.taps                                       # WPT coefficients per channel
    rows = [range(0, len(groups[0])), range(len(groups[0]), joint_cfg.latent_channels)]
    kernel = dst["encoder.kernel"].zero_()
    lin_w = dst["decoder.linear.weight"].zero_()
    lin_b = dst["decoder.linear.bias"].zero_()
    for v, (latents, out) in enumerate(zip(groups, rows)):
        prefix = "decoder." if v == 0 else f"decoder.branches.{v - 1}."
        for k, t in src.items():  # the mono refinement path, head/tail rotated below
            if k.startswith("decoder.") and not k.startswith(("decoder.linear", "decoder.head.w")):
                dst[prefix + k[len("decoder."):]] = t.clone()
        head = torch.zeros_like(dst[prefix + "head.weight"])
        head[:, list(out)] = src["decoder.head.weight"][:, latents]
        dst[prefix + "head.weight"] = head
        dst[prefix + "tail.weight"] = rot[v].view(2, 1, 1) * src["decoder.tail.weight"]
        dst[prefix + "tail.bias"] = rot[v] * src["decoder.tail.bias"]
        for ch in range(2):
            kernel[list(out), ch] = rot[v, ch] * src["encoder.kernel"][latents, 0]
            lin_w[ch * taps:(ch + 1) * taps, list(out)] = \
                rot[v, ch] * src["decoder.linear.weight"][:, latents]
            lin_b[ch * taps:(ch + 1) * taps] += rot[v, ch] * src["decoder.linear.bias"]
    joint.load_state_dict(dst)
    return joint
