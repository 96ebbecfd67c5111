"""What a model source names (unet_zoo.hub.sources): explicit rules, never a guess between a name and a folder;
loading a folder never reaches the network."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest
import torch

import unet_zoo
from unet_zoo import from_pretrained
from unet_zoo.hub.serialization import CONFIG_NAME, CheckpointError
from unet_zoo.hub.sources import ModelSource, SourceError, is_path_like, parse_source
from unet_zoo.models.provenance import provenance_of
from unet_zoo.models.registry import PRETRAINED, list_models

REPO_ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = [name for name in PRETRAINED if (REPO_ROOT / "cards" / name / CONFIG_NAME).is_file()]
CHECKPOINT = next(iter(PRETRAINED))


def decoy(folder: Path) -> Path:
    """A valid checkpoint folder holding other weights than any published checkpoint."""
    torch.manual_seed(7)
    return unet_zoo.save_pretrained(unet_zoo.create_model("small", base_channels=4, depth=2), folder)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (CHECKPOINT, ModelSource("registry", CHECKPOINT)),
        ("hf-hub:owner/repo", ModelSource("hub", "owner/repo")),
        ("hf-hub:owner/repo@v1.0", ModelSource("hub", "owner/repo", "v1.0")),
        ("owner/repo", ModelSource("hub", "owner/repo")),
        ("owner/repo@main", ModelSource("hub", "owner/repo", "main")),
        ("local-dir:models/x", ModelSource("folder", "models/x")),
        ("local-dir:owner", ModelSource("folder", "owner")),
        ("./owner/repo", ModelSource("folder", "./owner/repo")),
        ("../x", ModelSource("folder", "../x")),
        ("/abs/x", ModelSource("folder", "/abs/x")),
        ("runs/exp/base", ModelSource("folder", "runs/exp/base")),
        (Path("owner/repo"), ModelSource("folder", "owner/repo")),
        (Path(CHECKPOINT), ModelSource("folder", CHECKPOINT)),
    ],
)
def test_each_source_rule(source, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an empty working directory: nothing to be ambiguous with
    assert parse_source(source) == expected
    again = parse_source(expected.text())  # written out (a recipe's init_from), it reads back as the same thing
    assert (again.kind, Path(again.location), again.revision) == (expected.kind, Path(expected.location), expected.revision)


def test_the_home_folder_is_expanded(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert parse_source("~/x") == ModelSource("folder", str(tmp_path / "x"))


def test_an_owner_repo_that_is_also_a_folder_is_refused_with_both_spellings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse_source("owner/repo").kind == "hub"
    (tmp_path / "owner" / "repo").mkdir(parents=True)
    with pytest.raises(SourceError, match=r"write \./owner/repo for the folder or hf-hub:owner/repo for the Hub") as err:
        parse_source("owner/repo")
    assert "\n" not in str(err.value)
    assert parse_source("./owner/repo").kind == "folder" and parse_source("hf-hub:owner/repo").kind == "hub"


@pytest.mark.parametrize("name", ["small", "padded", "timm-resnet18"])
def test_an_architecture_name_points_to_create_model(name):
    with pytest.raises(SourceError, match=rf"unet_zoo.create_model\('{name}'\) builds it with random weights"):
        from_pretrained(name)
    assert parse_source(name, allow_architecture=True) == ModelSource("architecture", name)


def test_an_architecture_for_a_front_end_is_random_and_warned(caplog):
    with caplog.at_level(logging.WARNING, logger="unet_zoo.hub.factory"):
        model = from_pretrained("small", allow_architecture=True)
    assert "random" in caplog.text and not model.training
    assert provenance_of(model).kind == "built"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("", "non-empty"),
        (None, "non-empty"),
        ("isbi-smal", "Did you mean"),
        ("hf-hub:not a repo", "not a Hub repo id"),
        ("hf-hub:owner/repo@", "not a Hub repo id"),
        ("local-dir:", "needs a folder"),
        ("a:b/c:d", "not a Hub repo id"),
    ],
)
def test_sources_that_name_nothing_are_one_line_errors(source, message):
    with pytest.raises(SourceError, match=message) as err:
        parse_source(source)
    assert "\n" not in str(err.value)


def test_a_bare_folder_name_is_not_guessed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    decoy(tmp_path / "mymodel")
    with pytest.raises(SourceError, match=r"write \./mymodel"):
        from_pretrained("mymodel")
    assert provenance_of(from_pretrained("./mymodel")).kind == "folder"


def test_a_revision_is_for_the_hub_only(tmp_path):
    folder = decoy(tmp_path / "m")
    with pytest.raises(SourceError, match="applies to the Hub"):
        from_pretrained(folder, revision="main")
    with pytest.raises(SourceError, match="give one"):
        from_pretrained("hf-hub:owner/repo@v1", revision="v2")


@pytest.mark.parametrize("name", ["./isbi-small", "/abs/x", "~/x", "a\\b", "../x", "a/b/c"])
def test_is_path_like_reads_only_the_string(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert is_path_like(name)
    (tmp_path / "owner" / "repo").mkdir(parents=True)
    assert not is_path_like("owner/repo") and not is_path_like("isbi-small")  # a folder does not change the rule


@pytest.mark.skipif(not PUBLISHED, reason="no published checkpoint folder in this checkout")
@pytest.mark.parametrize("name", PUBLISHED)
def test_a_folder_named_like_a_checkpoint_never_shadows_it(name, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    decoy(tmp_path / name)
    with caplog.at_level(logging.WARNING):
        model = from_pretrained(name)
    assert provenance_of(model).sha256 == PRETRAINED[name].sha256  # the pinned weights, verified
    assert "pass ./" in caplog.text  # and the user is told how to load the folder instead
    for spelled in (f"./{name}", str(tmp_path / name), tmp_path / name, f"local-dir:{name}"):  # as a path: the folder
        assert provenance_of(from_pretrained(spelled)).sha256 != PRETRAINED[name].sha256


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
    unet_zoo.save_pretrained(unet_zoo.create_model("timm-resnet18"), folder)
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
        folder = unet_zoo.save_pretrained(unet_zoo.create_model(name), tmp_path / name)
        config = json.loads((folder / CONFIG_NAME).read_text())
        if "pretrained_encoder" in config["model_args"]:  # asking for timm's pretrained encoder in config.json
            config["model_args"]["pretrained_encoder"] = True
            (folder / CONFIG_NAME).write_text(json.dumps(config))
        assert provenance_of(from_pretrained(folder)).architecture == name
    assert not no_network
