import dataclasses
import json
from pathlib import Path

import pytest

from unet_zoo.data.augment import AugmentConfig
from unet_zoo.training.recipes import RecipeError, available_recipes, load_recipe, recipe_from_dict, recipe_path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

GPU_PAPER = ["isbi-original", "isbi-padded", "isbi-small"]
CPU = ["isbi-original-cpu", "isbi-padded-cpu", "isbi-small-cpu"]  # the published checkpoints' recipes
PAPER = GPU_PAPER + CPU


def test_shipped_recipes_load():
    names = available_recipes()
    for name in [*PAPER, "isbi-quick", "tiny"]:
        assert name in names
        recipe = load_recipe(name)
        assert recipe.name == name
        assert recipe.recipe.deviations, f"{name} must list its deviations from the paper"


@pytest.mark.parametrize("name", PAPER)
def test_paper_values(name):
    r = load_recipe(name)
    assert (r.loss.w0, r.loss.sigma) == (10.0, 5.0)
    assert r.model.args.get("dropout", 0.5) == 0.5 and r.model.args.get("init", "paper") == "paper"
    assert r.augment.enabled
    assert (r.data.k, r.data.fold) == (5, 4)  # slices 24-29 held out
    if name in GPU_PAPER:
        assert (r.optimizer.name, r.optimizer.momentum) == ("sgd", 0.99)
        assert r.data.tile >= 512


@pytest.mark.parametrize("name", CPU)
def test_cpu_recipes_publish_their_checkpoint_and_say_how_they_depart(name):
    r = load_recipe(name)
    assert r.recipe.checkpoint == name.removesuffix("-cpu")
    assert (r.train.precision, r.train.compile) == ("fp32", False)
    text = " ".join(r.recipe.deviations)
    assert "Adam" in text and "held out" in text
    if r.model.init_from:  # the card must say where the weights started
        assert r.model.init_from in text


def test_original_uses_572_tiles():
    assert load_recipe("isbi-original").data.tile == 572


def test_path_and_name_are_equivalent():
    path = Path(__file__).resolve().parents[2] / "recipes" / "tiny.toml"
    assert load_recipe(path) == load_recipe("tiny") == load_recipe("tiny.toml")


def test_unknown_name_lists_known_recipes():
    with pytest.raises(RecipeError, match="Known recipes: .*isbi-original"):
        load_recipe("isbi-orignal")


def _write(tmp_path, text):
    path = tmp_path / "r.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, match",
    [
        ("[train]\nstesp = 3\n", r"unknown key train.stesp \(did you mean 'steps'\?\)"),
        ("[trian]\nsteps = 3\n", "unknown section"),
        ("[train]\nsteps = 'many'\n", "train.steps must be an integer"),
        ("[train]\nsteps = 0\n", "train.steps must be > 0"),
        ("[optimizer]\nname = 'lbfgs'\n", "optimizer.name = 'lbfgs' is not allowed"),
        ("[optimizer]\nmomentum = 1.5\n", "momentum must be in"),
        ("[model]\nname = 'orignal'\n", "Did you mean 'original'"),
        ("[model]\nname = 'original'\n[data]\ntile = 512\n", "nearest valid sizes: 508 or 524"),
        ("[data]\nfold = 5\n", "data.fold must be in 0..4"),
        ("[train\n", "not valid TOML"),
    ],
)
def test_bad_recipes_are_explained(tmp_path, text, match):
    with pytest.raises(RecipeError, match=match):
        load_recipe(_write(tmp_path, text))


def test_error_names_the_file(tmp_path):
    with pytest.raises(RecipeError, match="r.toml"):
        load_recipe(_write(tmp_path, "[train]\nsteps = -1\n"))


def test_overrides_are_validated_and_round_trip():
    r = load_recipe("tiny")
    r2 = r.with_overrides(train={"steps": 2})
    assert r2.train.steps == 2 and r.train.steps == 6
    assert recipe_from_dict(r2.as_dict()) == recipe_from_dict(r2.as_dict())
    with pytest.raises(RecipeError, match="batch_size must be > 0"):
        r.with_overrides(train={"batch_size": 0})


def test_unknown_augmentation_option_is_explained(tmp_path):
    """The error names the key, the closest one, every allowed key of [augment] and the file."""
    allowed = ", ".join(f.name for f in dataclasses.fields(AugmentConfig))
    with pytest.raises(
        RecipeError,
        match=rf"unknown key augment\.elastic_sigmaa \(did you mean 'elastic_sigma'\?\); "
        rf"allowed keys in \[augment\]: {allowed} in .*r\.toml",
    ):
        load_recipe(_write(tmp_path, "[augment]\nelastic_sigmaa = 3.0\n"))


@pytest.mark.parametrize(
    "text, match",
    [
        ("[augment]\nrotate = 'yes'\n", "augment.rotate must be true or false"),
        ("[augment]\nelastic_grid = 2.5\n", "augment.elastic_grid must be an integer"),
        ("[augment]\nbrightness = 0.1\n", r"augment.brightness must be a list of 2 values"),
        ("[augment]\ngamma = [0.0, 1.0]\n", r"\[augment\]: AugmentConfig.gamma must be > 0"),
        ("[augment]\nimage_mode = 'nearest'\n", r"\[augment\]: AugmentConfig.image_mode must be 'bicubic' or 'bilinear'"),
        ("augment = 3\n", r"\[augment\] must be a TOML table"),
    ],
)
def test_bad_augmentation_values_are_explained(tmp_path, text, match):
    with pytest.raises(RecipeError, match=match) as info:
        load_recipe(_write(tmp_path, text))
    assert str(info.value).endswith("r.toml")


def test_augment_is_a_typed_config_that_round_trips_as_its_table():
    tiny = load_recipe("tiny")  # its [augment] table states enabled and elastic_sigma only
    assert isinstance(tiny.augment, AugmentConfig)
    assert tiny.augment == AugmentConfig(enabled=True, elastic_sigma=2.0)
    assert tiny.as_dict()["augment"] == {"enabled": True, "elastic_sigma": 2.0}  # recipe.json: the table as written
    assert recipe_from_dict(json.loads(json.dumps(tiny.as_dict())), source=tiny.source) == tiny  # resume from a checkpoint
    changed = tiny.with_overrides(augment={"shift": 4, "gamma": [1, 1]})
    assert (changed.augment.shift, changed.augment.gamma, changed.augment.elastic_sigma) == (4, (1.0, 1.0), 2.0)
    assert changed.as_dict()["augment"] == {"enabled": True, "elastic_sigma": 2.0, "shift": 4, "gamma": [1.0, 1.0]}
    assert load_recipe("isbi-original").as_dict()["augment"] == tomllib.loads(recipe_path("isbi-original").read_text())["augment"]
    assert recipe_from_dict({}).augment == AugmentConfig() and recipe_from_dict({}).as_dict()["augment"] == {}


# Keys a paper recipe may leave out: where the data lives, and options of choices the recipe does not make.
NOT_APPLICABLE = {
    "data": {
        "data_dir",
        "synthetic_slices",
        "synthetic_size",
        # source = "files" only: the user's images and labels and how to read them
        *("images", "labels", "val_images", "val_labels", "foreground", "label_form", "boundary_width"),
        *("pixel_size", "resample_to"),
    },
    "loss": {"ignore_border", "membrane_share"},  # source = "files" only: masked losses of the user's labels
    "optimizer": {"betas"},  # Adam/AdamW only; the paper recipes use SGD
    "schedule": {"step_every", "gamma"},  # kind = "step" only; the paper recipes use cosine
    # what the card checks after training, not a hyperparameter: a recipe without targets has none
    "recipe": {"targets", "target_notes"},
}
ADAM_NOT_APPLICABLE = {"momentum", "nesterov"}  # SGD only; the CPU recipes use Adam


@pytest.mark.parametrize("name", PAPER)
def test_paper_recipes_state_every_hyperparameter(name):
    """Nothing a paper recipe trains with comes from a default hidden in code: every key is in the file."""
    import dataclasses

    from unet_zoo.data.augment import AugmentConfig
    from unet_zoo.models.registry import get_entry
    from unet_zoo.training.recipes import Recipe

    raw = tomllib.loads(recipe_path(name).read_text())
    recipe = load_recipe(name)
    assert recipe.schedule.kind == "cosine"  # what NOT_APPLICABLE assumes
    not_applicable = {
        **NOT_APPLICABLE,
        "optimizer": NOT_APPLICABLE["optimizer"] if recipe.optimizer.name == "sgd" else ADAM_NOT_APPLICABLE,
    }
    for section in ("recipe", "data", "loss", "optimizer", "schedule", "train", "eval"):
        cls = type(getattr(Recipe(), section))
        missing = {f.name for f in dataclasses.fields(cls)} - set(raw[section]) - not_applicable.get(section, set())
        assert not missing, f"[{section}] of {name} leaves {sorted(missing)} to code defaults"
    model_keys = set(get_entry(recipe.model.name).default_args) | {"dropout", "init"}
    assert model_keys <= set(raw["model"]["args"]), sorted(model_keys - set(raw["model"]["args"]))
    augment_keys = {f.name for f in dataclasses.fields(AugmentConfig)}
    assert augment_keys <= set(raw["augment"]), sorted(augment_keys - set(raw["augment"]))


def test_recipe_targets_must_name_a_score_and_a_bound():
    import pytest

    from unet_zoo.training.recipes import RecipeError, load_recipe

    recipe = load_recipe("tiny")
    assert recipe.with_overrides(recipe={"targets": {"rand_error": "<= 0.0382"}}).recipe.targets == {"rand_error": "<= 0.0382"}
    with pytest.raises(RecipeError, match="recipe.targets: unknown score 'rand'"):
        recipe.with_overrides(recipe={"targets": {"rand": "<= 0.1"}})
    with pytest.raises(RecipeError, match="recipe.targets: target rand_error = 'low'"):
        recipe.with_overrides(recipe={"targets": {"rand_error": "low"}})
