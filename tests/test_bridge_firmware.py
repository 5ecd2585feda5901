"""The C firmware: host unit tests + cross-language vectors, codes equal to the reference on real
data on the host, on Cortex-M4 under qemu-system-arm (mps2-an386, semihosting), and on aarch64 /
armhf Linux under qemu-user; codes equal to ONNX Runtime for every bundle that exists (host C), and
for the real bundles (every audio model, rgb-c16, every video model) on real speech / a real photo tile /
a real 4-frame group under the Cortex-M4
emulator (m4/sc_bundle.c), with code size, RAM and instructions per block printed."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

from firmware_bridge import frame, gen_header, gen_vectors, reference, spec

FW = pathlib.Path(__file__).resolve().parents[1] / "firmware_bridge" / "firmware"
MODELS = pathlib.Path(__file__).resolve().parents[1] / "encoder_runtime" / "models"
needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="no host C compiler")


def _make(*targets: str) -> None:
    subprocess.run(["make", "-s", "-C", str(FW), *targets], check=True, timeout=240, capture_output=True)


def _expected() -> dict[str, np.ndarray]:
    models, inputs = gen_vectors.test_models(), gen_vectors.real_inputs()
    return {k: reference.encode(inputs[k][0], models[k]["weight"], models[k]["bias"], models[k]["shift"], 127)
            for k in models}


def _check_output(out: str) -> dict[str, int]:
    """Parse sc_test output; check PASS, codes and the C-built frame against Python."""
    pytest.importorskip("pywt")
    pytest.importorskip("skimage")
    assert "RESULT PASS" in out, out[-2000:]
    exp = _expected()
    ticks = {}
    for line in out.splitlines():
        parts = line.split()
        if parts[:1] == ["CODES"]:
            got = np.frombuffer(bytes.fromhex(parts[2]), np.int8)
            assert np.array_equal(got, exp[parts[1]].ravel()), f"{parts[1]} codes differ"
        elif parts[:1] == ["FRAME"]:
            (f,) = frame.FrameDecoder().feed(bytes.fromhex(parts[2]))
            kind, arr = frame.parse_data(f.payload)
            assert f.type == spec.T_DATA and f.flags == spec.F_BOOT and kind == spec.KIND_CODES
            assert np.array_equal(arr, exp["audio"][:, :16])
        elif parts[:1] == ["TICKS"]:
            ticks[parts[1]] = int(parts[2])
    assert {"audio", "rgb"} <= set(ticks)
    return ticks


@needs_cc
def test_make_test_host():
    _make("test")
    out = subprocess.run([str(FW / "build/host/sc_test")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    _check_output(out.stdout)


@pytest.mark.skipif(not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
                    reason="needs gcc-arm-none-eabi + qemu-system-arm (scripts/apt/bridge.txt)")
def test_cortex_m4_under_qemu_matches_reference(tmp_path):
    _make("build/m4/sc_test.elf", "build/m4/sc_example.elf")
    cmd = ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none",
           "-semihosting-config", "enable=on,target=native", "-icount", "shift=3",
           "-kernel", str(FW / "build/m4/sc_test.elf")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    ticks = _check_output(out.stdout)
    insn_per_tick = 200000 / ticks["calib"]
    assert 4.9 < insn_per_tick < 5.1  # -icount shift=3: 8 ns/insn, SysTick at 25 MHz
    size = subprocess.run(["arm-none-eabi-size", *(str(FW / f"build/m4/{n}") for n in ("sc_test.elf", "sc_example.elf"))],
                          capture_output=True, text=True, check=True).stdout
    (tmp_path / "m4.json").write_text(json.dumps({"ticks": ticks, "size": size}))
    # the example firmware's frames (through semihosting stdout) decode in Python
    cmd[-1] = str(FW / "build/m4/sc_example.elf")
    raw = subprocess.run(cmd, capture_output=True, timeout=120).stdout
    frames = frame.FrameDecoder().feed(raw)
    assert frames[0].type == spec.T_HELLO and frames[0].flags & spec.F_BOOT
    data = [f for f in frames if f.type == spec.T_DATA]
    assert len(data) == 64 and [f.seq for f in data] == list(range(64))
    exp = _expected()["audio"]
    for i, f in enumerate(data[:16]):
        kind, arr = frame.parse_data(f.payload)
        assert kind == spec.KIND_CODES and np.array_equal(arr, exp[:, 4 * i:4 * i + 4])


@pytest.mark.parametrize("arch,cc,qemu", [("aarch64", "aarch64-linux-gnu-gcc", "qemu-aarch64-static"),
                                          ("armhf", "arm-linux-gnueabihf-gcc", "qemu-arm-static")])
def test_linux_cross_builds_under_qemu_user(arch, cc, qemu):
    if not (shutil.which(cc) and shutil.which(qemu)):
        pytest.skip(f"needs {cc} and {qemu} (scripts/apt/bridge.txt)")
    _make(f"build/{arch}/sc_test")
    out = subprocess.run([qemu, str(FW / f"build/{arch}/sc_test")], capture_output=True, text=True, timeout=60)
    _check_output(out.stdout)


def _bundles() -> list[pathlib.Path]:
    return sorted(p.parent for p in MODELS.glob("*/encoder_int.npz")) if MODELS.exists() else []


@needs_cc
@pytest.mark.parametrize("bundle", _bundles() or [pytest.param(None, marks=pytest.mark.skip(reason="no bundle with encoder_int.npz yet"))],
                         ids=lambda b: getattr(b, "name", "none"))  # -k selects by bundle name
def test_c_kernel_equals_onnxruntime_on_bundle(bundle, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    if not (bundle / "encoder.onnx").exists():
        pytest.skip(f"{bundle} has no encoder.onnx")
    model = reference.load_model(bundle / "encoder_int.npz", bundle / "manifest.json")
    if model["weight"].ndim - 2 not in (1, 2, 3):
        pytest.skip("the C kernel covers 1-D, 2-D and (folded) 3-D bundles")
    hdr = tmp_path / "bundle.h"
    gen_header.write_header(bundle, hdr, prefix="bundle")
    exe = tmp_path / "sc_encode"
    subprocess.run(["cc", "-O2", "-std=c99", f"-I{FW / 'include'}", f"-I{tmp_path}", '-DMODEL_HEADER="bundle.h"',
                    "-o", str(exe), str(FW / "tools/sc_encode.c"), *(str(p) for p in sorted((FW / "src").glob("*.c")))],
                   check=True, timeout=60)
    w = model["weight"]
    x_in = None
    if w.ndim == 5 and w.shape[1] == 1:  # volume: a crop of the bundled held-out MRI sample
        from encoder_runtime.media import read_input
        b = w.shape[2:]
        name = "mri_colin27_crop.nii.gz" if model["dtype"] == "uint8" else "mri_dipy_s0_10slices.nii.gz"
        vol = read_input(MODELS.parent / "samples" / name)[0]
        x_in = vol[: b[0], : 32 // b[1] * b[1], : 8 // b[2] * b[2], None]   # first axis folded
        x = gen_header.frames_to_channels(x_in)
        args = [str(x.shape[0]), str(x.shape[1])]
    elif w.ndim == 5:  # video: a real frame group; the C kernel sees time folded into channels
        from encoder_runtime.video_io import read_y4m
        b = w.shape[2:]
        x_in = read_y4m((MODELS.parent / "samples" / "city_8f.y4m").read_bytes())[0][
            : b[0], : 96 // b[1] * b[1], : 128 // b[2] * b[2]]
        x = gen_header.frames_to_channels(x_in)
        args = [str(x.shape[0]), str(x.shape[1])]
    elif w.ndim == 4 and model["dtype"] == "uint16":  # spectral cube: the bundled held-out MUSE frame
        x = _real_input("hyperspectral")
        args = [str(x.shape[0]), str(x.shape[1])]
    elif w.ndim == 4:  # image: a real photo
        skimage = pytest.importorskip("skimage.data")
        b = w.shape[2:]
        x = skimage.astronaut()[:128 // b[0] * b[0], :192 // b[1] * b[1], : w.shape[1]]
        args = [str(x.shape[0]), str(x.shape[1])]
    else:  # audio / time series: the real ECG
        pywt = pytest.importorskip("pywt")
        b = w.shape[2]
        x = np.repeat(np.asarray(pywt.data.ecg(), np.int16)[: 1024 // b * b, None], w.shape[1], 1)
        args = [str(x.shape[0])]
    x = np.ascontiguousarray(x)
    c_codes = np.frombuffer(subprocess.run([str(exe), *args], input=x.tobytes(), capture_output=True, check=True).stdout,
                            np.int8)
    sess = ort.InferenceSession(str(bundle / "encoder.onnx"), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    x_in = x if x_in is None else np.ascontiguousarray(x_in)
    feed = x_in[None].astype(np.float32 if "float" in inp.type else x.dtype)
    ort_codes = np.asarray(sess.run(None, {inp.name: feed})[0])[0]
    ref = reference.encode(x_in, model["weight"], model["bias"], model["shift"], model["code_max"])
    if w.ndim == 5:
        ort_codes, ref = ort_codes[:, 0], ref[:, 0]   # one temporal block
    if ort_codes.shape != ref.shape and ort_codes.ndim == ref.ndim:  # channel-last output
        ort_codes = np.moveaxis(ort_codes, -1, 0)
    assert np.array_equal(ort_codes.astype(np.int64), ref.astype(np.int64)), "ONNX Runtime != numpy reference"
    assert np.array_equal(c_codes, ref.ravel()), "C kernel != ONNX Runtime codes"


# ---- real bundles on the Cortex-M4 under QEMU: codes equal ONNX Runtime's, byte for byte ----
SAMPLES = MODELS.parent / "samples"
QEMU_M4 = ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none",
           "-semihosting-config", "enable=on,target=native", "-icount", "shift=3"]


def _real_input(kind: str, channels: int = 1) -> np.ndarray:
    """A textured 64x64 RGB tile of Kite.png (rows 192:256, cols 0:64; uint8 HWC) or 8192 samples (0.51 s from t = 1 s) of speech_16k.wav
    (int16 (T, 1)); stereo: 8192 samples (from t = 0.2 s) of loop_amen_stereo_44k.wav (int16 (T, 2))."""
    if kind == "video":  # one group of 4 frames, 64x64, of the bundled held-out clip
        from encoder_runtime.video_io import read_y4m
        clip = read_y4m((SAMPLES / "city_8f.y4m").read_bytes())[0]
        return np.ascontiguousarray(clip[2:6, 32:96, 0:64])
    if kind == "audio" and channels == 2:
        import wave
        with wave.open(str(SAMPLES / "loop_amen_stereo_44k.wav")) as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 44100)
            pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
        return np.ascontiguousarray(pcm[8820:8820 + 8192].astype(np.int16))
    if kind == "hyperspectral":  # a 16×16 crop of a held-out 12-bit 32-band MUSE frame (Abell 478)
        return np.ascontiguousarray(np.load(SAMPLES / "hsi_abell478_12.npy")[12:28, 12:28])
    if kind in ("volume", "volume16"):  # a slab of 4 slices (the first block axis) of a held-out MRI
        from encoder_runtime.media import read_input
        if kind == "volume":  # 8-bit Colin27 crop: 4×64×40
            vol = read_input(SAMPLES / "mri_colin27_crop.nii.gz")[0]
            return np.ascontiguousarray(vol[8:12, 12:76, 0:40, None])
        vol = read_input(SAMPLES / "mri_dipy_s0_10slices.nii.gz")[0]  # 12-bit b0: 4×128×8 uint16
        return np.ascontiguousarray(vol[60:64, :, 0:8, None])
    if kind == "image":
        Image = pytest.importorskip("PIL.Image")
        im = np.asarray(Image.open(SAMPLES / "Kite.png").convert("RGB"))
        return np.ascontiguousarray(im[192:256, 0:64])
    import wave
    with wave.open(str(SAMPLES / "speech_16k.wav")) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    return np.ascontiguousarray(pcm[16000:16000 + 8192, None].astype(np.int16))


def _input_header(x: np.ndarray) -> str:
    ctype = {np.dtype(np.uint8): "uint8_t", np.dtype(np.uint16): "uint16_t"}.get(x.dtype, "int16_t")
    dims = "".join(f"#define INPUT_{n} {d}u\n" for n, d in zip("AB", x.shape[:-1]))
    return (f"/* GENERATED by tests/test_bridge_firmware.py: real input {x.shape} {x.dtype}, channel-last */\n"
            f"#include <stdint.h>\n{dims}" + gen_header._array(ctype, "input_data", x))


def _m4_real_bundles() -> list[tuple[str, str]]:
    """Every bundled audio model (the 16 kHz ladder, the stereo models), the default RGB model and
    every spectral-cube model."""
    audio = sorted(p.parent.name for p in MODELS.glob("*/manifest.json")
                   if json.loads(p.read_text()).get("modality") == "audio")
    video = sorted(p.parent.name for p in MODELS.glob("*/manifest.json")
                   if json.loads(p.read_text()).get("modality") == "video")
    volume = sorted((p.parent.name, json.loads(p.read_text())["modality"])  # MRI: u8 / 12-bit u16
                    for p in MODELS.glob("*/manifest.json")
                    if json.loads(p.read_text()).get("modality") in ("volume", "volume16"))
    spectral = sorted(p.parent.name for p in MODELS.glob("*/manifest.json")
                      if json.loads(p.read_text()).get("modality") == "hyperspectral")
    return ([(n, "audio") for n in audio] + [("rgb-c16", "image")] + [(n, "video") for n in video]
            + [(n, "hyperspectral") for n in spectral] + volume)


@pytest.mark.skipif(not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
                    reason="needs gcc-arm-none-eabi + qemu-system-arm (scripts/apt/bridge.txt)")
@pytest.mark.parametrize("name,kind", _m4_real_bundles())
def test_cortex_m4_under_qemu_equals_onnxruntime_on_real_bundle(name, kind, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    bundle = MODELS / name
    if not (bundle / "encoder_int.npz").exists():
        pytest.skip(f"no bundle {name}")
    x = _real_input(kind, int(json.loads((bundle / "manifest.json").read_text())["sample"]["channels"]))
    # the C image: header generated from the real bundle + the real data embedded in flash
    gen_header.write_header(bundle, tmp_path / "bundle.h", prefix="bundle")
    # a 3-D (video) bundle runs on the 2-D kernel with time folded into channels (gen_header)
    (tmp_path / "input.h").write_text(_input_header(gen_header.frames_to_channels(x) if x.ndim == 4 else x))
    _make("m4-bundle", f"M4B={tmp_path}")
    elf = tmp_path / "sc_bundle.elf"
    out = subprocess.run([*QEMU_M4, "-kernel", str(elf)], capture_output=True, text=True, timeout=60).stdout
    assert "RESULT DONE" in out, out[-2000:]
    lines = {ln.split()[0] + (" " + ln.split()[1] if ln.startswith("TICKS") else ""): ln.split()
             for ln in out.splitlines() if ln.strip()}
    m4_codes = np.frombuffer(bytes.fromhex(lines["CODES"][1]), np.int8)
    assert len(np.unique(m4_codes)) >= 8  # real data: varied codes, not a constant / saturated buffer
    # ONNX Runtime on both graphs of the bundle: (1, H, W, 3) uint8 / (1, T, 1) int16 -> (1, C, *latent) int8
    for graph in ("encoder.onnx", "encoder_int8.onnx"):
        if not (bundle / graph).exists():
            continue
        sess = ort.InferenceSession(str(bundle / graph), providers=["CPUExecutionProvider"])
        (ort_codes,) = sess.run(None, {sess.get_inputs()[0].name: x[None]})
        ort_codes = np.asarray(ort_codes)
        assert ort_codes.dtype == np.int8 and ort_codes.shape[0] == 1
        assert ort_codes.size == m4_codes.size, (graph, ort_codes.shape, m4_codes.size)
        assert m4_codes.tobytes() == ort_codes[0].tobytes(), f"Cortex-M4 codes != ONNX Runtime ({graph})"
    # instructions: -icount shift=3 -> 8 ns/insn, SysTick at 25 MHz -> 5 insns/tick (calibrated)
    calib = int(lines["TICKS calib"][2])
    insn_per_tick = 200000 / calib
    assert 4.9 < insn_per_tick < 5.1
    t, blocks, macs = (int(lines["TICKS encode"][i]) for i in (2, 4, 6))
    berkeley = subprocess.run(["arm-none-eabi-size", str(elf)], capture_output=True, text=True, check=True).stdout
    size = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True, check=True).stdout
    sec = {p[0]: int(p[1]) for p in (ln.split() for ln in size.splitlines()) if len(p) >= 2 and p[1].isdigit()}
    report = {"bundle": name, "input": list(x.shape), "codes": int(m4_codes.size), "blocks": blocks, "macs": macs,
              "insns": round(t * insn_per_tick), "insns_per_block": round(t * insn_per_tick / blocks),
              "insns_per_mac": round(t * insn_per_tick / macs, 2),
              "flash": sum(sec.get(s, 0) for s in (".text", ".ARM.exidx", ".init_array", ".fini_array", ".data")),
              "ram_static": sec.get(".data", 0) + sec.get(".bss", 0),
              "input_bytes": int(x.nbytes), "model_bytes": int(sum(np.load(bundle / "encoder_int.npz")[k].nbytes
                                                                   for k in ("weight", "bias", "shift")))}
    (tmp_path / "m4_bundle.json").write_text(json.dumps(report))
    print("M4", json.dumps(report), berkeley, sep="\n")
