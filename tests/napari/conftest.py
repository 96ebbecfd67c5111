"""The napari tests run headless: Qt's offscreen platform, and OpenGL from a virtual X server (pytest-xvfb starts
Xvfb when it is installed; .ci/run installs both). Without napari, pytest-qt or an X display the tests that need a
viewer skip, saying why: a module that imports Qt calls `needs_viewer()` at its top, and tests that take napari's
`make_napari_viewer` fixture are skipped at collection. The rest run on any machine."""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest
import torch

import unet_zoo

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before pytest-qt creates the QApplication


def viewer_unavailable() -> str | None:
    """Why napari's viewer cannot run here (napari, pytest-qt or an X display missing), or None when it can."""
    if importlib.util.find_spec("napari") is None:
        return 'napari is not installed: pip install -e ".[napari]"'
    if importlib.util.find_spec("pytestqt") is None:
        return 'pytest-qt is not installed: pip install -e ".[test]"'
    if not os.environ.get("DISPLAY"):  # pytest-xvfb sets it when it started Xvfb
        if not shutil.which("Xvfb"):
            hint = "install Xvfb (apt-get install xvfb), which pytest-xvfb starts"
        elif importlib.util.find_spec("pytest_xvfb") is None:
            hint = 'pip install -e ".[test]" (pytest-xvfb starts Xvfb)'
        else:
            hint = "pytest-xvfb did not start Xvfb (run without -p no:xvfb)"
        return f"napari draws with OpenGL, which needs an X display: {hint}, or run under xvfb-run"
    return None


def needs_viewer() -> None:
    """Skip the test, or the whole module when called at its top, unless napari's viewer can run here."""
    reason = viewer_unavailable()
    if reason is not None:
        pytest.skip(reason, allow_module_level=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that ask for napari's `make_napari_viewer` skip, with the reason, before their fixtures are set up
    (without napari or pytest-qt that fixture does not even exist)."""
    reason = viewer_unavailable()
    if reason is None:
        return
    for item in items:
        if "make_napari_viewer" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A checkpoint folder of a small, untrained U-Net (4 base channels, depth 2): fast on any CPU."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models") / "tiny"
    unet_zoo.save_pretrained(unet_zoo.create_model("small", base_channels=4, depth=2), folder)
    return folder
