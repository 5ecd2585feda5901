"""Shared test fixtures."""

from typing import Callable

import pytest
from skimage import data


@pytest.fixture
def small_codec() -> Callable:
    """Factory: a small PCA-initialised image Codec (seeded, eval mode); kw go to CodecConfig."""
    import torch

    from export.model import Codec, CodecConfig, to_blocks

    def make(**kw) -> Codec:
        torch.manual_seed(0)
        c = Codec(CodecConfig(decoder_width=32, decoder_blocks=2, **kw))
        img = torch.tensor(data.coffee()).permute(2, 0, 1)[None].float()
        c.encoder.init_from_pca(to_blocks(img, 8))
        c.decoder.init_linear(c.encoder)
        return c.eval()

    return make


@pytest.fixture
def tiny_audio_codec() -> Callable:
    """Factory: an untrained, seeded 16 kHz mono audio Codec (4 latent channels, tiny decoder)."""
    torch = pytest.importorskip("torch")
    from export.model import Codec, CodecConfig

    def make() -> Codec:
        torch.manual_seed(0)
        return Codec(CodecConfig(modality="audio", dims=1, in_channels=1, latent_channels=4,
                                 levels=4, decoder_width=16, decoder_blocks=1, sample_dtype="int16"))

    return make


@pytest.fixture
def mosquitto(tmp_path) -> Callable:
    """Factory: start a real ``mosquitto`` on a free loopback port (``extra`` = more config lines);
    returns the port. Skips when mosquitto is not installed (scripts/apt/daemon.txt). Every broker
    started is terminated after the test."""
    import os
    import shutil
    import subprocess

    from encoder_runtime.daemon.faults import free_port, wait_listening

    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(exe):
        pytest.skip("mosquitto not installed (scripts/apt/daemon.txt)")
    brokers: list[subprocess.Popen] = []

    def start(extra: str = "") -> int:
        port = free_port()
        conf = tmp_path / f"mosquitto-{port}.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n{extra}")
        log = open(tmp_path / f"mosquitto-{port}.log", "wb")
        brokers.append(subprocess.Popen([exe, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT))
        wait_listening(port)
        return port

    yield start
    for b in brokers:
        b.terminate()
        try:
            b.wait(10)
        except subprocess.TimeoutExpired:
            b.kill()
            b.wait()
