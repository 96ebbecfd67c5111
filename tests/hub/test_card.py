"""unet_zoo.hub.card: model cards parse with huggingface_hub and carry the Hub metadata and the paper's numbers."""

from __future__ import annotations

import json

import pytest
import torch
from huggingface_hub import ModelCard

import unet_zoo
from unet_zoo.experiments.isbi2012.paper import PAPER_TABLE1, TABLE1_CARD_FIELDS
from unet_zoo.hub.card import CardInfo, render_model_card
from unet_zoo.hub.serialization import model_card_text
from unet_zoo.models.provenance import provenance_of
from unet_zoo.models.registry import model_args

TRAINING = {
    "recipe": "recipes/isbi-original.toml",
    "steps": 12000,
    "hardware": "NVIDIA H100 80GB HBM3",
    "time_s": 5400.0,
    "held_out": "slices 25-29 of the ISBI 2012 training stack",
    "held_out_split": "slices 25-29",
    "deviations": ["Adam instead of SGD"],
}
METRICS = {"warping_error": 0.00051, "rand_error": 0.0521, "pixel_error": 0.0734}


def test_card_yaml_has_the_hub_metadata_and_model_index():
    text = render_model_card(
        CardInfo(
            "original",
            model_args("original"),
            params=31_031_810,
            metrics=METRICS,
            training=TRAINING,
            checkpoint_name="isbi-original",
        )
    )
    card = ModelCard(text)
    data = card.data
    assert data.library_name == "unet_zoo" and data.license == "mit"
    assert data.pipeline_tag == "image-segmentation" and data.datasets == ["isbi2012"]
    assert {"unet_zoo", "u-net", "image-segmentation", "unet_zoo:original"} <= set(data.tags)
    assert data.model_name == "isbi-original"
    results = {r.metric_type: r for r in data.eval_results}
    assert {k: r.metric_value for k, r in results.items()} == METRICS
    assert all(r.task_type == "image-segmentation" and r.dataset_split == "slices 25-29" for r in results.values())


def test_card_body_says_what_how_trained_metrics_beside_paper_limitations_usage():
    text = render_model_card(
        CardInfo(
            "original",
            model_args("original"),
            params=31_031_810,
            metrics=METRICS,
            training=TRAINING,
            checkpoint_name="isbi-original",
            **TABLE1_CARD_FIELDS,
        )
    )
    body = ModelCard(text).text
    for section in ("## Model", "## Training", "## Evaluation", "## Limitations", "## Usage"):
        assert section in body
    assert "Parameters: 31,031,810" in body
    assert "- Steps: 12000" in body and "- Hardware: NVIDIA H100 80GB HBM3" in body
    assert "- Training time: 1 h 30 min (5400 s)" in body and "Adam instead of SGD" in body
    assert "| Rand error | 0.0521 | 0.0382 |" in body
    assert "| Warping error | 0.00051 | 0.000353 |" in body and "| Pixel error | 0.0734 | 0.0611 |" in body
    assert 'unet_zoo.from_pretrained("isbi-original")' in body
    assert "torch.rand(1, 1, 572, 572)" in body and "(1, 2, 388, 388)" in body  # the paper's tile sizes
    assert "unet-zoo download isbi-original" in body
    assert "Trained on at most 30 slices" in body  # TRAINING names no slice count


def test_card_limitations_use_the_real_number_of_training_slices():
    training = dict(TRAINING, dataset="ISBI 2012, 24 training slices")
    body = ModelCard(
        render_model_card(CardInfo("small", model_args("small"), params=10, metrics=METRICS, training=training))
    ).text
    assert "Trained on 24 slices (512x512)" in body and "30 slices" not in body


def test_card_without_metrics_or_training():
    text = render_model_card(CardInfo("small", model_args("small"), params=10))
    card = ModelCard(text)
    assert card.data.eval_results is None and card.data.library_name == "unet_zoo"
    assert "Not evaluated" in card.text and "Table 1" not in card.text
    assert "No training information" in card.text and "unet-zoo download" not in card.text
    with_reference = render_model_card(CardInfo("small", model_args("small"), params=10, **TABLE1_CARD_FIELDS))
    assert "Not evaluated. For reference, the paper's Table 1" in with_reference
    assert str(PAPER_TABLE1["rand_error"]) in with_reference


def test_a_card_without_reference_scores_shows_ours_alone():
    """A model trained on other data (no reference scores given) carries no Table 1 column or note."""
    scores = {**METRICS, "vrand_thinned": 0.981}
    text = render_model_card(
        CardInfo("small", model_args("small"), params=10, metrics=METRICS, held_out_scores=scores, datasets=["mine"])
    )
    body = ModelCard(text).text
    assert "Table 1" not in body and str(PAPER_TABLE1["rand_error"]) not in body
    assert "| Rand error | 0.0521 |" in body and "| V_rand after thinning (leaderboard) | 0.9810 |" in body
    assert ModelCard(text).data.eval_results[1].metric_value == METRICS["rand_error"]


def test_save_pretrained_card_loads_and_records_pretrained_info(tmp_path):
    model = unet_zoo.create_model("small", base_channels=4)
    unet_zoo.save_pretrained(
        model, tmp_path, card_data={"checkpoint_name": "isbi-small", "metrics": METRICS, "training": TRAINING}
    )
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.library_name == "unet_zoo" and card.data.model_name == "isbi-small"
    assert f"{sum(p.numel() for p in model.parameters()):,}" in card.text
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["pretrained"]["metrics"] == METRICS and config["pretrained"]["checkpoint_name"] == "isbi-small"
    reloaded = unet_zoo.from_pretrained(tmp_path)
    assert provenance_of(reloaded).card["training"]["steps"] == 12000
    unet_zoo.save_pretrained(reloaded, tmp_path / "again")  # metrics survive a load/save cycle
    assert ModelCard.load(tmp_path / "again" / "README.md").data.eval_results[0].metric_value == METRICS["warping_error"]
    assert ModelCard(model_card_text(model)).data.library_name == "unet_zoo"


def test_given_card_text_is_written_as_is_and_bad_card_data_is_refused(tmp_path):
    model = unet_zoo.create_model("small", base_channels=4)
    text = "---\nlibrary_name: unet_zoo\n---\n\n# custom card\n"
    unet_zoo.save_pretrained(model, tmp_path, card=text)
    assert (tmp_path / "README.md").read_text() == text
    with pytest.raises(ValueError, match="unknown card_data keys \\['metric'\\]"):
        unet_zoo.save_pretrained(model, tmp_path, card_data={"metric": {}})


def test_usage_snippet_runs(tmp_path, monkeypatch):
    torch.manual_seed(0)
    folder = tmp_path / "snippet-model"
    unet_zoo.save_pretrained(unet_zoo.create_model("small", base_channels=4), folder, card_data={"repo_id": str(folder)})
    body = ModelCard.load(folder / "README.md").text
    code = body.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(code, namespace)  # loads the folder, runs a 512x512 tile
    assert namespace["logits"].shape == (1, 2, 512, 512)
    assert torch.allclose(namespace["probabilities"].sum(dim=1), torch.ones(1, 512, 512))


def test_card_renders_every_section_of_a_reproduced_checkpoint_once():
    scores = {**METRICS, "vrand_thinned": 0.981, "seconds_per_slice": 6.5, "num_slices": 6, "tta": True}
    plain = {**METRICS, "rand_error": 0.09, "seconds_per_slice": 0.8, "num_slices": 6, "tta": False}
    text = render_model_card(
        CardInfo(
            "original",
            model_args("original"),
            params=31_031_810,
            metrics=METRICS,
            training=TRAINING,
            checkpoint_name="isbi-original",
            held_out_scores=scores,
            held_out_scores_without_tta=plain,
            stored_weights="They score the same.",
            notes="Kept from the paper: everything else.",
            deviations=["Adam instead of SGD", "256 px tiles"],
            figures={"held-out predictions": "predictions.png"},
            **TABLE1_CARD_FIELDS,
        )
    )
    body = ModelCard(text).text
    order = ["## Training", "## Evaluation", "### All held-out scores", "![held-out predictions](predictions.png)"]
    order += ["## Stored weights", "## Recipe notes", "## Deviations from the paper", "## Limitations", "## Usage"]
    positions = [body.index(heading) for heading in order]
    assert positions == sorted(positions) and all(body.count(heading) == 1 for heading in order)
    assert "| V_rand after thinning (leaderboard) | 0.9810 | - | - |" in body
    assert "| Rand error (1 - V_rand, 2012 definition) | 0.0521 | 0.0900 | 0.0382 |" in body
    assert "6.50 s per 512x512 slice with TTA, 0.80 s without, on NVIDIA H100 80GB HBM3" in body
    assert "- 256 px tiles" in body and "- Deviations:" not in body  # listed in their own section only
