"""The trainer: one readable loop from a model, its data and a loss to trained weights (nanoGPT style).

    trainer = Trainer(model, data, weighted_cross_entropy, optimizer=OptimizerCfg(lr=1e-3, name="adam"),
                      train=TrainCfg(steps=200, batch_size=4), tile=128)
    result = trainer.fit()
    result = Trainer.from_recipe(load_recipe("isbi-small"), steps=200).fit()   # or: unet-zoo train isbi-small --steps 200

The caller builds the ingredients (torch-em's ``DefaultTrainer`` style): the model (`unet_zoo.create_model`,
`unet_zoo.from_pretrained`), the data (`unet_zoo.training.data.TrainingData`: slices, labels, loss weight maps and
the held-out part) and the loss; `Trainer.from_recipe` builds them from a TOML recipe (`recipe_model`,
`unet_zoo.training.data.load_training_data`, the paper's weighted cross-entropy).

`fit` then runs, top to bottom: sample augmented tiles on the model's device -> forward (bf16 autocast where
chosen) -> loss -> backward -> update -> log, validate, checkpoint or stop at their intervals -> curves and
prediction PNGs. The loop waits for the device only at those intervals (nanoGPT's "CPU-GPU sync point"): a
NaN/inf loss is noted on the device and raised at the next of them. Everything a run writes goes to its folder
(`unet_zoo.training.run.RunFolder`); under torchrun every process trains, rank 0 writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.profiler import record_function

from unet_zoo.data.augment import AugmentConfig, TileSampler
from unet_zoo.hub.factory import from_pretrained
from unet_zoo.hub.pretrained import HubAccessError
from unet_zoo.hub.serialization import CheckpointError, check_state_dict
from unet_zoo.hub.sources import SourceError
from unet_zoo.hub.training_state import TrainingState, load_training_state, save_training_state
from unet_zoo.inference.tiling import predict_tiled
from unet_zoo.models.provenance import provenance_of
from unet_zoo.models.registry import create_model, get_entry
from unet_zoo.runtime.measured import TrainingChoice
from unet_zoo.runtime.settings import autocast, fast_backend, prepare_input, prepare_model
from unet_zoo.training.data import TrainingData, load_training_data, validation_tiles
from unet_zoo.training.distributed import (
    DistInfo,
    all_gather_objects,
    all_reduce_mean,
    broadcast_object,
    init_distributed,
    wrap_ddp,
)
from unet_zoo.training.losses import weighted_cross_entropy
from unet_zoo.training.optim import build_optimizer, build_scheduler
from unet_zoo.training.precision import execution_config, training_precision
from unet_zoo.training.recipes import (
    ModelCfg,
    OptimizerCfg,
    Recipe,
    RecipeInfo,
    ScheduleCfg,
    TrainCfg,
    recipe_from_dict,
)
from unet_zoo.training.rng import rng_state, set_rng_state
from unet_zoo.training.run import RUN_FOLDER, SUMMARY_FILE, Clock, RunFolder, default_run_dir, latest_run_dir
from unet_zoo.training.step import LossFunction, apply_gradients, step_loss
from unet_zoo.utils.plots import plot_curves, plot_overlays
from unet_zoo.utils.signals import StopSignals


class TrainingInterrupted(RuntimeError):
    """SIGTERM or SIGINT stopped training after a step; a checkpoint of that step was written.

    Attributes: step (completed steps), run_dir (resume from it), signal_number (what stopped it).
    """

    def __init__(self, message: str, step: int, run_dir: Path, signal_number: int):
        super().__init__(message)
        self.step, self.run_dir, self.signal_number = step, run_dir, signal_number


class TimeLimitReached(TrainingInterrupted):
    """``time_limit`` ran out: training stopped after a step and checkpointed it (signal_number is 0)."""


class NonFiniteLossError(RuntimeError):
    """The loss (or, after a step, a weight) became NaN or infinite; the run stopped and its last good
    checkpoint was kept."""


# --- what a run reports and returns ---------------------------------------------------------------------


@dataclass
class TrainResult:
    """What a finished run produced. `model` is the trained, unwrapped module (on the training device)."""

    run_dir: Path
    model: nn.Module
    recipe: Recipe
    data: TrainingData
    step: int
    seconds: float
    final_loss: float
    history: list[dict[str, Any]] = field(default_factory=list)
    steps_this_session: int = 0  # 0 when --resume found the run already complete
    init_from: dict[str, Any] | None = None  # recipe model.init_from: {"source", "sha256", "train_seconds", "steps"}
    world_size: int = 1  # processes that trained together (each step saw batch_size x world_size tiles)
    precision: str = "fp32"  # what the steps ran in: "bf16" (autocast) or "fp32"


@dataclass(frozen=True)
class TrainProgress:
    """What the trainer reports to its callback (rank 0 only): "start" (before the first step of this
    session), "step" (every step; `loss` and `tiles_per_s` are set on logged steps), "validation" (with
    `scores`: val_loss, val_pixel_error on the held-out tiles) and "end" (training finished or stopped)."""

    event: Literal["start", "step", "validation", "end"]
    step: int  # optimiser steps completed
    total_steps: int
    elapsed_s: float  # training time of the whole run so far, resumed sessions included
    loss: float | None = None
    tiles_per_s: float | None = None
    scores: dict[str, float] | None = None
    precision: str | None = None  # "start": the precision of the steps and why, e.g. "bf16 (measured; ...)"


TrainCallback = Callable[[TrainProgress], None]


# --- the ingredients a recipe names ------------------------------------------------------------------


def recipe_model(recipe: Recipe, *, load_init: bool = True) -> tuple[nn.Module, dict[str, Any] | None]:
    """The recipe's model as its run starts: built with ``train.seed`` (the same initial weights on every rank),
    then, with ``model.init_from`` (and `load_init`), holding those weights. On the CPU.

    Returns the model and what the card records about ``model.init_from`` ({"source", "sha256", "train_seconds",
    "steps"}; None without it). ValueError / CheckpointError name ``model.init_from`` when it cannot be used.
    """
    torch.manual_seed(recipe.train.seed)  # identical initial weights on every rank (DDP also broadcasts them)
    model = create_model(recipe.model.name, **recipe.model.args)
    source = recipe.model.init_from
    if not source or not load_init:
        return model, None
    try:
        start = from_pretrained(source)
    except (CheckpointError, HubAccessError, SourceError) as err:
        raise ValueError(f"model.init_from = {source!r} cannot be loaded: {err}") from err
    state = start.state_dict()
    check_state_dict(model, state, source=f"model.init_from = {source!r}")
    model.load_state_dict(state)
    return model, init_from_record(source, start)


def init_from_record(source: str, start: nn.Module) -> dict[str, Any]:
    """What a card records about the weights a run starts from: `source` (as the user named them), the sha256 of
    their weights and their own training seconds and steps, where `start` (loaded from `source`) records them."""
    record = provenance_of(start)
    training = record.card.get("training") or {}
    return {
        "source": source,
        "sha256": record.sha256 if record.kind == "registry" else None,
        "train_seconds": training.get("time_s"),
        "steps": training.get("steps"),
    }


def _architecture(model: nn.Module) -> tuple[str, dict[str, Any]]:
    """The registry name and arguments that rebuild `model` (what recipe.json records, so the run folder loads)."""
    record = provenance_of(model)
    name, args = record.architecture, dict(record.args)
    if not _registered(name):
        raise ValueError(
            f"model: a {type(model).__name__} that unet_zoo cannot rebuild; build it with unet_zoo.create_model "
            "or load it with unet_zoo.from_pretrained"
        )
    return name, args


def _same_architecture(cfg: ModelCfg, name: str, args: dict[str, Any]) -> bool:
    """Whether a recipe's [model] builds the architecture `name` with `args` (its args are overrides of those)."""
    normal = json.loads(json.dumps(args, default=str))
    given = json.loads(json.dumps(cfg.args, default=str))
    return cfg.name == name and all(normal.get(k) == v for k, v in given.items())


def _registered(name: str) -> bool:
    try:
        get_entry(name)
    except KeyError:
        return False
    return True


def _resumed(resume: str | Path | TrainingState | None) -> TrainingState | None:
    return load_training_state(resume) if isinstance(resume, (str, Path)) else resume


def _check_resumable(state: TrainingState | None, steps: int, resume: Any) -> None:
    if state is not None and state.step > steps:
        raise ValueError(
            f"the checkpoint in {resume} is at step {state.step}, beyond the {steps} steps "
            "asked for; pass a larger --steps (or none, to use the recipe's)"
        )


def _check_time_limit(time_limit: float | None) -> None:
    if time_limit is not None and time_limit <= 0:
        raise ValueError(f"time_limit must be a positive number of seconds, got {time_limit}")


class _LossWatch:
    """Notes on the device, without waiting for it, the first step whose loss was NaN/inf and that loss."""

    def __init__(self, device: torch.device):
        self.first_bad = torch.zeros((), dtype=torch.float32, device=device)  # 0 = none yet
        self.bad_loss = torch.zeros((), dtype=torch.float32, device=device)

    def observe(self, loss: torch.Tensor, step: int) -> None:
        value = loss.detach().float()
        new = (self.first_bad == 0) & ~torch.isfinite(value)
        self.first_bad = torch.where(new, float(step), self.first_bad)
        self.bad_loss = torch.where(new, value, self.bad_loss)


# --- the trainer ----------------------------------------------------------------------------------------


class Trainer:
    """Trains `model` on `data` with `loss`; call `fit()`. See the module docstring for what a run writes.

    Args:
        model: a zoo model (`unet_zoo.create_model`, `unet_zoo.from_pretrained`), trained in place.
        data: the slices, labels, weight maps and held-out part (`unet_zoo.training.data.TrainingData`).
        loss: ``loss(logits, target, weight) -> scalar`` (`unet_zoo.training.step.LossFunction`); default the paper's
            weighted cross-entropy. Validation always reports the weighted cross-entropy (``val_loss``).
        optimizer, schedule, train, augment: the settings of the recipe sections of the same names
            (`unet_zoo.training.recipes.OptimizerCfg`, `ScheduleCfg`, `TrainCfg`, `unet_zoo.data.augment.AugmentConfig`);
            default `recipe`'s, else each class's defaults.
        tile: side in pixels of the input tiles (valid for the model); default `recipe`'s ``data.tile``.
        recipe: what the run is recorded as (recipe.json, the checkpoint, a card); the settings above replace its
            sections. Default: one naming the model's architecture and the settings given.
        init_from: what a card records about the weights `model` starts from ({"source", "sha256", ...}).
        out_dir: run folder; default ``runs/<recipe name>-<time>`` (or the resumed folder).
        device: "cuda", "cpu", ...; default CUDA when visible. Under torchrun each rank takes its GPU.
        resume: a run folder (or its checkpoint file, or a loaded `TrainingState`) to continue from with the same
            ingredients: the final weights equal those of an uninterrupted run.
        compile: override ``train.compile`` (None = the setting; it applies on CUDA only, an explicit True everywhere).
        callback: called with a `TrainProgress` at the start, after every step, after each validation and at the
            end, on rank 0 (the CLI draws a progress bar from it); the trainer prints nothing.
        final_outputs: draw curves.png / predictions.png and write summary.json at the end.
        time_limit: wall-clock budget of this session in seconds (like a SLURM job's): when the next stop check
            would come past it, checkpoint and raise `TimeLimitReached` (continue with ``resume``).

    Under torchrun every rank reads the checkpoint from `resume`, so multi-node resumes need a shared folder.
    """

    def __init__(
        self,
        model: nn.Module,
        data: TrainingData,
        loss: LossFunction = weighted_cross_entropy,
        *,
        optimizer: OptimizerCfg | None = None,
        schedule: ScheduleCfg | None = None,
        train: TrainCfg | None = None,
        augment: AugmentConfig | None = None,
        tile: int | None = None,
        recipe: Recipe | None = None,
        init_from: dict[str, Any] | None = None,
        out_dir: str | Path | None = None,
        device: str | torch.device | None = None,
        resume: str | Path | TrainingState | None = None,
        compile: bool | None = None,
        callback: TrainCallback | None = None,
        final_outputs: bool = True,
        time_limit: float | None = None,
    ):
        _check_time_limit(time_limit)
        self.recipe = self._settings(model, recipe, optimizer, schedule, train, augment, tile)
        r = self.recipe
        self.resume_state = _resumed(resume)
        _check_resumable(self.resume_state, r.train.steps, resume)
        self.dist: DistInfo = init_distributed(device)
        self.device = self.dist.device
        if out_dir is None and isinstance(resume, (str, Path)):
            out_dir = resume if Path(resume).is_dir() else Path(resume).parent
        if out_dir is None:
            out_dir = broadcast_object(str(default_run_dir(r.name)))
        self.folder = RunFolder(Path(out_dir), writer=self.dist.is_main)
        self.data, self.loss = data, loss
        self.callback = callback if self.dist.is_main else None
        self.final_outputs, self.time_limit = final_outputs, time_limit
        saved_init = self.resume_state.extra.get("init_from") if self.resume_state is not None else None
        self.init_info = init_from if init_from is not None else saved_init

        self.precision_choice = self._precision_choice()
        self.execution = execution_config(r, self.device, compile, precision=self.precision_choice.precision)
        self.model = prepare_model(model, self.device, channels_last=self.execution.channels_last)  # compiled below
        self.optimizer = build_optimizer(self.model, r.optimizer)
        self.scheduler = build_scheduler(self.optimizer, r.schedule, r.train.steps)
        out_tile = self.model.output_size(r.data.tile)  # type: ignore[operator]  # a zoo model's method
        # its own copy of the augmentation settings: the recipe stays as it was read
        images, labels, weights = data.train_images, data.train_labels, data.train_weights
        self.sampler = TileSampler(images, labels, weights, r.data.tile, out_tile, dataclasses.replace(r.augment), self.device)
        # Per-rank streams: different tiles and dropout masks on every process, reproducible from the seed.
        seed = r.train.seed * 1000 + self.dist.rank + 1
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        torch.manual_seed(seed)
        if self.device.type == "cuda":
            torch.cuda.manual_seed(seed)
        self.val = tuple(t.to(self.device) for t in validation_tiles(self.model, data, r.data.tile, r.train.eval_tiles))
        self.step = 0
        if self.resume_state is not None:
            self._restore(self.resume_state)
        self.first_step = self.step
        net: nn.Module = wrap_ddp(self.model, self.dist)
        if self.execution.compile:  # after DDP, as PyTorch recommends (DDPOptimizer splits the graph at buckets)
            net = torch.compile(net)
        self.net = net
        self.clock = Clock()
        self.watch = _LossWatch(self.device)
        self.loss_value = float("nan")  # the loss of the last logged step

    @classmethod
    def from_recipe(
        cls,
        recipe: Recipe,
        *,
        data: TrainingData | None = None,
        data_dir: str | Path | None = None,
        steps: int | None = None,
        resume: str | Path | TrainingState | None = None,
        out_dir: str | Path | None = None,
        device: str | torch.device | None = None,
        compile: bool | None = None,
        callback: TrainCallback | None = None,
        final_outputs: bool = True,
        time_limit: float | None = None,
    ) -> Trainer:
        """A trainer of `recipe` (`unet_zoo.training.recipes.load_recipe`): its model (`recipe_model`), its data
        (`load_training_data`, or `data` already loaded; `data_dir`: the ISBI folder) and the paper's loss.

        resume: a run folder (or its checkpoint file, or a loaded `TrainingState`) to continue; the recipe stored in
        it is used (with `steps` still overridable), so the final weights equal those of an uninterrupted run.
        steps: override ``train.steps``. The other arguments are `Trainer`'s.
        """
        _check_time_limit(time_limit)
        state = _resumed(resume)
        if state is not None:
            saved = state.extra.get("recipe")
            if saved is not None:
                recipe = recipe_from_dict(saved, source=recipe.source)
        if out_dir is None and isinstance(resume, (str, Path)):
            out_dir = resume if Path(resume).is_dir() else Path(resume).parent
        if steps is not None:
            recipe = recipe.with_overrides(train={"steps": steps})
        _check_resumable(state, recipe.train.steps, resume)
        if data is None:
            data = load_training_data(recipe, data_dir)
        model, init_info = recipe_model(recipe, load_init=state is None)  # a resumed run's checkpoint holds the weights
        if state is not None and recipe.model.init_from:
            init_info = dict(state.extra.get("init_from") or {"source": recipe.model.init_from})
        return cls(
            model,
            data,
            weighted_cross_entropy,
            recipe=recipe,
            init_from=init_info,
            out_dir=out_dir,
            device=device,
            resume=state,
            compile=compile,
            callback=callback,
            final_outputs=final_outputs,
            time_limit=time_limit,
        )

    @property
    def run_dir(self) -> Path:
        """The run folder."""
        return self.folder.path

    # --- set-up ---

    @staticmethod
    def _settings(
        model: nn.Module,
        recipe: Recipe | None,
        optimizer: OptimizerCfg | None,
        schedule: ScheduleCfg | None,
        train: TrainCfg | None,
        augment: AugmentConfig | None,
        tile: int | None,
    ) -> Recipe:
        """The run's settings as one `Recipe`: `recipe` (else one naming the model's architecture) with the
        sections given replaced; validated like a recipe file unless it is `recipe` unchanged."""
        if not callable(getattr(model, "output_size", None)):
            raise ValueError(f"model: a {type(model).__name__} has no output_size(tile); train a unet_zoo model")
        if recipe is None and tile is None:
            raise ValueError("tile: give the side of the input tiles in pixels (a size valid for the model)")
        given = recipe
        name, args = _architecture(model)
        if recipe is None:
            recipe = Recipe(recipe=RecipeInfo(name=name), model=ModelCfg(name=name, args=args))
        elif not _same_architecture(recipe.model, name, args):
            raise ValueError(
                f"recipe: its [model] ({recipe.model.name} {recipe.model.args}) is not the model given ({name} {args}); "
                "the run folder would not rebuild it"
            )
        sections: dict[str, Any] = {"optimizer": optimizer, "schedule": schedule, "train": train, "augment": augment}
        changes = {k: v for k, v in sections.items() if v is not None}
        if tile is not None and tile != recipe.data.tile:
            changes["data"] = dataclasses.replace(recipe.data, tile=tile)
        if "augment" in changes:
            changes["augment_keys"] = tuple(changes["augment"].as_dict())
        if given is not None and not changes:
            return given  # a recipe was checked when it was read
        settings = dataclasses.replace(recipe, **changes)
        recipe_from_dict(settings.as_dict(), source="the trainer's settings")  # the checks of a recipe file
        return settings

    def _precision_choice(self) -> TrainingChoice:
        """The precision of the steps: a resumed run keeps the one its checkpoint records (exact resume holds
        within one precision); else `training_precision`, decided on rank 0 and the same on every rank."""
        state = self.resume_state
        saved = state.extra.get("precision") if state is not None else None
        if saved in ("bf16", "fp32"):
            return TrainingChoice(saved, "resumed")
        choice = training_precision(self.recipe, self.device) if self.dist.is_main else None
        return broadcast_object(choice) if self.dist.world_size > 1 else choice  # type: ignore[return-value]

    def _restore(self, state: TrainingState) -> None:
        self.model.load_state_dict(state.model)
        if state.optimizer is not None:
            self.optimizer.load_state_dict(state.optimizer)
        if state.scheduler is not None:
            self.scheduler.load_state_dict(state.scheduler)
        self.step = state.step
        if self.dist.rank in state.rng and len(state.rng) == self.dist.world_size:
            set_rng_state(state.rng[self.dist.rank], self.generator, self.device)
        elif self.dist.is_main:
            warnings.warn(
                f"checkpoint has RNG states for {len(state.rng)} process(es), this run has "
                f"{self.dist.world_size}; continuing with fresh random streams (not bit-identical)",
                RuntimeWarning,
                stacklevel=3,
            )

    # --- the run ---

    def fit(self) -> TrainResult:
        """Train to ``train.steps``; returns a `TrainResult`.

        Raises `NonFiniteLossError` on a NaN/inf loss (noted every step, raised at the next log, validation or
        checkpoint) or NaN/inf weights (checked before every checkpoint, so a checkpoint never holds them);
        `TrainingInterrupted` after SIGTERM/SIGINT and `TimeLimitReached` at ``time_limit``, each with a checkpoint.
        On CUDA the run goes under `unet_zoo.runtime.settings.fast_backend` (cuDNN autotuning, TF32); PyTorch's
        settings are restored after.
        """
        with fast_backend() if self.execution.fast_backend else contextlib.nullcontext():
            return self._loop()

    def _loop(self) -> TrainResult:
        """Open the folder, then per step: sample, step, and at their intervals log, validate, checkpoint or stop."""
        state = self.resume_state
        self.folder.open(self.recipe, state.step if state is not None else None)
        logged = self.folder.last("loss")  # a resumed run reports its last logged loss even if no step is left
        self.loss_value = float(logged) if logged is not None else float("nan")
        self.clock.start(float(state.extra.get("train_seconds", 0.0)) if state is not None else 0.0)
        self.net.train()
        steps = self.recipe.train.steps
        with StopSignals() as stop, self._session():
            while self.step < steps:
                loss = self._train_step()
                self._log_if_due(loss)
                self._validate_if_due()
                self._checkpoint_or_stop_if_due(stop)
        seconds = self.clock.run_seconds()
        if self.dist.is_main and self.final_outputs and self.step == steps:
            self._final_outputs(seconds)
        return TrainResult(
            self.run_dir,
            self.model,
            self.recipe,
            self.data,
            self.step,
            seconds,
            self.loss_value,
            self.folder.history,
            steps_this_session=self.step - self.first_step,
            init_from=self.init_info,
            world_size=self.dist.world_size,
            precision=self.execution.precision,
        )

    @contextlib.contextmanager
    def _session(self) -> Iterator[None]:
        """Report "start" before the first step and "end" however the loop ends."""
        self._report("start", precision=self.precision_choice.describe())
        try:
            yield
        finally:
            self._report("end", loss=self.loss_value)

    def _train_step(self) -> torch.Tensor:
        """Sample augmented tiles, forward, loss, backward and update; nothing here waits for the device."""
        r = self.recipe
        with record_function("trainer.sample"):
            x, y, w = self.sampler.sample(r.train.batch_size, self.generator)
            x = prepare_input(x, self.device, channels_last=self.execution.channels_last)
        with record_function("trainer.forward_loss"):
            loss = step_loss(self.net, x, y, w, self.device, amp=self.execution.amp_dtype is not None, loss=self.loss)
        self.watch.observe(loss, self.step + 1)
        with record_function("trainer.backward_update"):
            apply_gradients(self.optimizer, loss, self.model.parameters(), grad_clip=r.optimizer.grad_clip)
        self.scheduler.step()
        self.step += 1
        self.clock.step_done()
        return loss

    def _due(self) -> tuple[bool, bool, bool]:
        """Whether this step logs, validates, checkpoints: every ``log_every`` / ``eval_every`` /
        ``checkpoint_every`` steps, and all three at the last."""
        t = self.recipe.train
        last = self.step == t.steps
        logs = self.step % t.log_every == 0 or last
        validates = bool(t.eval_every and self.step % t.eval_every == 0) or last
        return logs, validates, self.step % t.checkpoint_every == 0 or last

    def _check_loss(self, loss: torch.Tensor) -> float:
        """Wait for the device (once): the loss of this step, the mean over processes; raise `NonFiniteLossError`
        if the loss of any step since the last check was NaN/inf, on any process."""
        local = torch.stack([loss.detach().float(), (self.watch.first_bad > 0).float()])
        value, bad_anywhere = all_reduce_mean(local).tolist()
        if bad_anywhere > 0:
            first_bad = int(self.watch.first_bad.item())  # 0: another process saw it first (under torchrun)
            shown = self.watch.bad_loss.item() if first_bad else value
            raise NonFiniteLossError(
                f"loss is {shown} at step {first_bad or self.step} of recipe {self.recipe.name!r}; "
                f"stopped. The last good checkpoint ({self.folder.state_file}, if any) is kept. "
                "Lower optimizer.lr, add warm-up (schedule.warmup_steps) or set optimizer.grad_clip."
            )
        return value

    def _log_if_due(self, loss: torch.Tensor) -> None:
        """Every ``train.log_every`` steps and at the last: a metrics.jsonl record and a progress report with the
        loss and speed; on the other steps a bare progress report (no waiting for the device)."""
        logs, validates, checkpoints = self._due()
        if validates or checkpoints or logs:
            value = self._check_loss(loss)
            if logs:
                self.loss_value = value
        if not logs:
            self._report("step")
            return
        now = time.perf_counter()
        steps, seconds = self.clock.lap(now)
        speed = steps * self.recipe.train.batch_size * self.dist.world_size / max(seconds, 1e-9)
        self.folder.log(
            {
                "step": self.step,
                "loss": self.loss_value,
                "lr": self.scheduler.get_last_lr()[0],
                "tiles_per_s": round(speed, 3),
                "time_s": round(self.clock.run_seconds(now), 3),
            }
        )
        self._report("step", loss=self.loss_value, tiles_per_s=speed)

    def _validate_if_due(self) -> None:
        """Every ``train.eval_every`` steps and at the last (rank 0): the held-out tiles' loss and pixel error."""
        if self._due()[1] and self.dist.is_main:
            with record_function("trainer.validate"):
                scores = self.validate()
            self.folder.log({"step": self.step, **scores})
            self._report("validation", loss=self.loss_value, scores=scores)

    def _checkpoint_or_stop_if_due(self, stop: StopSignals) -> None:
        """Checkpoint every ``train.checkpoint_every`` steps, at the last, and before stopping for a signal (on any
        rank) or the time limit; then raise `TrainingInterrupted` / `TimeLimitReached` if stopping.

        One process checks the signal and the clock after every step (no waiting for the device); under torchrun
        the processes agree on it at every log, validation and checkpoint step."""
        logs, validates, checkpoints = self._due()
        stop_requested = out_of_time = False
        if not self.dist.enabled or logs or validates or checkpoints:
            stop_requested, out_of_time = self._should_stop(stop)
        if checkpoints or stop_requested or out_of_time:
            self._save()
        r = self.recipe
        if self.step == r.train.steps:
            return
        if stop_requested:
            signum = stop.received or signal.SIGTERM
            raise TrainingInterrupted(
                f"{signal.Signals(signum).name} stopped training of {r.name!r} after step {self.step} of "
                f"{r.train.steps}; its checkpoint is saved in {self.run_dir}. Continue with --resume {self.run_dir} "
                "(or --resume latest).",
                self.step,
                self.run_dir,
                signum,
            )
        if out_of_time:
            assert self.time_limit is not None
            raise TimeLimitReached(
                f"the time limit of {self.time_limit / 60:g} min stopped training of {r.name!r} after step "
                f"{self.step} of {r.train.steps}; its checkpoint is saved in {self.run_dir}. Continue with "
                f"--resume {self.run_dir} (or --resume latest).",
                self.step,
                self.run_dir,
                0,
            )

    def _should_stop(self, stop: StopSignals) -> tuple[bool, bool]:
        """(a signal arrived, the time limit would pass before the next check): one process decides alone, under
        torchrun every process stops if any was signalled and when rank 0's clock says so."""
        now = time.perf_counter()
        per_step = self.clock.seconds_per_step(now)
        late = False
        if self.time_limit is not None:
            # the steps until the next check, and one more, each as long as the last ones, plus a checkpoint
            steps_to_check = 1 if not self.dist.enabled else self.recipe.train.log_every
            margin = (steps_to_check + 1) * per_step + self.clock.checkpoint_seconds
            late = self.clock.session_seconds(now) + margin >= self.time_limit
        signalled = stop.received is not None
        if not self.dist.enabled:
            return signalled, late
        flags = all_reduce_mean(torch.tensor([float(signalled), float(late and self.dist.is_main)], device=self.device))
        signalled_anywhere, late_on_rank0 = flags.tolist()
        return signalled_anywhere > 0, late_on_rank0 > 0

    def _check_finite_weights(self) -> None:
        """Raise `NonFiniteLossError` when a weight is NaN/inf (a finite loss can still give inf gradients).

        Every rank holds the same weights under DDP, so every rank raises together."""
        params = list(self.model.parameters())
        if bool(torch.stack([torch.isfinite(p).all() for p in params]).all()):
            return
        bad = [name for name, p in self.model.named_parameters() if not bool(torch.isfinite(p).all())]
        raise NonFiniteLossError(
            f"weights became NaN/inf at step {self.step} of recipe {self.recipe.name!r} ({', '.join(bad[:3])}"
            f"{', ...' if len(bad) > 3 else ''}); stopped without saving them. The last good checkpoint "
            f"({self.folder.state_file}, if any) is kept. Lower optimizer.lr or set optimizer.grad_clip."
        )

    def _save(self) -> None:
        started = time.perf_counter()
        with record_function("trainer.checkpoint"):
            self._check_finite_weights()
            states = all_gather_objects(rng_state(self.generator, self.device))  # collective: every rank calls it
            if self.dist.is_main:
                save_training_state(
                    self.folder.state_file,
                    model=self.model,
                    step=self.step,
                    optimizer=self.optimizer,
                    scheduler=self.scheduler,
                    rng={rank: s for rank, s in enumerate(states)},
                    extra={
                        "recipe": self.recipe.as_dict(),
                        "world_size": self.dist.world_size,
                        "train_seconds": round(self.clock.run_seconds(started), 3),
                        "init_from": self.init_info,
                        "precision": self.execution.precision,  # a resumed run keeps it
                    },
                )
        self.clock.checkpoint_seconds = time.perf_counter() - started

    def _report(self, event: Any, **fields: Any) -> None:
        """Send a `TrainProgress` to the callback (rank 0 only)."""
        if self.callback is not None:
            elapsed = self.clock.run_seconds()
            self.callback(TrainProgress(event, self.step, self.recipe.train.steps, elapsed, **fields))

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Weighted cross-entropy (``val_loss``, nats per pixel) and pixel error (argmax vs label) on the fixed held-out
        tiles; for scribbles (sparse data) the pixel error counts the labelled pixels only."""
        self.model.eval()
        x, y, w = self.val
        batch = self.recipe.train.batch_size
        losses, wrong = [], 0
        for i in range(0, len(x), batch):
            xb = prepare_input(x[i : i + batch], self.device, channels_last=self.execution.channels_last)
            with autocast(self.device, enabled=self.execution.amp_dtype is not None):
                logits = self.model(xb)
            losses.append(weighted_cross_entropy(logits, y[i : i + len(xb)], w[i : i + len(xb)], "sum"))
            errors = logits.argmax(1) != y[i : i + len(xb)]
            wrong += int((errors & (w[i : i + len(xb)] > 0)).sum() if self.data.sparse else errors.sum())
        self.model.train()
        counted = int((w > 0).sum()) if self.data.sparse else y.numel()
        return {"val_loss": float(sum(losses) / y.numel()), "val_pixel_error": wrong / max(counted, 1)}

    def _final_outputs(self, seconds: float) -> None:
        """curves.png, predictions.png of the first held-out slices and summary.json."""
        history, path = self.folder.history, self.folder.path
        plot_curves(history, path / "curves.png")
        n = min(self.recipe.train.overlay_slices, len(self.data.val_images))
        if n:
            batch = self.recipe.eval.batch_size
            probs = np.stack(
                [predict_tiled(self.model, img, device=self.device, batch_size=batch)[0] for img in self.data.val_images[:n]]
            )
            titles = [f"held-out slice {s}" for s in self.data.val_slices[:n]]
            plot_overlays(self.data.val_images[:n], probs, self.data.val_labels[:n], path / "predictions.png", titles=titles)
        last_val = next((h for h in reversed(history) if "val_loss" in h), {})
        summary = {
            "recipe": self.recipe.name,
            "steps": self.step,
            "train_seconds": round(seconds, 2),
            "world_size": self.dist.world_size,
            "device": str(self.device),
            "precision": self.execution.precision,
            "precision_decided": self.precision_choice.how,
            "channels_last": self.execution.channels_last,
            "final_loss": self.folder.last("loss"),  # the last record may be a validation one
            **{k: v for k, v in last_val.items() if k != "step"},
        }
        self.folder.write_json(SUMMARY_FILE, summary)


def train(recipe: Recipe, **kwargs: Any) -> TrainResult:
    """Train `recipe` (`Trainer.from_recipe` takes the keyword arguments) and return the `TrainResult`."""
    return Trainer.from_recipe(recipe, **kwargs).fit()


__all__ = [
    "NonFiniteLossError",
    "RUN_FOLDER",
    "TrainResult",
    "Trainer",
    "TimeLimitReached",
    "TrainCallback",
    "TrainProgress",
    "TrainingInterrupted",
    "default_run_dir",
    "init_from_record",
    "latest_run_dir",
    "recipe_model",
    "train",
]
