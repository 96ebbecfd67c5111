"""`unet_zoo.finetune`: your data, scored before and after, written as a model folder that loads like any other."""

from __future__ import annotations

import json

import pytest
import tifffile

import unet_zoo
from unet_zoo.training.data import synthetic_cells
from unet_zoo.training.recipes import load_recipe


@pytest.fixture()
def user_data(tmp_path):
    images, cells = synthetic_cells(2, 96, seed=1)
    tifffile.imwrite(tmp_path / "em.tif", images, resolution=(1e7 / 8, 1e7 / 8), resolutionunit="CENTIMETER")
    tifffile.imwrite(tmp_path / "membranes.tif", 1 - cells)  # 1 = membrane
    unet_zoo.save_pretrained(unet_zoo.create_model("small", base_channels=4, depth=2), tmp_path / "base")
    return tmp_path


def _recipe():
    return load_recipe("finetune").with_overrides(data={"tile": 32}, train={"eval_every": 2, "checkpoint_every": 2})


@pytest.mark.slow
def test_finetune_writes_a_model_folder_with_before_and_after(user_data):
    out = user_data / "tuned"
    result = unet_zoo.finetune(
        str(user_data / "base"),
        user_data / "em.tif",
        user_data / "membranes.tif",
        out,
        foreground="membrane",
        steps=3,
        device="cpu",
        recipe=_recipe(),
        run_dir=user_data / "run",
    )
    assert "right" in result.held_out  # two slices: a region is held out
    assert result.pixel_size == 4.0  # 8 nm/px data resampled to the model's 4 nm/px
    assert {"vrand_thinned", "rand_error", "segmentation"} <= set(result.before) & set(result.after)
    card = (out / "README.md").read_text()
    assert "Fine tuned from" in card and "em.tif (sha256" in card and "Scores before and after" in card
    summary = json.loads((out / "finetune.json").read_text())
    assert summary["fine_tuned_from"]["sha256"]
    model = unet_zoo.from_pretrained(str(out))
    probs = unet_zoo.predict_tiled(model, tifffile.imread(user_data / "em.tif")[0])
    assert probs.shape == (2, 96, 96)
    with pytest.raises(FileExistsError, match="overwrite"):
        unet_zoo.finetune(str(user_data / "base"), user_data / "em.tif", user_data / "membranes.tif", out, steps=1)


def test_finetune_refuses_an_inverted_polarity(user_data):
    with pytest.raises(ValueError, match="inverted"):
        unet_zoo.finetune(
            str(user_data / "base"), user_data / "em.tif", user_data / "membranes.tif", user_data / "x", steps=1, recipe=_recipe()
        )
