"""How the CLI shows progress: a bar with a count and an ETA on a terminal, plain lines in logs and pipes, nothing
with ``--quiet``.

The library prints nothing; it reports progress to callbacks, and the commands render them here:
`ProgressDisplay` (counted work: slices, blocks, sections) for predict, segment, evaluate and export, and
`TrainingDisplay` (the trainer's `TrainProgress`) for train, reproduce and finetune. Every such command takes
``--quiet`` (`unet_zoo.cli.options.Quiet`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from unet_zoo.cli.tables import comparison_table
from unet_zoo.experiments.isbi2012.reproduce import ReproduceStage
from unet_zoo.training.trainer import TrainProgress

PLAIN_LINES = 10  # without a terminal, a counted task prints about this many lines (every 10 %) and its last one


def _seconds(value: float) -> str:
    """``42 s``, ``3 min 05 s`` or ``1 h 02 min``."""
    value = max(0, round(value))
    if value < 60:
        return f"{value} s"
    if value < 3600:
        return f"{value // 60} min {value % 60:02d} s"
    return f"{value // 3600} h {value % 3600 // 60:02d} min"


class Counter:
    """One counted task of a `ProgressDisplay`: call `update(done, total)` or `advance()` as work finishes."""

    def __init__(self, display: ProgressDisplay, description: str, total: int | None, unit: str) -> None:
        self.display, self.description, self.total, self.unit = display, description, total, unit
        self.done = 0
        self.start = time.perf_counter()
        self._shown = 0  # the count the last plain line showed
        self._task: TaskID | None = None
        if display.progress is not None:
            self._task = display.progress.add_task(escape(description), total=total, unit=unit)

    def advance(self, step: int = 1) -> None:
        """`step` more items are done."""
        self.update(self.done + step)

    def update(self, done: int, total: int | None = None) -> None:
        """`done` items of `total` (unchanged when None) are done."""
        self.done = done
        if total is not None:
            self.total = total
        if self.display.progress is not None and self._task is not None:
            self.display.progress.update(self._task, completed=done, total=self.total)
        elif self.display.plain and self._due(done):
            self._shown = done
            self.display.console.print(self.line(), markup=False, highlight=False, soft_wrap=True)

    def _due(self, done: int) -> bool:
        """A plain line is due at the first count of each tenth of the total, and at the end."""
        if done <= self._shown:
            return False
        if not self.total or done >= self.total:
            return True
        step = max(1, math.ceil(self.total / PLAIN_LINES))
        return done // step > self._shown // step

    def line(self) -> str:
        """``predicting a.tif: 3/30 slices, 12 s, ETA 1 min 48 s``: the count, the time so far and the time left."""
        elapsed = time.perf_counter() - self.start
        count = f"{self.done}/{self.total}" if self.total else f"{self.done}"
        text = f"{self.description}: {count} {self.unit}".rstrip() + f", {_seconds(elapsed)}"
        if self.total and 0 < self.done < self.total:
            text += f", ETA {_seconds(elapsed / self.done * (self.total - self.done))}"
        return text


class ProgressDisplay:
    """Counted progress of one command: with ``with ProgressDisplay(console, quiet=quiet) as display:``,
    ``display.counter("predicting a.tif", 30, "slices")`` returns a `Counter` the library's callback advances.

    On a terminal: one bar per counter with the count, elapsed time and ETA (removed when the command ends).
    Otherwise (a pipe, a log file, typer's CliRunner): a plain line about every 10 % of a counter and at its end.
    ``quiet=True``: nothing. `say` prints a stage line under the same rules (no count: what is being done).
    """

    def __init__(self, console: Console, *, quiet: bool = False, bar: bool | None = None) -> None:
        self.console, self.quiet = console, quiet
        use_bar = console.is_terminal if bar is None else bar
        self.plain = not quiet and not use_bar
        self.progress: Progress | None = None
        if not quiet and use_bar:
            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[unit]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )

    def __enter__(self) -> ProgressDisplay:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        if self.progress is not None:
            self.progress.stop()

    def counter(self, description: str, total: int | None = None, unit: str = "") -> Counter:
        """A new counted task: `total` items (None: not known yet) of `unit` ("slices", "blocks", ...)."""
        return Counter(self, description, total, unit)

    @contextmanager
    def stage(self, message: str) -> Iterator[None]:
        """A step without a count (an export): on a terminal a bar that pulses beside `message` with the time so
        far, else the message and, when it finishes, ``... done in 12 s``; nothing with --quiet."""
        if self.progress is not None:
            task = self.progress.add_task(escape(message), total=None, unit="")
            try:
                yield
            finally:
                self.progress.remove_task(task)
        elif not self.plain:
            yield
        else:
            start = time.perf_counter()
            self.say(f"{message} ...")
            yield
            self.say(f"{message}: done in {_seconds(time.perf_counter() - start)}")

    def say(self, message: str) -> None:
        """A stage without a count (``exporting isbi-small to onnx``); nothing with --quiet."""
        if not self.quiet:
            self.console.print(message, markup=False, highlight=False, soft_wrap=True)


_STAGES = {
    "evaluate": "evaluating the held-out slices (with and without test-time augmentation)",
    "check_stored": "writing the Hub folder and scoring its stored weights again",
}


class TrainingDisplay:
    """Draws `TrainProgress` and `ReproduceStage` reports on `console`.

    On a terminal: a bar with step, loss, tiles/s, elapsed time and ETA. Otherwise (``nohup ... > run.log``)
    one line per validation (with the ETA) and at the end, so a log shows how the run went without carriage
    returns. ``quiet=True`` (``--quiet``): no progress and no stage lines, only the final result.
    """

    def __init__(self, console: Console, *, bar: bool | None = None, quiet: bool = False):
        self.console, self.quiet = console, quiet
        self.bar = console.is_terminal if bar is None else bar
        self.first_step: int | None = None  # the step this session started at (resumed runs start later)
        self.first_elapsed = 0.0
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def __call__(self, report: Any) -> None:
        if isinstance(report, TrainProgress):
            self._training(report)
        elif isinstance(report, ReproduceStage):
            self._stage(report)

    def _training(self, report: TrainProgress) -> None:
        if self.quiet:
            return
        if report.event == "start":
            self._start(report)
        elif report.event == "end":
            self._stop()
            if not self.bar:
                self._line(report)
        elif self.progress is not None and self.task is not None:
            fields: dict[str, Any] = {"completed": report.step}
            if report.loss is not None:
                fields["loss"] = f"{report.loss:.4f}"
            if report.tiles_per_s is not None:
                fields["speed"] = f"{report.tiles_per_s:.1f}"
            self.progress.update(self.task, **fields)
        elif report.event == "validation":
            self._line(report)

    def _start(self, report: TrainProgress) -> None:
        if report.precision:
            self.console.print(f"precision: {report.precision}", markup=False, highlight=False)
        self.first_step, self.first_elapsed = report.step, report.elapsed_s
        if not self.bar:
            self.console.print(f"training from step {report.step} of {report.total_steps}", highlight=False)
            return
        self.progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[speed]} tiles/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.task = self.progress.add_task("train", total=report.total_steps, completed=report.step, loss="-", speed="-")
        self.progress.start()

    def _stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
        self.progress, self.task = None, None

    def _line(self, report: TrainProgress) -> None:
        text = f"step {report.step}/{report.total_steps}"
        if report.loss is not None:
            text += f"  loss {report.loss:.4f}"
        for key, value in (report.scores or {}).items():
            text += f"  {key} {value:.4f}"
        text += f"  {report.elapsed_s:.0f} s"
        steps = report.step - (self.first_step or 0)
        if report.event != "end" and steps > 0 and report.step < report.total_steps:
            per_step = (report.elapsed_s - self.first_elapsed) / steps
            text += f"  ETA {_seconds(per_step * (report.total_steps - report.step))}"
        self.console.print(text, highlight=False, soft_wrap=True)  # one line in a log, however long

    def _stage(self, stage: ReproduceStage) -> None:
        name = stage.recipe.name
        if self.quiet and stage.stage != "done":
            return
        if stage.stage == "train":
            self.console.print(f"[bold]{name}[/bold]: {stage.recipe.recipe.description}")
        elif stage.stage in _STAGES:
            self.console.print(f"{name}: {_STAGES[stage.stage]}", highlight=False)
        elif stage.stage == "done" and stage.result is not None:
            self._reproduced(stage.result)

    def _reproduced(self, result: Any) -> None:
        """The comparison with the paper, the scores without TTA, the stored-weights check and where things are."""
        slices = result.train_result.data.val_slices
        self.console.print(
            comparison_table(
                result.metrics, title=f"{result.recipe.name}: held-out slices {slices[0]}-{slices[-1]} vs. the paper"
            )
        )
        plain = result.metrics_without_tta
        if plain is not None:
            warping = f"warping error {plain['warping_error']:.6f}, " if plain.get("warping_error") is not None else ""
            self.console.print(
                f"without TTA: {warping}Rand error {plain['rand_error']:.4f}, "
                f"pixel error {plain['pixel_error']:.4f}, V_rand (thinned) {plain['vrand_thinned']:.4f}"
            )
        check = result.stored_check
        if check is not None:
            self.console.print(("" if check["equal"] else "[yellow]warning:[/yellow] ") + check["summary"])
        self.console.print(
            f"trained {result.train_result.step} steps in {result.train_seconds:.0f} s, evaluated in "
            f"{result.eval_seconds:.0f} s; run: {result.run_dir}  Hub folder: {result.card_dir}  "
            f"predictions: {result.card_dir / 'predictions.png'}"
        )


__all__ = ["Counter", "ProgressDisplay", "TrainingDisplay"]
