"""unet_zoo.models.hub_mixin: the models reach the checkpoint and Hub layer through the functions the hub connects."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

import unet_zoo
from unet_zoo.hub import pretrained as hub
from unet_zoo.models import hub_mixin, registry
from unet_zoo.models.registry import PretrainedCfg


def test_hub_connects_its_functions_on_import():
    functions = hub_mixin.hub_functions()
    assert functions.save_pretrained is hub.save_pretrained and functions.push_to_hub is hub.push_model
    assert functions.from_pretrained is hub.load_instance_of


def test_without_the_hub_layer_the_error_says_what_to_do(monkeypatch):
    monkeypatch.setattr(hub_mixin, "_functions", None)
    with pytest.raises(RuntimeError, match="needs unet_zoo.hub.pretrained"):
        unet_zoo.create_model("small", base_channels=4, depth=2).save_pretrained("unused")


def test_create_model_pretrained_loads_through_the_connected_loader(monkeypatch, tmp_path):
    # an architecture without a published checkpoint, so "mixin-small" is the one create_model(pretrained=True) finds
    saved = unet_zoo.create_model("padded-bilinear", base_channels=4, depth=2)
    folder = saved.save_pretrained(tmp_path / "ckpt")
    calls = []

    def load(model_class, name, **kwargs):  # the registry name resolves to a local folder here: no network
        calls.append((model_class, name))
        return hub.load_instance_of(model_class, folder, **kwargs)

    monkeypatch.setattr(hub_mixin, "_functions", dataclasses.replace(hub_mixin.hub_functions(), from_pretrained=load))
    monkeypatch.setitem(
        registry.PRETRAINED, "mixin-small", PretrainedCfg(name="mixin-small", architecture="padded-bilinear", hf_hub_id="x/y")
    )
    model = unet_zoo.create_model("padded-bilinear", pretrained=True)
    assert calls == [(nn.Module, "mixin-small")]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), saved.state_dict().values()))


def test_from_pretrained_checks_the_class(tmp_path):
    folder = unet_zoo.create_model("small", base_channels=4, depth=2).save_pretrained(tmp_path / "ckpt")
    assert isinstance(unet_zoo.UNet.from_pretrained(folder), unet_zoo.UNet)
    with pytest.raises(hub.CheckpointError, match="not a TimmUNet"):
        unet_zoo.TimmUNet.from_pretrained(folder)
