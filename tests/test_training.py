import json

import numpy as np
import pytest
import torch

from unet_zoo.checkpoint import load_checkpoint
from unet_zoo.recipes import load_recipe
from unet_zoo.training import NonFiniteLossError, Trainer, lr_factor, synthetic_cells, train


@pytest.fixture(scope="module")
def tiny():
    return load_recipe("tiny")


def _params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_tiny_run_writes_everything(tmp_path, tiny):
    result = train(tiny.with_overrides(train={"steps": 12, "eval_every": 6}, optimizer={"lr": 0.003}), out_dir=tmp_path, progress=False)
    assert result.step == 12
    names = {p.name for p in tmp_path.iterdir()}
    assert {"checkpoint.safetensors", "metrics.jsonl", "curves.png", "predictions.png", "recipe.json", "summary.json"} <= names
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == list(range(1, 13))
    assert all(np.isfinite(r["loss"]) and r["tiles_per_s"] > 0 for r in records if "loss" in r)
    assert [r["step"] for r in records if "val_loss" in r] == [6, 12]
    assert load_checkpoint(tmp_path).step == 12
    from PIL import Image

    assert Image.open(tmp_path / "predictions.png").size[0] > 100


def test_resume_after_kill_gives_identical_weights(tmp_path, tiny):
    full = train(tiny, out_dir=tmp_path / "full", progress=False, final_outputs=False)
    # "kill" after step 4: the last checkpoint is from step 3 (checkpoint_every = 3); step 4 is lost.
    killed = Trainer(tiny, out_dir=tmp_path / "killed", progress=False, stop_after=4, final_outputs=False).run()
    assert killed.step == 4 and load_checkpoint(tmp_path / "killed").step == 3
    resumed = Trainer(tiny, resume=tmp_path / "killed", progress=False, final_outputs=False).run()
    assert resumed.step == full.step == tiny.train.steps
    a, b = _params(full.model), _params(resumed.model)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # and the weights did change during training
    first = load_checkpoint(tmp_path / "killed")  # now the final checkpoint
    assert first.step == tiny.train.steps
    records = [json.loads(line) for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "loss" in r]
    assert steps == sorted(set(steps)), "resumed log must not repeat steps"


def test_resume_without_rng_restore_would_differ(tmp_path, tiny):
    """Guards the test above: dropping the RNG state changes the result, so the equality is meaningful."""
    full = train(tiny, out_dir=tmp_path / "full", progress=False, final_outputs=False)
    Trainer(tiny, out_dir=tmp_path / "k", progress=False, stop_after=3, final_outputs=False).run()
    trainer = Trainer(tiny, resume=tmp_path / "k", progress=False, final_outputs=False)
    trainer.checkpoint.rng.clear()
    other = trainer.run()
    assert any(not torch.equal(v, other.model.state_dict()[k]) for k, v in full.model.state_dict().items())


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, tiny):
    def inject(step, loss):
        return loss * float("nan") if step == 4 else loss

    with pytest.raises(NonFiniteLossError, match=r"loss is nan at step 5.*last good checkpoint"):
        train(tiny, out_dir=tmp_path, progress=False, loss_hook=inject)
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.step == 3 and all(torch.isfinite(v).all() for v in ckpt.model.values())


def test_absurd_learning_rate_is_caught(tmp_path, tiny):
    recipe = tiny.with_overrides(optimizer={"lr": 1e30, "momentum": 0.0}, schedule={"warmup_steps": 0, "kind": "constant"},
                                 train={"steps": 20, "checkpoint_every": 1})
    with pytest.raises(NonFiniteLossError):
        train(recipe, out_dir=tmp_path, progress=False)
    assert load_checkpoint(tmp_path).step >= 1


def test_lr_schedule(tiny):
    r = tiny.with_overrides(train={"steps": 100}, schedule={"kind": "cosine", "warmup_steps": 10, "min_lr_ratio": 0.1})
    assert lr_factor(r, 0) == pytest.approx(0.1)
    assert lr_factor(r, 9) == pytest.approx(1.0)
    assert lr_factor(r, 10) == pytest.approx(1.0)
    assert lr_factor(r, 100) == pytest.approx(0.1)
    assert 0.1 < lr_factor(r, 55) < 1.0


def test_synthetic_cells_are_binary_and_membranes_dark():
    images, labels = synthetic_cells(3, 48, seed=1)
    assert images.shape == labels.shape == (3, 48, 48) and images.dtype == labels.dtype == np.uint8
    assert set(np.unique(labels)) == {0, 1}
    assert 0.05 < (labels == 0).mean() < 0.6
    assert images[labels == 0].mean() < images[labels == 1].mean() - 50


def test_valid_convolution_model_trains_with_mirrored_context(tmp_path, tiny):
    """The paper's unpadded network: input tiles larger than output tiles, labels cropped to the output."""
    recipe = tiny.with_overrides(model={"name": "original", "args": {"base_channels": 4, "depth": 2}},
                                 data={"tile": 60}, train={"steps": 2, "checkpoint_every": 2})
    result = train(recipe, out_dir=tmp_path, progress=False)
    assert result.model.output_size(60) == 20 and result.step == 2
    assert np.isfinite(result.final_loss) and (tmp_path / "predictions.png").is_file()
