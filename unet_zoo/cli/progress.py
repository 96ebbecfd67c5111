"""How the CLI shows a training run: a progress bar on a terminal, plain lines in logs and pipes.

`TrainingDisplay` is the callback `unet_zoo.training.trainer.train` and `unet_zoo.reproduce.reproduce_isbi` report
to; the library itself prints nothing.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from unet_zoo.cli.tables import comparison_table
from unet_zoo.reproduce import ReproduceStage
from unet_zoo.training.trainer import TrainProgress

_STAGES = {
    "evaluate": "evaluating the held-out slices (with and without test-time augmentation)",
    "check_stored": "writing the Hub folder and scoring its stored weights again",
}


class TrainingDisplay:
    """Draws `TrainProgress` and `ReproduceStage` reports on `console`.

    On a terminal: a bar with step, loss, tiles/s, elapsed time and ETA. Otherwise (``nohup ... > run.log``)
    one line per validation and at the end, so a log shows how the run went without carriage returns.
    """

    def __init__(self, console: Console, *, bar: bool | None = None):
        self.console = console
        self.bar = console.is_terminal if bar is None else bar
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def __call__(self, report: Any) -> None:
        if isinstance(report, TrainProgress):
            self._training(report)
        elif isinstance(report, ReproduceStage):
            self._stage(report)

    def _training(self, report: TrainProgress) -> None:
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
        self.console.print(f"{text}  {report.elapsed_s:.0f} s", highlight=False)

    def _stage(self, stage: ReproduceStage) -> None:
        name = stage.recipe.name
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


__all__ = ["TrainingDisplay"]
