"""unet_zoo.exporters: ONNX and TorchScript checked by their own runtimes, bioimage.io packages checked by
bioimageio.core's test_model, onnxruntime as the tiling backend, and the error paths."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
import yaml

import unet_zoo
from unet_zoo.exporters import FORMATS, ExportError, export, working_formats
from unet_zoo.exporters.bioimageio import size_parameters
from unet_zoo.exporters.sessions import onnxruntime_forward, onnxruntime_session, require, session_forward
from unet_zoo.exporters.traced import load_torchscript, onnx_bytes, torch_probabilities
from unet_zoo.models.provenance import Provenance, set_provenance

ort = pytest.importorskip("onnxruntime")

# narrow models: the same graphs as the published ones, quick on 2 cores
NARROW = {"original": dict(base_channels=4), "small": dict(base_channels=4)}
# (height, width) inputs of each size rule: valid `original` 188 + 16n, padded multiples of 16
SIZES = {"original": [(188, 188), (220, 252), (252, 188)], "small": [(64, 64), (96, 160), (128, 48)]}


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return unet_zoo.create_model(name, **NARROW[name]).eval()


def _inputs(name: str) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.random((batch, 1, h, w), dtype=np.float32) for batch, (h, w) in zip((1, 3, 2), SIZES[name])]


@pytest.mark.slow
def test_import_unet_zoo_loads_no_export_dependency():
    heavy = "('onnx', 'onnxruntime', 'bioimageio', 'onnxscript')"
    code = f"import sys, unet_zoo; print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert unet_zoo.export is export


@pytest.mark.parametrize("name", ["original", "small"])
@pytest.mark.slow
def test_onnx_matches_torch_with_dynamic_batch_and_size(tmp_path, name):
    model = _model(name)
    path = export(model, "onnx", tmp_path / "m.onnx")
    session = onnxruntime_session(path)
    shape = session.get_inputs()[0].shape
    assert shape[0] == "batch" and shape[2] == "height" and shape[3] == "width"
    import onnx

    assert onnx.load(str(path)).opset_import[0].version >= 17
    for x in _inputs(name):
        got = session.run(None, {"input": x})[0]
        expected = torch_probabilities(model, x)
        h, w = x.shape[-2:]
        assert got.shape == (x.shape[0], 2, *((h - 184, w - 184) if name == "original" else (h, w)))
        assert np.abs(got - expected).max() <= 1e-4


@pytest.mark.parametrize("name", ["original", "small"])
@pytest.mark.slow
def test_torchscript_matches_torch(tmp_path, name):
    model = _model(name)
    run = load_torchscript(export(model, "torchscript", tmp_path / "m.pt"))
    for x in _inputs(name):
        got, expected = run(x), torch_probabilities(model, x)
        assert got.shape == expected.shape and np.abs(got - expected).max() <= 1e-4


@pytest.mark.parametrize("name", ["original", "small"])
@pytest.mark.slow
def test_onnx_on_a_real_isbi_slice_and_as_the_tiling_backend(isbi_dir, name):
    from unet_zoo.experiments.isbi2012.data import read_stack

    image = read_stack(isbi_dir / "train-volume.tif")[7]
    model = _model(name)
    session_run = session_forward(onnxruntime_session(onnx_bytes(model)))
    side = 508 if name == "original" else 512
    x = image[None, None, :side, :side].astype(np.float32) / 255.0
    assert np.abs(session_run(x) - torch_probabilities(model, x)).max() <= 1e-4
    # the same overlap-tile prediction through onnxruntime: equal to torch's
    crop = image[:300, :333]
    reference = unet_zoo.predict_tiled(model, crop)
    through_ort = unet_zoo.predict_tiled(model, crop, forward=onnxruntime_forward(model))
    assert through_ort.shape == reference.shape == (2, 300, 333)
    assert np.abs(through_ort - reference).max() <= 1e-4


def test_an_exported_forward_computes_an_output_window_for_any_tile_size():
    model = _model("small")
    forward = onnxruntime_forward(model)
    assert forward.takes_margins and forward.precision == "fp32"
    margins = (10, 6, 3, 13)
    for call, (h, w) in enumerate([(64, 64), (96, 80), (64, 80)]):  # one export serves every tile size
        x = np.random.default_rng(h).random((2, 1, h, w), dtype=np.float32)
        with torch.no_grad():
            expected = torch.softmax(model(torch.from_numpy(x), margins=margins), 1).numpy()
        got = forward(x, margins=margins)
        assert got.shape == (2, 2, h - 16, w - 16)
        assert np.abs(got - expected).max() <= 1e-5
        # asked for once, the window is cut from the whole tile's output; asked again, it has its own session
        assert list(forward._windows) == ([] if call == 0 else [margins])
    assert np.abs(forward(x) - torch_probabilities(model, x)).max() <= 1e-5
    for top in range(1, 7):  # the last few windows keep their sessions
        forward(x, margins=(top, 0, 0, 0))
        forward(x, margins=(top, 0, 0, 0))
    assert list(forward._windows) == [(top, 0, 0, 0) for top in range(3, 7)]
    valid = onnxruntime_forward(_model("original"))
    assert not valid.takes_margins
    with pytest.raises(ValueError, match="output window"):
        valid(np.zeros((1, 1, 188, 188), np.float32), margins=(1, 1, 1, 1))


@pytest.mark.slow
def test_predict_tiled_with_onnxruntime_equals_torch_with_tta(rng):
    model = _model("small")
    image = rng.integers(0, 256, (40, 50), dtype=np.uint8)
    reference = unet_zoo.predict_tiled(model, image, tta=True, tile=64)
    through_ort = unet_zoo.predict_tiled(model, image, tta=True, tile=64, forward=onnxruntime_forward(model))
    assert np.abs(through_ort - reference).max() <= 1e-4


def test_existing_output_is_refused_without_force_and_replaced_with_it(tmp_path):
    model = _model("small")
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    with pytest.raises(FileExistsError, match="force"):
        export(model, "onnx", path)
    assert path.read_bytes() == b"old"
    export(model, "onnx", path, force=True)
    assert path.read_bytes() != b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_bad_arguments(tmp_path):
    model = _model("small")
    with pytest.raises(ValueError, match="onnx, torchscript, bioimageio"):
        export(model, "tflite", tmp_path / "m.tflite")
    with pytest.raises(IsADirectoryError):
        export(model, "onnx", tmp_path)
    with pytest.raises(ValueError, match="uint8"):
        export(model, "bioimageio", tmp_path / "m.zip", sample=np.zeros((64, 64), np.float32))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("format", ["onnx", "torchscript"])
@pytest.mark.slow
def test_path_problems_are_path_errors_not_blamed_on_the_model(tmp_path, monkeypatch, format):
    import errno
    import os

    from unet_zoo.exporters import api
    from unet_zoo.exporters.api import SUFFIXES

    model = _model("small")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):  # checked before exporting
        export(model, format, tmp_path / "file" / f"m{SUFFIXES[format]}")
    if os.path.isdir("/proc/self"):
        with pytest.raises(PermissionError, match="/proc is not writable"):
            export(model, format, f"/proc/unet-zoo{SUFFIXES[format]}")

    def disk_full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(api, "atomic_write_bytes", disk_full)  # the file system fails while writing
    with pytest.raises(OSError, match="No space left") as info:
        export(model, format, tmp_path / f"m{SUFFIXES[format]}")
    assert not isinstance(info.value, ExportError) and "does not work" not in str(info.value)


@pytest.mark.slow
def test_an_export_cleans_the_temporary_file_a_killed_export_left(tmp_path):
    import socket

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".m.pt.unet_zoo-{socket.gethostname()}-{dead.pid}.x1y2z3.tmp"
    stale.write_bytes(b"\0" * 1000)
    export(_model("small"), "torchscript", tmp_path / "m.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


class _FFTUNet(unet_zoo.UNet):
    """A U-Net with an op the ONNX exporter rejects (an FFT) but TorchScript traces."""

    def forward(self, x):
        return super().forward(torch.fft.fft2(x).real / x.shape[-1] / x.shape[-2])


@pytest.mark.slow
def test_unexportable_format_names_the_formats_that_work(tmp_path):
    model = _FFTUNet(**unet_zoo.models.registry.model_args("small", base_channels=4)).eval()
    set_provenance(model, Provenance(architecture="small", args=unet_zoo.models.registry.model_args("small", base_channels=4)))
    with pytest.raises(ExportError) as info:
        export(model, "onnx", tmp_path / "m.onnx")
    message = str(info.value)
    assert "to onnx" in message and "formats that work for this model: torchscript, bioimageio" in message
    assert list(tmp_path.iterdir()) == []  # nothing half-written
    assert working_formats(model) == ["torchscript", "bioimageio"]
    assert set(working_formats(_model("small"))) == set(FORMATS)


def test_missing_extra_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r'pip install "unet-zoo\[export\]"'):
        require("onnxruntime", "running ONNX models")


@pytest.mark.slow
def test_size_parameters_follow_the_size_rule():
    assert size_parameters(_model("original")) == (188, 16, -184)
    assert size_parameters(_model("small")) == (16, 16, 0)
    assert size_parameters(unet_zoo.create_model("timm-resnet18")) == (32, 32, 0)
    assert 572 - 184 == 388  # the paper's tile: 572 = 188 + 16 * 24


@pytest.mark.slow
@pytest.mark.parametrize("name", ["original", "small"])
def test_bioimageio_package_passes_bioimageio_core_test_model(tmp_path, name, rng):
    from bioimageio.core import test_model

    model = _model(name)
    sample = rng.integers(0, 256, (300, 300), dtype=np.uint8)
    notes: list[str] = []
    path = export(model, "bioimageio", tmp_path / f"{name}.zip", sample=sample, note=notes.append)
    assert notes == [] and sorted(p.name for p in tmp_path.iterdir()) == [f"{name}.zip"]
    summary = test_model(path)
    failed = [d.name for d in summary.details if d.status == "failed"]
    assert summary.status == "passed", failed

    with zipfile.ZipFile(path) as z:
        rdf = yaml.safe_load(z.read("rdf.yaml"))
        names = set(z.namelist())
        test_in = np.load(z.open("test_input.npy"))
        test_out = np.load(z.open("test_output.npy"))
    assert rdf["format_version"].startswith("0.5") and rdf["type"] == "model"
    assert {"weights.pt", "weights_torchscript.pt", "weights.onnx", "cover.png", "README.md"} <= names
    assert set(rdf["weights"]) == {"pytorch_state_dict", "torchscript", "onnx"}
    assert rdf["weights"]["pytorch_state_dict"]["architecture"]["kwargs"]["model_name"] == name
    (inp,), (out,) = rdf["inputs"], rdf["outputs"]
    assert [a.get("id", a["type"]) for a in inp["axes"]] == ["batch", "channel", "y", "x"]
    minimum, step, offset = size_parameters(model)
    assert inp["axes"][2]["size"] == {"min": minimum, "step": step}
    assert out["axes"][2]["size"]["axis_id"] == "y" and out["axes"][2]["size"].get("offset", 0) == offset
    assert inp["data"]["type"] == "uint8" and test_in.dtype == np.uint8
    gains = [p["kwargs"]["gain"] for p in inp["preprocessing"] if p["id"] == "scale_linear"]
    assert gains == [pytest.approx(1 / 255)]
    expected = torch_probabilities(model, test_in.astype(np.float32) / 255)
    assert test_out.shape == expected.shape and np.abs(test_out - expected).max() <= 1e-6
    assert test_out.shape[-1] == test_in.shape[-1] + offset
    cites = {c.get("doi") or c.get("url") for c in rdf["cite"]}
    assert {"10.3389/fnana.2015.00142", "https://arxiv.org/abs/1505.04597"} <= cites
    assert rdf["license"] == "MIT" and rdf["authors"] and "electron-microscopy" in rdf["tags"]


@pytest.mark.slow
def test_cpu_inference_benchmark_runs_on_tiny_sizes(tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("cpu_inference", Path(__file__).parents[2] / "benchmarks" / "cpu_inference.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.main(["--smoke", "--backends", "torch eager,onnxruntime", "--out", str(tmp_path / "r.json")])
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert rows == result["rows"] and {(r["backend"], r["size"]) for r in rows} == {
        (b, s) for b in ("torch eager", "onnxruntime") for s in (64, 96)
    }
    assert all(r["seconds"] > 0 and r["max_abs_diff_vs_torch_eager"] <= 1e-4 for r in rows)
