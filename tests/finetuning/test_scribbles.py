"""Fine-tuning from strokes: the scribble label form, its masked class-weighted loss, held-out strokes, bad input,
simulated strokes, and the napari helper that passes arrays (no Qt)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import unet_zoo
from unet_zoo.data.files import LabelledDataError, labelled_arrays, read_labels, resolve_label_form
from unet_zoo.finetuning.finetune import FinetuneStage
from unet_zoo.finetuning.strokes import CELL, MEMBRANE, draw_strokes
from unet_zoo.models.provenance import provenance_of
from unet_zoo.training.data import scribble_scores, sparse_weights, synthetic_cells
from unet_zoo.training.losses import weighted_cross_entropy
from unet_zoo.training.recipes import load_recipe


@pytest.fixture(scope="module")
def cells_and_strokes():
    images, cells = synthetic_cells(2, 96, seed=1)
    return images, cells, draw_strokes(cells, 6, rng=0, length=10)


@pytest.fixture()
def base(tmp_path):
    torch.manual_seed(0)
    unet_zoo.save_pretrained(unet_zoo.create_model("small", base_channels=4, depth=2), tmp_path / "base")
    return str(tmp_path / "base")


def _recipe():
    return load_recipe("finetune").with_overrides(data={"tile": 32}, train={"eval_every": 2, "checkpoint_every": 2})


def test_drawn_strokes_lie_on_their_class_and_follow_the_priority(cells_and_strokes):
    _, cells, strokes = cells_and_strokes
    assert set(np.unique(strokes)) == {0, MEMBRANE, CELL}
    assert not (strokes == MEMBRANE)[cells == 1].any() and not (strokes == CELL)[cells == 0].any()
    assert 0 < (strokes > 0).mean() < 0.2  # sparse
    priority = np.zeros(cells.shape, np.float32)
    priority[:, :, 48:] = 1.0  # the right half matters
    placed = draw_strokes(cells, 4, rng=1, length=6, priority=priority, top=0.3)
    columns = np.nonzero(placed > 0)[2]
    assert columns.size and np.median(columns) >= 48


def test_proportional_placement_follows_the_priority_and_spacing_spreads_strokes(cells_and_strokes):
    from scipy import ndimage

    _, cells, _ = cells_and_strokes
    priority = np.full(cells.shape, 0.05, np.float32)
    priority[:, :, 48:] = 1.0  # 20x the weight on the right half
    placed = draw_strokes(cells, 4, rng=1, length=6, priority=priority, top=None)
    columns = np.nonzero(placed > 0)[2]
    assert columns.size and np.median(columns) >= 48
    for spacing in (2, 6):  # no pixel of a cell stroke within `spacing` px (city block) of a membrane stroke
        strokes = draw_strokes(cells, 6, rng=2, length=6, spacing=spacing)
        for s in strokes:
            near = ndimage.binary_dilation(s == MEMBRANE, iterations=spacing)
            assert (s == CELL).any() and not (near & (s == CELL)).any()
    with pytest.raises(ValueError, match="spacing"):
        draw_strokes(cells, 2, spacing=0)


def test_a_pair_of_maps_places_each_class_by_its_own(cells_and_strokes):
    _, cells, _ = cells_and_strokes
    right = np.full(cells.shape, 0.01, np.float32)
    right[:, :, 48:] = 1.0
    placed = draw_strokes(cells, 4, rng=1, length=6, priority=(right, right[:, :, ::-1]), top=None)
    assert np.median(np.nonzero(placed == MEMBRANE)[2]) >= 48 and np.median(np.nonzero(placed == CELL)[2]) < 48
    with pytest.raises(ValueError, match="pair"):
        draw_strokes(cells, 2, priority=(right, right, right))  # type: ignore[arg-type]


def test_stratified_strokes_cover_every_part_of_the_slice(cells_and_strokes):
    _, cells, _ = cells_and_strokes
    priority = np.full(cells.shape, 0.01, np.float32)
    priority[:, :, 48:] = 1.0  # 100x the weight on the right half
    for stratify in (False, True):
        placed = draw_strokes(cells, 4, rng=3, length=6, priority=priority, top=None, stratify=stratify)
        for cls in (MEMBRANE, CELL):  # count 4 on a square slice: a 2x2 grid, one stroke of each class per quarter
            quarters = [(placed[:, y : y + 48, x : x + 48] == cls).any(axis=(1, 2)) for y in (0, 48) for x in (0, 48)]
            covered = np.stack(quarters).all(axis=0)
            assert covered.all() if stratify else not covered.any()
    assert not (placed == MEMBRANE)[cells == 1].any() and not (placed == CELL)[cells == 0].any()


def test_a_second_round_keeps_the_first_strokes_and_its_distance(cells_and_strokes):
    from scipy import ndimage

    _, cells, first = cells_and_strokes
    both = draw_strokes(cells, 3, rng=5, length=6, spacing=4, painted=first)
    np.testing.assert_array_equal(both[first > 0], first[first > 0])  # the first round is kept as painted
    new = (both > 0) & (first == 0)
    assert new.any()
    for i in range(len(cells)):  # new strokes keep `spacing` px from the earlier ones
        assert not (ndimage.binary_dilation(first[i] > 0, iterations=4) & new[i]).any()
    assert not (both == MEMBRANE)[cells == 1].any() and not (both == CELL)[cells == 0].any()
    with pytest.raises(ValueError, match="painted"):
        draw_strokes(cells, 2, painted=first[0])


def test_auto_recognises_scribbles_and_dense_labels_stay_dense(cells_and_strokes):
    _, cells, strokes = cells_and_strokes
    assert resolve_label_form(strokes) == "scribbles"
    assert resolve_label_form(cells * 255) == "binary"
    dense_ids = np.where(cells > 0, 1 + (np.arange(cells.size).reshape(cells.shape) % 2), 0)  # {0,1,2}, few zeros
    assert resolve_label_form(dense_ids) == "instances"
    target, form, labelled = read_labels(strokes)
    assert form == "scribbles" and labelled is not None
    np.testing.assert_array_equal(labelled, strokes > 0)
    np.testing.assert_array_equal(target[labelled], (strokes == CELL)[labelled])


def test_sparse_weights_mask_the_unlabelled_pixels_and_balance_the_classes(cells_and_strokes):
    _, _, strokes = cells_and_strokes
    target, weights = sparse_weights((strokes == CELL).astype(np.uint8), strokes > 0)
    assert (weights[strokes == 0] == 0).all()
    membrane, cell = weights[strokes == MEMBRANE].sum(), weights[strokes == CELL].sum()
    assert membrane == pytest.approx(cell, rel=1e-4)
    assert weights[strokes > 0].mean() == pytest.approx(1.0, rel=1e-4)
    np.testing.assert_array_equal(target[strokes > 0], (strokes == CELL)[strokes > 0])
    # unlabelled pixels take the class of the nearest stroke: next to a cell stroke, "cell"
    ys, xs = np.nonzero(strokes[0] == CELL)
    assert target[0, ys[0], xs[0]] == 1
    # the loss ignores the unlabelled pixels: whatever the logits there, the loss is the same
    logits = torch.randn(2, 2, 96, 96)
    changed = logits.clone()
    changed[:, :, torch.from_numpy(strokes == 0).any(0)] = 50.0
    args = torch.from_numpy(target).long(), torch.from_numpy(weights)
    assert weighted_cross_entropy(logits, *args) != weighted_cross_entropy(torch.randn(2, 2, 96, 96), *args)
    both = torch.from_numpy(strokes == 0).all(0)
    changed = logits.clone()
    changed[:, :, both] = 50.0
    assert torch.allclose(weighted_cross_entropy(logits, *args), weighted_cross_entropy(changed, *args))


def test_membrane_share_sets_each_class_share_of_the_loss(cells_and_strokes):
    _, _, strokes = cells_and_strokes
    target, weights = sparse_weights((strokes == CELL).astype(np.uint8), strokes > 0, membrane_share=0.3)
    total = weights[strokes > 0].sum()
    assert weights[strokes == MEMBRANE].sum() / total == pytest.approx(0.3, rel=1e-4)
    assert weights[strokes > 0].mean() == pytest.approx(1.0, rel=1e-4)
    assert len(np.unique(weights[strokes == MEMBRANE])) == 1  # one weight per class


def test_membrane_share_outside_zero_to_one_is_refused():
    from unet_zoo.training.recipes import RecipeError, load_recipe

    with pytest.raises(RecipeError, match="loss.membrane_share"):
        load_recipe("finetune").with_overrides(loss={"membrane_share": 1.0})


def test_scribble_scores_count_only_labelled_pixels():
    labels = np.array([[[0, 1, 1, 0]]], np.uint8)
    labelled = np.array([[[True, True, False, False]]])
    probs = np.array([[[0.2, 0.9, 0.0, 1.0]]])  # the unlabelled pixels are wrong; they must not count
    scores = scribble_scores(probs, labels, labelled)
    assert scores["stroke_accuracy"] == 1.0 and scores["labelled_pixels"] == 2
    scores = scribble_scores(np.array([[[0.7, 0.9, 0.0, 1.0]]]), labels, labelled)
    assert scores["membrane_accuracy"] == 0.0 and scores["cell_accuracy"] == 1.0 and scores["stroke_accuracy"] == 0.5


@pytest.mark.slow
def test_finetune_on_strokes_from_arrays_scores_held_out_strokes(cells_and_strokes, base, tmp_path):
    images, _, strokes = cells_and_strokes
    notes: list[str] = []

    def seen(event):
        if isinstance(event, FinetuneStage) and event.note:
            notes.append(event.note)

    result = unet_zoo.finetune(
        base, images, strokes, tmp_path / "out", steps=2, device="cpu", recipe=_recipe(), run_dir=tmp_path / "run", callback=seen
    )
    assert notes and "scribbles" in notes[0] and "right" in notes[0]  # what auto decided and what is held out
    for scores in (result.before, result.after):
        assert {"stroke_accuracy", "membrane_accuracy", "cell_accuracy"} <= set(scores)
        assert 0 <= scores["stroke_accuracy"] <= 1
    card = (tmp_path / "out" / "README.md").read_text()
    assert "scribbles" in card and "masked, class-weighted (40% of the loss on membrane pixels)" in card
    assert provenance_of(unet_zoo.from_pretrained(str(tmp_path / "out"))).architecture == "small"


@pytest.mark.slow
def test_dense_held_out_labels_with_strokes_give_evaluate_scores(cells_and_strokes, base, tmp_path):
    images, cells, strokes = cells_and_strokes
    result = unet_zoo.finetune(
        base,
        images,
        strokes,
        tmp_path / "out",
        label_form="scribbles",
        val_images=images[:1],
        val_labels=cells[:1] * 255,
        steps=1,
        device="cpu",
        recipe=_recipe(),
        run_dir=tmp_path / "run",
    )
    assert "segmentation" in result.after and "vrand_thinned" in result.after
    assert "2 slices" not in result.held_out and "1 slices" in result.held_out


def test_bad_scribbles_are_refused_before_any_work(cells_and_strokes, base, tmp_path):
    images, _, strokes = cells_and_strokes

    def tune(labels, **kwargs):
        return unet_zoo.finetune(base, images, labels, tmp_path / "x", steps=1, recipe=_recipe(), device="cpu", **kwargs)

    with pytest.raises(LabelledDataError, match="differ in shape"):
        tune(strokes[:, :90])
    with pytest.raises(LabelledDataError, match="also hold 3"):
        tune(np.where(strokes == CELL, 3, strokes), label_form="scribbles")
    with pytest.raises(LabelledDataError, match="no cell stroke"):
        tune(np.where(strokes == CELL, 0, strokes), label_form="scribbles")
    only_right = strokes.copy()
    only_right[:, :, :64] = 0  # the right 32 px of 96 are held out
    with pytest.raises(LabelledDataError, match="held-out part"):
        tune(only_right, label_form="scribbles")
    only_left = strokes.copy()
    only_left[:, :, 60:] = 0
    with pytest.raises(LabelledDataError, match="no .* stroke to score on"):
        tune(only_left, label_form="scribbles")
    assert not (tmp_path / "x").exists() and not (tmp_path / "runs").exists()


def test_scribbles_resampled_to_the_model_pixel_size_stay_strokes(cells_and_strokes):
    images, _, strokes = cells_and_strokes
    from unet_zoo.training.data import _resample

    pairs = labelled_arrays(images, strokes, pixel_size=8.0)
    pairs, size = _resample(pairs, 8.0, 4.0)
    assert size == 4.0 and pairs.labels.shape == (2, 192, 192) and pairs.labelled is not None
    assert pairs.labelled.mean() == pytest.approx((strokes > 0).mean(), rel=0.05)
    assert set(np.unique(pairs.labels[pairs.labelled])) == {0, 1}


@pytest.mark.slow
def test_napari_strokes_helper_writes_only_the_model_folder(cells_and_strokes, base, tmp_path):
    from unet_zoo.napari._finetune import finetune_on_strokes

    images, _, strokes = cells_and_strokes
    stack = np.concatenate([images, images[:1]])  # a third section without strokes is left out
    painted = np.concatenate([strokes, np.zeros_like(strokes[:1])])
    steps: list[tuple[int, int]] = []
    result = finetune_on_strokes(
        base,
        stack,
        painted,
        models_dir=tmp_path / "models",
        steps=2,
        recipe=_recipe(),
        progress=lambda step, total: steps.append((step, total)),
    )
    assert steps[-1] == (2, 2)
    assert [p.name for p in (tmp_path / "models").iterdir()] == [result.out.name]
    with pytest.raises(ValueError, match="nothing is painted"):
        finetune_on_strokes(base, stack, np.zeros_like(painted), models_dir=tmp_path / "models")
