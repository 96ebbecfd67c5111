import json

import pytest
import torch

from unet_zoo import reproduce as reproduce_module
from unet_zoo.recipes import load_recipe
from unet_zoo.reproduce import recipes_for, reproduce_isbi, write_hub_folder
from unet_zoo.training import train


def test_recipes_for_variants():
    assert recipes_for("original") == ["isbi-original"]
    assert recipes_for("all") == ["isbi-original", "isbi-padded", "isbi-small"]
    assert recipes_for("all", quick=True) == ["isbi-quick"]
    with pytest.raises(ValueError, match="unknown variant 'orig'.*original, padded, small, all"):
        recipes_for("orig")


def test_hub_folder_from_a_tiny_run(tmp_path):
    from unet_zoo.evaluation import evaluate_model
    from unet_zoo.hub import load_folder

    result = train(load_recipe("tiny"), out_dir=tmp_path / "run", progress=False)
    metrics = evaluate_model(result.model, result.data.val_images, result.data.val_labels, tta=False)
    folder = write_hub_folder(result, metrics, tmp_path / "hub", "test CPU")
    names = {p.name for p in folder.iterdir()}
    assert {"model.safetensors", "config.json", "README.md", "predictions.png", "curves.png", "scores.json"} <= names
    card = (folder / "README.md").read_text()
    assert "## Deviations from the paper" in card and "a test fixture" in card
    assert f"{metrics['rand_error']:.6g}" in card  # the measured number is on the card
    assert json.loads((folder / "scores.json").read_text())["pixel_error"] == pytest.approx(metrics["pixel_error"])
    rebuilt = load_folder(folder)
    for k, v in result.model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[k].cpu(), v.cpu())


@pytest.mark.slow
def test_quick_reproduce_on_real_data(isbi_dir, tmp_path, monkeypatch):
    """The --quick pipeline end to end on ISBI 2012, cut to 2 steps and no TTA to stay fast."""
    real = reproduce_module.load_recipe

    def small(name):
        return real(name).with_overrides(eval={"tta": False}, train={"eval_tiles": 1, "overlay_slices": 1})

    monkeypatch.setattr(reproduce_module, "load_recipe", small)
    monkeypatch.chdir(tmp_path)
    (result,) = reproduce_isbi(quick=True, steps=2, data_dir=isbi_dir, device="cpu", progress=False)
    assert result.recipe.name == "isbi-quick" and result.train_result.step == 2
    assert result.card_dir == result.run_dir / "hub" and str(result.run_dir).startswith("runs/isbi-quick-")
    assert result.metrics["num_slices"] == 6 and 0 <= result.metrics["rand_error"] <= 1
    assert (result.card_dir / "model.safetensors").is_file() and (result.card_dir / "predictions.png").is_file()
    assert not (tmp_path / "cards").exists()


def test_hub_folders_land_in_cards_by_default_and_under_out_for_all(tmp_path, monkeypatch):
    """The folder layout of `reproduce isbi`, with the tiny synthetic recipe standing in for each paper recipe."""
    from io import StringIO

    from rich.console import Console

    def stand_in(name):
        return load_recipe("tiny").with_overrides(recipe={"name": name}, train={"steps": 2, "eval_tiles": 1, "overlay_slices": 1})

    monkeypatch.setattr(reproduce_module, "load_recipe", stand_in)
    monkeypatch.chdir(tmp_path)
    console = Console(file=StringIO(), width=200)
    (small,) = reproduce_isbi("small", device="cpu", progress=False, console=console)
    assert small.card_dir == reproduce_module.CARDS_DIR / "isbi-small" and (tmp_path / "cards/isbi-small/model.safetensors").is_file()
    assert "isbi-small" in console.file.getvalue() and "vs. the paper" in console.file.getvalue()
    results = reproduce_isbi("all", device="cpu", progress=False, out=tmp_path / "hub")
    assert [r.card_dir for r in results] == [tmp_path / "hub" / n for n in ("isbi-original", "isbi-padded", "isbi-small")]
    for r in results:
        assert {"model.safetensors", "config.json", "README.md", "scores.json"} <= {p.name for p in r.card_dir.iterdir()}
        assert r.run_dir.parent == tmp_path / "runs" or str(r.run_dir).startswith("runs/")
