import json

import pytest
import torch

import unet_zoo
from tests.conftest import REPO_ROOT
from unet_zoo.experiments.isbi2012 import reproduce as reproduce_module
from unet_zoo.experiments.isbi2012.reproduce import ReproduceStage, recipes_for, reproduce_isbi
from unet_zoo.hub.training_state import load_training_state
from unet_zoo.training.recipes import load_recipe
from unet_zoo.training.trainer import TrainProgress


@pytest.fixture(autouse=True)
def cards_in_tmp(tmp_path, monkeypatch):
    """Default Hub folders go to tmp_path/cards, never into this checkout's cards/ with the published weights."""
    monkeypatch.setattr(reproduce_module, "source_cards_dir", lambda: tmp_path / "cards")


def test_recipe_option_runs_any_recipe_and_its_checkpoint_names_the_folder():
    assert recipes_for("original", recipe="isbi-small-cpu") == ["isbi-small-cpu"]
    with pytest.raises(ValueError, match="--quick and --recipe"):
        recipes_for("original", quick=True, recipe="isbi-small-cpu")


def test_recipes_for_variants():
    assert recipes_for("original") == ["isbi-original"]
    assert recipes_for("all") == ["isbi-original", "isbi-padded", "isbi-small"]
    assert recipes_for("all", quick=True) == ["isbi-quick"]
    with pytest.raises(ValueError, match="unknown variant 'orig'.*original, padded, small, all"):
        recipes_for("orig")


@pytest.mark.parametrize("name", ["isbi-small", "isbi-padded", "isbi-original"])
def test_published_cards_record_isbis_pixel_size(name):
    config = json.loads((REPO_ROOT / "cards" / name / "config.json").read_text())
    assert config["pretrained"]["training"]["pixel_size_nm"] == 4.0


@pytest.mark.slow
def test_quick_reproduce_on_real_data(isbi_dir, tmp_path, monkeypatch):
    """The --quick pipeline end to end on ISBI 2012, cut to 2 steps and no TTA to stay fast."""
    real = reproduce_module.load_recipe

    def small(name):
        return real(name).with_overrides(eval={"tta": False}, train={"eval_tiles": 1, "overlay_slices": 1})

    monkeypatch.setattr(reproduce_module, "load_recipe", small)
    monkeypatch.chdir(tmp_path)
    (result,) = reproduce_isbi(quick=True, steps=2, data_dir=isbi_dir, device="cpu")
    assert result.recipe.name == "isbi-quick" and result.train_result.step == 2
    assert result.card_dir == result.run_dir / "hub" and str(result.run_dir).startswith("runs/isbi-quick-")
    assert result.metrics["num_slices"] == 6 and 0 <= result.metrics["rand_error"] <= 1
    assert (result.card_dir / "model.safetensors").is_file() and (result.card_dir / "predictions.png").is_file()
    assert not (tmp_path / "cards").exists()
    assert json.loads((result.card_dir / "config.json").read_text())["pretrained"]["training"]["pixel_size_nm"] == 4.0


@pytest.mark.slow
def test_hub_folders_land_in_cards_by_default_and_under_out_for_all(tmp_path, monkeypatch):
    """The folder layout of `reproduce isbi`, with the tiny synthetic recipe standing in for each paper recipe."""

    def stand_in(name):
        return load_recipe("tiny").with_overrides(recipe={"name": name}, train={"steps": 2, "eval_tiles": 1, "overlay_slices": 1})

    monkeypatch.setattr(reproduce_module, "load_recipe", stand_in)
    monkeypatch.chdir(tmp_path)
    reports = []
    (small,) = reproduce_isbi("small", device="cpu", callback=reports.append)
    assert small.card_dir == tmp_path / "cards" / "isbi-small" and (tmp_path / "cards/isbi-small/model.safetensors").is_file()
    stages = [r.stage for r in reports if isinstance(r, ReproduceStage)]
    assert stages == ["train", "evaluate", "check_stored", "done"] and reports[-1].result is small
    assert [r.step for r in reports if isinstance(r, TrainProgress) and r.event == "step"] == [1, 2]
    before = (small.card_dir / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="already holds a checkpoint; pass --overwrite"):
        reproduce_isbi("small", device="cpu")
    assert (small.card_dir / "model.safetensors").read_bytes() == before and len(list((tmp_path / "runs").iterdir())) == 1
    reproduce_isbi("small", device="cpu", overwrite=True)
    results = reproduce_isbi("all", device="cpu", out=tmp_path / "hub")
    assert [r.card_dir for r in results] == [tmp_path / "hub" / n for n in ("isbi-original", "isbi-padded", "isbi-small")]
    for r in results:
        assert {"model.safetensors", "config.json", "README.md", "scores.json"} <= {p.name for p in r.card_dir.iterdir()}
        assert r.run_dir.parent == tmp_path / "runs" or str(r.run_dir).startswith("runs/")


@pytest.mark.slow
def test_reproduce_stores_float16_weights_and_scores_them_again(tmp_path, monkeypatch):
    """The card's weights are float16 on disk, read back, evaluated again, and the card says they score the same."""
    from safetensors import safe_open

    def stand_in(name):
        return load_recipe("tiny").with_overrides(
            recipe={"name": name}, train={"steps": 2, "eval_tiles": 1, "overlay_slices": 1}, eval={"tta": True}
        )

    monkeypatch.setattr(reproduce_module, "load_recipe", stand_in)
    monkeypatch.chdir(tmp_path)
    (result,) = reproduce_isbi("small", device="cpu", out=tmp_path / "hub")
    folder = result.card_dir
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}
    assert dtypes == {torch.float16}
    assert json.loads((folder / "config.json").read_text())["weights"]["dtype"] == "float16"
    loaded = unet_zoo.from_pretrained(folder)
    assert next(loaded.parameters()).dtype == torch.float32
    scores = json.loads((folder / "scores.json").read_text())
    check = scores["stored_weights"]
    assert check == result.stored_check and check["dtype"] == "float16"
    assert check["equal"] is (check["max_abs_difference"] <= check["tolerance"])
    assert scores["tta"] is True and scores["without_tta"]["tta"] is False
    card = (folder / "README.md").read_text()
    assert "## Stored weights" in card and check["summary"] in card
    assert "ours, without TTA" in card


def test_reproduce_refuses_an_unknown_weights_dtype_before_training(monkeypatch):
    def must_not_train(*args, **kwargs):
        raise AssertionError("trained despite a bad weights_dtype")

    monkeypatch.setattr(reproduce_module, "train", must_not_train)
    with pytest.raises(ValueError, match="weights_dtype must be float16, bfloat16 or float32, got 'int8'"):
        reproduce_isbi("small", weights_dtype="int8")


@pytest.mark.slow
def test_reproduce_resume_latest_continues_the_newest_run(tmp_path, monkeypatch):
    """--resume latest picks up the newest run of the recipe; a finished run is scored and written again, untrained."""

    def stand_in(name):
        return load_recipe("tiny").with_overrides(
            recipe={"name": name}, train={"steps": 3, "eval_tiles": 1, "overlay_slices": 1, "checkpoint_every": 1}
        )

    monkeypatch.setattr(reproduce_module, "load_recipe", stand_in)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="no run of 'isbi-small' with a checkpoint"):
        reproduce_isbi("small", device="cpu", resume="latest")
    from unet_zoo.training.trainer import Trainer, default_run_dir

    recipe = stand_in("isbi-small")
    run_dir = default_run_dir(recipe.name)

    def kill_after_step_2(progress):  # ends the run as SIGKILL would: step 3 done, its checkpoint not written
        if progress.event == "step" and progress.step == 3:
            raise InterruptedError

    with pytest.raises(InterruptedError):
        Trainer.from_recipe(recipe, out_dir=run_dir, callback=kill_after_step_2, final_outputs=False).fit()
    assert load_training_state(run_dir).step == 2
    (resumed,) = reproduce_isbi("small", device="cpu", resume="latest")
    assert resumed.run_dir == run_dir and resumed.train_result.step == 3  # continued to the recipe's 3 steps
    assert (tmp_path / "cards/isbi-small/model.safetensors").is_file()
    with pytest.raises(ValueError, match="names one run folder, but --variant all trains 3 recipes"):
        reproduce_isbi("all", resume=run_dir)
