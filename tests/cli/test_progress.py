"""unet_zoo.cli.progress: the CLI draws the trainer's reports (a bar on a terminal, lines in a log)."""

from __future__ import annotations

import re
from io import StringIO

from rich.console import Console

from unet_zoo.cli.progress import TrainingDisplay
from unet_zoo.reproduce import ReproduceStage
from unet_zoo.training.recipes import load_recipe
from unet_zoo.training.trainer import TrainProgress


def _reports() -> list[TrainProgress]:
    return [
        TrainProgress("start", 0, 2, 0.0),
        TrainProgress("step", 1, 2, 1.0, loss=0.61234, tiles_per_s=3.5),
        TrainProgress("step", 2, 2, 2.0, loss=0.51234, tiles_per_s=3.7),
        TrainProgress("validation", 2, 2, 2.5, loss=0.51234, scores={"val_loss": 0.4, "val_pixel_error": 0.2}),
        TrainProgress("end", 2, 2, 2.6, loss=0.51234),
    ]


def test_terminal_shows_a_bar_with_step_loss_speed_and_eta():
    console = Console(file=StringIO(), force_terminal=True, width=150)
    display = TrainingDisplay(console)
    for report in _reports():
        display(report)
    out = console.file.getvalue()
    assert "2/2" in out and "tiles/s" in out and "ETA" in out and "3.7" in out
    assert re.search(r"loss 0\.5123", out), out


def test_log_gets_plain_lines_at_validation_and_end():
    console = Console(file=StringIO(), force_terminal=False, width=150)
    display = TrainingDisplay(console)
    display(ReproduceStage(load_recipe("tiny"), "train"))
    for report in _reports():
        display(report)
    lines = console.file.getvalue().splitlines()
    assert lines[0].startswith("tiny: ") and lines[1] == "training from step 0 of 2"
    assert lines[2] == "step 2/2  loss 0.5123  val_loss 0.4000  val_pixel_error 0.2000  2 s"
    assert lines[3] == "step 2/2  loss 0.5123  3 s" and len(lines) == 4
    assert "\r" not in console.file.getvalue()
