"""Two CPU processes with gloo train the tiny recipe under DistributedDataParallel and stay in sync."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from unet_zoo.training.distributed import DistInfo, all_gather_objects, all_reduce_mean, init_distributed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    from unet_zoo.training.distributed import cleanup_distributed
    from unet_zoo.training.recipes import load_recipe
    from unet_zoo.training.trainer import Trainer

    recipe = load_recipe("tiny").with_overrides(train={"steps": 4, "checkpoint_every": 2})
    trainer = Trainer.from_recipe(recipe, out_dir=os.path.join(out, "run"), device="cpu", final_outputs=False)
    result = trainer.fit()
    assert trainer.dist.world_size == world_size and trainer.dist.backend == "gloo"
    save_file({k: v.contiguous() for k, v in result.model.state_dict().items()}, os.path.join(out, f"rank{rank}.safetensors"))
    cleanup_distributed()


@pytest.mark.slow
def test_two_gloo_processes_stay_in_sync(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    a, b = (load_file(tmp_path / f"rank{r}.safetensors") for r in (0, 1))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs between ranks"
    from unet_zoo.hub.training_state import load_training_state

    ckpt = load_training_state(tmp_path / "run")
    assert ckpt.step == 4 and set(ckpt.rng) == {0, 1}  # both ranks' RNG states are saved for an exact resume
    assert not torch.equal(ckpt.rng[0]["sampler"], ckpt.rng[1]["sampler"])
    torch.manual_seed(0)
    from unet_zoo.models.registry import create_model
    from unet_zoo.training.recipes import load_recipe

    r = load_recipe("tiny")
    init = create_model(r.model.name, **r.model.args).state_dict()
    assert any(not torch.equal(init[k], a[k]) for k in a), "training must have changed the weights"


def test_single_process_fallback(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = init_distributed("cpu")
    assert info == DistInfo() and info.is_main and not info.enabled
    x = torch.tensor([1.0, 2.0])
    assert torch.equal(all_reduce_mean(x), x) and all_gather_objects(3) == [3]


def test_missing_master_address_is_explained(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(RuntimeError, match="MASTER_ADDR is not set; launch with torchrun"):
        init_distributed("cpu")
