"""The codec model: integer-exact block encoder (Haar WPT ∘ projection ∘ quantizer) and decoder.

The encoder is a Haar wavelet packet transform of ``levels`` levels folded with a dense channel
projection: one non-overlapping convolution with kernel = stride = 2**levels per axis. It is
trained quantization-aware with the exact arithmetic the device uses (docs/bundle-format.md):

    code = clamp(round_half_even((bias + Σ w_int · x) · 2**-shift), -code_max, code_max)

with int8 weights ``w_int``, an integer bias that folds the input centring, and a per-channel
power-of-two shift. In eval mode the torch forward computes exactly that, so the codes of this
module are the deployed codes. The decoder is heavy and runs in the cloud: projection up, residual
convolutions, an N-D linear-attention block, then a learned upsampling path plus a linear
(inverse-WPT) skip path.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

ACC_LIMIT = 2 ** 24  # float32 holds every integer below this exactly


@dataclass
class CodecConfig:
    """Everything that defines a model's shapes and arithmetic (stored in the bundle)."""

    modality: str = "image"          # image | audio | timeseries | volume | volume16
    dims: int = 2                    # spatial dims of one frame
    in_channels: int = 3
    levels: int = 3                  # Haar WPT levels → block = 2**levels per axis
    latent_channels: int = 16
    code_max: int = 127
    sample_dtype: str = "uint8"      # raw integer samples fed to the encoder
    sample_center: float = 128.0
    decoder_width: int = 128
    decoder_blocks: int = 4
    attention: bool = True
    projection: str = "dense"        # dense | structured (grouped 1×1 → shuffle → grouped 1×1)
    projection_groups: int = 4
    extra: dict = field(default_factory=dict)

    @property
    def block(self) -> int:
        return 2 ** self.levels

    @property
    def taps(self) -> int:
        return self.in_channels * self.block ** self.dims

    @property
    def sample_max_abs(self) -> float:
        """Largest |sample|: the dtype's, or 2**extra["sample_bits"] - 1 for a narrower unsigned
        range (e.g. 12-bit scanner data in uint16) that the runtime enforces."""
        bits = self.extra.get("sample_bits")
        if bits:
            return float(2 ** int(bits) - 1)
        return {"uint8": 255.0, "int16": 32768.0, "int8": 128.0, "uint16": 65535.0}[self.sample_dtype]

    @property
    def row_bounded(self) -> bool:
        """``extra["weight_bound"] == "row"``: bound each kernel row's L1 norm (``row_l1_max``)
        instead of every weight by ``weight_max`` — the same accumulator guarantee, finer weights
        where a row uses few taps (e.g. a stereo row that reads one channel)."""
        mode = self.extra.get("weight_bound", "tap")
        if mode not in ("tap", "row"):
            raise ValueError(f"config extra.weight_bound = {mode!r}: expected 'tap' or 'row'")
        return mode == "row"

    @property
    def row_l1_max(self) -> int:
        """Largest Σ|int weight| of a kernel row that keeps every accumulator below 2**24."""
        return int((ACC_LIMIT - 1) // (self.sample_max_abs + abs(self.sample_center)))

    @property
    def weight_max(self) -> int:
        """Largest |int weight| so that every accumulator stays below 2**24 (exact in float32);
        int8's 127 with ``row_bounded`` (the row's L1 norm is bounded instead)."""
        if self.row_bounded:
            return 127
        return int(min(127, self.row_l1_max // self.taps))

    def to_dict(self) -> dict:
        return asdict(self)


def to_blocks(x: torch.Tensor, block: int) -> torch.Tensor:
    """(N, C, *spatial) → (N·positions, C, *[block]·dims): the non-overlapping blocks the encoder
    kernel sees, in raster order of positions (spatial sizes a multiple of ``block``)."""
    n, c, *spatial = x.shape
    dims = len(spatial)
    for axis in range(2, 2 + dims):
        x = x.unfold(axis, block, block)          # → (N, C, *positions, *block)
    order = (0, *range(2, 2 + dims), 1, *range(2 + dims, 2 + 2 * dims))
    return x.permute(order).reshape(-1, c, *[block] * dims)


def _conv(dims: int):
    return {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims]


def _fconv(dims: int):
    return {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[dims]


def haar_analysis_kernel(cfg: CodecConfig) -> np.ndarray:
    """Orthonormal Haar-WPT-as-block-transform kernel, shape (taps, C_in, *block)."""
    b, d = cfg.block, cfg.dims
    h1 = np.array([[1.0]])
    for _ in range(cfg.levels):  # 1-D Haar packet matrix of size b (Kronecker construction)
        h1 = np.kron(h1, np.array([[1.0, 1.0], [1.0, -1.0]]) / math.sqrt(2.0))
    basis = h1
    for _ in range(d - 1):
        basis = np.kron(basis, h1)
    per_channel = basis.reshape((b ** d,) + (b,) * d)
    out = np.zeros((cfg.taps, cfg.in_channels) + (b,) * d)
    n = b ** d
    for c in range(cfg.in_channels):
        out[c * n:(c + 1) * n, c] = per_channel
    return out


class StructuredProjection(nn.Module):
    """FFT-like (Monarch-style) projection: grouped 1×1 (n→n) → channel shuffle → grouped 1×1
    (n→m). Costs n²/G + n·m/G MACs per position instead of n·m. The shuffle is a constant-index
    ``index_select`` so it exports to ONNX as one Gather, not a reshape/transpose chain.
    """

    def __init__(self, n_in: int, n_out: int, groups: int) -> None:
        super().__init__()
        if n_in % groups or n_out % groups:
            raise ValueError(f"structured projection: {n_in} inputs and {n_out} outputs must both "
                             f"be divisible by groups={groups}")
        self.groups = groups
        self.w1 = nn.Parameter(torch.eye(n_in // groups).repeat(groups, 1, 1))
        self.w2 = nn.Parameter(torch.randn(groups, n_out // groups, n_in // groups) * 0.01)
        perm = torch.arange(n_in).reshape(groups, n_in // groups).T.reshape(-1)
        self.register_buffer("perm", perm, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, n_in, *spatial) → (N, n_out, *spatial)."""
        g = self.groups
        d = x.dim() - 2
        conv = _fconv(d)
        w1 = self.w1.reshape(-1, self.w1.shape[-1], *[1] * d)
        h = conv(x, w1, groups=g)
        h = torch.index_select(h, 1, self.perm)
        return conv(h, self.w2.reshape(-1, self.w2.shape[-1], *[1] * d), groups=g)

    def matrix(self) -> torch.Tensor:
        """The dense (n_out, n_in) matrix this projection computes."""
        b1 = torch.block_diag(*self.w1)
        b2 = torch.block_diag(*self.w2)
        return b2 @ b1[self.perm]


class BlockEncoder(nn.Module):
    """Folded Haar-WPT + (dense or structured) projection + quantizer, quantization-aware."""

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        shape = (cfg.latent_channels, cfg.in_channels) + (cfg.block,) * cfg.dims
        if cfg.projection == "dense":
            self.kernel = nn.Parameter(torch.randn(shape) * 0.01)  # code units per sample unit
        elif cfg.projection == "structured":
            self.projection = StructuredProjection(cfg.taps, cfg.latent_channels,
                                                   cfg.projection_groups)
            haar = torch.tensor(haar_analysis_kernel(cfg), dtype=torch.float32)
            self.register_buffer("haar", haar.reshape(cfg.taps, -1), persistent=False)
        else:
            raise ValueError(f"projection must be 'dense' or 'structured', not {cfg.projection!r}")
        self.qat = True

    def effective_kernel(self) -> torch.Tensor:
        """The folded block kernel (C_lat, C_in, *block): WPT then projection, one linear map."""
        if self.cfg.projection == "dense":
            return self.kernel
        shape = (self.cfg.latent_channels, self.cfg.in_channels) + (self.cfg.block,) * self.cfg.dims
        return (self.projection.matrix() @ self.haar).reshape(shape)

    @torch.no_grad()
    def init_from_pca(self, blocks: torch.Tensor, target_std: float = 6.0) -> None:
        """Initialise as Haar WPT + PCA projection fitted on (N, C_in, *block) training blocks."""
        cfg = self.cfg
        haar = torch.tensor(haar_analysis_kernel(cfg), dtype=torch.float64).reshape(cfg.taps, -1)
        flat = blocks.reshape(blocks.shape[0], -1).double() - cfg.sample_center
        coeffs = flat @ haar.T                                   # WPT coefficients
        cov = torch.cov(coeffs.T)
        evals, evecs = torch.linalg.eigh(cov)
        order = torch.argsort(evals, descending=True)[: cfg.latent_channels]
        proj = evecs[:, order].T                                 # dense projection (C_lat, taps)
        std = evals[order].clamp_min(1e-6).sqrt()
        scale = target_std / std[0]                              # one step for all channels
        if cfg.projection == "dense":
            kern = (proj @ haar) * scale
            self.kernel.copy_(kern.reshape(self.kernel.shape).float())
            return
        # structured: identity first stage; each group's second stage = PCA of its inputs
        sp = self.projection
        shuffled = coeffs[:, sp.perm]
        n_g = cfg.taps // sp.groups
        for g in range(sp.groups):
            part = shuffled[:, g * n_g:(g + 1) * n_g]
            ev, vec = torch.linalg.eigh(torch.cov(part.T))
            top = torch.argsort(ev, descending=True)[: sp.w2.shape[1]]
            sp.w2[g].copy_((vec[:, top].T * scale).float())

    def integer_params(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(weight int, bias int, shift int) of the deployed integer encoder."""
        cfg = self.cfg
        k = self.effective_kernel().detach().double()
        peak = k.abs().flatten(1).amax(1).clamp_min(1e-12)
        scale = cfg.weight_max / peak
        if cfg.row_bounded:  # rounding adds at most taps/2 to a row's L1 norm
            l1 = k.abs().flatten(1).sum(1).clamp_min(1e-12)
            scale = torch.minimum(scale, (cfg.row_l1_max - cfg.taps / 2) / l1)
        shift = torch.floor(torch.log2(scale))
        w = torch.round(k * torch.pow(2.0, shift).view(-1, *[1] * (k.dim() - 1)))
        w = w.clamp(-cfg.weight_max, cfg.weight_max)
        bias = -cfg.sample_center * w.flatten(1).sum(1)
        return w.to(torch.int32), torch.round(bias).to(torch.int64), shift.to(torch.int32)

    def quantized_kernel(self) -> torch.Tensor:
        """Kernel as the device sees it (w_int · 2**-shift), with a straight-through gradient."""
        w, _, shift = self.integer_params()
        kq = (w.double() * torch.pow(2.0, -shift.double()).view(-1, *[1] * (w.dim() - 1))).float()
        k = self.effective_kernel()
        return k + (kq - k).detach()

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-quantizer latents (float) from raw samples (N, C_in, *spatial) as float."""
        k = self.quantized_kernel() if self.qat else self.effective_kernel()
        return _fconv(self.cfg.dims)(x - self.cfg.sample_center, k, stride=self.cfg.block)

    @torch.no_grad()
    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """Exact deployed integer codes (as float32 tensor) from raw samples."""
        cfg = self.cfg
        w, bias, shift = self.integer_params()
        acc = _fconv(cfg.dims)(x.double(), w.double(), bias.double(), stride=cfg.block)
        y = torch.round(acc * torch.pow(2.0, -shift.double()).view(1, -1, *[1] * cfg.dims))
        return y.clamp(-cfg.code_max, cfg.code_max).float()

    def forward(self, x: torch.Tensor, noise: bool = True) -> torch.Tensor:
        y = self.analysis(x)
        if noise:
            y = y + (torch.rand_like(y) - 0.5)
        else:
            y = y + (torch.round(y) - y).detach()
        m = self.cfg.code_max
        return y + (y.clamp(-m, m) - y).detach()


class LinearAttention(nn.Module):
    """N-D linear attention (elu+1 feature map), global over positions, no position encoding."""

    def __init__(self, dims: int, width: int, heads: int = 4) -> None:
        super().__init__()
        conv = _conv(dims)
        self.heads = heads
        self.qkv = conv(width, 3 * width, 1)
        self.out = conv(width, width, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        q, k, v = self.qkv(x).reshape(n, 3, self.heads, c // self.heads, -1).unbind(1)
        q, k = F.elu(q) + 1, F.elu(k) + 1
        kv = torch.einsum("nhdl,nhel->nhde", k, v)
        z = 1.0 / (torch.einsum("nhdl,nhd->nhl", q, k.sum(-1)) + 1e-6)
        y = torch.einsum("nhdl,nhde,nhl->nhel", q, kv, z).reshape(x.shape)
        return x + self.out(y)


class ResBlock(nn.Module):
    """Two 3^D convolutions with a GELU, residual."""

    def __init__(self, dims: int, width: int) -> None:
        super().__init__()
        conv = _conv(dims)
        self.c1 = conv(width, width, 3, padding=1)
        self.c2 = conv(width, width, 3, padding=1)
        nn.init.zeros_(self.c2.weight)
        nn.init.zeros_(self.c2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.c2(F.gelu(self.c1(x)))


def _shuffle_up(x: torch.Tensor, dims: int, factor: int) -> torch.Tensor:
    """Move channel groups to space (pixel shuffle) for 1/2/3-D."""
    if dims == 2:
        return F.pixel_shuffle(x, factor)
    n, c = x.shape[:2]
    sp = x.shape[2:]
    co = c // factor ** dims
    x = x.reshape(n, co, *([factor] * dims), *sp)
    if dims == 1:
        return x.permute(0, 1, 3, 2).reshape(n, co, sp[0] * factor)
    return x.permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(n, co, *(s * factor for s in sp))


class Refiner(nn.Module):
    """Nonlinear refinement path: codes → a residual on all input channels (head convolution,
    residual/attention body, learned upsampling, tail)."""

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        d, w = cfg.dims, cfg.decoder_width
        conv = _conv(d)
        self.head = conv(cfg.latent_channels, w, 3, padding=1)
        blocks: list[nn.Module] = []
        for i in range(cfg.decoder_blocks):
            blocks.append(ResBlock(d, w))
            if cfg.attention and i == cfg.decoder_blocks // 2 - 1:
                blocks.append(LinearAttention(d, w))
        self.body = nn.Sequential(*blocks)
        self.ups = nn.ModuleList()
        width = w
        for _ in range(cfg.levels):
            nxt = max(16, width // 2)
            self.ups.append(nn.Sequential(conv(width, nxt * 2 ** d, 1)))
            self.ups.append(nn.Sequential(ResBlock(d, nxt)))
            width = nxt
        self.tail = conv(width, cfg.in_channels, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def refine(self, codes: torch.Tensor) -> torch.Tensor:
        """(N, C_lat, *latent) codes → (N, C_in, *spatial) residual."""
        dims = codes.dim() - 2
        h = self.body(self.head(codes))
        for i in range(0, len(self.ups), 2):
            h = _shuffle_up(self.ups[i](h), dims, 2)
            h = self.ups[i + 1](h)
        return self.tail(h)


def decoder_branches(cfg: CodecConfig) -> int:
    """Number of refinement paths (``extra["decoder_branches"]``, default 1)."""
    n = int(cfg.extra.get("decoder_branches", 1))
    if n < 1:
        raise ValueError(f"config extra.decoder_branches = {n}: expected ≥ 1")
    return n


class Decoder(Refiner):
    """Codes → samples: linear inverse-WPT skip path + residual conv/attention refinement.

    The decoder's own head/body/ups/tail are the first refinement path; with
    ``extra["decoder_branches"]`` = B > 1 (joint stereo: one per channel, export/stereo_init.py)
    B − 1 more paths of the same shape are added, all residuals summed."""

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__(cfg)
        self.cfg = cfg
        self.linear = _conv(cfg.dims)(cfg.latent_channels, cfg.taps, 1)  # → WPT coeffs
        if decoder_branches(cfg) > 1:
            self.branches = nn.ModuleList(Refiner(cfg) for _ in range(decoder_branches(cfg) - 1))
        haar = torch.tensor(haar_analysis_kernel(cfg), dtype=torch.float32)
        self.register_buffer("synthesis", haar, persistent=False)

    def refiners(self) -> list[Refiner]:
        """Every refinement path (this decoder's own first)."""
        return [self, *getattr(self, "branches", [])]

    @torch.no_grad()
    def init_linear(self, encoder: BlockEncoder) -> None:
        """Start the skip path at the pseudo-inverse of the encoder's analysis."""
        cfg = self.cfg
        haar = self.synthesis.double().reshape(cfg.taps, -1)
        k = encoder.effective_kernel().detach().double().reshape(cfg.latent_channels, -1)
        coeff_map = haar @ torch.linalg.pinv(k)                 # codes → WPT coefficients
        self.linear.weight.copy_(coeff_map.reshape(self.linear.weight.shape).float())
        self.linear.bias.zero_()

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        coeffs = self.linear(codes)
        tconv = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[cfg.dims]
        x = tconv(coeffs, self.synthesis, stride=cfg.block) + cfg.sample_center
        for r in self.refiners():
            x = x + r.refine(codes)
        return x


class Codec(nn.Module):
    """Encoder + decoder, with the rate proxy used in training."""

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = BlockEncoder(cfg)
        self.decoder = Decoder(cfg)

    def forward(self, x: torch.Tensor, noise: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (reconstruction, rate proxy in bits per input sample position)."""
        y = self.encoder(x, noise=noise)
        return self.decoder(y), rate_proxy(y, self.cfg)


def rate_proxy(y: torch.Tensor, cfg: CodecConfig) -> torch.Tensor:
    """Gaussian entropy bound of the (noisy) codes, bits per sample position (all channels)."""
    var = y.transpose(0, 1).flatten(1).var(dim=1)
    bits_per_latent = 0.5 * torch.log2(1.0 + 2 * math.pi * math.e * var)
    return bits_per_latent.sum() / cfg.block ** cfg.dims
