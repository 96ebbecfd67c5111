"""The napari tests run headless: Qt's offscreen platform, and OpenGL from a virtual X server (pytest-xvfb starts
Xvfb when it is installed; .ci/run installs both). Without napari or an X server they skip, saying why."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

import unet_zoo

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before pytest-qt creates the QApplication


def needs_viewer() -> None:
    """Skip unless napari, pytest-qt and an X display (napari draws with OpenGL, even offscreen) are there."""
    pytest.importorskip("napari", reason='napari is not installed: pip install -e ".[napari]"')
    pytest.importorskip("pytestqt", reason="pytest-qt is not installed: pip install -e '.[test]'")
    if not os.environ.get("DISPLAY"):
        hint = "install pytest-xvfb" if shutil.which("Xvfb") else "apt-get install xvfb and pip install pytest-xvfb"
        pytest.skip(f"napari needs OpenGL, which needs an X display: {hint} (or run under xvfb-run)")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A checkpoint folder of a small, untrained U-Net (4 base channels, depth 2): fast on any CPU."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models") / "tiny"
    unet_zoo.create_model("small", base_channels=4, depth=2).save_pretrained(folder)
    return folder
