"""unet_zoo.hub.factory: the one door (`from_pretrained`), the provenance every kind of source attaches, and the
old entrances, which warn and still work for one release."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import unet_zoo
from unet_zoo.hub import serialization
from unet_zoo.hub.pretrained import weights_sha256
from unet_zoo.models import registry
from unet_zoo.models.provenance import provenance_of
from unet_zoo.models.registry import PRETRAINED, PretrainedCfg

REPO_ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = [name for name in PRETRAINED if (REPO_ROOT / "cards" / name / "config.json").is_file()]


def tiny(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return unet_zoo.create_model("small", base_channels=4, depth=2).eval()


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.fixture
def folder(tmp_path) -> Path:
    return unet_zoo.save_pretrained(tiny(), tmp_path / "ckpt", card_data={"training": {"pixel_size_nm": 6.0}})


# --- provenance of each kind of source ---------------------------------------------------------------


def test_a_folder_records_its_path_digest_and_card(folder):
    record = provenance_of(unet_zoo.from_pretrained(folder))
    assert (record.kind, record.source, record.architecture) == ("folder", str(folder), "small")
    assert record.sha256 == weights_sha256(folder) and record.checkpoint is None and record.revision is None
    assert record.pixel_size_nm == 6.0 and record.as_dict()["pixel_size_nm"] == 6.0


@pytest.mark.skipif(not PUBLISHED, reason="no published checkpoint folder in this checkout")
def test_a_published_checkpoint_records_its_pins():
    name = PUBLISHED[0]
    record = provenance_of(unet_zoo.from_pretrained(name))
    cfg = PRETRAINED[name]
    assert (record.kind, record.checkpoint, record.source) == ("registry", name, cfg.hf_hub_id)
    assert record.sha256 == cfg.sha256 and record.revision == cfg.revision and record.label == name


def test_a_hub_repo_records_repo_revision_and_digest(hub_server, hub_token, fresh_cache, folder):
    unet_zoo.push_to_hub(unet_zoo.from_pretrained(folder), "testuser/door-small", token=hub_token)
    for source in ("testuser/door-small", "hf-hub:testuser/door-small", "hf-hub:testuser/door-small@main"):
        model = unet_zoo.from_pretrained(source, cache_dir=fresh_cache)
        record = provenance_of(model)
        assert (record.kind, record.source, record.revision) == ("hub", "testuser/door-small", "main")
        assert record.sha256 == weights_sha256(folder) and same_weights(model, unet_zoo.from_pretrained(folder))


def test_a_training_run_folder_records_its_step(tmp_path):
    from unet_zoo.training.recipes import load_recipe
    from unet_zoo.training.trainer import train

    run = tmp_path / "run"
    train(load_recipe("tiny").with_overrides(train={"steps": 2}), out_dir=run, final_outputs=False)
    record = provenance_of(unet_zoo.from_pretrained(run))
    assert (record.kind, record.source) == ("run", str(run)) and record.card["training"]["steps"] == 2


def test_the_record_survives_save_and_load(folder, tmp_path):
    loaded = unet_zoo.from_pretrained(folder)
    again = unet_zoo.from_pretrained(unet_zoo.save_pretrained(loaded, tmp_path / "again"))
    assert provenance_of(again).args == provenance_of(loaded).args
    assert provenance_of(again).card["training"] == provenance_of(loaded).card["training"]


# --- the old entrances: a warning, the same model ------------------------------------------------------


def test_model_methods_warn_and_delegate(folder, tmp_path):
    model = tiny()
    with pytest.warns(FutureWarning, match=r"unet_zoo.save_pretrained\(model, folder\)"):
        written = model.save_pretrained(tmp_path / "old")
    with pytest.warns(FutureWarning, match=r"unet_zoo.from_pretrained\(source\)"):
        loaded = unet_zoo.UNet.from_pretrained(written)
    assert same_weights(model, loaded) and provenance_of(loaded).kind == "folder"
    with pytest.warns(FutureWarning), pytest.raises(TypeError, match="not a TimmUNet"):
        unet_zoo.TimmUNet.from_pretrained(folder)


def test_load_model_warns_and_delegates(folder):
    from unet_zoo.hub.loading import load_model

    with pytest.warns(FutureWarning, match="load_model is deprecated"):
        model = load_model(str(folder), device="cpu")
    assert provenance_of(model).kind == "folder" and not model.training
    with pytest.warns(FutureWarning):
        assert provenance_of(load_model("small", device="cpu")).kind == "built"  # as before: random, warned


def test_load_folder_warns_and_delegates(folder):
    with pytest.warns(FutureWarning, match="load_folder is deprecated"):
        model = serialization.load_folder(folder)
    assert same_weights(model, unet_zoo.from_pretrained(folder))


def test_create_model_pretrained_warns_and_loads_the_checkpoint(monkeypatch, folder):
    cfg = PretrainedCfg(name="door-bilinear", architecture="padded-bilinear", hf_hub_id="x/y")
    saved = unet_zoo.save_pretrained(unet_zoo.create_model("padded-bilinear", base_channels=4, depth=2), folder.parent / "bl")
    monkeypatch.setitem(registry.PRETRAINED, cfg.name, cfg)
    monkeypatch.setattr(unet_zoo.hub.sources, "PRETRAINED", registry.PRETRAINED)
    calls = []

    def from_cards(name, **kwargs):  # the checkpoint name resolves to a local folder here: no network
        calls.append(name)
        return serialization.read_folder(saved)

    monkeypatch.setattr(unet_zoo.hub.factory, "load_registry_checkpoint", from_cards)
    with pytest.warns(FutureWarning, match=r"use unet_zoo.from_pretrained\('door-bilinear'\)"):
        model = unet_zoo.create_model("padded-bilinear", pretrained=True)
    assert calls == ["door-bilinear"] and same_weights(model, unet_zoo.from_pretrained(saved))


# --- the public names -------------------------------------------------------------------------------------


def test_from_unet_zoo_import_star_gives_the_door():
    namespace: dict = {}
    exec("from unet_zoo import *", namespace)
    for name in ("from_pretrained", "create_model", "save_pretrained", "push_to_hub", "list_models", "list_pretrained"):
        assert name in namespace
