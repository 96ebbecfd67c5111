import json
import os

import pytest
import torch
from safetensors import safe_open

from unet_zoo.hub.training_state import atomic_save_safetensors, load_training_state, save_training_state


def _model_and_optimizer(opt="adam"):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.ReLU(), torch.nn.Conv2d(3, 2, 1))
    optimizer = (
        torch.optim.Adam(model.parameters(), lr=1e-3)
        if opt == "adam"
        else torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.99)
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5**s)
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(2, 1, 8, 8)).square().mean().backward()
        optimizer.step()
        scheduler.step()
    return model, optimizer, scheduler


@pytest.mark.parametrize("opt", ["adam", "sgd"])
def test_round_trip_restores_everything(tmp_path, opt):
    model, optimizer, scheduler = _model_and_optimizer(opt)
    rng = {0: {"torch": torch.get_rng_state()}, 1: {"torch": torch.get_rng_state()}}
    path = save_training_state(
        tmp_path / "c.safetensors",
        model=model,
        step=3,
        optimizer=optimizer,
        scheduler=scheduler,
        rng=rng,
        extra={"recipe": {"a": 1}},
    )
    ckpt = load_training_state(path)
    assert ckpt.step == 3 and ckpt.extra == {"recipe": {"a": 1}}
    for k, v in model.state_dict().items():
        assert torch.equal(ckpt.model[k], v)
    model2, optimizer2, scheduler2 = _model_and_optimizer(opt)
    optimizer2.load_state_dict(ckpt.optimizer)
    scheduler2.load_state_dict(ckpt.scheduler)
    s1, s2 = optimizer.state_dict(), optimizer2.state_dict()
    for i in s1["state"]:
        for key, value in s1["state"][i].items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(s2["state"][i][key])), key
    assert scheduler2.get_last_lr() == scheduler.get_last_lr()
    assert set(ckpt.rng) == {0, 1} and torch.equal(ckpt.rng[1]["torch"], rng[1]["torch"])


def test_no_pickle_only_tensors_and_json(tmp_path):
    model, optimizer, scheduler = _model_and_optimizer()
    path = save_training_state(tmp_path / "checkpoint.safetensors", model=model, step=1, optimizer=optimizer, scheduler=scheduler)
    with safe_open(str(path), framework="pt") as f:
        state = json.loads(f.metadata()["state"])
        names = list(f.keys())
    assert state["step"] == 1 and "param_groups" in state["optimizer"]
    assert all(n.split(".")[0] in ("model", "optim", "rng") for n in names)


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    path = atomic_save_safetensors({"a": torch.ones(2)}, tmp_path / "x.safetensors")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_save_safetensors({"a": torch.zeros(2)}, path)
    monkeypatch.undo()
    with safe_open(str(path), framework="pt") as f:
        assert torch.equal(f.get_tensor("a"), torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["x.safetensors"]  # no temporary file left behind


def test_missing_and_weights_only_files_are_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_training_state(tmp_path)
    atomic_save_safetensors({"model.w": torch.ones(1)}, tmp_path / "checkpoint.safetensors")
    with pytest.raises(ValueError, match="weights-only"):
        load_training_state(tmp_path)


def test_file_is_synced_to_disk_before_it_replaces_the_old_one(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    atomic_save_safetensors({"a": torch.ones(2)}, tmp_path / "x.safetensors")
    assert events == ["fsync", "replace"]
