"""The trainer: one readable loop from a recipe to trained weights (nanoGPT style).

    result = train(load_recipe("isbi-small"), steps=200)        # or: unet-zoo train isbi-small --steps 200

Top to bottom: data (slices, labels, the paper's weight maps; `unet_zoo.training.data`) -> model -> optimiser and schedule ->
(resume) -> loop [sample augmented tiles on the model's device, forward under bf16 autocast on GPU,
weighted cross-entropy, backward, step, log, validate, checkpoint] -> curves and prediction PNGs.

Everything a run writes goes to one folder (``runs/<recipe>-<YYYYmmdd-HHMMSS>/`` by default):
``recipe.json``, ``metrics.jsonl`` (one JSON object per logged step), ``checkpoint.safetensors``
(atomic, every ``train.checkpoint_every`` steps and at the end), ``curves.png``, ``predictions.png``
and ``summary.json``. Under torchrun every process trains, rank 0 writes.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.profiler import record_function

from unet_zoo.data.augment import TileSampler
from unet_zoo.hub.factory import from_pretrained
from unet_zoo.hub.pretrained import HubAccessError
from unet_zoo.hub.serialization import CheckpointError, check_state_dict
from unet_zoo.hub.sources import SourceError
from unet_zoo.hub.training_state import TRAINING_STATE_FILE, load_training_state, save_training_state
from unet_zoo.inference.tiling import predict_tiled
from unet_zoo.models.provenance import provenance_of
from unet_zoo.models.registry import create_model
from unet_zoo.runtime.measured import TrainingChoice
from unet_zoo.runtime.settings import (
    RuntimeSettings,
    Switch,
    autocast,
    fast_backend,
    prepare_input,
    prepare_model,
    runtime_settings,
)
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
from unet_zoo.training.optim import build_optimizer, lr_factor
from unet_zoo.training.precision import choose_training_precision
from unet_zoo.training.recipes import Recipe, recipe_from_dict
from unet_zoo.training.rng import rng_state, set_rng_state
from unet_zoo.training.step import apply_gradients, step_loss
from unet_zoo.utils.files import atomic_write_bytes, mark_owned
from unet_zoo.utils.plots import plot_curves, plot_overlays
from unet_zoo.utils.signals import StopSignals

RUNS_DIR = Path("runs")
RUN_FOLDER = "training run"  # what a run folder is marked as (unet_zoo.utils.files.mark_owned)


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


# --- how a run executes ----------------------------------------------------------------------------


def training_precision(recipe: Recipe, device: torch.device) -> TrainingChoice:
    """The precision the recipe's steps run in on `device`: ``train.precision`` "bf16" / "fp32" as it says; "auto"
    as measured on this machine (`unet_zoo.training.precision.choose_training_precision`: bf16 autocast where one
    step of this architecture, tile and batch runs faster in it; cached), bf16 on CUDA GPUs that support it."""
    t = recipe.train
    return choose_training_precision(
        recipe.model.name, dict(recipe.model.args), recipe.data.tile, t.batch_size, device, precision=t.precision
    )


def execution_config(
    recipe: Recipe, device: torch.device, compile: bool | None = None, precision: str | None = None
) -> RuntimeSettings:
    """The fast path the recipe asks for on `device`, decided by `unet_zoo.runtime.settings.runtime_settings`.

    `precision` ("bf16" or "fp32": what a resumed run started with) wins; else ``train.precision`` as
    `training_precision` decides it. ``train.channels_last`` ("auto": on for CUDA and for bf16) is passed on
    as it is. ``train.compile`` applies on CUDA only; an explicit `compile` (the ``--compile/--no-compile``
    flag) overrides it on every device.
    """
    t = recipe.train
    compile_switch: Switch = ("on" if compile else "off") if compile is not None else ("auto" if t.compile else "off")
    try:
        chosen = precision or training_precision(recipe, device).precision
        return runtime_settings(device, chosen, t.channels_last, compile_switch)
    except ValueError as err:  # say which recipe key asked for it
        raise ValueError(f"train.{err}") from None


# --- the run ------------------------------------------------------------------------------------------


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


def _timestamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def default_run_dir(recipe: Recipe) -> Path:
    """``runs/<recipe name>-<YYYYmmdd-HHMMSS>`` (relative to the working directory)."""
    return RUNS_DIR / f"{recipe.name}-{_timestamp()}"


def latest_run_dir(recipe_name: str, runs_dir: str | Path = RUNS_DIR) -> Path:
    """The newest ``runs/<recipe_name>-*`` folder holding a checkpoint (for ``--resume`` without a folder)."""
    candidates = sorted(p for p in Path(runs_dir).glob(f"{recipe_name}-*") if (p / TRAINING_STATE_FILE).is_file())
    if not candidates:
        raise FileNotFoundError(f"no run of {recipe_name!r} with a checkpoint under {runs_dir}/; pass --resume DIR")
    return candidates[-1]


class _Log:
    """metrics.jsonl writer (rank 0) plus the in-memory history."""

    def __init__(self, path: Path | None, history: list[dict[str, Any]]):
        self.path, self.history = path, history
        if path is not None:
            atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in history).encode())

    def write(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


class Trainer:
    """Trains `recipe` end to end; call `run()`. See the module docstring for what it writes.

    Args:
        recipe: the hyperparameters (`unet_zoo.training.recipes.load_recipe`).
        out_dir: run folder; default ``runs/<recipe>-<time>`` (or the resumed folder).
        device: "cuda", "cpu", ...; default CUDA when visible. Under torchrun each rank takes its GPU.
        resume: a run folder (or its checkpoint file) to continue from; the recipe stored in it is used
            (with `steps` still overridable), so the final weights equal those of an uninterrupted run.
        data_dir: ISBI folder (else the recipe's, $UNET_ZOO_DATA_DIR or the cache).
        steps: override ``train.steps``. compile: override ``train.compile`` (None = recipe; the recipe
            flag applies on CUDA only, an explicit True applies everywhere).
        callback: called with a `TrainProgress` at the start, after every step, after each validation and
            at the end, on rank 0 (the CLI draws a progress bar from it); the trainer prints nothing.
        final_outputs: draw curves.png / predictions.png and write summary.json at the end.
        data: pre-loaded `TrainingData` (skips loading and weight maps; tests and notebooks).
        time_limit: wall-clock budget of this session in seconds (like a SLURM job's): when the next step
            would end past it, checkpoint and raise `TimeLimitReached` (continue with ``resume``).

    Under torchrun every rank reads the checkpoint from `resume`, so multi-node resumes need a shared folder.
    """

    def __init__(
        self,
        recipe: Recipe,
        *,
        out_dir: str | Path | None = None,
        device: str | torch.device | None = None,
        resume: str | Path | None = None,
        data_dir: str | Path | None = None,
        steps: int | None = None,
        compile: bool | None = None,
        callback: TrainCallback | None = None,
        final_outputs: bool = True,
        data: TrainingData | None = None,
        time_limit: float | None = None,
    ):
        if time_limit is not None and time_limit <= 0:
            raise ValueError(f"time_limit must be a positive number of seconds, got {time_limit}")
        self.time_limit = time_limit
        self.checkpoint_seconds = 0.0  # how long the last checkpoint took to write (for the time limit)
        self.checkpoint = None
        if resume is not None:
            self.checkpoint = load_training_state(resume)
            saved = self.checkpoint.extra.get("recipe")
            if saved is not None:
                recipe = recipe_from_dict(saved, source=recipe.source)
            resume_dir = Path(resume) if Path(resume).is_dir() else Path(resume).parent
            out_dir = out_dir or resume_dir
        if steps is not None:
            recipe = recipe.with_overrides(train={"steps": steps})
        if self.checkpoint is not None and self.checkpoint.step > recipe.train.steps:
            raise ValueError(
                f"the checkpoint in {resume} is at step {self.checkpoint.step}, beyond the {recipe.train.steps} steps "
                "asked for; pass a larger --steps (or none, to use the recipe's)"
            )
        self.recipe = recipe
        self.dist: DistInfo = init_distributed(device)
        self.device = self.dist.device
        if out_dir is None:
            out_dir = broadcast_object(str(default_run_dir(recipe)))
        self.run_dir = Path(out_dir)
        self.data_dir, self.data = data_dir, data
        self.compile = compile
        self.callback = callback if self.dist.is_main else None
        self.final_outputs = final_outputs

    # The pieces of `run`, in order.

    def _setup(self) -> None:
        r, dev = self.recipe, self.device
        cuda = dev.type == "cuda"
        self.precision_choice = self._precision_choice()
        self.execution = execution_config(r, dev, self.compile, precision=self.precision_choice.precision)
        self.amp_dtype, self.channels_last = self.execution.amp_dtype, self.execution.channels_last

        if self.data is None:
            self.data = load_training_data(r, self.data_dir)
        torch.manual_seed(r.train.seed)  # identical initial weights on every rank (DDP also broadcasts them)
        model = create_model(r.model.name, **r.model.args).to(dev)
        self.init_info = self._initial_weights(model) if r.model.init_from else None
        model = prepare_model(model, dev, channels_last=self.channels_last)  # compiled below, after DDP
        self.model = model
        self.optimizer = build_optimizer(model, r)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: lr_factor(r, step))
        out_tile = model.output_size(r.data.tile)
        self.sampler = TileSampler(
            self.data.train_images,
            self.data.train_labels,
            self.data.train_weights,
            r.data.tile,
            out_tile,
            replace(r.augment),  # its own copy: the recipe stays as it was read
            dev,
        )
        # Per-rank streams: different tiles and dropout masks on every process, reproducible from the seed.
        self.generator = torch.Generator(device=dev).manual_seed(r.train.seed * 1000 + self.dist.rank + 1)
        torch.manual_seed(r.train.seed * 1000 + self.dist.rank + 1)
        if cuda:
            torch.cuda.manual_seed(r.train.seed * 1000 + self.dist.rank + 1)
        self.val = tuple(t.to(dev) for t in validation_tiles(model, self.data, r.data.tile, r.train.eval_tiles))
        self.step = 0
        if self.checkpoint is not None:
            self._restore(self.checkpoint)
        net: nn.Module = wrap_ddp(model, self.dist)
        if self.execution.compile:  # after DDP, as PyTorch recommends (DDPOptimizer splits the graph at buckets)
            net = torch.compile(net)
        self.net = net

    def _initial_weights(self, model: nn.Module) -> dict[str, Any]:
        """Load ``model.init_from``'s weights into `model` (a resumed run overwrites them with its checkpoint).

        Returns what the card reports: the source, its weights' sha256 and its own training time in seconds."""
        source = self.recipe.model.init_from
        if self.checkpoint is not None:  # resuming: the checkpoint holds the weights; keep the record only
            return dict(self.checkpoint.extra.get("init_from") or {"source": source})
        try:
            start = from_pretrained(source)
        except (CheckpointError, HubAccessError, SourceError) as err:
            raise ValueError(f"model.init_from = {source!r} cannot be loaded: {err}") from err
        state = start.state_dict()
        check_state_dict(model, state, source=f"model.init_from = {source!r}")
        model.load_state_dict(state)
        record = provenance_of(start)
        training = record.card.get("training") or {}
        return {
            "source": source,
            "sha256": record.sha256 if record.kind == "registry" else None,
            "train_seconds": training.get("time_s"),
            "steps": training.get("steps"),
        }

    def _precision_choice(self) -> TrainingChoice:
        """The precision of the steps: a resumed run keeps the one its checkpoint records (exact resume holds
        within one precision); else `training_precision`, decided on rank 0 and the same on every rank."""
        saved = self.checkpoint.extra.get("precision") if self.checkpoint is not None else None
        if saved in ("bf16", "fp32"):
            return TrainingChoice(saved, "resumed")
        choice = training_precision(self.recipe, self.device) if self.dist.is_main else None
        return broadcast_object(choice) if self.dist.world_size > 1 else choice  # type: ignore[return-value]

    def _restore(self, ckpt) -> None:
        self.model.load_state_dict(ckpt.model)
        if ckpt.optimizer is not None:
            self.optimizer.load_state_dict(ckpt.optimizer)
        if ckpt.scheduler is not None:
            self.scheduler.load_state_dict(ckpt.scheduler)
        self.step = ckpt.step
        if self.dist.rank in ckpt.rng and len(ckpt.rng) == self.dist.world_size:
            set_rng_state(ckpt.rng[self.dist.rank], self.generator, self.device)
        elif self.dist.is_main:
            warnings.warn(
                f"checkpoint has RNG states for {len(ckpt.rng)} process(es), this run has "
                f"{self.dist.world_size}; continuing with fresh random streams (not bit-identical)",
                RuntimeWarning,
                stacklevel=2,
            )

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
            f"({self.run_dir / TRAINING_STATE_FILE}, if any) is kept. Lower optimizer.lr or set optimizer.grad_clip."
        )

    def _save(self) -> None:
        started = time.perf_counter()
        with record_function("trainer.checkpoint"):
            self._save_training_state()
        self.checkpoint_seconds = time.perf_counter() - started

    def _save_training_state(self) -> None:
        self._check_finite_weights()
        states = all_gather_objects(rng_state(self.generator, self.device))  # collective: every rank calls it
        if not self.dist.is_main:
            return
        save_training_state(
            self.run_dir / TRAINING_STATE_FILE,
            model=self.model,
            step=self.step,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            rng={rank: s for rank, s in enumerate(states)},
            extra={
                "recipe": self.recipe.as_dict(),
                "world_size": self.dist.world_size,
                "train_seconds": round(self.train_seconds, 3),
                "init_from": self.init_info,
                "precision": self.execution.precision,  # a resumed run keeps it
            },
        )

    def _autocast(self) -> torch.autocast:
        return autocast(self.device, enabled=self.amp_dtype is not None)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Weighted CE and pixel error (argmax vs label) on the fixed held-out tiles; for scribbles (sparse data) the
        pixel error counts the labelled pixels only."""
        self.model.eval()
        x, y, w = self.val
        sparse = bool(self.data is not None and self.data.sparse)
        losses, wrong = [], 0
        for i in range(0, len(x), self.recipe.train.batch_size):
            xb = prepare_input(x[i : i + self.recipe.train.batch_size], self.device, channels_last=self.channels_last)
            with self._autocast():
                logits = self.model(xb)
            losses.append(weighted_cross_entropy(logits, y[i : i + len(xb)], w[i : i + len(xb)], "sum"))
            errors = logits.argmax(1) != y[i : i + len(xb)]
            wrong += int((errors & (w[i : i + len(xb)] > 0)).sum() if sparse else errors.sum())
        self.model.train()
        counted = int((w > 0).sum()) if sparse else y.numel()
        return {"val_loss": float(sum(losses) / y.numel()), "val_pixel_error": wrong / max(counted, 1)}

    def run(self) -> TrainResult:
        """Train to ``train.steps``; returns a `TrainResult`.

        Raises `NonFiniteLossError` on a NaN/inf loss (checked every step, before the update) or NaN/inf
        weights (checked before every checkpoint, so a checkpoint never holds them). On CUDA the run goes
        under `unet_zoo.runtime.settings.fast_backend` (cuDNN autotuning, TF32); PyTorch's settings are restored after.
        """
        self._setup()
        with fast_backend() if self.execution.fast_backend else contextlib.nullcontext():
            return self._loop()

    def _loop(self) -> TrainResult:
        """The steps of `run` after `_setup`: sample, step, log, validate, checkpoint or stop, final outputs."""
        self._open_run_folder()
        with StopSignals() as stop, self._session():
            while self.step < self.recipe.train.steps:
                loss = self._train_step()
                self._log_if_due(loss)
                self._validate_if_due()
                self._checkpoint_or_stop_if_due(stop)
        if self.dist.is_main and self.final_outputs and self.step == self.recipe.train.steps:
            self._final_outputs(self.history, self.train_seconds)
        return TrainResult(
            self.run_dir,
            self.model,
            self.recipe,
            self.data,
            self.step,
            self.train_seconds,
            self.loss_value,
            self.history,
            steps_this_session=self.step - self.first_step,
            init_from=self.init_info,
            world_size=self.dist.world_size,
            precision=self.execution.precision,
        )

    def _open_run_folder(self) -> None:
        """Write recipe.json, reopen metrics.jsonl (a resumed run keeps its records up to the checkpoint) and
        start the clocks; the training time of a resumed run's earlier sessions counts towards its total."""
        if self.dist.is_main:
            new = not self.run_dir.is_dir() or not any(self.run_dir.iterdir())
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if new:  # a folder this run creates is marked as unet_zoo's (only such a folder --overwrite replaces)
                mark_owned(self.run_dir, RUN_FOLDER)
            atomic_write_bytes(self.run_dir / "recipe.json", json.dumps(self.recipe.as_dict(), indent=2).encode())
        self.history = self._read_history() if self.checkpoint is not None else []
        self.log = _Log(self.run_dir / "metrics.jsonl" if self.dist.is_main else None, self.history)
        # a resumed run reports its last logged loss even if no step is left to train
        self.loss_value = next((float(h["loss"]) for h in reversed(self.history) if "loss" in h), float("nan"))
        self.first_step = self.step
        earlier = float(self.checkpoint.extra.get("train_seconds", 0.0)) if self.checkpoint is not None else 0.0
        now = time.perf_counter()
        self.start_time = now - earlier  # elapsed training time of the whole run = now - start_time
        self.train_seconds = earlier  # what the next checkpoint records
        self.session_start = self.step_start = self.window_start = now
        self.window_steps = 0
        self.net.train()

    @contextlib.contextmanager
    def _session(self) -> Iterator[None]:
        """Report "start" before the first step and "end" however the loop ends."""
        self._report("start", precision=self.precision_choice.describe())
        try:
            yield
        finally:
            self._report("end", loss=self.loss_value)

    def _train_step(self) -> torch.Tensor:
        """Sample augmented tiles, forward, check the loss on every rank, backward and update."""
        r = self.recipe
        with record_function("trainer.sample"):
            x, y, w = self.sampler.sample(r.train.batch_size, self.generator)
            x = prepare_input(x, self.device, channels_last=self.channels_last)
        with record_function("trainer.forward_loss"):
            loss = step_loss(self.net, x, y, w, self.device, amp=self.amp_dtype is not None)
        self.loss_value = float(all_reduce_mean(loss.detach().float()))  # NaN on any rank -> NaN on all
        if not math.isfinite(self.loss_value):
            raise NonFiniteLossError(
                f"loss is {self.loss_value} at step {self.step + 1} of recipe {r.name!r}; "
                f"stopped. The last good checkpoint ({self.run_dir / TRAINING_STATE_FILE}, if any) is kept. "
                "Lower optimizer.lr, add warm-up (schedule.warmup_steps) or set optimizer.grad_clip."
            )
        with record_function("trainer.backward_update"):
            apply_gradients(self.optimizer, loss, self.model.parameters(), grad_clip=r.optimizer.grad_clip)
        self.scheduler.step()
        self.step += 1
        self.window_steps += 1
        return loss

    def _log_if_due(self, loss: torch.Tensor) -> None:
        """Every ``train.log_every`` steps and at the last: a metrics.jsonl record and a progress report with the
        loss and speed; on the other steps a bare progress report."""
        r = self.recipe
        if self.step % r.train.log_every and self.step != r.train.steps:
            self._report("step")
            return
        now = time.perf_counter()
        tiles = self.window_steps * r.train.batch_size * self.dist.world_size
        speed = tiles / max(now - self.window_start, 1e-9)
        self.window_start, self.window_steps = now, 0
        self.log.write(
            {
                "step": self.step,
                "loss": self.loss_value,
                "lr": self.scheduler.get_last_lr()[0],
                "tiles_per_s": round(speed, 3),
                "time_s": round(now - self.start_time, 3),
            }
        )
        self._report("step", loss=self.loss_value, tiles_per_s=speed)

    def _validate_if_due(self) -> None:
        """Every ``train.eval_every`` steps and at the last (rank 0): the held-out tiles' loss and pixel error."""
        r = self.recipe
        due = (r.train.eval_every and self.step % r.train.eval_every == 0) or self.step == r.train.steps
        if due and self.dist.is_main:
            with record_function("trainer.validate"):
                scores = self.validate()
            self.log.write({"step": self.step, **scores})
            self._report("validation", loss=self.loss_value, scores=scores)

    def _checkpoint_or_stop_if_due(self, stop: StopSignals) -> None:
        """Checkpoint every ``train.checkpoint_every`` steps, at the last, and before stopping for a signal
        (on any rank) or the time limit; then raise `TrainingInterrupted` / `TimeLimitReached` if stopping."""
        r = self.recipe
        now = time.perf_counter()
        self.train_seconds = now - self.start_time
        stop_requested = bool(all_reduce_mean(torch.tensor(float(stop.received is not None), device=self.device)) > 0)
        out_of_time = self._out_of_time(now)
        self.step_start = now
        finished = self.step == r.train.steps
        if self.step % r.train.checkpoint_every == 0 or finished or stop_requested or out_of_time:
            self._save()
        if finished:
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

    def _report(self, event: Any, **fields: Any) -> None:
        """Send a `TrainProgress` to the callback (rank 0 only)."""
        if self.callback is not None:
            elapsed = time.perf_counter() - self.start_time
            self.callback(TrainProgress(event, self.step, self.recipe.train.steps, elapsed, **fields))

    def _out_of_time(self, now: float) -> bool:
        """Whether one more step (taking as long as the last one, plus the checkpoint's time) would end
        past ``time_limit`` seconds of this session; every rank decides on rank 0's clock."""
        if self.time_limit is None:
            return False
        margin = 2.0 * (now - self.step_start) + self.checkpoint_seconds
        late = torch.tensor(float(now - self.session_start + margin >= self.time_limit), device=self.device)
        return bool(all_reduce_mean(late) > 0)

    def _read_history(self) -> list[dict[str, Any]]:
        path = self.run_dir / "metrics.jsonl"
        if not path.is_file():
            return []
        records = []
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut off by the kill; the log is rewritten from the records kept
                continue
        return [rec for rec in records if rec.get("step", 0) <= self.step]  # drop steps after the checkpoint

    def _final_outputs(self, history: list[dict[str, Any]], seconds: float) -> None:
        plot_curves(history, self.run_dir / "curves.png")
        n = min(self.recipe.train.overlay_slices, len(self.data.val_images))
        if n:
            probs = np.stack(
                [
                    predict_tiled(self.model, img, device=self.device, batch_size=self.recipe.eval.batch_size)[0]
                    for img in self.data.val_images[:n]
                ]
            )
            plot_overlays(
                self.data.val_images[:n],
                probs,
                self.data.val_labels[:n],
                self.run_dir / "predictions.png",
                titles=[f"held-out slice {s}" for s in self.data.val_slices[:n]],
            )
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
            "final_loss": next(
                (h["loss"] for h in reversed(history) if "loss" in h), None
            ),  # the last record may be a validation one
            **{k: v for k, v in last_val.items() if k != "step"},
        }
        atomic_write_bytes(self.run_dir / "summary.json", json.dumps(summary, indent=2).encode())


def train(recipe: Recipe, **kwargs: Any) -> TrainResult:
    """Train `recipe` (see `Trainer` for the keyword arguments) and return the `TrainResult`."""
    return Trainer(recipe, **kwargs).run()


__all__ = [
    "NonFiniteLossError",
    "TrainResult",
    "Trainer",
    "TimeLimitReached",
    "TrainCallback",
    "TrainProgress",
    "TrainingInterrupted",
    "default_run_dir",
    "execution_config",
    "latest_run_dir",
    "train",
    "training_precision",
]
