"""Shared test fixtures."""

from typing import Callable

import pytest
from skimage import data


@pytest.fixture
def small_codec() -> Callable:
    """Factory: a small PCA-initialised image Codec (seeded, eval mode); kw go to CodecConfig."""
    import torch

    from export.model import Codec, CodecConfig

    def make(**kw) -> Codec:
        torch.manual_seed(0)
        c = Codec(CodecConfig(decoder_width=32, decoder_blocks=2, **kw))
        img = torch.tensor(data.coffee()).permute(2, 0, 1)[None].float()
        blocks = img.unfold(2, 8, 8).unfold(3, 8, 8).permute(0, 2, 3, 1, 4, 5).reshape(-1, 3, 8, 8)
        c.encoder.init_from_pca(blocks)
        c.decoder.init_linear(c.encoder)
        return c.eval()

    return make
