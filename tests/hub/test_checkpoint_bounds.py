"""A hostile or broken checkpoint folder is refused before anything big is allocated, with one clear message.

One class: whatever a config.json asks for (model_args of the wrong type or size, a model above the parameter
bound, weights whose header does not match, segmentation defaults that are NaN, a file that is not UTF-8),
loading fails with a CheckpointError naming the folder, in well under a second, and never reads the tensors.
"""

from __future__ import annotations

import json
import math
import time

import pytest
import torch

import unet_zoo
from unet_zoo.hub import serialization
from unet_zoo.hub.serialization import CONFIG_NAME, CheckpointError, read_folder
from unet_zoo.models.registry import ARG_BOUNDS, MAX_PARAMETERS, expected_state_shapes, model_args


@pytest.fixture
def tiny_folder(tmp_path):
    folder = tmp_path / "tiny"
    unet_zoo.save_pretrained(unet_zoo.create_model("small", base_channels=4, depth=2), folder)
    return folder


def _edit_config(folder, **changes):
    config = json.loads((folder / CONFIG_NAME).read_text())
    for key, value in changes.items():
        target = config
        *parents, last = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[last] = value
    (folder / CONFIG_NAME).write_text(json.dumps(config))  # json writes NaN/Infinity, as a hostile file may


@pytest.fixture
def no_tensor_reads(monkeypatch):
    """Fail the test if a refused checkpoint's tensors are read or a model is built on a real device."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the tensors were read before the checkpoint was checked")

    monkeypatch.setattr(serialization, "read_weights", forbidden)


HOSTILE_ARGS = [
    {"base_channels": 256},
    {"depth": 10**6},
    {"depth": "4"},
    {"depth": 4.0},
    {"depth": True},
    {"base_channels": -1},
    {"in_channels": 0},
    {"num_classes": 10**9},
    {"dropout": math.nan},
    {"dropout": math.inf},
    {"padding": 7},
    {"up_mode": "nearest"},
    {"norm": ["batch"]},
    {"base_channels": 128, "depth": 8},  # inside every bound, but billions of parameters
]


@pytest.mark.parametrize("args", HOSTILE_ARGS, ids=[json.dumps(a) for a in HOSTILE_ARGS])
def test_hostile_model_args_are_refused_fast_before_any_tensor_is_read(tiny_folder, no_tensor_reads, args):
    _edit_config(tiny_folder, **{f"model_args.{k}": v for k, v in args.items()})
    expected_state_shapes("small", model_args("small"))  # the meta device's one-time start-up is not the refusal's cost
    started = time.perf_counter()
    with pytest.raises(CheckpointError) as caught:
        read_folder(tiny_folder)
    assert time.perf_counter() - started < 1.0
    message = str(caught.value)
    assert "\n" not in message and str(tiny_folder) in message
    assert any(key in message for key in args) or "parameters" in message


def test_weights_that_do_not_match_the_config_are_refused_from_the_header_alone(tiny_folder, no_tensor_reads):
    _edit_config(tiny_folder, **{"model_args.base_channels": 8})  # the weights are of base_channels 4
    with pytest.raises(CheckpointError, match="shape mismatch"):
        read_folder(tiny_folder)


def test_the_bounds_hold_every_registered_architecture_and_refuse_the_parameter_bound():
    for name in unet_zoo.list_models():
        shapes = expected_state_shapes(name, model_args(name))
        assert shapes and sum(math.prod(s) for s in shapes.values()) <= MAX_PARAMETERS
        real = unet_zoo.create_model(name).state_dict()
        assert shapes == {key: tuple(tensor.shape) for key, tensor in real.items()}  # the meta model is the model
    assert set(ARG_BOUNDS["unet"]) >= set(model_args("original"))
    with pytest.raises(unet_zoo.models.registry.ModelArgsError, match="parameters"):
        expected_state_shapes("original", model_args("original", base_channels=128, depth=6))


BAD_SEGMENTATION = [
    {"sigma": math.inf},
    {"sigma": math.nan},
    {"sigma": -1},
    {"sigma": "3"},
    {"threshold": 1.0},
    {"min_size": 1.5},
    {"min_distance": 0},
    {"merge_threshold": 2},
    {"thresold": 0.5},
    "not a mapping",
]


@pytest.mark.parametrize("block", BAD_SEGMENTATION, ids=[json.dumps(b) for b in BAD_SEGMENTATION])
def test_bad_segmentation_defaults_in_a_config_are_refused_at_load(tiny_folder, block):
    _edit_config(tiny_folder, **{"pretrained.segmentation": block})
    with pytest.raises(CheckpointError, match="segmentation") as caught:
        read_folder(tiny_folder)
    assert str(tiny_folder) in str(caught.value)


def test_a_config_that_is_not_utf8_is_named(tiny_folder):
    (tiny_folder / CONFIG_NAME).write_bytes(b'{"model_name": "sm\xe4ll"}')
    with pytest.raises(CheckpointError, match="not UTF-8") as caught:
        read_folder(tiny_folder)
    assert str(tiny_folder / CONFIG_NAME) in str(caught.value)


def test_a_good_checkpoint_still_loads_the_same_weights(tiny_folder):
    model = read_folder(tiny_folder)
    reference = unet_zoo.create_model("small", base_channels=4, depth=2)
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}
    assert all(not t.is_meta for t in model.state_dict().values()) and isinstance(model.head.weight, torch.Tensor)


@pytest.mark.parametrize("args", HOSTILE_ARGS[:-1], ids=[json.dumps(a) for a in HOSTILE_ARGS[:-1]])
def test_a_recipe_is_held_to_the_same_bounds(args):
    from unet_zoo.training.recipes import RecipeError, load_recipe

    with pytest.raises(RecipeError, match=r"\[model.args\]"):
        load_recipe("tiny").with_overrides(model={"args": args})
