"""segment_blockwise agrees with segmenting the whole section in memory."""

from __future__ import annotations

import numpy as np
import pytest

from tests.segmentation.conftest import probabilities_of
from unet_zoo.evaluation.metrics import rand_pair_counts
from unet_zoo.segmentation import segment_probabilities
from unet_zoo.segmentation.blockwise import segment_blockwise
from unet_zoo.training.data import synthetic_cells


@pytest.fixture(scope="module")
def section() -> np.ndarray:
    """A 256x320 P(cell) map of synthetic cells (noisy, blurred): 3 x 4 blocks of 96 px."""
    _, labels = synthetic_cells(1, 320, seed=5)
    return probabilities_of(labels[0][:256], sigma=1.5, noise=0.1)[1]


def _vrand(a: np.ndarray, b: np.ndarray) -> float:
    return rand_pair_counts(a.astype(np.int64), b.astype(np.int64)).fscore


def test_blockwise_agrees_with_the_whole_section(section):
    whole = segment_probabilities(section)
    calls = []
    blocks = segment_blockwise(section, block=96, halo=48, progress=lambda done, total: calls.append((done, total)))
    assert blocks.dtype == np.uint32 and blocks.shape == section.shape and blocks.min() == 1
    assert calls[-1] == (12, 12)
    assert _vrand(whole, blocks) >= 0.999
    assert np.array_equal(np.unique(blocks), np.arange(1, blocks.max() + 1))


def test_without_joining_the_blocks_cut_cells_apart(section):
    """The test can fail: blocks segmented independently (no halo, no joins) disagree with the whole section."""
    whole = segment_probabilities(section)
    independent = np.zeros(section.shape, np.int64)
    for y in range(0, 256, 96):
        for x in range(0, 320, 96):
            part = segment_probabilities(section[y : y + 96, x : x + 96]).astype(np.int64)
            independent[y : y + 96, x : x + 96] = part + independent.max()
    assert _vrand(whole, independent) < 0.99


def test_one_block_is_the_whole_section(section):
    assert _vrand(segment_probabilities(section), segment_blockwise(section, block=1024)) == pytest.approx(1.0)


def test_uint8_maps_and_bad_arguments(section):
    as_uint8 = np.round(section * 255).astype(np.uint8)
    assert segment_blockwise(as_uint8, block=128, halo=32).max() > 1
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        segment_blockwise(section[None], block=96)
    with pytest.raises(ValueError, match="block must be"):
        segment_blockwise(section, block=0)
