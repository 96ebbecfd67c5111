"""segment / segment_probabilities: label images of cells from probabilities or an image and a model."""

from __future__ import annotations

import numpy as np
import pytest

import unet_zoo
from tests.segmentation.conftest import probabilities_of
from unet_zoo.evaluation.metrics import label_components, segmentation_scores
from unet_zoo.models.provenance import provenance_of, set_provenance
from unet_zoo.segmentation import SegmentationParams, checkpoint_params, segment, segment_probabilities


def test_probabilities_of_clean_cells_give_the_cells(cells):
    _, label = cells
    seg = unet_zoo.segment(probabilities_of(label))
    assert seg.dtype == np.uint32 and seg.shape == label.shape
    ids = np.unique(seg)
    assert ids[0] == 1 and np.array_equal(ids, np.arange(1, len(ids) + 1))  # no background, consecutive IDs
    scores = segmentation_scores(seg, label)
    assert scores["rand_error"] < 0.02 and scores["vinfo"] > 0.97, scores
    cells_in_truth = label_components(label > 0).max()
    assert abs(len(ids) - cells_in_truth) <= 0.1 * cells_in_truth  # tiny border cells fall under min_size


def test_a_cell_probability_map_alone_is_accepted(cells):
    _, label = cells
    probs = probabilities_of(label)
    assert np.array_equal(segment_probabilities(probs[1]), segment_probabilities(probs))


def test_agglomeration_merges_an_oversegmentation(cells):
    _, label = cells
    probs = probabilities_of(label)
    split = SegmentationParams(sigma=0.0, min_distance=2, min_size=0, merge_threshold=None)
    merged = SegmentationParams(sigma=0.0, min_distance=2, min_size=0, merge_threshold=0.5)
    many, few = segment(probs, params=split), segment(probs, params=merged)
    assert few.max() < many.max()
    assert segmentation_scores(few, label)["vrand_split"] > segmentation_scores(many, label)["vrand_split"]


def test_overrides_change_single_parameters(cells):
    _, label = cells
    probs = probabilities_of(label)
    assert segment(probs, min_size=10_000).max() == 1  # every segment smaller: one stays
    with pytest.raises(TypeError):
        segment(probs, thresold=0.5)


def test_an_image_and_a_model(cells):
    image, _ = cells
    model = unet_zoo.create_model("small", base_channels=4, depth=2)
    seg = unet_zoo.segment(image, model, tile=64)
    assert seg.shape == image.shape and seg.dtype == np.uint32 and seg.min() >= 1


@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        (np.zeros((8, 8), np.uint8), TypeError, "divide uint8 maps by 255"),
        (np.zeros((1, 8, 8), np.float32), ValueError, "channel 0 = membrane"),
        (np.full((8, 8), 2.0, np.float32), ValueError, "[0, 1]"),
    ],
)
def test_bad_probabilities_say_what_is_wrong(data, error, words):
    with pytest.raises(error, match=None) as err:
        segment(data)
    assert words in str(err.value)


def test_probabilities_with_a_model_are_refused(cells):
    _, label = cells
    model = unet_zoo.create_model("small", base_channels=4, depth=2)
    with pytest.raises(ValueError, match="either probabilities without a model"):
        unet_zoo.segment(probabilities_of(label), model)


def test_params_validate_and_round_trip():
    p = SegmentationParams(threshold=0.6, merge_threshold=None)
    assert SegmentationParams.from_dict(p.to_dict()) == p
    with pytest.raises(ValueError, match="unknown segmentation parameters"):
        SegmentationParams.from_dict({"treshold": 0.5})
    for bad in ({"threshold": 1.0}, {"sigma": -1}, {"min_distance": 0}, {"min_size": 2.5}, {"merge_threshold": 2}):
        with pytest.raises(ValueError):
            SegmentationParams(**bad)


def test_params_for_coarser_pixels_shrink_lengths_and_areas():
    p = SegmentationParams(sigma=3.0, min_distance=10, min_size=100)
    coarse = p.coarser(2.0)
    assert (coarse.sigma, coarse.min_distance, coarse.min_size) == (1.5, 5, 25)
    assert (coarse.threshold, coarse.merge_threshold) == (p.threshold, p.merge_threshold)
    assert p.coarser(1.0) is p and p.coarser(100.0).min_distance == 1
    with pytest.raises(ValueError, match="> 0"):
        p.coarser(0.0)


def test_checkpoint_params_come_from_the_checkpoint_block():
    model = unet_zoo.create_model("small", base_channels=4, depth=2)
    assert checkpoint_params(model) == SegmentationParams()
    card = {"segmentation": {"threshold": 0.7, "merge_threshold": None}}
    set_provenance(model, provenance_of(model).updated(card=card))
    assert checkpoint_params(model) == SegmentationParams(threshold=0.7, merge_threshold=None)


@pytest.mark.parametrize("name", ["isbi-small", "isbi-padded", "isbi-original"])
def test_published_checkpoints_carry_their_segmentation_defaults(name):
    """The card folder's config.json stores the tuned defaults; loading reads them back."""
    model = unet_zoo.from_pretrained(name)
    stored = provenance_of(model).card["segmentation"]
    assert checkpoint_params(model) == SegmentationParams.from_dict(stored)
