"""The trainer's overhead: its step (sampling, augmentation, logging, validation, checkpoints) beside a bare loop.

The bare loop is the least a training run must do: the same model, initial weights, loss, optimiser, schedule
and batch size, on one batch sampled once (no sampling, augmentation, logging, validation or checkpoints).
Both run in this process, alternately (trainer, bare, trainer, bare, ...), so the ratio compares runs under the
same machine load. The trainer's step is timed from its progress callback; its periodic work is timed where
it happens (validation and checkpoints every few steps here) and amortised over the recipe's own intervals:

    trainer step = plain step + validation / eval_every + checkpoint / checkpoint_every

`profile=True` adds a ``torch.profiler`` table of a few trainer steps, whose labelled regions
(``trainer.sample``, ``trainer.forward_loss``, ``trainer.backward_update``, ``trainer.validate``,
``trainer.checkpoint``) show where the time outside the network goes.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from unet_zoo.benchmark._common import Log, _quiet
from unet_zoo.data.augment import TileSampler
from unet_zoo.models.registry import create_model
from unet_zoo.training.data import TrainingData, load_training_data
from unet_zoo.training.optim import build_optimizer, build_scheduler
from unet_zoo.training.recipes import Recipe, load_recipe
from unet_zoo.training.step import train_step
from unet_zoo.training.trainer import Trainer, TrainProgress

TARGET_RATIO = 1.10  # the trainer's step at most 10% slower than the bare loop
CHECKPOINT_EVERY, EVAL_EVERY = 4, 8  # during the benchmark: every 4th step a checkpoint, every 8th also a validation


def _trainer_round(recipe: Recipe, data: TrainingData, steps: int, warmup: int, device: torch.device) -> dict[str, float]:
    """Seconds of the trainer's plain step (mean), of a validation and of a checkpoint, from one run of
    `warmup` + `steps` steps (checkpoint every 4th step, validation every 8th)."""
    total = warmup + steps
    run_recipe = recipe.with_overrides(train={"steps": total, "checkpoint_every": CHECKPOINT_EVERY, "eval_every": EVAL_EVERY})
    stamps: dict[int, float] = {}

    def record(event: TrainProgress) -> None:
        if event.event == "step":
            stamps[event.step] = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="unet-zoo-overhead-") as tmp:
        Trainer.from_recipe(
            run_recipe, out_dir=Path(tmp) / "run", device=device, data=data, callback=record, final_outputs=False
        ).fit()
    # the interval ending at step k holds step k and what followed step k-1 (its validation and checkpoint)
    plain, with_checkpoint, with_both = [], [], []
    for k in range(warmup + 1, total + 1):
        seconds = stamps[k] - stamps[k - 1]
        previous = k - 1
        if previous % EVAL_EVERY == 0:
            with_both.append(seconds)
        elif previous % CHECKPOINT_EVERY == 0:
            with_checkpoint.append(seconds)
        else:
            plain.append(seconds)
    step_s = statistics.mean(plain)
    checkpoint_s = max(statistics.mean(with_checkpoint) - step_s, 0.0) if with_checkpoint else 0.0
    validation_s = max(statistics.mean(with_both) - step_s - checkpoint_s, 0.0) if with_both else 0.0
    return {"step_s": step_s, "validation_s": validation_s, "checkpoint_s": checkpoint_s, "plain_steps": len(plain)}


def _bare_round(recipe: Recipe, data: TrainingData, steps: int, warmup: int, device: torch.device) -> float:
    """Mean seconds per step of the bare loop: the trainer's model, optimiser, schedule and loss on one fixed batch."""
    torch.manual_seed(recipe.train.seed)
    model = create_model(recipe.model.name, **recipe.model.args).to(device)
    model.train()
    optimizer = build_optimizer(model, recipe.optimizer)
    scheduler = build_scheduler(optimizer, recipe.schedule, recipe.train.steps)
    out_tile = model.output_size(recipe.data.tile)
    sampler = TileSampler(
        data.train_images, data.train_labels, data.train_weights, recipe.data.tile, out_tile, replace(recipe.augment), device
    )
    x, target, weight = sampler.sample(recipe.train.batch_size, torch.Generator(device=device).manual_seed(0))
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        train_step(model, optimizer, x, target, weight, device, grad_clip=recipe.optimizer.grad_clip)
        scheduler.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.mean(times)


def _profile(recipe: Recipe, data: TrainingData, device: torch.device, steps: int = 8, rows: int = 15) -> str:
    """A ``torch.profiler`` table (CPU time, the trainer's labelled regions and the top operators) of a short run."""
    from torch.profiler import ProfilerActivity, profile

    run_recipe = recipe.with_overrides(train={"steps": steps, "checkpoint_every": CHECKPOINT_EVERY, "eval_every": EVAL_EVERY})
    with tempfile.TemporaryDirectory(prefix="unet-zoo-profile-") as tmp, profile(activities=[ProfilerActivity.CPU]) as prof:
        Trainer.from_recipe(run_recipe, out_dir=Path(tmp) / "run", device=device, data=data, final_outputs=False).fit()
    averages = prof.key_averages()
    regions = sorted((e for e in averages if e.key.startswith("trainer.")), key=lambda e: -e.cpu_time_total)
    lines = [f"{'region':<26}{'calls':>6}{'total s':>10}{'per call ms':>13}"]
    lines += [f"{e.key:<26}{e.count:>6}{e.cpu_time_total / 1e6:>10.3f}{e.cpu_time_total / 1e3 / e.count:>13.1f}" for e in regions]
    return "\n".join(lines) + "\n\n" + averages.table(sort_by="cpu_time_total", row_limit=rows)


def bench_trainer_overhead(
    recipe: str | Recipe = "isbi-small-cpu",
    *,
    steps: int = 12,
    warmup: int = 2,
    rounds: int = 2,
    data: TrainingData | None = None,
    data_dir: str | None = None,
    device: str = "cpu",
    profile: bool = False,
    log: Log = _quiet,
) -> dict[str, Any]:
    """The trainer's seconds per step beside the bare loop's, measured alternately `rounds` times.

    Args:
        recipe: a recipe name or `Recipe` (its model, tile, batch, optimiser, augmentation, intervals).
        steps: timed steps per round and path (after `warmup` untimed ones).
        data: the training data; default the recipe's (ISBI 2012 needs the data folder).
        profile: add a torch.profiler table of a short trainer run (``profile``).

    Returns:
        A JSON-serialisable dict: recipe, model, tile, batch_size, ``rounds`` (per round: trainer step_s,
        validation_s, checkpoint_s, amortised_step_s, bare_step_s, ratio), the medians of those over the
        rounds (``trainer_step_s``, ``bare_step_s``, ``ratio``), ``target`` and ``met``.
    """
    r = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    dev = torch.device(device)
    data = data if data is not None else load_training_data(r, data_dir)
    per_round = []
    for i in range(rounds):
        log(f"round {i + 1}/{rounds}: trainer, {warmup} + {steps} steps")
        trainer = _trainer_round(r, data, steps, warmup, dev)
        log(f"round {i + 1}/{rounds}: bare loop, {warmup} + {steps} steps")
        bare = _bare_round(r, data, steps, warmup, dev)
        amortised = (
            trainer["step_s"]
            + trainer["validation_s"] / max(r.train.eval_every, 1) * bool(r.train.eval_every)
            + trainer["checkpoint_s"] / max(r.train.checkpoint_every, 1)
        )
        per_round.append({**trainer, "amortised_step_s": amortised, "bare_step_s": bare, "ratio": amortised / bare})
    ratio = statistics.median(p["ratio"] for p in per_round)
    result: dict[str, Any] = {
        "benchmark": "trainer_overhead",
        "recipe": r.name,
        "model": r.model.name,
        "model_args": dict(r.model.args),
        "tile": r.data.tile,
        "batch_size": r.train.batch_size,
        "eval_every": r.train.eval_every,
        "checkpoint_every": r.train.checkpoint_every,
        "augment": r.augment.enabled,
        "steps": steps,
        "warmup": warmup,
        "threads": torch.get_num_threads(),
        "rounds": per_round,
        "trainer_step_s": statistics.median(p["amortised_step_s"] for p in per_round),
        "bare_step_s": statistics.median(p["bare_step_s"] for p in per_round),
        "ratio": ratio,
        "target": f"<= {TARGET_RATIO:.2f}x",
        "met": ratio <= TARGET_RATIO,
    }
    if profile:
        log("profile: a short trainer run under torch.profiler")
        result["profile"] = _profile(r, data, dev)
    return result


__all__ = ["TARGET_RATIO", "bench_trainer_overhead"]
