"""Tests of the unet_zoo.benchmark package in smoke mode on the CPU: structure, FLOP bookkeeping, ratios, files, CLI.

No assertion depends on how fast this machine is.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

import unet_zoo
from tests.experiments.isbi2012.test_timing import fake_reproduce
from unet_zoo import benchmark
from unet_zoo.benchmark import (
    augmentation_tiles_per_s,
    bench_augmentation,
    bench_cpu_latency,
    bench_inference,
    bench_train_step,
    ratio,
    run_all,
    smallest_tile,
    to_markdown,
)
from unet_zoo.benchmark.inference import _GeometryStub
from unet_zoo.inference.tiling import tile_margin
from unet_zoo.models.window import WindowedLogits
from unet_zoo.utils.timing import count_forward_flops, count_train_flops

PEAK = 2.0  # a fixed stand-in for the measured bf16 matmul rate, so fractions are checkable


def test_ratio():
    assert ratio(6.0, 2.0) == 3.0
    assert ratio(None, 2.0) is None and ratio(1.0, None) is None and ratio(1.0, 0.0) is None


def test_smallest_tile():
    assert smallest_tile(unet_zoo.create_model("original", base_channels=8)) == 188
    assert smallest_tile(unet_zoo.create_model("small", base_channels=8)) == 16


@pytest.fixture(scope="module")
def train_result():
    return bench_train_step("original", device="cpu", smoke=True, peak_tflops=PEAK)


@pytest.mark.slow
def test_train_step_structure_and_json(train_result):
    r = json.loads(json.dumps(train_result))
    assert r["benchmark"] == "train_step" and r["smoke"] is True
    assert (r["tile"], r["output_tile"], r["batch_size"]) == (188, 4, 1)
    for path in ("ours", "baseline"):
        run = r[path]
        assert set(run) >= {"config", "timing", "tiles_per_s", "tflops", "fraction_of_bf16_matmul", "final_loss"}
        assert run["timing"]["repeats"] == 1 and run["timing"]["median_s"] > 0
        assert math.isfinite(run["final_loss"])
    assert r["baseline"]["config"] == {"amp": None, "channels_last": False, "compile": False, "fast_backend": False}
    assert all(v is None for v in r["targets"].values())  # smoke: no verdicts


@pytest.mark.slow
def test_train_step_numbers_are_derived_from_measurements(train_result):
    r = train_result
    expected_flops = count_train_flops(unet_zoo.create_model("original", base_channels=8), (1, 1, 188, 188))
    assert r["flops_per_step"] == expected_flops
    for path in ("ours", "baseline"):
        run, median = r[path], r[path]["timing"]["median_s"]
        assert run["tiles_per_s"] == pytest.approx(r["batch_size"] / median)
        assert run["tflops"] == pytest.approx(expected_flops / median / 1e12)
        assert run["fraction_of_bf16_matmul"] == pytest.approx(run["tflops"] / PEAK)
    assert r["speedup"] == pytest.approx(r["ours"]["tiles_per_s"] / r["baseline"]["tiles_per_s"])


@pytest.mark.slow
def test_train_step_paths_train_the_same_network(train_result):
    # On the CPU our path defaults to the baseline's configuration: same weights, data, dropout -> same loss.
    assert train_result["ours"]["config"]["amp"] is None
    assert train_result["ours"]["final_loss"] == pytest.approx(train_result["baseline"]["final_loss"], rel=1e-5)


@pytest.mark.slow
def test_train_step_bf16_channels_last_on_cpu_when_asked():
    r = bench_train_step("small", device="cpu", smoke=True, amp=True, channels_last=True, baseline=False, peak_tflops=PEAK)
    assert r["ours"]["config"]["amp"] == "bf16" and r["ours"]["config"]["channels_last"] is True
    assert "bf16 autocast" in r["ours"]["description"]
    assert "baseline" not in r and r["speedup"] is None
    assert math.isfinite(r["ours"]["final_loss"])


def test_train_step_rejects_unusable_tile():
    with pytest.raises(ValueError, match="nearest usable tiles: 556 or 572"):
        bench_train_step("original", tile=570, device="cpu", steps=1, peak_tflops=PEAK)


@pytest.mark.slow
def test_inference_structure_and_flops():
    r = json.loads(json.dumps(bench_inference("small", device="cpu", smoke=True, peak_tflops=PEAK)))
    model = unet_zoo.create_model("small", base_channels=8)
    assert r["image_side"] == 64 and r["tta"] is False
    ours = r["ours"]
    assert ours["forward_calls"] >= 1 and ours["tiles"] >= 1
    # smoke image 64^2 fits one tile: one forward call computing the image's window of its output
    tile = r["tile"]
    margin = tile_margin(model, tile, 64, 64)
    window = WindowedLogits(model, (margin, tile - margin - 64, margin, tile - margin - 64)).eval()
    assert ours["tiles"] == 1
    assert (
        ours["flops_per_image"]
        == count_forward_flops(window, (1, 1, tile, tile))
        < count_forward_flops(model, (1, 1, tile, tile))
    )
    median = ours["timing"]["median_s"]
    assert ours["megapixels_per_s"] == pytest.approx(64 * 64 / 1e6 / median)
    assert ours["tflops"] == pytest.approx(ours["flops_per_image"] / median / 1e12)
    assert r["speedup"] == pytest.approx(ours["megapixels_per_s"] / r["baseline"]["megapixels_per_s"])
    assert r["pipeline_ceiling"]["megapixels_per_s"] > 0


@pytest.mark.slow
def test_inference_tta_does_eight_times_the_work():
    plain = bench_inference("small", device="cpu", smoke=True, baseline=False, ceiling=False, peak_tflops=PEAK)
    tta = bench_inference("small", tta=True, device="cpu", smoke=True, baseline=False, ceiling=False, peak_tflops=PEAK)
    assert tta["tiles"] == 8 * plain["tiles"]
    assert tta["flops_per_image"] == 8 * plain["flops_per_image"]


@pytest.mark.parametrize("name, tile", [("original", 188), ("small", 32)])
def test_geometry_stub_has_the_model_geometry(name, tile):
    model = unet_zoo.create_model(name, base_channels=8)
    stub = _GeometryStub(model)
    out = stub(torch.rand(2, 1, tile, tile))
    side = model.output_size(tile)
    assert out.shape == (2, model.num_classes, side, side)
    assert count_forward_flops(stub, (2, 1, tile, tile)) == 0


def test_cpu_latency_smoke_restores_threads():
    threads = torch.get_num_threads()
    r = bench_cpu_latency(("original", "small"), smoke=True, threads=1)
    assert r["threads"] == 1 and torch.get_num_threads() == threads
    assert set(r["models"]) == {"original", "small"}
    assert all(m["median_s"] > 0 and m["tile"] > 0 for m in r["models"].values())


FAKE_AUGMENT = {
    "batch_size": 4,
    "rows": [
        {"method": "scipy reference", "device": "cpu", "seconds_per_batch": 2.0},
        {"method": "TileSampler.sample", "device": "cpu", "seconds_per_batch": 0.5},
        {"method": "TileSampler.sample", "device": "cuda", "seconds_per_batch": 0.01},
    ],
}


def test_augmentation_tiles_per_s_reads_the_pipeline_row():
    assert augmentation_tiles_per_s(FAKE_AUGMENT, "cpu") == pytest.approx(8.0)
    assert augmentation_tiles_per_s(FAKE_AUGMENT, "cuda:0") == pytest.approx(400.0)
    with pytest.raises(KeyError, match="no 'TileSampler.sample' row for device mps"):
        augmentation_tiles_per_s(FAKE_AUGMENT, "mps")


def test_bench_augmentation_ratio_to_training(monkeypatch):
    monkeypatch.setattr(benchmark.augmentation, "benchmark_augmentation", lambda **kw: FAKE_AUGMENT)
    r = bench_augmentation(device="cpu", train_tiles_per_s=2.0)
    assert r["tiles_per_s"] == pytest.approx(8.0)
    assert r["scipy_reference_tiles_per_s"] == pytest.approx(2.0) and r["speedup_vs_reference"] == pytest.approx(4.0)
    assert r["ratio_to_training"] == pytest.approx(4.0)
    assert list(r["targets"].values()) == [None]  # targets are judged on CUDA only


def test_targets_verdicts():
    checks = {"a": (4.0, 3.0), "b": (0.2, 0.4), "c": (None, 1.0)}
    assert benchmark._common._targets(False, checks) == {"a": True, "b": False, "c": None}
    assert set(benchmark._common._targets(True, checks).values()) == {None}


def test_bench_augmentation_with_the_real_pipeline():
    pytest.importorskip("unet_zoo.data.augment")
    r = bench_augmentation(device="cpu", smoke=True, train_tiles_per_s=1.0)
    assert r["tiles_per_s"] > 0 and r["ratio_to_training"] == pytest.approx(r["tiles_per_s"])


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    return run_all("cpu", smoke=True, out_dir=out, command="unet-zoo benchmark --smoke"), out


@pytest.mark.slow
def test_run_all_writes_json_and_markdown(suite):
    results, out = suite
    assert results["errors"] == {}
    data = json.loads((out / "results.json").read_text())
    assert set(data) >= {"environment", "peak", "train", "inference", "cpu_latency", "augment", "command"}
    assert data["environment"]["torch"] == torch.__version__ and data["environment"]["device"] == "cpu"
    assert data["peak"]["bf16_matmul_tflops"] > 0
    assert data["train"]["bf16_matmul_tflops"] == data["peak"]["bf16_matmul_tflops"]
    assert data["augment"]["train_tiles_per_s"] == pytest.approx(data["train"]["ours"]["tiles_per_s"])
    fp32 = data["peak"]["fp32_matmul_tflops"]
    assert data["train"]["ours"]["fraction_of_fp32_matmul"] == pytest.approx(data["train"]["ours"]["tflops"] / fp32)
    assert data["inference"][0]["baseline"]["fraction_of_fp32_matmul"] == pytest.approx(
        data["inference"][0]["baseline"]["tflops"] / fp32
    )
    md = (out / "results.md").read_text()
    assert "`unet-zoo benchmark --smoke`" in md and torch.__version__ in md and "smoke mode" in md
    assert md.count("\n| ours |") == 1 and "## Inference" in md and "## Augmentation" in md
    assert md.count("of fp32 matmul") == 2
    assert data["precision"]["matmul_n"] is None and "## Precision on the CPU" in md  # a default section on a CPU
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_run_all_records_a_failing_section_and_keeps_the_rest(monkeypatch, tmp_path):
    def boom(**kwargs):
        raise RuntimeError("augmentation exploded")

    monkeypatch.setattr(benchmark.suite, "bench_augmentation", boom)
    results = run_all("cpu", smoke=True, out_dir=tmp_path, only=["augment"])
    assert results["errors"] == {"augment": "RuntimeError: augmentation exploded"}
    assert "augmentation exploded" in (tmp_path / "results.md").read_text()
    assert "train" not in json.loads((tmp_path / "results.json").read_text())


def test_run_all_rejects_unknown_sections_and_settings():
    with pytest.raises(ValueError, match="unknown benchmark"):
        run_all("cpu", smoke=True, out_dir=None, only=["training"])
    with pytest.raises(TypeError, match="unknown setting"):
        run_all("cpu", smoke=True, out_dir=None, only=["train"], train_tiles=3)


def test_to_markdown_marks_missed_targets():
    results = {
        "environment": {"device": "cuda", "device_name": "NVIDIA H100"},
        "peak": {"bf16_matmul_tflops": 700.0},
        "augment": {
            "tile": 572,
            "batch_size": 8,
            "tiles_per_s": 10.0,
            "scipy_reference_tiles_per_s": 1.0,
            "speedup_vs_reference": 10.0,
            "train_tiles_per_s": 5.0,
            "ratio_to_training": 2.0,
            "targets": {"augmentation >= 3x training": False},
        },
    }
    md = to_markdown(results)
    assert "NVIDIA H100" in md and "augmentation >= 3x training: **no**" in md


@pytest.mark.slow
def test_cli_benchmark_smoke(tmp_path):
    from unet_zoo.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["benchmark", "--smoke", "--device", "cpu", "--only", "train", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "results.json").read_text())
    assert "train" in data and "inference" not in data
    bad = runner.invoke(app, ["benchmark", "--smoke", "--only", "train,foo", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "--only takes" in bad.output


def test_reproduce_section_is_opt_in_and_in_the_markdown(monkeypatch, tmp_path):
    import unet_zoo.experiments.isbi2012.reproduce

    calls = []
    monkeypatch.setattr(unet_zoo.experiments.isbi2012.reproduce, "reproduce_isbi", fake_reproduce(calls))
    results = run_all("cpu", smoke=True, out_dir=tmp_path, only=["reproduce"], data_dir="/data", reproduce_steps=10)
    assert results["errors"] == {} and calls[0][1]["data_dir"] == "/data" and calls[0][1]["steps"] == 10
    assert set(results) >= {"reproduce", "environment"} and "train" not in results
    assert "peak" not in results  # no matmul measurement when neither train nor inference runs
    md = (tmp_path / "results.md").read_text()
    assert "## `unet-zoo reproduce isbi --quick --steps 10 --device cpu`: wall time" in md
    assert "| isbi-quick | 10 |" in md


def test_default_suite_does_not_run_reproduce_and_cpu_runs_the_quick_demo():
    assert "reproduce" not in benchmark.SECTIONS and "reproduce" in benchmark.ALL_SECTIONS
    assert benchmark.suite.default_settings(torch.device("cpu"), smoke=False)["reproduce_quick"] is True
    assert benchmark.suite.default_settings(torch.device("cuda"), smoke=False)["reproduce_quick"] is False


def test_cli_benchmark_checks_reproduce_options(tmp_path):
    from unet_zoo.cli import app

    runner = CliRunner()
    bad = runner.invoke(app, ["benchmark", "--only", "reproduce", "--reproduce-variant", "huge", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "--reproduce-variant must be one of original, padded, small, all" in bad.output


def test_augmentation_benchmark_times_reference_torch_and_sampler():
    from unet_zoo.benchmark import benchmark_augmentation

    result = benchmark_augmentation(batch_size=2, tile=188, device="cpu", repeats=1)
    methods = [r["method"] for r in result["rows"]]
    assert methods == ["scipy reference", "elastic_deform", "TileSampler.sample"]
    assert all(r["seconds_per_batch"] > 0 for r in result["rows"])
    assert result["out_tile"] == 4


@pytest.fixture(scope="module")
def precision_run(tmp_path_factory):
    """The suite with only the precision section, smoke size, on the CPU; the CPU matmul must not be measured
    twice: the precision module's own measurement fails if it is called."""
    import unet_zoo.benchmark.precision as precision

    out = tmp_path_factory.mktemp("precision")

    def measured_twice(*args, **kwargs):
        raise AssertionError("the precision section measured the matmul rate again")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(precision, "matmul_tflops", measured_twice)
        results = run_all("cpu", smoke=True, out_dir=out, only=["precision"])
    return results, (out / "results.md").read_text()


@pytest.mark.slow
def test_precision_section_rows_and_fractions_of_the_suite_peak(precision_run):
    from unet_zoo.benchmark.precision import BF16_AUTOCAST, FP32_EAGER, ONNXRUNTIME
    from unet_zoo.exporters.sessions import onnxruntime_available

    results, _ = precision_run
    assert results["errors"] == {} and "train" not in results and "inference" not in results
    r = json.loads(json.dumps(results["precision"]))
    peak = results["peak"]
    assert r["peak_tflops"] == {"fp32": peak["fp32_matmul_tflops"], "bf16": peak["bf16_matmul_tflops"]}
    assert r["matmul_n"] is None  # the suite's rates were reused
    assert (r["model"], r["model_overrides"], r["side"], r["batch"], r["repeats"]) == ("small", {"base_channels": 8}, 32, 1, 1)
    expected = [FP32_EAGER, BF16_AUTOCAST] + ([ONNXRUNTIME] if onnxruntime_available() else [])
    assert list(r["inference"])[: len(expected)] == expected
    assert list(r["training"]) == [FP32_EAGER, BF16_AUTOCAST]
    net = unet_zoo.create_model("small", base_channels=8)
    forward_flops = count_forward_flops(net, (1, 1, 32, 32))
    train_flops = count_train_flops(net, (1, 1, r["tile"], r["tile"]))
    for section, flops in (("inference", forward_flops), ("training", train_flops)):
        for path, row in r[section].items():
            if path in expected:  # OpenVINO's default hint runs what it chooses
                assert row["precision"] == ("bf16" if path == BF16_AUTOCAST else "fp32")
            assert row["seconds"] > 0 and row["flops"] == flops
            assert row["tflops"] == pytest.approx(flops / row["seconds"] / 1e12)
            assert row["fraction_of_limit"] == pytest.approx(row["tflops"] / r["peak_tflops"][row["precision"]])
    env = r["environment"]
    assert set(env["flags"]) <= set(benchmark.precision.CPU_FLAGS) and env["available_cores"] >= 1
    auto = r["auto"]  # conftest forces the torch float32 path through the environment
    assert (auto["inference"]["path"], auto["inference"]["how"]) == (FP32_EAGER, "environment")
    assert (auto["training"]["path"], auto["training"]["precision"]) == (FP32_EAGER, "fp32")
    threads = r["threads"]
    assert threads["threads"] == sorted({1, torch.get_num_threads()})
    for section in ("inference", "training"):
        assert set(threads[section]["seconds"]) == {str(n) for n in threads["threads"]}
        assert all(s > 0 for s in threads[section]["seconds"].values())


@pytest.mark.slow
def test_precision_section_in_the_markdown(precision_run):
    results, md = precision_run
    r = results["precision"]
    assert f"## Precision on the CPU: `small`, inference of one 32x32 input, a training step on 1 tile(s) of {r['tile']}x" in md
    assert f"CPU: {r['environment']['cpu']}" in md and "`auto` picks inference torch-fp32 (environment" in md
    assert "| section | path | precision | seconds | TFLOP/s | of its limit |" in md
    assert "| inference | torch-fp32 (auto) |" in md and "| training step | torch-bf16 |" in md
    assert md.count(" (auto) |") == 2  # one path per section: what auto runs here
    assert "| inference | torch-fp32 | " in md and "1 thread(s), s" in md  # the thread table


def test_bench_cpu_precision_uses_the_given_peak(monkeypatch):
    import unet_zoo.benchmark.precision as precision

    monkeypatch.setattr(precision, "onnxruntime_available", lambda: False)  # torch paths only: quick
    monkeypatch.setattr(precision, "openvino_available", lambda: False)
    r = precision.bench_cpu_precision(smoke=True, peak={"fp32": 2.0, "bf16": 8.0})
    assert list(r["inference"]) == [precision.FP32_EAGER, precision.BF16_AUTOCAST] and r["matmul_n"] is None
    for row in [*r["inference"].values(), *r["training"].values()]:
        assert row["fraction_of_limit"] == pytest.approx(row["tflops"] / {"fp32": 2.0, "bf16": 8.0}[row["precision"]])
    assert "not installed, so not measured: onnxruntime, openvino" in precision.markdown(r)
    with pytest.raises(ValueError, match="missing bf16"):
        precision.bench_cpu_precision(smoke=True, peak={"fp32": 2.0})


def test_precision_is_a_default_section_on_the_cpu_only():
    assert benchmark.default_sections(torch.device("cpu")) == benchmark.CPU_SECTIONS
    assert "precision" in benchmark.CPU_SECTIONS and "precision" in benchmark.ALL_SECTIONS
    assert "precision" not in benchmark.default_sections(torch.device("cuda"))


def test_cli_benchmark_leaves_the_default_sections_to_the_device(tmp_path, monkeypatch):
    import unet_zoo.cli.bench as bench_cli

    calls = []

    def fake_run_all(device, only=None, out_dir=None, **kwargs):
        calls.append(only)
        benchmark.write_results({"errors": {}}, out_dir)
        return {"errors": {}}

    monkeypatch.setattr(bench_cli, "run_all", fake_run_all)
    res = CliRunner().invoke(bench_cli.app, ["benchmark", "--device", "cpu", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert calls == [None]  # run_all picks default_sections(cpu): train, inference, augment, precision


@pytest.mark.slow
def test_bench_cpu_precision_with_tiny_sizes():
    from unet_zoo.benchmark import precision

    result = precision.bench_cpu_precision("small", 32, 16, 1, 1, matmul_n=64)
    assert json.loads(json.dumps(result))["matmul_n"] == 64 and result["tile"] == 16
    assert set(result["peak_tflops"]) == {"fp32", "bf16"}
    assert {"torch-fp32", "torch-bf16"} <= set(result["inference"])
    assert list(result["training"]) == ["torch-fp32", "torch-bf16"]
    assert result["auto"]["inference"]["path"] == "torch-fp32" and result["threads"]["threads"][0] == 1
    assert all(row["seconds"] > 0 for row in [*result["inference"].values(), *result["training"].values()])
    printed = precision.markdown(result)
    assert printed.startswith("CPU: ") and "| inference | torch-fp32 (auto) |" in printed
