"""3-D volumes: the bundled MRI models on real held-out scans, NIfTI / TIFF-stack I/O with the
geometry kept, slices of any count, the 12-bit input range, the ``dir:`` daemon source end to end,
and the subject split of the training data (export/volume_data.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from encoder_runtime import cli_codec
from encoder_runtime.bundle import default_model, load_bundle
from encoder_runtime.ladder import ladder
from encoder_runtime.codec import CodecError, Decoder, Encoder
from encoder_runtime.media import MediaError, read_input, write_output
from encoder_runtime.metrics import psnr_db

SAMPLES = Path(__file__).resolve().parents[1] / "encoder_runtime" / "samples"
COLIN = SAMPLES / "mri_colin27_crop.nii.gz"      # held-out u8 (Colin27, never trained on)
S0 = SAMPLES / "mri_dipy_s0_10slices.nii.gz"     # held-out 12-bit b0 (128×128×10 u16)


def _psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    return psnr_db(float(((a.astype(np.float64) - b) ** 2).mean()), peak)


def test_volume_data_is_split_by_subject():
    from export.volume_data import SOURCES
    for kind in ("u8", "u12"):
        train = {s[3] for s in SOURCES.values() if s[0] == kind and s[1] == "train"}
        test = {s[3] for s in SOURCES.values() if s[0] == kind and s[1] == "test"}
        assert train and test and not train & test, kind


@pytest.mark.parametrize("modality,sample,peak", [("volume", COLIN, 255.0), ("volume16", S0, 4095.0)])
def test_bundled_models_round_trip_held_out_scan(modality, sample, peak):
    vol = read_input(sample)[0]
    names = [n for n, _ in ladder(modality)]
    assert len(names) >= 1 and default_model(modality) in names
    for name in names:
        b = load_bundle(name)
        assert b.dims == 3 and b.manifest["macs_per_sample"]["folded"] <= 150
        fp32, int8 = Encoder(b, variant="fp32"), Encoder(b, variant="int8")
        codes = fp32.codes(vol)
        assert np.array_equal(codes, int8.codes(vol)) and np.unique(codes).size > 3
        out = Decoder(b).decode(fp32.encode(vol))
        assert out.shape == vol.shape and out.dtype == vol.dtype
        want = b.manifest["model_card"]["metrics"]["psnr_db"]
        assert _psnr(vol, out, peak) > want - 6, name  # a crop of the held-out set, same ballpark


def test_any_slice_count_and_odd_sizes_crop_back():
    b = load_bundle(default_model("volume16"))
    vol = read_input(S0)[0]
    enc, dec = Encoder(b, variant="int8"), Decoder(b)
    for part in (vol[:13, 7:16, :5], vol[1:6, :, 3:], vol[:, :, :4]):
        part = np.ascontiguousarray(part)
        out = dec.decode(enc.encode(part))
        assert out.shape == part.shape and out.dtype == np.uint16
        assert np.array_equal(Encoder(b, variant="fp32").codes(part), enc.codes(part))


def test_12_bit_range_is_enforced():
    enc = Encoder.load(default_model("volume16"))
    vol = read_input(S0)[0]
    with pytest.raises(CodecError, match="12-bit"):
        enc.encode(vol * np.uint16(16))
    with pytest.raises(CodecError, match="uint16"):
        enc.encode(vol.astype(np.uint8))


def test_nifti_cli_round_trip_keeps_geometry_and_int16(tmp_path):
    nib = pytest.importorskip("nibabel")
    src = nib.load(S0)
    data = np.asanyarray(src.dataobj)[..., 0].astype(np.int16)      # a signed 16-bit scan
    img = nib.Nifti1Image(data, src.affine)
    img.header.set_zooms(src.header.get_zooms()[:3])
    img.header.set_xyzt_units("mm")
    nib.save(img, tmp_path / "scan.nii.gz")
    out = tmp_path / "scan.sc"
    assert cli_codec.main(["encode", str(tmp_path / "scan.nii.gz"), "-o", str(out)]) == 0
    header = json.loads(json.dumps(Decoder.for_stream(out.read_bytes()).bundle.manifest["modality"]))
    assert header == "volume16"
    assert cli_codec.main(["decode", str(out), "-o", str(tmp_path / "back.nii.gz")]) == 0
    back = nib.load(tmp_path / "back.nii.gz")
    assert back.shape == data.shape and back.get_data_dtype() == np.int16
    assert np.allclose(back.affine, src.affine, atol=1e-5)
    assert np.allclose(back.header.get_zooms(), src.header.get_zooms()[:3])
    assert back.header.get_xyzt_units()[0] == "mm"
    assert _psnr(data, np.asanyarray(back.dataobj), 4095.0) > 30


def test_tiff_stack_cli_round_trip(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    vol = read_input(COLIN)[0]
    stack = np.ascontiguousarray(np.moveaxis(vol, 2, 0))              # 40 pages of 72×88
    write_output(tmp_path / "stack.tif", stack, {"kind": "volume", "resolution": [2.0, 2.0]})
    arr, meta = read_input(tmp_path / "stack.tif")
    assert meta["kind"] == "volume" and np.array_equal(arr, stack)
    assert cli_codec.main(["encode", str(tmp_path / "stack.tif"), "-o", str(tmp_path / "s.sc")]) == 0
    assert cli_codec.main(["decode", str(tmp_path / "s.sc"), "-o", str(tmp_path / "back.tif")]) == 0
    with Image.open(tmp_path / "back.tif") as im:
        assert im.n_frames == 40 and im.mode == "L" and im.size == (88, 72)
    back = read_input(tmp_path / "back.tif")[0]
    assert back.shape == stack.shape and _psnr(stack, back, 255.0) > 20


def test_nifti_without_nibabel_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "nibabel", None)
    with pytest.raises(MediaError, match=r"sensorcodec\[volume\]"):
        read_input(S0)


def test_dir_source_streams_volumes_end_to_end(tmp_path):
    """sensor-encode --source dir:FOLDER (NIfTI) → sensor-receive --decode, real processes."""
    from encoder_runtime.daemon import faults
    from encoder_runtime.daemon.faults import free_port, spawn
    from encoder_runtime.daemon.sources import open_source
    import shutil
    folder = tmp_path / "scans"
    folder.mkdir()
    shutil.copy(S0, folder / "a.nii.gz")
    vol = read_input(S0)[0]
    write_output(folder / "b.nii.gz", np.ascontiguousarray(vol[:, :, :7]), {})
    (folder / "notes.txt").write_text("not a scan")
    src = open_source(f"dir:{folder}")
    frames = [item.array for item in src]
    assert src.modality == "volume16" and [f.shape for f in frames] == [(128, 128, 10), (128, 128, 7)]
    port = free_port()
    rx = spawn("receive_cli", ["--listen", f"127.0.0.1:{port}", "--store", str(tmp_path / "store"),
                               ], tmp_path / "rx.log")
    try:
        assert b"listening" in rx.stdout.readline()
        model = default_model("volume16")
        enc = spawn("encode_cli", ["--source", f"dir:{folder}", "--model", "default", "--sink",
                                   f"tcp://127.0.0.1:{port}", "--spool", str(tmp_path / "spool"),
                                   "--stream-id", "mri", "--max-frames", "2",
                                   "--segment-max-age", "100ms"], tmp_path / "enc.log")
        assert enc.wait(90) == 0, (tmp_path / "enc.log").read_text()[-2000:]
        res = faults.verify_stream(tmp_path / "store", "mri", expect_model=model, expect_count=2)
        assert res["frames"] == 2 and sorted(res["decoded"].values()) == [(128, 128, 7), (128, 128, 10)]
    finally:
        rx.terminate()
        rx.wait(10)


def test_sensor_train_volume16_smoke(tmp_path):
    pytest.importorskip("torch")
    from export import train
    from export.data import DataError
    try:
        from export.volume_data import volume_paths
        volume_paths("u12", "train")
        volume_paths("u12", "test")
    except (DataError, OSError) as e:
        pytest.skip(f"no volume data here ({e})")
    assert train.main(["--modality", "volume16", "--latent", "4", "--steps", "2", "--batch", "2",
                       "--crop", "8", "--decoder-width", "16", "--decoder-blocks", "1",
                       "--no-eval", "--out", str(tmp_path), "--name", "v16"]) == 0
    m = json.loads((tmp_path / "v16" / "bundle" / "manifest.json").read_text())
    assert m["modality"] == "volume16" and m["sample"] == {"dtype": "uint16", "layout": "DHWC",
                                                           "channels": 1, "bits": 12}
    assert m["config"]["extra"] == {"sample_bits": 12} and m["macs_per_sample"]["folded"] == 4


def test_volume_rd_benchmark_smoke():
    """benchmarks.volume_rd on a 64×64×4 crop of the held-out 12-bit scan: every curve, lossless
    sizes (each coder checked lossless inside), finite BD-rates."""
    from benchmarks import volume_rd
    from benchmarks.rd import jxl_available
    vol = np.ascontiguousarray(read_input(S0)[0][32:96, 32:96, 3:7])
    r = volume_rd.run_kind("volume16", [vol], [n for n, _ in ladder("volume16")])
    assert len(r["curves"]["ours"]) >= 2 and len(r["curves"]["JPEG 2000 (per slice)"]) >= 4
    assert all(np.isfinite(v) for v in r["bd_rate_psnr_pct"].values())
    ll = r["lossless_bits_per_voxel"]
    assert 0 < ll["JPEG 2000 lossless (per slice)"] < 16 and ll["zstd-19 (raw volume)"] > 0
    if jxl_available():
        assert "JPEG XL (per slice)" in r["curves"] and 0 < ll["JPEG XL lossless (per slice)"] < 16
