"""unet_zoo.hub.publish: a Hub-ready folder for any model, its card and scores, the stored-weights check."""

from __future__ import annotations

import json

import pytest
import torch

import unet_zoo
from unet_zoo.evaluation.evaluate import evaluate_model
from unet_zoo.hub.publish import (
    check_stored_weights,
    hardware_description,
    read_scores,
    refresh_card,
    write_hub_folder,
)
from unet_zoo.training.recipes import load_recipe
from unet_zoo.training.run_card import refresh_run_card, run_card_data
from unet_zoo.training.trainer import train

SCORES = {"rand_error": 0.1, "pixel_error": 0.05, "warping_error": 0.0004, "vrand_thinned": 0.95, "tta": False}


def _model():
    torch.manual_seed(0)
    return unet_zoo.create_model("small", base_channels=4, depth=2)


def test_any_model_is_published_with_its_card_and_scores(tmp_path):
    model = _model()
    card_data = {"training": {"dataset": "my EM stack, 4 slices", "steps": 10}}
    folder, check = write_hub_folder(model, tmp_path / "mine", card_data, scores=SCORES)
    assert check is None and sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no staging folder left
    assert {"model.safetensors", "config.json", "README.md", "scores.json"} <= {p.name for p in folder.iterdir()}
    card = (folder / "README.md").read_text()
    assert "my EM stack, 4 slices" in card and "0.05" in card
    config = json.loads((folder / "config.json").read_text())
    assert config["pretrained"]["metrics"] == {"warping_error": 0.0004, "rand_error": 0.1, "pixel_error": 0.05}
    assert read_scores(folder)["vrand_thinned"] == 0.95
    rebuilt = unet_zoo.from_pretrained(folder)
    for key, value in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value)
    # refreshed from the folder's own files: the same card; what config.json does not keep (notes, description)
    # comes from the fields given to refresh_card
    assert refresh_card(folder).read_text() == card
    assert "Trained in my own loop." in refresh_card(folder, {"notes": "Trained in my own loop."}).read_text()


def test_an_existing_folder_is_replaced_only_when_asked_and_only_when_ours(tmp_path):
    model = _model()
    folder, _ = write_hub_folder(model, tmp_path / "hub", scores=SCORES)
    with pytest.raises(FileExistsError, match="overwrite"):
        write_hub_folder(model, folder, scores=SCORES)
    write_hub_folder(model, folder, {"notes": "second"}, scores=SCORES, overwrite=True)
    assert "second" in (folder / "README.md").read_text()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="unet_zoo did not create"):
        write_hub_folder(model, foreign, scores=SCORES, overwrite=True)
    assert (foreign / "keep.txt").read_text() == "mine"


def test_rescore_scores_the_weights_read_back_in_the_stored_dtype(tmp_path):
    model = _model()
    seen = []

    def rescore(stored):
        seen.append(stored)
        return dict(SCORES, rand_error=0.1 + 2e-3)

    folder, check = write_hub_folder(model, tmp_path / "hub", scores=SCORES, rescore=rescore, dtype=torch.float16)
    assert len(seen) == 1 and seen[0] is not model
    assert check["dtype"] == "float16" and not check["equal"] and check["worst_score"] == "rand_error"
    assert check["summary"] in (folder / "README.md").read_text()
    assert read_scores(folder)["stored_weights"]["equal"] is False


def test_a_card_is_refreshed_only_from_a_folder_with_scores(tmp_path):
    folder, _ = write_hub_folder(_model(), tmp_path / "hub")
    with pytest.raises(FileNotFoundError, match="scores.json"):
        refresh_card(folder)


def test_hardware_description_names_the_cpu():
    assert "CPU" in hardware_description("cpu") and "torch" in hardware_description(None)


def test_check_stored_weights_reports_the_largest_score_change():
    trained = {"rand_error": 0.10, "pixel_error": 0.05, "vrand_thinned": 0.95, "tta": True}
    same = check_stored_weights(trained, dict(trained, rand_error=0.1000004), "float16")
    assert same["equal"] and same["max_abs_difference"] == pytest.approx(4e-7) and same["worst_score"] == "rand_error"
    assert "score the same" in same["summary"] and "float16" in same["summary"]
    off = check_stored_weights(trained, dict(trained, vrand_thinned=0.90), "float16")
    assert not off["equal"] and off["worst_score"] == "vrand_thinned" and "differs by 0.05" in off["summary"]


def test_check_stored_weights_holds_the_warping_error_to_its_own_tolerance():
    """The warping error is ~1e-3 at most: a change of 2e-4 is far inside 1e-3 but is not 'the same'."""
    trained = {"rand_error": 0.10, "warping_error": 0.0004}
    off = check_stored_weights(trained, dict(trained, warping_error=0.0006), "float16")
    assert not off["equal"] and off["worst_score"] == "warping_error"
    same = check_stored_weights(trained, {"rand_error": 0.1005, "warping_error": 0.000401}, "float16")
    assert same["equal"] and same["worst_score"] == "rand_error"  # 5e-4 of 1e-3 beats 1e-6 of 5e-5
    assert set(same["differences"]) == {"rand_error", "warping_error"}


@pytest.mark.slow
def test_hub_folder_from_a_tiny_run(tmp_path):

    result = train(load_recipe("tiny"), out_dir=tmp_path / "run")
    metrics = evaluate_model(result.model, result.data.val_images, result.data.val_labels, tta=False)
    rescored = []

    def rescore(model):
        rescored.append(model)
        return evaluate_model(model, result.data.val_images, result.data.val_labels, tta=False)

    folder, check = write_hub_folder(
        result.model,
        tmp_path / "hub",
        run_card_data(result, "test CPU", metrics),
        scores=metrics,
        figures_dir=result.run_dir,
        rescore=rescore,
    )
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
        write_hub_folder(result.model, folder, scores=metrics)
    assert json.loads((folder / "scores.json").read_text())["pixel_error"] == pytest.approx(metrics["pixel_error"])
    rebuilt = unet_zoo.from_pretrained(folder)
    for k, v in result.model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[k].cpu(), v.cpu())

    # The card can be written again from the folder's own files: the same text, weights untouched.
    weights = (folder / "model.safetensors").read_bytes()
    refresh_run_card(folder, load_recipe("tiny"))
    assert (folder / "README.md").read_text() == card and (folder / "model.safetensors").read_bytes() == weights
    # A recipe's targets are checked against the held-out scores on the card, met or missed.
    with_targets = load_recipe("tiny").with_overrides(
        recipe={"targets": {"pixel_error": "<= 1.0", "vrand_thinned": ">= 1.5"}, "target_notes": "Tried nothing."}
    )
    refreshed = refresh_run_card(folder, with_targets).read_text()
    assert "## Targets" in refreshed and "Tried nothing." in refreshed
    assert f"Pixel error (1 - best pixel F-score) <= 1: met ({metrics['pixel_error']:.4f})" in refreshed
    assert f"missed by {1.5 - metrics['vrand_thinned']:.4f}" in refreshed


@pytest.mark.slow
def test_card_records_the_pixel_size_the_model_was_trained_at(tmp_path):
    from unet_zoo.inference.rescale import model_pixel_size

    result = train(load_recipe("tiny").with_overrides(data={"pixel_size": 6.0}), steps=2, out_dir=tmp_path / "run")
    metrics = evaluate_model(result.model, result.data.val_images, result.data.val_labels, tta=False)
    folder, _ = write_hub_folder(result.model, tmp_path / "hub", run_card_data(result, "test CPU"), scores=metrics)
    assert json.loads((folder / "config.json").read_text())["pretrained"]["training"]["pixel_size_nm"] == 6.0
    assert "- Pixel size (nm): 6 x 6" in (folder / "README.md").read_text()
    assert model_pixel_size(unet_zoo.from_pretrained(folder)) == 6.0
