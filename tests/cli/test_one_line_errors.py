"""Bad input on the command line is one red line naming the file or option and the fix, exit 2, no traceback.

The class is caught in one place (`unet_zoo.cli.app.ZooTyper`: every command turns an `InputError` raised
anywhere below it into `fail`'s line), so the first test checks that place with a command of its own, and the
others a sample of what reaches it from every layer: numbers, files, checkpoints, metadata, data folders.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

import unet_zoo
from unet_zoo.cli import app
from unet_zoo.cli.app import ZooTyper, cli_words
from unet_zoo.data.pixel_size import PixelSizeError
from unet_zoo.hub.serialization import CheckpointError
from unet_zoo.utils.errors import InputError

runner = CliRunner()


def assert_one_line_error(result, *words: str) -> str:
    """The result of a refused command: exit 2, exactly one non-empty line on stderr (the error), no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("error", [InputError, CheckpointError, PixelSizeError])
def test_any_input_error_raised_in_a_command_is_one_line(error):
    demo = ZooTyper()

    @demo.command()
    def run(path: str) -> None:
        raise error(f"{path}: something is wrong\nwith it; pass overwrite=True (--overwrite) to replace it")

    @demo.command()
    def other() -> None:
        pass

    line = assert_one_line_error(runner.invoke(demo, ["run", "a.tif"]), "a.tif: something is wrong with it", "--overwrite")
    assert "overwrite=True" not in line


def test_api_words_become_option_words():
    assert cli_words("x exists; pass overwrite=True (--overwrite) to replace it") == "x exists; pass --overwrite to replace it"
    assert cli_words("pass --overwrite (overwrite=True) to replace it") == "pass --overwrite to replace it"
    assert cli_words("pass force=True to overwrite it") == "pass --overwrite to overwrite it"  # export, data download
    assert cli_words("pass --overwrite (force=True) to replace it") == "pass --overwrite to replace it"


@pytest.fixture
def files(tmp_path):
    model = tmp_path / "tiny-model"
    unet_zoo.save_pretrained(unet_zoo.create_model("small", base_channels=4, depth=2), model)
    image = tmp_path / "img.tif"
    tifffile.imwrite(image, np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))
    prob = tmp_path / "nan_prob.tif"
    values = np.full((64, 64), 0.5, np.float32)
    values[3, 4] = np.nan
    tifffile.imwrite(prob, values)
    good_prob = tmp_path / "good_prob.tif"
    tifffile.imwrite(good_prob, np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64))
    (tmp_path / "empty.tif").write_bytes(b"")
    (tmp_path / "truncated.tif").write_bytes(image.read_bytes()[:200])
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((3, 64, 64), np.uint8), photometric="rgb", planarconfig="separate")
    latin1 = tmp_path / "latin1-model"
    unet_zoo.save_pretrained(unet_zoo.create_model("small", base_channels=4, depth=2), latin1)
    (latin1 / "config.json").write_bytes((latin1 / "config.json").read_bytes().replace(b'"small"', b'"sm\xe4ll"'))
    hostile = tmp_path / "hostile-model"
    unet_zoo.save_pretrained(unet_zoo.create_model("small", base_channels=4, depth=2), hostile)
    config = json.loads((hostile / "config.json").read_text())
    config["model_args"]["base_channels"] = 256
    (hostile / "config.json").write_text(json.dumps(config))
    badseg = tmp_path / "badseg-model"
    unet_zoo.save_pretrained(unet_zoo.create_model("small", base_channels=4, depth=2), badseg)
    config = json.loads((badseg / "config.json").read_text())
    config.setdefault("pretrained", {})["segmentation"] = {"sigma": float("inf")}
    (badseg / "config.json").write_text(json.dumps(config))
    return tmp_path


CASES = [
    (["segment", "default", "{d}/good_prob.tif", "--from-probabilities", "--sigma", "inf"], ["sigma"]),
    (["segment", "default", "{d}/good_prob.tif", "--from-probabilities", "--min-size", "1000000000000"], ["min_size"]),
    (["segment", "default", "{d}/nan_prob.tif", "--from-probabilities"], ["nan_prob.tif", "NaN"]),
    (["segment", "{d}/badseg-model", "{d}/good_prob.tif", "--from-probabilities"], ["badseg-model", "segmentation"]),
    (["predict", "{d}/tiny-model", "{d}/empty.tif"], ["empty.tif", "empty"]),
    (["predict", "{d}/tiny-model", "{d}/truncated.tif"], ["truncated.tif"]),
    (["predict", "{d}/tiny-model", "{d}/rgb.tif"], ["rgb.tif", "greyscale"]),
    (["predict", "{d}/latin1-model", "{d}/img.tif"], ["config.json", "UTF-8"]),
    (["predict", "{d}/hostile-model", "{d}/img.tif"], ["base_channels=256"]),
    (["predict", "{d}/tiny-model", "{d}/img.tif", "--pixel-size", "inf"], ["--pixel-size"]),
    (["predict", "{d}/tiny-model", "{d}/img.tif", "--pixel-size", "nan"], ["--pixel-size"]),
    (["predict", "{d}/tiny-model", "{d}/img.tif", "--pixel-size", "100000"], ["--pixel-size", "rescale"]),
    (["segment", "{d}/tiny-model", "{d}/img.tif", "--pixel-size", "1e9"], ["--pixel-size", "implausible"]),
    (["export", "{d}/tiny-model", "--format", "onnx", "--out", "{d}/model.pt"], ["model.pt", ".onnx"]),
    (["export", "{d}/tiny-model", "--format", "torchscript", "--out", "{d}/model.onnx"], ["model.onnx", ".pt"]),
]


@pytest.mark.parametrize(("args", "words"), CASES, ids=[" ".join(a[:1] + a[3:]).replace("{d}/", "") for a, _ in CASES])
def test_bad_input_from_every_layer_is_one_line(files, args, words):
    out = files / "out"
    args = [a.format(d=files) for a in args]
    if args[0] in ("predict", "segment"):
        args += ["--out", str(out)]
    assert_one_line_error(runner.invoke(app, args), *words)
    assert not out.exists() or not any(out.iterdir())


def test_a_data_dir_that_is_a_file_is_named(files, monkeypatch):
    monkeypatch.setenv("UNET_ZOO_DATA_DIR", str(files / "img.tif"))
    assert_one_line_error(runner.invoke(app, ["evaluate", f"{files}/tiny-model"]), "img.tif", "is a file", "$UNET_ZOO_DATA_DIR")


def test_a_refused_train_out_prints_no_second_line(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.safetensors").write_bytes(b"")
    line = assert_one_line_error(runner.invoke(app, ["train", "tiny", "--out", str(out)]), "already holds a training run")
    assert "error: 2" not in line


@pytest.mark.parametrize("command", [[], ["export"]])
def test_help_names_the_export_extra(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "unet-zoo[export]" in result.output


@pytest.mark.parametrize("existing", ["a folder of other files", "an earlier prediction"])
def test_advice_to_overwrite_is_given_only_where_overwrite_works(files, existing):
    pytest.importorskip("zarr", reason="volumes need the optional zarr extra")
    stack = files / "stack.tif"
    tifffile.imwrite(stack, np.arange(2 * 64 * 64, dtype=np.uint16).reshape(2, 64, 64))
    out = files / "out.zarr"
    base = ["predict", str(files / "tiny-model"), str(stack), "--out", str(out), "--tile", "64"]
    if existing == "an earlier prediction":
        assert runner.invoke(app, base).exit_code == 0
    else:
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    line = assert_one_line_error(runner.invoke(app, base), str(out))
    retried = runner.invoke(app, [*base, "--overwrite"])
    if "--overwrite" in line:
        assert retried.exit_code == 0, retried.output
    else:
        assert retried.exit_code == 2 and (out / "notes.txt").read_text() == "mine"


def test_nan_in_a_volume_names_the_input_and_the_sections(files):
    zarr = pytest.importorskip("zarr", reason="volumes need the optional zarr extra")
    source = files / "nan.zarr"
    volume = np.full((3, 64, 64), 0.5, np.float32)
    volume[2, 10, 20] = np.nan
    zarr.create_array(str(source), shape=volume.shape, chunks=(1, 64, 64), dtype="float32")[:] = volume
    out = files / "nan-out.zarr"
    args = ["predict", str(files / "tiny-model"), str(source), "--out", str(out), "--tile", "64"]
    assert_one_line_error(runner.invoke(app, args), str(source), "sections", "NaN")
