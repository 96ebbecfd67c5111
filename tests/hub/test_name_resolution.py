"""What a name means: a registry name always loads its pinned weights; folders load only when written as paths;
loading a folder never reaches the network."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest
import torch

import unet_zoo
from unet_zoo.hub.loading import load_model
from unet_zoo.hub.pretrained import CheckpointError, from_pretrained, is_path_like
from unet_zoo.hub.serialization import CONFIG_NAME
from unet_zoo.models.registry import PRETRAINED, list_models

REPO_ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = [name for name in PRETRAINED if (REPO_ROOT / "cards" / name / CONFIG_NAME).is_file()]


def decoy(folder: Path) -> Path:
    """A valid checkpoint folder holding other weights than any published checkpoint."""
    torch.manual_seed(7)
    return unet_zoo.create_model("small", base_channels=4, depth=2).save_pretrained(folder)


@pytest.mark.parametrize("name", ["isbi-small", "./isbi-small", "a/b", "/abs/x", "~/x", "a\\b", "owner/repo"])
def test_is_path_like(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    expected = name.startswith((".", "/", "~")) or "\\" in name
    assert is_path_like(name) is expected
    (tmp_path / "owner" / "repo").mkdir(parents=True)  # "owner/repo" is a path once that folder exists
    assert is_path_like("owner/repo")


@pytest.mark.skipif(not PUBLISHED, reason="no published checkpoint folder in this checkout")
@pytest.mark.parametrize("name", PUBLISHED)
def test_a_folder_named_like_a_checkpoint_never_shadows_it(name, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    decoy(tmp_path / name)
    with caplog.at_level(logging.WARNING):
        model = from_pretrained(name)
    assert model.weights_sha256 == PRETRAINED[name].sha256  # the pinned weights, verified
    assert "pass ./" in caplog.text  # and the user is told how to load the folder instead
    assert load_model(name, device="cpu").weights_sha256 == PRETRAINED[name].sha256  # the CLI's resolution too
    for spelled in (f"./{name}", str(tmp_path / name)):  # written as a path, the folder is what loads
        assert from_pretrained(spelled).weights_sha256 != PRETRAINED[name].sha256
        assert load_model(spelled, device="cpu").weights_sha256 != PRETRAINED[name].sha256


@pytest.mark.parametrize("name", ["small", "padded"])
def test_an_architecture_name_is_the_architecture_not_a_folder(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    decoy(tmp_path / name)
    assert not hasattr(load_model(name, device="cpu"), "weights_sha256")  # random weights of the architecture
    assert hasattr(load_model(f"./{name}", device="cpu"), "weights_sha256")


@pytest.fixture
def no_network(monkeypatch):
    """Every attempt to open a network connection fails the test (loopback included)."""
    attempts = []

    def refuse(self, address, *args, **kwargs):
        attempts.append(address)
        raise AssertionError(f"tried to connect to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


def timm_folder(tmp_path: Path, **args) -> Path:
    folder = tmp_path / "timm-model"
    torch.manual_seed(0)
    unet_zoo.create_model("timm-resnet18").save_pretrained(folder)
    config = json.loads((folder / CONFIG_NAME).read_text())
    config["model_args"].update(args)
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize(
    "encoder", ["hf-hub:owner/repo", "local-dir:/tmp/x", "timm/resnet18", "owner/repo", "no-such-encoder", "resnet18:x"]
)
def test_a_folder_cannot_make_loading_reach_the_network_or_read_files(encoder, tmp_path, no_network):
    folder = timm_folder(tmp_path, encoder=encoder)
    with pytest.raises(CheckpointError, match="not a timm architecture name"):
        from_pretrained(folder)
    assert not no_network


@pytest.mark.slow
def test_loading_folders_of_every_architecture_makes_no_connection(tmp_path, no_network):
    for name in list_models():
        folder = unet_zoo.create_model(name).save_pretrained(tmp_path / name)
        config = json.loads((folder / CONFIG_NAME).read_text())
        if "pretrained_encoder" in config["model_args"]:  # asking for timm's pretrained encoder in config.json
            config["model_args"]["pretrained_encoder"] = True
            (folder / CONFIG_NAME).write_text(json.dumps(config))
        assert from_pretrained(folder).model_name == name
    assert not no_network
