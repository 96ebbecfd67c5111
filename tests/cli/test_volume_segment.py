"""`unet-zoo segment MODEL volume.zarr --out cells.zarr`: --out is checked before any prediction, an interrupted run
says how to resume and the same command does resume, an output inside the input is refused up front."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import unet_zoo

zarr = pytest.importorskip("zarr", reason='needs the volumes extra: pip install "unet-zoo[volumes]"')

import unet_zoo.segmentation.volume as volume_module  # noqa: E402
from unet_zoo.cli import app  # noqa: E402

runner = CliRunner()


def _text(result) -> str:
    return " ".join(result.output.split())


@pytest.fixture
def setup(tmp_path, monkeypatch):
    torch.manual_seed(0)
    unet_zoo.save_pretrained(unet_zoo.create_model("small", base_channels=4, depth=2).eval(), tmp_path / "model")
    images = np.random.default_rng(1).integers(0, 256, (2, 64, 64), dtype=np.uint8)
    zarr.create_array(str(tmp_path / "em.zarr"), shape=images.shape, chunks=(1, 64, 64), dtype="uint8")[:] = images
    predicted = []
    real = volume_module.predict_volume
    monkeypatch.setattr(volume_module, "predict_volume", lambda *a, **k: predicted.append(a) or real(*a, **k))
    return tmp_path, predicted


def _user_folder(path: Path) -> None:
    path.mkdir()
    (path / "notes.txt").write_text("mine")


OUTPUTS = {
    "under a file": (lambda d: (d / "blocker").write_text("x"), "blocker/cells.zarr", [], "is a file, not a folder"),
    "a user's folder": (lambda d: _user_folder(d / "cells.zarr"), "cells.zarr", [], "remove it yourself"),
    "a user's folder, --overwrite": (lambda d: _user_folder(d / "cells.zarr"), "cells.zarr", ["--overwrite"], "did not create"),
    "inside the input": (lambda d: None, "em.zarr/cells.zarr", [], "inside the input"),
}


@pytest.mark.parametrize("case", sorted(OUTPUTS))
def test_out_is_checked_before_anything_is_predicted(setup, case):
    d, predicted = setup
    make, out, extra, message = OUTPUTS[case]
    make(d)
    before = sorted(p.relative_to(d) for p in d.rglob("*"))
    result = runner.invoke(app, ["segment", str(d / "model"), str(d / "em.zarr"), "--out", str(d / out), *extra])
    assert result.exit_code == 2, result.output
    text = _text(result)
    assert text.startswith("error: --out:") and text.count("error:") == 1 and message in text, text
    assert not predicted and sorted(p.relative_to(d) for p in d.rglob("*")) == before  # nothing predicted or written


@pytest.mark.parametrize("stage", ["predict", "segment"])
def test_an_interrupted_volume_segment_resumes_with_the_same_command(setup, monkeypatch, stage):
    d, _ = setup
    args = ["segment", str(d / "model"), str(d / "em.zarr"), "--out", str(d / "cells.zarr")]
    fired = []
    if stage == "predict":
        from unet_zoo.volumes.predict import VolumeJob

        owner, name = VolumeJob, "run"
    else:
        owner, name = volume_module, "segment_blockwise"
    real = getattr(owner, name)

    def stop_once(*a, **k):
        if not fired:
            fired.append(True)
            raise KeyboardInterrupt
        return real(*a, **k)

    with monkeypatch.context() as patch:
        patch.setattr(owner, name, stop_once)
        stopped = runner.invoke(app, args)
    assert stopped.exit_code == 130, stopped.output
    kept = "cells-probabilities.zarr" if stage == "predict" else "cells.zarr"
    assert "run the same command again to resume" in _text(stopped) and kept in _text(stopped)
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert zarr.open_array(str(d / "cells.zarr"), mode="r").attrs["unet_zoo_segmentation"]["complete"] is True
