"""The trainer built from objects (a model, data, a loss and settings) trains exactly as the one a recipe builds,
resumes exactly, and waits for the device only at its log, validation and checkpoint steps."""

import dataclasses

import pytest
import torch

from unet_zoo import create_model
from unet_zoo.hub.factory import from_pretrained
from unet_zoo.hub.training_state import load_training_state
from unet_zoo.training.data import load_training_data
from unet_zoo.training.losses import weighted_cross_entropy
from unet_zoo.training.recipes import RecipeError, TrainCfg, load_recipe
from unet_zoo.training.trainer import Trainer, TrainProgress


@pytest.fixture(scope="module")
def recipe():
    return load_recipe("tiny").with_overrides(train={"steps": 4, "checkpoint_every": 2})


@pytest.fixture(scope="module")
def data(recipe):
    return load_training_data(recipe)


def _model(recipe):
    torch.manual_seed(recipe.train.seed)
    return create_model(recipe.model.name, **recipe.model.args)


def _objects(recipe, data, **options):
    """The tiny recipe's run, built from objects: its model, its data, the paper's loss and its settings."""
    return Trainer(
        _model(recipe),
        data,
        weighted_cross_entropy,
        optimizer=recipe.optimizer,
        schedule=recipe.schedule,
        train=recipe.train,
        augment=recipe.augment,
        tile=recipe.data.tile,
        final_outputs=False,
        **options,
    )


def _assert_same_weights(a, b):
    a, b = a.state_dict(), b.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_a_trainer_of_objects_gives_the_weights_of_the_recipes_trainer(tmp_path, recipe, data):
    by_recipe = Trainer.from_recipe(recipe, data=data, out_dir=tmp_path / "recipe", final_outputs=False).fit()
    by_objects = _objects(recipe, data, out_dir=tmp_path / "objects").fit()
    assert by_objects.step == by_recipe.step == recipe.train.steps
    _assert_same_weights(by_recipe.model, by_objects.model)
    start = _model(recipe).state_dict()
    assert any(not torch.equal(v, start[k]) for k, v in by_objects.model.state_dict().items()), "training changed nothing"
    # its run folder records the architecture, so it loads as a model like any run folder
    _assert_same_weights(from_pretrained(str(tmp_path / "objects")), by_objects.model)
    assert by_objects.recipe.model.name == recipe.model.name


def test_the_loss_given_is_the_loss_trained(tmp_path, recipe, data):
    calls = []

    def unweighted(logits, target, weight):
        calls.append(logits.shape)
        return weighted_cross_entropy(logits, target, None)

    paper = _objects(recipe, data, out_dir=tmp_path / "paper").fit()
    other = Trainer(
        _model(recipe),
        data,
        unweighted,
        train=recipe.train,
        tile=recipe.data.tile,
        out_dir=tmp_path / "other",
        final_outputs=False,
    ).fit()
    assert len(calls) == recipe.train.steps
    assert any(not torch.equal(v, other.model.state_dict()[k]) for k, v in paper.model.state_dict().items())


@pytest.mark.slow
def test_a_trainer_of_objects_resumes_exactly(tmp_path, recipe, data):
    full = _objects(recipe, data, out_dir=tmp_path / "full").fit()

    class Killed(Exception):
        pass

    def kill_after_3(progress):
        if progress.event == "step" and progress.step == 3:
            raise Killed  # after step 3, before its checkpoint: the last one is step 2's

    with pytest.raises(Killed):
        _objects(recipe, data, out_dir=tmp_path / "killed", callback=kill_after_3).fit()
    assert load_training_state(tmp_path / "killed").step == 2
    resumed = _objects(recipe, data, resume=tmp_path / "killed").fit()
    assert resumed.run_dir == tmp_path / "killed" and resumed.steps_this_session == 2
    _assert_same_weights(full.model, resumed.model)


def test_bad_settings_are_refused_before_training(recipe, data):
    with pytest.raises(RecipeError, match=r"train\.steps must be > 0"):
        Trainer(_model(recipe), data, train=TrainCfg(steps=0), tile=recipe.data.tile)
    with pytest.raises(RecipeError, match=r"data\.tile = 33 is not a valid input size"):
        Trainer(_model(recipe), data, tile=33)
    with pytest.raises(ValueError, match="tile: give the side"):
        Trainer(_model(recipe), data)
    with pytest.raises(ValueError, match="no output_size"):
        Trainer(torch.nn.Conv2d(1, 2, 3), data, tile=recipe.data.tile)
    other = create_model("small", base_channels=8, depth=2)
    with pytest.raises(ValueError, match=r"recipe: its \[model\] .* is not the model given"):
        Trainer(other, data, recipe=recipe)


HOST_READS = ("item", "tolist", "numpy", "__float__", "__int__", "__bool__")  # what waits for the device on a GPU


def test_steps_between_the_intervals_never_wait_for_the_device(tmp_path, recipe, data, monkeypatch):
    """Count the reads of a tensor's value on the host: none in a step that neither logs, validates nor checkpoints."""
    reads = []
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            reads.append(None)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    settings = dataclasses.replace(recipe.train, steps=10, log_every=5, eval_every=0, checkpoint_every=100)
    at_step: dict[int, int] = {}

    def count(progress: TrainProgress) -> None:
        if progress.event == "step":
            at_step[progress.step] = len(reads)

    trainer = Trainer(
        _model(recipe), data, train=settings, tile=recipe.data.tile, out_dir=tmp_path, callback=count, final_outputs=False
    )
    state = set(vars(trainer))
    trainer.fit()
    monkeypatch.undo()
    assert set(vars(trainer)) == state, "the trainer's state is created in __init__"
    # the reads between the reports of steps k-1 and k: step k and what step k-1 did after its report
    per_step = {k: at_step[k] - at_step[k - 1] for k in range(2, 11)}
    quiet = [k for k in per_step if k not in (5, 10)]
    assert {k: per_step[k] for k in quiet} == dict.fromkeys(quiet, 0)
    assert per_step[5] > 0, "the log at step 5 reads the loss: the counter sees host reads"
