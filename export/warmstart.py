"""Derive a new operating point from a trained model: a coarser/finer quantizer, or a wider latent.

``scale_code_gain`` multiplies the encoder's analysis gain by G (G < 1: coarser quantizer steps,
fewer bits) and divides the decoder's input layers by G, so the decoder sees codes on the scale it
was trained on, only more coarsely quantized. A short decoder fine-tune on the new exact codes
(``sensor-train --decoder-steps 1``) then adapts it.

``widen`` warm-starts a model with more latent channels.

The trained decoder does much of its work in the nonlinear refinement path, so new channels
cannot simply be added as orthogonal projections. Instead the widened model starts out computing
exactly the trained model's reconstruction plus a linear correction from the new channels:

* new encoder rows = leading principal directions of the trained model's per-block
  reconstruction error, at the finest step of the trained channels;
* the new channels enter the linear skip path through the least-squares map from their codes to
  that error, and the refinement path with zero weights.
"""

from __future__ import annotations

import dataclasses

import torch

from .model import Codec, CodecConfig, to_blocks


@torch.no_grad()
def scale_code_gain(codec: Codec, gain: float) -> Codec:
    """Scale the quantizer's input gain by ``gain`` in place (decoder input layers by 1/gain)."""
    if not 0.05 <= gain <= 20:
        raise SystemExit(f"--code-gain {gain}: expected a factor between 0.05 and 20")
    if codec.cfg.projection != "dense":
        raise SystemExit("--code-gain needs a dense projection (the checkpoint is structured)")
    codec.encoder.kernel.mul_(gain)
    codec.decoder.linear.weight.div_(gain)
    for r in codec.decoder.refiners():
        r.head.weight.div_(gain)
    return codec


@torch.no_grad()
def widen(codec: Codec, latent_channels: int, crops: torch.Tensor, ridge: float = 1e-3) -> Codec:
    """A new Codec with ``latent_channels`` ≥ the trained one's, warm-started from ``codec``.

    ``crops`` are (N, C_in, *spatial) raw training crops (spatial a multiple of the block).
    """
    cfg = codec.cfg
    extra = latent_channels - cfg.latent_channels
    if extra <= 0:
        raise SystemExit(f"--widen-to {latent_channels}: the checkpoint already has "
                         f"{cfg.latent_channels} latent channels (can only widen)")
    if cfg.projection != "dense":
        raise SystemExit("--widen-to needs a dense projection (the checkpoint is structured)")
    codec = codec.eval()
    crops = crops.to(next(codec.parameters()).device)
    err = to_blocks(crops - codec.decoder(codec.encoder.codes(crops)), cfg.block).flatten(1).double()
    evals, evecs = torch.linalg.eigh(err.T @ err / err.shape[0])
    top = evecs[:, torch.argsort(evals, descending=True)[:extra]]          # (taps, extra)
    k_old = codec.encoder.effective_kernel().double().reshape(cfg.latent_channels, -1)
    k_new = top.T * k_old.norm(dim=1).max()                                # finest trained step

    xs = to_blocks(crops - cfg.sample_center, cfg.block).flatten(1).double()
    codes = torch.round(xs @ k_new.T)                                      # (positions, extra)
    gram = codes.T @ codes + ridge * codes.shape[0] * torch.eye(extra, dtype=codes.dtype,
                                                                device=codes.device)
    fit = torch.linalg.solve(gram, codes.T @ err)                          # codes → error
    haar = codec.decoder.synthesis.double().reshape(cfg.taps, -1)
    lin_new = haar @ fit.T                                                 # → WPT coefficients

    wide = Codec(CodecConfig(**{**dataclasses.asdict(cfg), "latent_channels": latent_channels}))
    old = {k: v.detach().cpu() for k, v in codec.state_dict().items()}
    new = wide.state_dict()
    for k, v in old.items():
        if new[k].shape == v.shape:
            new[k] = v.clone()
    shape = (extra, cfg.in_channels) + (cfg.block,) * cfg.dims
    new["encoder.kernel"] = torch.cat([old["encoder.kernel"], k_new.reshape(shape).float().cpu()])
    lin = old["decoder.linear.weight"]                                     # (taps, C, 1, ...)
    new["decoder.linear.weight"] = torch.cat(
        [lin, lin_new.reshape(cfg.taps, extra, *lin.shape[2:]).float().cpu()], dim=1)
    for k in (k for k in old if k.startswith("decoder.") and k.endswith("head.weight")):
        head = old[k]                                                      # (w, C, 3, ...)
        new[k] = torch.cat([head, torch.zeros(head.shape[0], extra, *head.shape[2:])], dim=1)
    wide.load_state_dict(new)
    return wide
