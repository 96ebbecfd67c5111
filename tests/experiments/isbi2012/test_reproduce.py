import json

import pytest
import torch

import unet_zoo
from tests.conftest import REPO_ROOT
from unet_zoo.experiments.isbi2012 import reproduce as reproduce_module
from unet_zoo.experiments.isbi2012.reproduce import ReproduceStage, recipes_for, refresh_card, reproduce_isbi, write_hub_folder
from unet_zoo.hub.training_state import load_training_state
from unet_zoo.training.recipes import load_recipe
from unet_zoo.training.trainer import TrainProgress, train


@pytest.fixture(autouse=True)
def cards_in_tmp(tmp_path, monkeypatch):
    """Default Hub folders go to tmp_path/cards, never into this checkout's cards/ with the published weights."""
    monkeypatch.setattr(reproduce_module, "source_cards_dir", lambda: tmp_path / "cards")


def test_recipe_option_runs_any_recipe_and_its_checkpoint_names_the_folder():
    assert recipes_for("original", recipe="isbi-small-cpu") == ["isbi-small-cpu"]
    with pytest.raises(ValueError, match="--quick and --recipe"):
        recipes_for("original", quick=True, recipe="isbi-small-cpu")
    assert reproduce_module.checkpoint_name(load_recipe("isbi-small-cpu")) == "isbi-small"
    assert reproduce_module.checkpoint_name(load_recipe("tiny")) == "tiny"


def test_recipes_for_variants():
    assert recipes_for("original") == ["isbi-original"]
    assert recipes_for("all") == ["isbi-original", "isbi-padded", "isbi-small"]
    assert recipes_for("all", quick=True) == ["isbi-quick"]
    with pytest.raises(ValueError, match="unknown variant 'orig'.*original, padded, small, all"):
        recipes_for("orig")


@pytest.mark.slow
def test_hub_folder_from_a_tiny_run(tmp_path):
    from unet_zoo.evaluation.evaluate import evaluate_model

    result = train(load_recipe("tiny"), out_dir=tmp_path / "run")
    metrics = evaluate_model(result.model, result.data.val_images, result.data.val_labels, tta=False)
    rescored = []

    def rescore(model):
        rescored.append(model)
        return evaluate_model(model, result.data.val_images, result.data.val_labels, tta=False)

    folder, check = write_hub_folder(result, metrics, tmp_path / "hub", "test CPU", rescore=rescore)
    assert len(rescored) == 1 and rescored[0] is not result.model  # the weights read back from the folder
    assert check is not None and check["equal"] and check["dtype"] == "float32"
    names = {p.name for p in folder.iterdir()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hub", "run"]  # no staging folder left beside it
    assert {"model.safetensors", "config.json", "README.md", "predictions.png", "curves.png", "scores.json"} <= names
    card = (folder / "README.md").read_text()
    assert "## Deviations from the paper" in card and "a test fixture" in card
    assert f"{metrics['rand_error']:.6g}" in card  # the measured number is on the card
    assert card.count("## Stored weights") == 1 and check["summary"] in card and "![training curves](curves.png)" in card
    with pytest.raises(FileExistsError, match="overwrite"):
        write_hub_folder(result, metrics, folder, "test CPU")
    assert json.loads((folder / "scores.json").read_text())["pixel_error"] == pytest.approx(metrics["pixel_error"])
    rebuilt = unet_zoo.from_pretrained(folder)
    for k, v in result.model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[k].cpu(), v.cpu())

    # The card can be written again from the folder's own files: the same text, weights untouched.
    weights = (folder / "model.safetensors").read_bytes()
    refresh_card(folder, load_recipe("tiny"))
    assert (folder / "README.md").read_text() == card and (folder / "model.safetensors").read_bytes() == weights
    # A recipe's targets are checked against the held-out scores on the card, met or missed.
    with_targets = load_recipe("tiny").with_overrides(
        recipe={"targets": {"pixel_error": "<= 1.0", "vrand_thinned": ">= 1.5"}, "target_notes": "Tried nothing."}
    )
    refreshed = refresh_card(folder, with_targets).read_text()
    assert "## Targets" in refreshed and "Tried nothing." in refreshed
    assert f"Pixel error (1 - best pixel F-score) <= 1: met ({metrics['pixel_error']:.4f})" in refreshed
    assert f"missed by {1.5 - metrics['vrand_thinned']:.4f}" in refreshed


@pytest.mark.slow
def test_card_records_the_pixel_size_the_model_was_trained_at(tmp_path):
    from unet_zoo.evaluation.evaluate import evaluate_model
    from unet_zoo.inference.rescale import model_pixel_size

    result = train(load_recipe("tiny").with_overrides(data={"pixel_size": 6.0}), steps=2, out_dir=tmp_path / "run")
    metrics = evaluate_model(result.model, result.data.val_images, result.data.val_labels, tta=False)
    folder, _ = write_hub_folder(result, metrics, tmp_path / "hub", "test CPU")
    assert json.loads((folder / "config.json").read_text())["pretrained"]["training"]["pixel_size_nm"] == 6.0
    assert "- Pixel size (nm): 6 x 6" in (folder / "README.md").read_text()
    assert model_pixel_size(unet_zoo.from_pretrained(folder)) == 6.0


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


def test_check_stored_weights_reports_the_largest_score_change():
    from unet_zoo.experiments.isbi2012.reproduce import check_stored_weights

    trained = {"rand_error": 0.10, "pixel_error": 0.05, "vrand_thinned": 0.95, "tta": True}
    same = check_stored_weights(trained, dict(trained, rand_error=0.1000004), "float16")
    assert same["equal"] and same["max_abs_difference"] == pytest.approx(4e-7) and same["worst_score"] == "rand_error"
    assert "score the same" in same["summary"] and "float16" in same["summary"]
    off = check_stored_weights(trained, dict(trained, vrand_thinned=0.90), "float16")
    assert not off["equal"] and off["worst_score"] == "vrand_thinned" and "differs by 0.05" in off["summary"]


def test_check_stored_weights_holds_the_warping_error_to_its_own_tolerance():
    """The warping error is ~1e-3 at most: a change of 2e-4 is far inside 1e-3 but is not 'the same'."""
    from unet_zoo.experiments.isbi2012.reproduce import check_stored_weights

    trained = {"rand_error": 0.10, "warping_error": 0.0004}
    off = check_stored_weights(trained, dict(trained, warping_error=0.0006), "float16")
    assert not off["equal"] and off["worst_score"] == "warping_error"
    same = check_stored_weights(trained, {"rand_error": 0.1005, "warping_error": 0.000401}, "float16")
    assert same["equal"] and same["worst_score"] == "rand_error"  # 5e-4 of 1e-3 beats 1e-6 of 5e-5
    assert set(same["differences"]) == {"rand_error", "warping_error"}


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
    run_dir = default_run_dir(recipe)

    def kill_after_step_2(progress):  # ends the run as SIGKILL would: step 3 done, its checkpoint not written
        if progress.event == "step" and progress.step == 3:
            raise InterruptedError

    with pytest.raises(InterruptedError):
        Trainer(recipe, out_dir=run_dir, callback=kill_after_step_2, final_outputs=False).run()
    assert load_training_state(run_dir).step == 2
    (resumed,) = reproduce_isbi("small", device="cpu", resume="latest")
    assert resumed.run_dir == run_dir and resumed.train_result.step == 3  # continued to the recipe's 3 steps
    assert (tmp_path / "cards/isbi-small/model.safetensors").is_file()
    with pytest.raises(ValueError, match="names one run folder, but --variant all trains 3 recipes"):
        reproduce_isbi("all", resume=run_dir)
