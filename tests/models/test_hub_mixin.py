"""unet_zoo.models.hub_mixin: save_pretrained / from_pretrained / create_model(pretrained=True) on the zoo's models."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

import unet_zoo
from unet_zoo.hub import pretrained as hub
from unet_zoo.models import registry
from unet_zoo.models.registry import PretrainedCfg


@pytest.mark.slow
def test_the_mixin_saves_and_loads_through_the_hub_layer_in_a_fresh_process(tmp_path):
    """A script that imports only the models layer's modules saves a model and loads it back with UNet.from_pretrained."""
    script = textwrap.dedent(
        f"""
        import sys
        from unet_zoo.models.registry import create_model
        from unet_zoo.models.unet import UNet
        model = create_model("small", base_channels=4, depth=2)
        folder = model.save_pretrained({str(tmp_path / "ckpt")!r})
        loaded = UNet.from_pretrained(folder)
        assert loaded.model_name == "small" and (folder / "README.md").is_file()
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "ok", result.stderr


def test_create_model_pretrained_loads_through_the_connected_loader(monkeypatch, tmp_path):
    # an architecture without a published checkpoint, so "mixin-small" is the one create_model(pretrained=True) finds
    saved = unet_zoo.create_model("padded-bilinear", base_channels=4, depth=2)
    folder = saved.save_pretrained(tmp_path / "ckpt")
    calls = []

    load_folder = hub.from_pretrained

    def load(name, **kwargs):  # the registry name resolves to a local folder here: no network
        calls.append(name)
        return load_folder(folder, **kwargs)

    monkeypatch.setattr(hub, "from_pretrained", load)
    monkeypatch.setitem(
        registry.PRETRAINED, "mixin-small", PretrainedCfg(name="mixin-small", architecture="padded-bilinear", hf_hub_id="x/y")
    )
    model = unet_zoo.create_model("padded-bilinear", pretrained=True)
    assert calls == ["mixin-small"]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), saved.state_dict().values()))


def test_from_pretrained_checks_the_class(tmp_path):
    folder = unet_zoo.create_model("small", base_channels=4, depth=2).save_pretrained(tmp_path / "ckpt")
    assert isinstance(unet_zoo.UNet.from_pretrained(folder), unet_zoo.UNet)
    with pytest.raises(hub.CheckpointError, match="not a TimmUNet"):
        unet_zoo.TimmUNet.from_pretrained(folder)
