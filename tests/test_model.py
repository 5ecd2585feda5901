"""The torch model: locality (tile == crop), integer exactness vs ONNX Runtime, export graph."""

import numpy as np
import onnxruntime as ort
import pytest
import torch
from skimage import data

from export.model import Codec, CodecConfig, haar_analysis_kernel, to_blocks
from export.onnx_export import encoder_graph, integer_encoder_arrays


def test_haar_kernel_is_orthonormal():
    cfg = CodecConfig()
    k = haar_analysis_kernel(cfg).reshape(cfg.taps, -1)
    assert np.allclose(k @ k.T, np.eye(cfg.taps), atol=1e-12)


def test_encoder_tile_equals_crop_of_full_frame(small_codec):
    c = small_codec()
    x = torch.tensor(data.astronaut()).permute(2, 0, 1)[None].float()
    full = c.encoder.codes(x)
    tile = c.encoder.codes(x[:, :, 64:192, 128:320])
    assert torch.equal(tile, full[:, :, 8:24, 16:40])


def test_integer_params_respect_accumulator_bound():
    for kw in ({}, dict(modality="audio", dims=1, in_channels=1, levels=4, sample_dtype="int16",
                        sample_center=0.0, latent_channels=4)):
        cfg = CodecConfig(**kw)
        w, b, _ = Codec(cfg).encoder.integer_params()
        bound = w.abs().flatten(1).sum(1).double() * cfg.sample_max_abs + b.abs().double()
        assert bound.max() < 2 ** 24
        assert w.abs().max() <= cfg.weight_max <= 127


@pytest.mark.parametrize("shape", [(64, 64), (136, 200), (512, 512)])
def test_torch_integer_codes_equal_onnxruntime(shape, small_codec):
    c = small_codec()
    arrays = integer_encoder_arrays(c)
    sess = ort.InferenceSession(encoder_graph(c.cfg, arrays).SerializeToString())
    img = data.astronaut()[: shape[0], : shape[1]]
    ours = sess.run(None, {"samples": img[None]})[0]
    ref = c.encoder.codes(torch.tensor(img).permute(2, 0, 1)[None].float()).numpy().astype(np.int8)
    assert np.array_equal(ours, ref)
    # integer reference in numpy (int64 arithmetic, round half to even)
    x = img.astype(np.int64).transpose(2, 0, 1)
    h, w = shape[0] // 8, shape[1] // 8
    blk = x.reshape(3, h, 8, w, 8).transpose(1, 3, 0, 2, 4).reshape(h, w, -1)
    acc = blk @ arrays["weight"].reshape(arrays["weight"].shape[0], -1).astype(np.int64).T
    acc = acc + arrays["bias"]
    codes = np.clip(np.round(acc * np.ldexp(1.0, -arrays["shift"])), -127, 127)
    assert np.array_equal(codes.transpose(2, 0, 1), ours[0])


def test_training_step_reduces_loss(small_codec):
    c = small_codec().train()
    x = torch.tensor(data.chelsea()[:64, :64]).permute(2, 0, 1)[None].float()
    opt = torch.optim.Adam([{"params": c.encoder.parameters(), "lr": 1e-5},
                            {"params": c.decoder.parameters(), "lr": 5e-4}])
    losses = []
    for _ in range(30):
        rec, rate = c(x)
        loss = 10 * torch.log10(((rec - x) ** 2).mean()) + 10 * rate
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert c.encoder.kernel.grad is not None


def test_audio_model_shapes():
    cfg = CodecConfig(modality="audio", dims=1, in_channels=1, levels=4, sample_dtype="int16",
                      sample_center=0.0, latent_channels=4, decoder_width=32, decoder_blocks=2)
    c = Codec(cfg).eval()
    x = torch.randint(-3000, 3000, (2, 1, 1024)).float()
    rec, rate = c(x, noise=False)
    assert rec.shape == x.shape and rate.item() >= 0


def test_structured_projection_matches_its_matrix_and_exports_a_gather(tmp_path):
    import onnx
    from export.model import StructuredProjection
    torch.manual_seed(0)
    sp = StructuredProjection(192, 16, 4)
    torch.nn.init.normal_(sp.w1)
    x = torch.randn(2, 192, 5, 7)
    ref = torch.einsum("oi,nihw->nohw", sp.matrix(), x)
    assert torch.allclose(sp(x), ref, atol=1e-4)
    torch.onnx.export(sp, (x,), tmp_path / "sp.onnx", dynamo=False, opset_version=17)
    ops = [n.op_type for n in onnx.load(tmp_path / "sp.onnx").graph.node]
    assert ops.count("Gather") == 1 and "Reshape" not in ops and "Transpose" not in ops


def test_structured_encoder_is_local_and_exact():
    cfg = CodecConfig(projection="structured", projection_groups=4, decoder_width=16,
                      decoder_blocks=1)
    c = Codec(cfg)
    img = torch.tensor(data.coffee()).permute(2, 0, 1)[None].float()
    c.encoder.init_from_pca(to_blocks(img, 8))
    c.decoder.init_linear(c.encoder)
    x = torch.tensor(data.astronaut()).permute(2, 0, 1)[None].float()
    full = c.encoder.codes(x)
    assert full.abs().max() > 0
    assert torch.equal(c.encoder.codes(x[:, :, 64:192, 128:320]), full[:, :, 8:24, 16:40])
    arrays = integer_encoder_arrays(c)
    sess = ort.InferenceSession(encoder_graph(cfg, arrays).SerializeToString())
    ours = sess.run(None, {"samples": data.astronaut()[None]})[0]
    assert np.array_equal(ours, full.numpy().astype(np.int8))
    rec, rate = c(x[:, :, :64, :64])
    rec.mean().backward()
    assert c.encoder.projection.w2.grad is not None


@pytest.mark.parametrize("shape", [(2, 6, 32), (1, 3, 16, 24), (1, 2, 8, 8, 16)])
def test_to_blocks_matches_indexing(shape):
    x = torch.arange(int(np.prod(shape)), dtype=torch.float32).reshape(shape)
    b = 4 if len(shape) != 4 else 8
    blocks = to_blocks(x, b)
    positions = [s // b for s in shape[2:]]
    assert blocks.shape == (shape[0] * int(np.prod(positions)), shape[1], *[b] * (len(shape) - 2))
    last = [p - 1 for p in positions]                     # last position of the last item
    want = x[(-1, slice(None)) + tuple(slice(p * b, (p + 1) * b) for p in last)]
    assert torch.equal(blocks[-1], want)
    first = x[(0, slice(None)) + tuple(slice(0, b) for _ in positions)]
    assert torch.equal(blocks[0], first)
