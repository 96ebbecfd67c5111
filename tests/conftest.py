"""Shared fixtures. Tests run on 2 CPU cores without a GPU and without ../shared (skipping what needs it)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

REPO_ROOT = Path(__file__).resolve().parent.parent


def _isbi_dir() -> Path | None:
    candidates = [os.environ.get("UNET_ZOO_DATA_DIR"), REPO_ROOT.parent / "shared" / "data" / "isbi2012"]
    for c in candidates:
        if c and (Path(c) / "train-volume.tif").is_file():
            return Path(c)
    return None


@pytest.fixture(scope="session")
def isbi_dir() -> Path:
    """The real ISBI 2012 folder; skips the test when it is not on this machine."""
    path = _isbi_dir()
    if path is None:
        pytest.skip("ISBI 2012 data not found: set UNET_ZOO_DATA_DIR or place it at ../shared/data/isbi2012")
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
