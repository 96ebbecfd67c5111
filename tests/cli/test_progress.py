"""unet_zoo.cli.progress: the CLI draws the library's progress reports (a bar on a terminal, lines in a log,
nothing with --quiet)."""

from __future__ import annotations

import re
import typing
from io import StringIO

import numpy as np
import pytest
import tifffile
import torch
from rich.console import Console
from typer.testing import CliRunner

import unet_zoo
from unet_zoo.cli import app
from unet_zoo.cli.options import Quiet
from unet_zoo.cli.progress import ProgressDisplay, TrainingDisplay
from unet_zoo.experiments.isbi2012.reproduce import ReproduceStage
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


def test_log_validation_lines_say_how_long_the_rest_takes():
    console = Console(file=StringIO(), force_terminal=False, width=150)
    display = TrainingDisplay(console)
    display(TrainProgress("start", 10, 110, 5.0))
    display(TrainProgress("validation", 60, 110, 30.0, loss=0.5))  # 50 steps in 25 s: 50 more take 25 s
    lines = console.file.getvalue().splitlines()
    assert lines[1] == "step 60/110  loss 0.5000  30 s  ETA 25 s"


def test_quiet_training_display_prints_nothing_but_the_result():
    console = Console(file=StringIO(), force_terminal=False, width=150)
    display = TrainingDisplay(console, quiet=True)
    display(ReproduceStage(load_recipe("tiny"), "train"))
    for report in _reports():
        display(report)
    assert console.file.getvalue() == ""


# ==== ProgressDisplay: the counted progress of predict, segment, evaluate and export ===============


def _plain(quiet: bool = False) -> tuple[Console, ProgressDisplay]:
    console = Console(file=StringIO(), force_terminal=False, width=150)
    return console, ProgressDisplay(console, quiet=quiet)


@pytest.mark.parametrize("total", [1, 7, 30, 95])
def test_plain_lines_every_tenth_and_at_the_end_with_count_and_eta(total):
    console, display = _plain()
    with display:
        counter = display.counter("predicting vol.tif", total, "slices")
        for _ in range(total):
            counter.advance()
    lines = console.file.getvalue().splitlines()
    counts = [int(re.match(r"predicting vol\.tif: (\d+)/(\d+) slices, \d+ s", line).group(1)) for line in lines]
    assert counts == sorted(set(counts)) and counts[-1] == total and len(lines) <= 11
    assert len(lines) == min(total, 10) or len(lines) == 11  # every item when there are at most 10, else each tenth
    assert all("ETA" in line for line in lines[:-1]) and "ETA" not in lines[-1]
    assert "\r" not in console.file.getvalue()


def test_plain_counter_without_a_total_counts_what_is_done():
    console, display = _plain()
    with display:
        counter = display.counter("predicting v.zarr", None, "blocks")
        counter.update(3)
        counter.update(5, total=5)
    lines = console.file.getvalue().splitlines()
    assert lines[0].startswith("predicting v.zarr: 3 blocks, ") and lines[1].startswith("predicting v.zarr: 5/5 blocks")


def test_eta_is_the_time_per_item_times_the_items_left(monkeypatch):
    from unet_zoo.cli import progress

    clock = iter([100.0, 110.0])  # the counter starts at 100 s; 2 of 6 done at 110 s: 4 more take 20 s
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    console, display = _plain()
    counter = display.counter("segmenting a.tif", 6, "sections")
    counter.done = 2
    assert counter.line() == "segmenting a.tif: 2/6 sections, 10 s, ETA 20 s"


def test_terminal_bar_shows_count_and_eta():
    console = Console(file=StringIO(), force_terminal=True, width=150)
    with ProgressDisplay(console) as display:
        counter = display.counter("predicting vol.tif", 4, "slices")
        counter.advance(2)
        display.progress.refresh()  # type: ignore[union-attr]
    out = console.file.getvalue()
    assert "2/4" in out and "slices" in out and "ETA" in out


def test_terminal_stage_shows_a_live_bar_beside_the_counters():
    """An export's stage runs inside the display's own live bar (rich allows one live display at a time)."""
    console = Console(file=StringIO(), force_terminal=True, width=150)
    with ProgressDisplay(console) as display, display.stage("exporting small to onnx"):
        display.progress.refresh()  # type: ignore[union-attr]
    assert "exporting small to onnx" in console.file.getvalue()


def test_quiet_display_prints_nothing():
    console, display = _plain(quiet=True)
    with display, display.stage("exporting small to onnx"):
        counter = display.counter("predicting vol.tif", 3, "slices")
        counter.advance(3)
        display.say("scoring 3 slices")
    assert console.file.getvalue() == ""


def test_plain_stage_says_what_runs_and_when_it_finished():
    console, display = _plain()
    with display, display.stage("exporting small to onnx"):
        pass
    lines = console.file.getvalue().splitlines()
    assert lines[0] == "exporting small to onnx ..." and re.fullmatch(r"exporting small to onnx: done in \d+ s", lines[1])


# ==== the commands, through typer's CliRunner (not a terminal: plain lines) ========================

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A checkpoint folder of a small, untrained U-Net (4 base channels, depth 2): fast on any CPU."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models") / "tiny"
    unet_zoo.save_pretrained(unet_zoo.create_model("small", base_channels=4, depth=2), folder)
    return folder


@pytest.fixture
def stack(tmp_path, rng):
    path = tmp_path / "vol.tif"
    tifffile.imwrite(path, rng.integers(0, 256, (12, 24, 24), dtype=np.uint8), photometric="minisblack")
    return path


def _progress_lines(output: str, verb: str, name: str, unit: str) -> list[tuple[int, int]]:
    return [(int(d), int(t)) for d, t in re.findall(rf"^{verb} {re.escape(name)}: (\d+)/(\d+) {unit}, ", output, re.M)]


@pytest.mark.parametrize("quiet", [False, True])
def test_predict_prints_counted_progress_lines_unless_quiet(tmp_path, stack, tiny_model, quiet):
    args = ["predict", str(tiny_model), str(stack), "--out", str(tmp_path / "out"), "--device", "cpu", "--backend", "torch"]
    result = runner.invoke(app, args + (["--quiet"] if quiet else []), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    counts = _progress_lines(result.output, "predicting", "vol.tif", "slices")
    if quiet:
        assert counts == [] and "ETA" not in result.output
    else:
        assert counts[-1] == (12, 12) and len(counts) >= 6 and "ETA" in result.output
    assert "vol_prob.tif" in result.output  # the result is printed either way


@pytest.mark.parametrize("quiet", [False, True])
def test_segment_counts_the_sections_it_segments_unless_quiet(tmp_path, rng, quiet):
    prob = tmp_path / "vol_prob.tif"
    tifffile.imwrite(prob, rng.random((5, 32, 32), dtype=np.float32), photometric="minisblack")
    args = ["segment", "default", str(prob), "--from-probabilities", "--out", str(tmp_path / "cells")]
    result = runner.invoke(app, args + (["-q"] if quiet else []), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    counts = _progress_lines(result.output, "segmenting", "vol_prob.tif", "sections")
    assert counts == ([] if quiet else [(i, 5) for i in range(1, 6)])


@pytest.mark.parametrize("command", ["predict", "segment", "evaluate", "export", "finetune", "train", "reproduce isbi"])
def test_quiet_means_the_same_everywhere(command):
    from tests.cli.test_help import COMMANDS

    params = {" ".join(path): command for path, command in COMMANDS}[command].params
    quiet = next(p for p in params if p.name == "quiet")
    assert quiet.opts == ["--quiet", "-q"] and quiet.is_flag and not quiet.default
    assert quiet.help == typing.get_args(Quiet)[1].help


def test_plain_lines_are_never_wrapped():
    """A log line stays one line on an 80-column console (rich wraps long lines unless told not to)."""
    console = Console(file=StringIO(), force_terminal=False, width=80)
    display = TrainingDisplay(console)
    display(TrainProgress("start", 0, 600, 0.0))
    display(TrainProgress("validation", 100, 600, 1175.0, loss=0.6, scores={"val_loss": 0.5, "val_pixel_error": 0.2}))
    with ProgressDisplay(console) as counted:
        counted.counter("predicting a-stack-with-a-rather-long-file-name-from-a-microscope.tif", 3, "slices").advance()
    lines = console.file.getvalue().splitlines()
    assert lines[1].endswith("1175 s  ETA 1 h 37 min") and lines[2].startswith("predicting a-stack") and len(lines) == 3
