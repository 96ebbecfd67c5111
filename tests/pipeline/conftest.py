"""A small untrained checkpoint folder and a TIFF stack with resolution tags, shared by the pipeline tests."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

import unet_zoo


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """A checkpoint folder of a small, untrained U-Net (4 base channels, depth 2): fast on any CPU."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models") / "tiny"
    unet_zoo.create_model("small", base_channels=4, depth=2).save_pretrained(folder)
    return folder


@pytest.fixture
def stack() -> np.ndarray:
    """(2, 48, 56) uint8 sections of smooth blobs, so that the cells differ between the sections."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:48, 0:56]
    sections = [np.sin(yy / (4 + i)) * np.cos(xx / (5 + i)) * 100 + 128 + rng.normal(0, 8, yy.shape) for i in range(2)]
    return np.clip(np.stack(sections), 0, 255).astype(np.uint8)


def write_tiff(path, pixels: np.ndarray, pixel_size_nm: float | None = None):
    """`pixels` as a greyscale TIFF, with ImageJ resolution tags saying `pixel_size_nm` when given."""
    options = {}
    if pixel_size_nm is not None:
        options = dict(resolution=(1 / pixel_size_nm, 1 / pixel_size_nm), imagej=True, metadata={"unit": "nm"})
    tifffile.imwrite(path, pixels, photometric="minisblack", **options)
    return path
