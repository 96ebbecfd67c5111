"""Every output path of every command is checked before any work starts (issue 23, item 5): a path below
a file, a place nobody can write, a folder where a file is wanted (and the reverse), an existing output
without the command's overwrite flag. Each is the red one-line `error:`, exit 2, no traceback, and the
work (loading the model, training, benchmarking) never starts."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from unet_zoo.cli import app
from unet_zoo.cli import bench as cli_bench
from unet_zoo.cli import inference as cli_inference
from unet_zoo.cli import training as cli_training

runner = CliRunner()
UNWRITABLE = "/proc/unet-zoo-out" if os.path.isdir("/proc/self") else None  # nobody, not even root, writes there


@pytest.fixture
def no_work(monkeypatch):
    """Make every command's work fail loudly: an output error must come before it."""

    def started(*args, **kwargs):
        raise AssertionError("the work started before the output path was checked")

    monkeypatch.setattr(cli_inference, "from_pretrained", started)  # predict, evaluate, export, volumes
    monkeypatch.setattr(cli_training.Trainer, "from_recipe", started)
    monkeypatch.setattr(cli_bench, "run_all", started)


def _commands(tmp_path):
    """(command line with {out}, what {out} must be) for every output option."""
    image = tmp_path / "in.tif"
    tifffile.imwrite(image, np.zeros((16, 16), np.uint8))
    volume = tmp_path / "stack.tif"
    tifffile.imwrite(volume, np.zeros((2, 16, 16), np.uint8), photometric="minisblack")
    return {
        "train": (["train", "tiny", "--steps", "2", "--out", "{out}"], "folder"),
        "evaluate": (["evaluate", "small", "--no-warping", "--out", "{out}"], "file"),
        "predict": (["predict", "small", str(image), "--out", "{out}"], "folder"),
        "benchmark": (["benchmark", "--smoke", "--out", "{out}"], "folder"),
        "export": (["export", "small", "--format", "torchscript", "--out", "{out}"], "file"),
        "volume": (["predict", "small", str(volume), "--out", "{out}"], "zarr"),
    }


def _run(args, out):
    result = runner.invoke(app, [a.replace("{out}", str(out)) for a in args] + ["--device", "cpu"] * ("export" not in args))
    text = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception  # no traceback
    assert text.startswith("error:") and "Traceback" not in text
    return text


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "benchmark", "export", "volume"])
def test_a_path_below_a_file_is_refused_up_front(tmp_path, no_work, command):
    args, _ = _commands(tmp_path)[command]
    (tmp_path / "notes.txt").write_text("keep")
    out = tmp_path / "notes.txt" / {"volume": "out.zarr", "export": "out.pt"}.get(command, "out.json")
    assert "notes.txt is a file, not a folder" in _run(args, out)
    assert (tmp_path / "notes.txt").read_text() == "keep"


@pytest.mark.skipif(UNWRITABLE is None, reason="needs Linux /proc")
@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "benchmark", "export", "volume"])
def test_an_unwritable_place_is_refused_up_front(tmp_path, no_work, command):
    args, _ = _commands(tmp_path)[command]
    assert "/proc is not writable" in _run(args, UNWRITABLE + {"volume": ".zarr", "export": ".pt"}.get(command, ""))


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "benchmark", "export", "volume"])
def test_a_folder_for_a_file_or_a_file_for_a_folder_is_refused_up_front(tmp_path, no_work, command):
    args, kind = _commands(tmp_path)[command]
    if kind == "file":
        existing = tmp_path / ("existing.pt" if command == "export" else "existing")  # an export is named as its format
        existing.mkdir()
        assert "is an existing folder, but a file is expected" in _run(args, existing)
    else:
        out = tmp_path / ("existing.zarr" if kind == "zarr" else "existing")
        out.write_text("keep")
        assert "is an existing file, but a folder is expected" in _run(args, out)
        assert out.read_text() == "keep"


@pytest.mark.parametrize(
    "command, existing, flag",
    [
        ("evaluate", "out.json", "--overwrite"),
        ("export", "out.pt", "--overwrite"),
        ("benchmark", "results.json", "--overwrite"),
        ("predict", "in_prob.tif", "--overwrite"),
        ("train", "checkpoint.safetensors", "--overwrite"),
    ],
)
def test_an_existing_output_is_refused_up_front_without_the_overwrite_flag(tmp_path, no_work, command, existing, flag):
    args, kind = _commands(tmp_path)[command]
    out = tmp_path / "out"
    out.mkdir()
    target = tmp_path / existing if kind == "file" else out / existing
    target.write_text("keep")
    text = _run(args, target if kind == "file" else out)
    assert flag in text and target.read_text() == "keep"


@pytest.mark.parametrize("args", [["compare", "small", "padded", "--bench"], ["predict", "small", "{image}"]])
def test_absurd_tile_sizes_are_refused_up_front(tmp_path, args):
    image = tmp_path / "in.tif"
    tifffile.imwrite(image, np.zeros((16, 16), np.uint8))
    line = [a.replace("{image}", str(image)) for a in args] + ["--tile", "100000000", "--device", "cpu"]
    result = runner.invoke(app, line + (["--out", str(tmp_path / "p")] if "predict" in args else []))
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "100000000 px is larger than any tile" in text and "at most 8192" in text, text
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("where", ["below-a-file", "unwritable"])
def test_reproduce_checks_its_hub_folder_before_training(tmp_path, monkeypatch, where):
    import unet_zoo.experiments.isbi2012.reproduce

    def started(*args, **kwargs):
        raise AssertionError("training started before the Hub folder was checked")

    monkeypatch.setattr(unet_zoo.experiments.isbi2012.reproduce, "train", started)
    if where == "unwritable" and UNWRITABLE is None:
        pytest.skip("needs Linux /proc")
    (tmp_path / "notes.txt").write_text("keep")
    out = tmp_path / "notes.txt" / "card" if where == "below-a-file" else UNWRITABLE
    text = _run(["reproduce", "isbi", "--variant", "small", "--out", str(out)], out)
    assert ("is a file, not a folder" if where == "below-a-file" else "/proc is not writable") in text
