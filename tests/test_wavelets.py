"""Tests for export/wavelets.py: the torch wavelet packet transform (checked against PyWavelets)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import pywt
import pywt.data
import torch
import torch.nn.functional as F

from export.wavelets import (
    MODES,
    WAVELETS,
    WPT,
    InverseWPT,
    band_keys,
    coeff_shape,
    filter_bank,
    haar_block_matrix,
    min_size,
    wpt_analysis,
    wpt_synthesis,
)

CAMERA = pywt.data.camera().astype(np.float64) / 255.0 - 0.5  # (512, 512) real image
ECG = pywt.data.ecg().astype(np.float64)  # (1024,) real 1-D signal
ECG = (ECG - ECG.mean()) / ECG.std()


def _volume(depth: int, rows: int, cols: int, start: int = 40) -> np.ndarray:
    """A real-data 3-D volume: a slow diagonal pan over the camera image (frames x rows x cols)."""
    return np.stack([CAMERA[start + 3 * t:start + 3 * t + rows, start + 2 * t:start + 2 * t + cols]
                     for t in range(depth)])


def _real(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Real data of (C, *spatial) shape: crops of camera / ecg / the camera volume, one per channel."""
    channels, spatial = shape[0], shape[1:]
    out = []
    for c in range(channels):
        if len(spatial) == 1:
            out.append(ECG[37 * c + seed:37 * c + seed + spatial[0]])
        elif len(spatial) == 2:
            out.append(CAMERA[50 + 29 * c + seed:50 + 29 * c + seed + spatial[0],
                              80 + 17 * c:80 + 17 * c + spatial[1]])
        else:
            out.append(_volume(spatial[0], spatial[1], spatial[2], start=30 + 23 * c + seed))
    return np.stack(out)


def _pywt_mode(wavelet: str) -> str:
    """The pywt mode whose coefficients contain the non-expansive ones (as a contiguous slice)."""
    return "symmetric" if wavelet == "haar" else "reflect"


def _nonexpansive_reference(x: np.ndarray, wavelet: str, levels: int, dims: int) -> list[np.ndarray]:
    """Packet bands of one channel via pywt.dwtn per level, sliced to the non-expansive support."""
    length = pywt.Wavelet(wavelet).dec_len
    off = (length - 2) // 4
    keys = [k[0] for k in band_keys(1, dims)]
    bands = [x]
    for _ in range(levels):
        new = []
        for b in bands:
            d = pywt.dwtn(b, wavelet, mode=_pywt_mode(wavelet), axes=tuple(range(-dims, 0)))
            sl = tuple(slice(off, off + (n + 1) // 2) for n in b.shape[-dims:])
            new.extend(d[k][(Ellipsis,) + sl] for k in keys)
        bands = new
    return bands


# ------------------------------------------------------------------------------------------------
# filters, sizes, order


@pytest.mark.parametrize("wavelet", WAVELETS)
def test_filter_bank_comes_from_pywt(wavelet):
    bank = filter_bank(wavelet)
    ref = pywt.Wavelet(wavelet)
    for ours, theirs in zip((bank.dec_lo, bank.dec_hi, bank.rec_lo, bank.rec_hi), ref.filter_bank):
        np.testing.assert_array_equal(ours, theirs)
    assert bank.length == ref.dec_len
    assert bank.whole_sample == (wavelet != "haar")
    assert math.isclose(sum(bank.dec_lo), math.sqrt(2.0), rel_tol=1e-9)


def test_aliases_and_unknown_wavelet():
    assert filter_bank("cdf97").name == "bior4.4"
    assert filter_bank("CDF53").name == "bior2.2"
    with pytest.raises(ValueError, match="unknown wavelet 'db4'.*haar, bior2.2, bior4.4"):
        filter_bank("db4")
    with pytest.raises(ValueError, match="unknown mode"):
        wpt_analysis(torch.zeros(1, 1, 16), "haar", 1, 1, mode="periodization")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("wavelet", WAVELETS)
def test_min_size_is_the_exact_threshold(wavelet, mode):
    length = pywt.Wavelet(wavelet).dec_len
    assert min_size(wavelet, 1, mode) == length
    for levels in range(1, 6):
        n = min_size(wavelet, levels, mode)
        for dims in (1, 2, 3):
            coeff_shape((1, 1) + (n,) * dims, wavelet, levels, dims, mode)  # passes
        # one sample fewer on any single axis fails, naming that axis, its size, level and minimum
        for dims, axis in ((1, 0), (2, 1), (3, 0), (3, 2)):
            shape = [n] * dims
            shape[axis] = n - 1
            with pytest.raises(ValueError) as err:
                coeff_shape((2, 3, *shape), wavelet, levels, dims, mode)
            msg = str(err.value)
            assert f"axis {axis - dims} " in msg and f"of {levels}:" in msg
            assert f">= {length} per level" in msg and f">= {n} along" in msg and f"(got {n - 1})" in msg
    if mode == "nonexpansive":
        assert [min_size(wavelet, j) for j in (1, 2, 3, 4)] == [(length - 1) * 2 ** (j - 1) + 1
                                                                 for j in (1, 2, 3, 4)]


def test_size_error_from_analysis_and_synthesis():
    x = torch.zeros(1, 3, 80, 72)
    with pytest.raises(ValueError, match=r"axis -1 .* size 9 at the input of level 4 of 4: bior4.4 "
                                         r"needs >= 10 per level.*>= 73 .*\(got 72\)"):
        wpt_analysis(x, "bior4.4", 4, 2)
    with pytest.raises(ValueError, match="axis -3 .*size 9 at the input of level 1"):
        wpt_synthesis(torch.zeros(1, 8, 5, 6, 6), "bior4.4", 1, 3, out_shape=(9, 12, 12))
    assert wpt_analysis(torch.zeros(1, 1, 8), "haar", 3, 1).shape == (1, 8, 1)
    with pytest.raises(ValueError, match="size 1 at the input of level 4"):
        wpt_analysis(torch.zeros(1, 1, 8), "haar", 4, 1)


def test_band_keys_order():
    assert band_keys(1, 2) == [("aa",), ("ad",), ("da",), ("dd",)]
    assert band_keys(2, 1) == [("a", "a"), ("a", "d"), ("d", "a"), ("d", "d")]
    keys = band_keys(2, 3)
    assert len(keys) == 64 and keys[0] == ("aaa", "aaa") and keys[1] == ("aaa", "aad")
    assert keys[8] == ("aad", "aaa") and keys[-1] == ("ddd", "ddd")


@pytest.mark.parametrize("wavelet", WAVELETS)
def test_constant_channel_lands_in_its_dc_band_only(wavelet):
    """Channel-major order: constant input channel c -> only channel c*F**J, gain sqrt(2)**(dims*J)."""
    levels, dims, channels = 2, 2, 3
    n = min_size(wavelet, levels) + 3
    values = torch.tensor([0.5, -2.0, 1.25], dtype=torch.float64)
    x = values.view(1, channels, 1, 1).expand(2, channels, n, n + 1).contiguous()
    y = wpt_analysis(x, wavelet, levels, dims)
    per = 4 ** levels
    for c in range(channels):
        torch.testing.assert_close(y[:, c * per], torch.full_like(y[:, 0], float(values[c]) * 2.0 ** levels))
        assert y[:, c * per + 1:(c + 1) * per].abs().max() < 1e-10


# ------------------------------------------------------------------------------------------------
# perfect reconstruction


def _pr_cases():
    cases = []
    for wavelet, mode, dims in itertools.product(WAVELETS, MODES, (1, 2, 3)):
        for levels in ((1, 2, 3) if dims < 3 else (1, 2)):
            n = min_size(wavelet, levels, mode)
            channels = (1, 3, 5)[(levels + dims) % 3]
            sizes = [n, n + 1, 2 * n + 3][:dims]  # exact minimum, odd/even mixes
            cases.append((wavelet, mode, dims, levels, channels, tuple(sizes)))
            cases.append((wavelet, mode, dims, levels, (5, 1, 3)[dims - 1],
                          tuple(s + 2 ** levels for s in sizes[::-1])))
    return cases


@pytest.mark.parametrize("wavelet,mode,dims,levels,channels,sizes", _pr_cases())
def test_perfect_reconstruction(wavelet, mode, dims, levels, channels, sizes):
    x = torch.tensor(_real((channels, *sizes)), dtype=torch.float32).unsqueeze(0).repeat(2, 1, *[1] * dims)
    x[1] = torch.randn_like(x[1])  # one real, one noise item in the batch
    y = wpt_analysis(x, wavelet, levels, dims, mode)
    assert y.dtype == torch.float32
    assert y.shape == coeff_shape(x.shape, wavelet, levels, dims, mode)
    assert y.shape[1] == channels * 2 ** (dims * levels)
    if mode == "nonexpansive":
        assert y.shape[2:] == tuple(-(-s // 2 ** levels) for s in sizes)
    r = wpt_synthesis(y, wavelet, levels, dims, sizes, mode)
    assert r.shape == x.shape
    rel = (r - x).abs().max() / x.abs().max()
    assert rel < 1e-5, f"relative reconstruction error {rel:.3g}"


@pytest.mark.parametrize("wavelet", WAVELETS)
def test_perfect_reconstruction_camera_float32(wavelet):
    x = torch.tensor(CAMERA, dtype=torch.float32)[None, None]
    y = wpt_analysis(x, wavelet, 4, 2)
    assert y.shape == (1, 256, 32, 32)
    r = wpt_synthesis(y, wavelet, 4, 2)  # default out_shape = 32 * 2**4
    assert (r - x).abs().max() / x.abs().max() < 1e-5


@pytest.mark.parametrize("wavelet", ["bior2.2", "bior4.4"])
def test_redundant_highpass_of_odd_axis(wavelet):
    """Odd length: the last highpass coefficient mirrors its neighbour and synthesis ignores it."""
    n = min_size(wavelet, 1) + 5  # odd
    x = torch.tensor(ECG[:n])[None, None]
    y = wpt_analysis(x, wavelet, 1, 1)
    # Highpass is half-sample symmetric about (n-2)/2: hi[m-1] == hi[m-2].
    torch.testing.assert_close(y[0, 1, -1], y[0, 1, -2])
    y2 = y.clone()
    y2[0, 1, -1] += 123.0
    torch.testing.assert_close(wpt_synthesis(y2, wavelet, 1, 1, (n,)), x)


# ------------------------------------------------------------------------------------------------
# agreement with PyWavelets


@pytest.mark.parametrize("wavelet", WAVELETS)
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_one_level_matches_pywt_dwtn(wavelet, dims):
    sizes = {1: (101,), 2: (64, 47), 3: (12, 21, 16)}[dims]
    x = _real((2, *sizes))
    y = wpt_analysis(torch.tensor(x)[None], wavelet, 1, dims)[0].numpy()
    ye = wpt_analysis(torch.tensor(x)[None], wavelet, 1, dims, "expansive")[0].numpy()
    length = pywt.Wavelet(wavelet).dec_len
    off = (length - 2) // 4
    axes = tuple(range(-dims, 0))
    for c in range(2):
        ref = pywt.dwtn(x[c], wavelet, mode=_pywt_mode(wavelet), axes=axes)
        ref_sym = pywt.dwtn(x[c], wavelet, mode="symmetric", axes=axes)
        for f, (key,) in enumerate(band_keys(1, dims)):
            sl = tuple(slice(off, off + (n + 1) // 2) for n in sizes)
            np.testing.assert_allclose(y[c * 2 ** dims + f], ref[key][sl], atol=1e-12)
            np.testing.assert_allclose(ye[c * 2 ** dims + f], ref_sym[key], atol=1e-12)


def test_one_level_matches_pywt_wavedec_and_dwt2():
    for wavelet in WAVELETS:
        ca, cd = pywt.wavedec(ECG[:333], wavelet, mode="symmetric", level=1)
        y = wpt_analysis(torch.tensor(ECG[:333])[None, None], wavelet, 1, 1, "expansive")[0].numpy()
        np.testing.assert_allclose(y, np.stack([ca, cd]), atol=1e-12)
    # pywt.dwt2 names: cA = 'aa', cH = 'da' (channel 2), cV = 'ad' (channel 1), cD = 'dd'
    ca, (ch, cv, cdd) = pywt.dwt2(CAMERA[:64, :64], "haar", mode="symmetric")
    y = wpt_analysis(torch.tensor(CAMERA[:64, :64])[None, None], "haar", 1, 2)[0].numpy()
    np.testing.assert_allclose(y, np.stack([ca, cv, ch, cdd]), atol=1e-12)


def _pywt_packet(x: np.ndarray, wavelet: str, levels: int, dims: int):
    """(node lookup by band keys) for the pywt packet object matching dims, mode='symmetric'."""
    if dims == 1:
        wp = pywt.WaveletPacket(x, wavelet, mode="symmetric", maxlevel=levels)
        return lambda keys: wp["".join(keys)].data
    if dims == 2:
        wp = pywt.WaveletPacket2D(x, wavelet, mode="symmetric", maxlevel=levels)
        name = {"aa": "a", "da": "h", "ad": "v", "dd": "d"}
        return lambda keys: wp["".join(name[k] for k in keys)].data
    wp = pywt.WaveletPacketND(x, wavelet, mode="symmetric", maxlevel=levels, axes=(0, 1, 2))
    return lambda keys: wp["".join(keys)].data


@pytest.mark.parametrize("wavelet", WAVELETS)
@pytest.mark.parametrize("dims,levels,sizes", [(1, 3, (250,)), (2, 2, (61, 48)), (3, 2, (13, 18, 15))])
def test_expansive_packets_match_pywt_wavelet_packet(wavelet, dims, levels, sizes):
    x = _real((2, *sizes))
    y = wpt_analysis(torch.tensor(x)[None], wavelet, levels, dims, "expansive")[0].numpy()
    keys = band_keys(levels, dims)
    for c in range(2):
        node = _pywt_packet(x[c], wavelet, levels, dims)
        for i, k in enumerate(keys):
            np.testing.assert_allclose(y[c * len(keys) + i], node(k), atol=1e-11)


@pytest.mark.parametrize("wavelet", WAVELETS)
@pytest.mark.parametrize("dims,levels,sizes", [(1, 4, (203,)), (2, 3, (77, 90)), (3, 2, (21, 24, 19))])
def test_nonexpansive_packets_match_pywt_per_level(wavelet, dims, levels, sizes):
    """Every J-level packet node equals pywt.dwtn applied level by level (reflect; symmetric for Haar)."""
    x = _real((3, *sizes))
    y = wpt_analysis(torch.tensor(x)[None], wavelet, levels, dims)[0].numpy()
    per = 2 ** (dims * levels)
    for c in range(3):
        ref = _nonexpansive_reference(x[c], wavelet, levels, dims)
        np.testing.assert_allclose(y[c * per:(c + 1) * per], np.stack(ref), atol=1e-11)


@pytest.mark.parametrize("dims,sizes", [(1, (1000,)), (2, (96, 75)), (3, (16, 11, 24))])
def test_haar_equals_pywt_wavelet_packet_directly(dims, sizes):
    """Haar non-expansive is exactly pywt's symmetric-mode packet transform (no slicing, odd sizes too)."""
    levels = 3
    x = _real((1, *sizes))[0]
    y = wpt_analysis(torch.tensor(x)[None, None], "haar", levels, dims)[0].numpy()
    node = _pywt_packet(x, "haar", levels, dims)
    for i, k in enumerate(band_keys(levels, dims)):
        np.testing.assert_allclose(y[i], node(k), atol=1e-12)


@pytest.mark.parametrize("wavelet", WAVELETS)
def test_interior_is_local_tile_equals_crop(wavelet):
    """Away from the borders a tile's coefficients equal the crop of the full frame's."""
    levels = 3
    full = wpt_analysis(torch.tensor(CAMERA[:256, :256])[None, None], wavelet, levels, 2)
    tile = wpt_analysis(torch.tensor(CAMERA[64:192, 32:224])[None, None], wavelet, levels, 2)
    margin = 4  # coefficients near the tile border see the mirrored tile instead of its neighbours
    a = tile[..., margin:-margin, margin:-margin]
    b = full[..., 8 + margin:24 - margin, 4 + margin:28 - margin]
    torch.testing.assert_close(a, b)
    assert not torch.allclose(tile[..., 0, :], full[..., 8, 4:28]) or wavelet == "haar"


# ------------------------------------------------------------------------------------------------
# gradients, modules, errors


@pytest.mark.parametrize("wavelet", WAVELETS)
def test_gradcheck(wavelet):
    n = min_size(wavelet, 1)
    x = torch.randn(1, 2, n + 1, dtype=torch.float64, requires_grad=True)  # odd length
    assert torch.autograd.gradcheck(lambda t: wpt_analysis(t, wavelet, 1, 1), (x,))
    y = wpt_analysis(x.detach(), wavelet, 1, 1).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: wpt_synthesis(t, wavelet, 1, 1, (n + 1,)), (y,))
    x2 = torch.randn(1, 1, n + 1, n, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: wpt_analysis(t, wavelet, 1, 2), (x2,), fast_mode=True)


@pytest.mark.parametrize("wavelet", WAVELETS)
def test_gradients_flow_through_modules(wavelet):
    levels, dims = 2, 3
    n = min_size(wavelet, levels)
    enc, dec = WPT(wavelet, levels, dims), InverseWPT(wavelet, levels, dims)
    x = torch.randn(2, 3, n, n + 1, n + 2, requires_grad=True)
    y = enc(x)
    w = torch.randn(y.shape[1], y.shape[1]) * 0.1 + torch.eye(y.shape[1])
    w.requires_grad_(True)
    r = dec(torch.einsum("ij,bj...->bi...", w, y), out_shape=x.shape)
    loss = ((r - x) ** 2).mean() + r.square().mean()
    loss.backward()
    assert x.grad is not None and w.grad is not None
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0 and w.grad.abs().sum() > 0


def test_modules_buffers_dtype_and_equivalence():
    enc, dec = WPT("bior4.4", 2, 2), InverseWPT("cdf97", 2, 2)
    assert dict(enc.named_buffers())["w_dec"].shape == (2, 1, 10)
    assert dict(dec.named_buffers())["w_rec"].shape == (2, 1, 10)
    assert enc.state_dict() == {} and dec.state_dict() == {}  # non-persistent: never in checkpoints
    assert "bior4.4" in repr(enc) and "levels=2" in repr(dec)
    x = torch.tensor(CAMERA[:40, :45], dtype=torch.float32)[None, None]
    torch.testing.assert_close(enc(x), wpt_analysis(x, "bior4.4", 2, 2))
    enc64, dec64 = enc.double(), dec.double()
    assert enc64.w_dec.dtype == torch.float64
    y = enc64(x.double())
    assert y.dtype == torch.float64
    torch.testing.assert_close(dec64(y, (40, 45)), x.double())


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"shape \(N, C, \*spatial\) with 2 spatial axes"):
        wpt_analysis(torch.zeros(16, 16), "haar", 1, 2)
    with pytest.raises(ValueError, match="dims must be 1, 2 or 3"):
        wpt_analysis(torch.zeros(1, 1, 4, 4, 4, 4), "haar", 1, 4)
    with pytest.raises(TypeError, match="floating-point"):
        wpt_analysis(torch.zeros(1, 1, 16, dtype=torch.int64), "haar", 1, 1)
    with pytest.raises(ValueError, match="not a multiple of 2\\*\\*\\(dims\\*levels\\) = 16"):
        wpt_synthesis(torch.zeros(1, 12, 4, 4), "haar", 2, 2)
    with pytest.raises(ValueError, match=r"spatial shape \(4, 4\).*gives \(5, 4\)"):
        wpt_synthesis(torch.zeros(1, 16, 4, 4), "haar", 2, 2, out_shape=(17, 16))
    with pytest.raises(ValueError, match="out_shape is required"):
        wpt_synthesis(torch.zeros(1, 4, 8), "haar", 2, 1, mode="expansive")
    assert wpt_analysis(torch.ones(1, 2, 5), "haar", 0, 1).shape == (1, 2, 5)  # J=0: identity


# ------------------------------------------------------------------------------------------------
# Haar block matrix


@pytest.mark.parametrize("dims,levels", [(1, 1), (1, 4), (2, 1), (2, 2), (2, 3), (3, 1), (3, 2)])
def test_haar_block_matrix_matches_wpt(dims, levels):
    mat = haar_block_matrix(levels, dims)
    size = 2 ** (dims * levels)
    assert mat.shape == (size, size)
    np.testing.assert_allclose(mat @ mat.T, np.eye(size), atol=1e-12)
    block = 2 ** levels
    spatial = {1: (block * 9,), 2: (block * 5, block * 3), 3: (block * 3, block * 2, block * 2)}[dims]
    channels = 3
    x = torch.tensor(_real((channels, *spatial)))[None]
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[dims]
    weight = torch.tensor(mat).reshape(size, 1, *([block] * dims)).repeat(channels, 1, *[1] * dims)
    folded = conv(x, weight, stride=block, groups=channels)  # one strided conv = Haar WPT
    torch.testing.assert_close(folded, wpt_analysis(x, "haar", levels, dims), atol=1e-12, rtol=0)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::DeprecationWarning")
@pytest.mark.parametrize("dynamo", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_onnx_export_round_trip(tmp_path, dynamo):
    """WPT + inverse export to ONNX (both exporters) and run in onnxruntime with the same numbers."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript" if dynamo else "onnx")

    class RoundTrip(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc, self.dec = WPT("bior4.4", 2, 2), InverseWPT("bior4.4", 2, 2)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            y = self.enc(x)
            return y, self.dec(y, out_shape=tuple(x.shape[2:]))

    x = torch.tensor(_real((3, 45, 38)), dtype=torch.float32)[None]
    path = tmp_path / "wpt.onnx"
    torch.onnx.export(RoundTrip(), (x,), str(path), dynamo=dynamo, opset_version=18)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    y, r = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    np.testing.assert_allclose(y, wpt_analysis(x, "bior4.4", 2, 2).numpy(), atol=1e-5)
    np.testing.assert_allclose(r, x.numpy(), atol=1e-5)
