import json

import pytest
from typer.testing import CliRunner

from unet_zoo.cli import app
from unet_zoo.hub.training_state import load_training_state

runner = CliRunner()


def test_train_tiny_writes_a_run(tmp_path):
    result = runner.invoke(app, ["train", "tiny", "--device", "cpu", "--out", str(tmp_path / "run"), "--steps", "3"])
    assert result.exit_code == 0, result.output
    assert "trained tiny for 3 steps" in result.output
    assert load_training_state(tmp_path / "run").step == 3
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 3


@pytest.mark.slow
def test_resume_latest_and_explicit(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["train", "tiny", "--steps", "2"]).exit_code == 0
    (run,) = list((tmp_path / "runs").iterdir())
    assert run.name.startswith("tiny-")
    result = runner.invoke(app, ["train", "tiny", "--resume", "latest", "--steps", "4"])  # newest run
    assert result.exit_code == 0, result.output
    assert load_training_state(run).step == 4
    result = runner.invoke(app, ["train", "tiny", "--resume", str(run), "--steps", "5"])
    assert result.exit_code == 0, result.output
    assert load_training_state(run).step == 5 and len(list((tmp_path / "runs").iterdir())) == 1
    result = runner.invoke(app, ["train", "tiny", "--resume", "latest", "--steps", "5"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "already complete (5 of 5 steps)" in result.output and "nan" not in result.output


@pytest.mark.slow
def test_an_existing_run_folder_is_continued_or_replaced_only_when_asked(tmp_path):
    run = tmp_path / "run"
    args = ["train", "tiny", "--device", "cpu", "--out", str(run), "--steps", "2"]
    assert runner.invoke(app, args).exit_code == 0
    checkpoint = (run / "checkpoint.safetensors").read_bytes()
    result = runner.invoke(app, args, env={"COLUMNS": "300"})  # the same command again: refused, nothing touched
    assert result.exit_code == 2 and "already holds a training run" in result.output
    assert f"--resume {run}" in result.output and "--overwrite" in result.output
    assert (run / "checkpoint.safetensors").read_bytes() == checkpoint
    result = runner.invoke(app, ["train", "tiny", "--device", "cpu", "--resume", str(run), "--out", str(run), "--steps", "3"])
    assert result.exit_code == 0, result.output
    assert load_training_state(run).step == 3
    result = runner.invoke(app, [*args, "--overwrite"])
    assert result.exit_code == 0, result.output
    assert load_training_state(run).step == 2  # a new run of 2 steps replaced the old one


def test_a_non_empty_folder_that_is_no_run_is_refused(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    result = runner.invoke(app, ["train", "tiny", "--device", "cpu", "--out", str(tmp_path / "mine"), "--steps", "2"])
    assert result.exit_code == 2 and "exists and is not empty" in result.output
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]


def test_recipe_errors_name_the_table(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[model]\nname = "small"\nbogus = 1\n')
    result = runner.invoke(app, ["train", str(bad)], env={"COLUMNS": "300"})
    assert result.exit_code == 2
    assert "unknown key model.bogus" in result.output and "allowed keys in [model]: name" in result.output


def test_bad_input_gives_clear_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["train", "isbi-orignal"])
    assert result.exit_code == 2 and "no recipe" in result.output and "isbi-original" in result.output
    result = runner.invoke(app, ["train", "tiny", "--resume", "latest"])
    assert result.exit_code == 2 and "no run of 'tiny'" in result.output
    result = runner.invoke(app, ["reproduce", "isbi", "--variant", "huge"])
    assert result.exit_code == 2 and "unknown variant" in result.output
    result = runner.invoke(app, ["reproduce", "isbi", "--quick", "--data-dir", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "train-volume.tif" in result.output


def test_help_lists_options():
    result = runner.invoke(app, ["train", "--help"])
    assert result.exit_code == 0 and "--resume" in result.output and "--compile" in result.output
    result = runner.invoke(app, ["reproduce", "isbi", "--help"])
    assert result.exit_code == 0 and "--quick" in result.output and "--variant" in result.output


@pytest.mark.slow
def test_train_command_stops_cleanly_on_sigterm_and_resumes(tmp_path):
    """A real process: SIGTERM after the first log line -> exit 143, a checkpoint, and --resume finishes the run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from unet_zoo.hub.training_state import load_training_state

    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "unet_zoo", "train", "tiny", "--device", "cpu", "--out", str(run)]
    env = {**os.environ, "COLUMNS": "1000"}  # no line wrapping in the error message
    proc = subprocess.Popen([*cmd, "--steps", "100000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not (run / "metrics.jsonl").is_file() or not (run / "metrics.jsonl").read_text().strip():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "training never logged a step"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, (out, err)
    assert "stopped:" in err and f"--resume {run}" in err
    step = load_training_state(run).step
    assert step >= 1
    done = subprocess.run(
        [*cmd[:-2], "--resume", str(run), "--steps", str(step + 2)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert load_training_state(run).step == step + 2
