"""unet_zoo.hub.serialization: the checkpoint folder format, written and read without any network."""

from __future__ import annotations

import json

import pytest
import torch

import unet_zoo
from unet_zoo.hub import serialization


def test_a_folder_round_trips_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = unet_zoo.create_model("small", base_channels=4, depth=2)
    folder = serialization.save_pretrained(model, tmp_path / "ckpt", card_data={"checkpoint_name": "my-small"})
    config = json.loads((folder / serialization.CONFIG_NAME).read_text())
    assert config["model_name"] == "small" and config["library_name"] == "unet_zoo"
    assert config["weights"]["sha256"] == serialization.weights_sha256(folder)
    assert "my-small" in (folder / serialization.CARD_NAME).read_text()
    loaded = serialization.read_folder(folder)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


def test_a_changed_weight_file_is_refused(tmp_path):
    folder = serialization.save_pretrained(unet_zoo.create_model("small", base_channels=4, depth=2), tmp_path / "ckpt")
    weights = folder / serialization.WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(serialization.CheckpointError, match="sha256"):
        serialization.read_folder(folder)


def test_hub_re_exports_the_format():
    from unet_zoo.hub import pretrained as hub

    for name in ("CheckpointError", "save_pretrained", "weights_sha256", "read_config", "model_identity"):
        assert getattr(hub, name) is getattr(serialization, name)
