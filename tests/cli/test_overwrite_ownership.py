"""--overwrite replaces only what the command names and what unet_zoo wrote: a user's own folder or Zarr store at
an output path (or where a command keeps a by-product) is refused with one line, before any work, and left as it was.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from typer.testing import CliRunner

import unet_zoo

zarr = pytest.importorskip("zarr", reason='needs the volumes extra: pip install "unet-zoo[volumes]"')

from unet_zoo.cli import app  # noqa: E402
from unet_zoo.training.data import synthetic_cells  # noqa: E402
from unet_zoo.utils.files import OWNER_FILE  # noqa: E402

runner = CliRunner()


def _text(result) -> str:
    return " ".join(result.output.split())


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` with a digest of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _users_store(path: Path) -> Path:
    """A Zarr store a user made themselves (no unet_zoo marker)."""
    zarr.create_array(str(path), shape=(2, 8, 8), chunks=(1, 8, 8), dtype="float32")[:] = 0.25
    (path / "notes.txt").write_text("my annotations")
    return path


def _users_folder(path: Path) -> Path:
    path.mkdir()
    (path / "notes.txt").write_text("keep me")
    (path / "config.json").write_text("{}")
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    torch.manual_seed(0)
    unet_zoo.save_pretrained(unet_zoo.create_model("small", base_channels=4, depth=2).eval(), d / "model")
    volume = np.random.default_rng(5).integers(0, 256, (2, 64, 64), dtype=np.uint8)
    zarr.create_array(str(d / "volume.zarr"), shape=volume.shape, chunks=(1, 64, 64), dtype="uint8")[:] = volume
    images, cells = synthetic_cells(2, 96, seed=1)
    tifffile.imwrite(d / "em.tif", images)
    tifffile.imwrite(d / "cells.tif", cells * 255)
    return d


# (name, args with {d} = inputs and {out} = the output path, where the user's data sits, how to make it)
CASES = [
    ("predict volume", ["predict", "{d}/model", "{d}/volume.zarr", "--out", "{out}", "--overwrite"], "out.zarr", _users_store),
    ("segment volume", ["segment", "{d}/model", "{d}/volume.zarr", "--out", "{out}", "--overwrite"], "out.zarr", _users_store),
    (
        "segment's probabilities",
        ["segment", "{d}/model", "{d}/volume.zarr", "--out", "{tmp}/cells.zarr", "--overwrite"],
        "cells-probabilities.zarr",
        _users_store,
    ),
    ("train --out", ["train", "tiny", "--device", "cpu", "--out", "{out}", "--steps", "1", "--overwrite"], "run", _users_folder),
    (
        "finetune --out",
        ["finetune", "{d}/model", "--images", "{d}/em.tif", "--labels", "{d}/cells.tif", "--out", "{out}", "--overwrite"],
        "tuned",
        _users_folder,
    ),
    ("reproduce --out", ["reproduce", "isbi", "--variant", "small", "--out", "{out}", "--overwrite"], "hub", _users_folder),
]


@pytest.mark.parametrize(("name", "args", "target", "make"), CASES, ids=[c[0] for c in CASES])
def test_overwrite_never_deletes_what_unet_zoo_did_not_write(tmp_path, inputs, name, args, target, make, monkeypatch):
    monkeypatch.chdir(tmp_path)  # run folders of refused commands would go to ./runs
    users = make(tmp_path / target)
    before = _snapshot(users)
    filled = [a.format(d=inputs, out=tmp_path / target, tmp=tmp_path) for a in args]
    result = runner.invoke(app, filled)
    assert result.exit_code == 2, result.output
    text = _text(result)
    assert "Traceback" not in result.output and text.count("error:") == 1
    assert users.name in text and "unet_zoo did not" in text
    assert _snapshot(users) == before  # nothing deleted, nothing added
    assert not (tmp_path / "runs").exists()  # refused before any work


def test_what_a_command_writes_is_marked_and_its_overwrite_replaces_it(tmp_path, inputs):
    out = tmp_path / "cells.zarr"
    args = ["segment", str(inputs / "model"), str(inputs / "volume.zarr"), "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    probabilities = tmp_path / "cells-probabilities.zarr"
    assert (out / OWNER_FILE).is_file() and (probabilities / OWNER_FILE).is_file()
    again = runner.invoke(app, [*args, "--overwrite"])
    assert again.exit_code == 0, again.output
    # a store of another kind (a prediction) is not replaced by a segmentation, though unet_zoo wrote it
    refused = runner.invoke(app, ["segment", str(inputs / "model"), str(inputs / "volume.zarr"), "--out", str(probabilities)])
    assert refused.exit_code == 2 and "error:" in refused.output
    assert zarr.open_array(str(probabilities), mode="r").dtype == np.float32
