"""`unet-zoo predict MODEL volume.zarr --out out.zarr`: blockwise volume prediction from the command line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

zarr = pytest.importorskip("zarr", reason='needs the volumes extra: pip install "unet-zoo[volumes]"')

import unet_zoo  # noqa: E402
from unet_zoo.cli import app  # noqa: E402
from unet_zoo.inference.tiling import predict_tiled  # noqa: E402

runner = CliRunner()


def _text(result) -> str:
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A narrow padded model saved as a checkpoint folder (the CLI loads models by name, folder or Hub id)."""
    from unet_zoo.hub.pretrained import save_pretrained

    torch.manual_seed(0)
    model = unet_zoo.create_model("small", base_channels=4).eval()
    return model, save_pretrained(model, tmp_path_factory.mktemp("ckpt") / "small4")


@pytest.fixture
def volume_zarr(tmp_path):
    volume = np.random.default_rng(5).integers(0, 256, (2, 90, 70), dtype=np.uint8)
    array = zarr.create_array(str(tmp_path / "volume.zarr"), shape=volume.shape, chunks=(1, 64, 64), dtype="uint8")
    array[:] = volume
    return volume, tmp_path / "volume.zarr"


@pytest.mark.slow
def test_predict_zarr_volume_uint8_and_overwrite(tmp_path, checkpoint, volume_zarr):
    model, folder = checkpoint
    volume, source = volume_zarr
    out = tmp_path / "membranes.zarr"
    result = runner.invoke(
        app,
        ["predict", str(folder), str(source), "--out", str(out), "--uint8", "--block", "64", "--tile", "64", "--device", "cpu"],
    )
    assert result.exit_code == 0, result.output
    assert str(out) in _text(result) and "inference path: torch-fp32 on cpu" in _text(result)
    written = zarr.open(str(out), mode="r")
    assert written.dtype == np.uint8 and written.chunks == (1, 64, 64)
    expected = np.rint(np.stack([predict_tiled(model, s, tile=64)[1] for s in volume]) * 255)
    assert np.abs(written[:].astype(int) - expected).max() <= 1
    again = runner.invoke(app, ["predict", str(folder), str(source), "--out", str(out), "--block", "64", "--tile", "64"])
    assert again.exit_code == 2 and "--overwrite" in _text(again)
    forced = runner.invoke(app, ["predict", str(folder), str(source), "--out", str(out), "--overwrite", "--device", "cpu"])
    assert forced.exit_code == 0, forced.output
    assert zarr.open(str(out), mode="r").dtype == np.float32


def test_tiff_stack_to_zarr(tmp_path, checkpoint):
    tifffile = pytest.importorskip("tifffile")
    model, folder = checkpoint
    volume = np.random.default_rng(6).integers(0, 256, (2, 40, 50), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "stack.tif", volume, photometric="minisblack")
    result = runner.invoke(
        app, ["predict", str(folder), str(tmp_path / "stack.tif"), "--out", str(tmp_path / "p.zarr"), "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    expected = np.stack([predict_tiled(model, s)[1] for s in volume])
    np.testing.assert_allclose(zarr.open(str(tmp_path / "p.zarr"), mode="r")[:], expected, atol=2e-6)


def test_predict_a_volume_at_another_pixel_size(tmp_path, checkpoint, volume_zarr):
    """--pixel-size 8 on a 4-nm model: the command says so, and each section equals predict_at_pixel_size's."""
    from unet_zoo.inference.rescale import predict_at_pixel_size

    model, folder = checkpoint
    volume, source = volume_zarr
    out = tmp_path / "membranes.zarr"
    args = ["predict", str(folder), str(source), "--out", str(out), "--block", "64", "--tile", "64", "--device", "cpu"]
    result = runner.invoke(app, [*args, "--pixel-size", "8"])
    assert result.exit_code == 0, result.output
    assert "8 nm/px, rescaled to the model's 4 nm/px" in _text(result)
    expected = predict_at_pixel_size(model, volume, 8.0, tile=64)[:, 1]
    np.testing.assert_allclose(zarr.open(str(out), mode="r")[:], expected, atol=2e-6)


@pytest.mark.parametrize(
    "args, message",
    [
        (["{missing}", "--out", "{out}"], "no such file or folder"),
        (["{plain}", "--out", "{out}"], "not a readable Zarr"),
        (["{source}"], "--out must name the output Zarr store"),
        (["{source}", "--out", "{out}", "--block", "16", "--tile", "64"], "smaller than the model's tile"),
        (["{source}", "--out", "{out}", "--workers", "2", "--scheduler", "tcp://127.0.0.1:9"], "either --workers"),
        (["{source}", "--out", "{out}", "--level", "1"], "level 1 needs an OME-Zarr group"),
    ],
)
def test_clear_errors(tmp_path, checkpoint, volume_zarr, args, message):
    _, folder = checkpoint
    (tmp_path / "plain").mkdir()
    names = {
        "missing": tmp_path / "missing.zarr",
        "plain": tmp_path / "plain",
        "source": volume_zarr[1],
        "out": tmp_path / "out.zarr",
    }
    result = runner.invoke(app, ["predict", str(folder), *[a.format(**names) for a in args], "--device", "cpu"])
    assert result.exit_code == 2, result.output
    assert message in _text(result)
    assert "Traceback" not in result.output


def test_unreachable_scheduler_names_the_address(tmp_path, checkpoint, volume_zarr, monkeypatch):
    pytest.importorskip("distributed")
    from unet_zoo.volumes import cluster as volume_cluster

    monkeypatch.setattr(volume_cluster, "CONNECT_TIMEOUT_S", 2)
    _, folder = checkpoint
    result = runner.invoke(
        app,
        [
            "predict",
            str(folder),
            str(volume_zarr[1]),
            "--out",
            str(tmp_path / "o.zarr"),
            "--scheduler",
            "tcp://127.0.0.1:9",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 2 and "cannot reach the dask scheduler at tcp://127.0.0.1:9" in _text(result)
    assert not (tmp_path / "o.zarr").exists()


def test_a_failed_block_says_how_to_resume(tmp_path, checkpoint, volume_zarr, monkeypatch):
    from unet_zoo.volumes.predict import VolumeJob

    calls = []

    def fail_second(self, net, index):
        calls.append(index)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return np.zeros([s.stop - s.start for s in self.plan.region(index)], dtype=self.dtype)

    monkeypatch.setattr(VolumeJob, "predict", fail_second)
    _, folder = checkpoint
    out = tmp_path / "o.zarr"
    result = runner.invoke(
        app, ["predict", str(folder), str(volume_zarr[1]), "--out", str(out), "--block", "64", "--tile", "64", "--device", "cpu"]
    )
    assert result.exit_code == 2
    assert "RuntimeError: disk full; 1 of 8 blocks are finished and kept in" in _text(result)
    assert "run the same command again to resume" in _text(result)
    resumed = runner.invoke(
        app, ["predict", str(folder), str(volume_zarr[1]), "--out", str(out), "--block", "64", "--tile", "64", "--device", "cpu"]
    )
    assert resumed.exit_code == 0, resumed.output
    assert "1 of 8 blocks were finished before and are kept" in _text(resumed)


@pytest.mark.parametrize("damage", ["chunk", "ome-path"])
def test_a_broken_input_says_what_and_where_without_resume_advice(tmp_path, checkpoint, volume_zarr, damage):
    _, folder = checkpoint
    source = volume_zarr[1]
    if damage == "chunk":
        (source / "c" / "1" / "1" / "0").write_bytes(b"garbage")
        expected = f"cannot read the input {source} at chunk 1.1.0"
    else:
        source = tmp_path / "in.ome.zarr"
        group = zarr.open_group(str(source), mode="w")
        group.create_array("0", shape=(2, 8, 8), dtype="uint8")
        group.attrs["multiscales"] = [{"version": "0.4", "datasets": [{}]}]
        expected = "has no 'path' naming the array of level 0"
    out = tmp_path / "o.zarr"
    result = runner.invoke(
        app, ["predict", str(folder), str(source), "--out", str(out), "--block", "64", "--tile", "64", "--device", "cpu"]
    )
    assert result.exit_code == 2 and expected in _text(result), result.output
    assert "resume" not in _text(result) and "None" not in _text(result) and "Traceback" not in result.output
