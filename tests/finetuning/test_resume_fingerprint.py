"""A fine-tuning --resume continues only the run the command describes; impossible data is refused up front.

Class: whatever differs between the run folder and the command (the base model, any data file, any setting
but the number of steps), the resume is refused with one line saying which, before any data is read.
"""

from __future__ import annotations

import importlib

import pytest
import tifffile

import unet_zoo
from unet_zoo.finetuning.finetune import FINGERPRINT_FILE
from unet_zoo.training.data import synthetic_cells
from unet_zoo.training.recipes import load_recipe
from unet_zoo.utils.errors import InputError

finetune_module = importlib.import_module("unet_zoo.finetuning.finetune")  # the package re-exports the function


def _recipe(**train):
    return load_recipe("finetune").with_overrides(data={"tile": 32}, train={"eval_every": 2, "checkpoint_every": 2, **train})


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune-run")
    images, cells = synthetic_cells(2, 64, seed=1)
    tifffile.imwrite(root / "em.tif", images)
    tifffile.imwrite(root / "membranes.tif", 1 - cells)
    unet_zoo.save_pretrained(unet_zoo.create_model("small", base_channels=4, depth=2), root / "base")
    unet_zoo.save_pretrained(unet_zoo.create_model("small", base_channels=4, depth=2), root / "other-base")
    unet_zoo.finetune(
        str(root / "base"), root / "em.tif", root / "membranes.tif", root / "tuned", foreground="membrane",
        steps=2, device="cpu", recipe=_recipe(), run_dir=root / "run",
    )  # fmt: skip
    assert (root / "run" / FINGERPRINT_FILE).is_file()
    return root


def _variants(root):
    edited = root / "em-edited.tif"
    images = tifffile.imread(root / "em.tif")
    images[0, 0, 0] ^= 1
    tifffile.imwrite(edited, images)
    base = dict(model=str(root / "base"), images=root / "em.tif", labels=root / "membranes.tif", foreground="membrane")
    return {
        "base model": {**base, "model": str(root / "other-base")},
        "data": {**base, "images": edited},
        "settings": {**base, "foreground": "cell", "labels": root / "membranes.tif"},
    }


@pytest.mark.parametrize("what", ["base model", "data", "settings"])
def test_a_resume_of_another_run_is_refused_before_any_work(finished_run, what, monkeypatch):
    root = finished_run
    monkeypatch.setattr(finetune_module, "load_files_data", lambda *a, **k: pytest.fail("data read before the check"))
    args = _variants(root)[what]
    with pytest.raises(InputError, match=f"another {what}") as caught:
        unet_zoo.finetune(
            args["model"], args["images"], args["labels"], root / "tuned-again", foreground=args["foreground"],
            steps=4, device="cpu", recipe=_recipe(), resume=root / "run", overwrite=True,
        )  # fmt: skip
    assert "\n" not in str(caught.value) and str(root / "run") in str(caught.value)


def test_a_folder_without_a_fingerprint_is_not_resumed(finished_run, tmp_path):
    with pytest.raises(InputError, match=FINGERPRINT_FILE):
        unet_zoo.finetune(
            str(finished_run / "base"), finished_run / "em.tif", finished_run / "membranes.tif", tmp_path / "t",
            foreground="membrane", steps=4, recipe=_recipe(), resume=tmp_path,
        )  # fmt: skip


@pytest.mark.slow
def test_the_same_command_resumes_with_more_steps(finished_run, tmp_path):
    root = finished_run
    result = unet_zoo.finetune(
        str(root / "base"), root / "em.tif", root / "membranes.tif", tmp_path / "tuned", foreground="membrane",
        steps=4, device="cpu", recipe=_recipe(), resume=root / "run",
    )  # fmt: skip
    assert result.train_result.step == 4 and result.run_dir == root / "run"


def test_images_too_small_for_the_tile_are_refused_before_scoring(tmp_path, monkeypatch):
    images, cells = synthetic_cells(2, 40, seed=1)
    tifffile.imwrite(tmp_path / "em.tif", images)
    tifffile.imwrite(tmp_path / "membranes.tif", 1 - cells)
    unet_zoo.save_pretrained(unet_zoo.create_model("small", base_channels=4, depth=2), tmp_path / "base")
    monkeypatch.setattr(finetune_module, "score_held_out", lambda *a, **k: pytest.fail("scored before the size check"))
    with pytest.raises(InputError, match="at least 32 x 32 px") as caught:
        unet_zoo.finetune(
            str(tmp_path / "base"), tmp_path / "em.tif", tmp_path / "membranes.tif", tmp_path / "t",
            foreground="membrane", steps=1, recipe=_recipe(),
        )  # fmt: skip
    assert "data.tile" in str(caught.value)
