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
