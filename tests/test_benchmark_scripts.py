"""The stand-alone scripts under benchmarks/ run (smoke sizes) and write what they promise."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_rand_error_levers_trains_each_variant_and_resumes_from_its_results(tmp_path, capsys):
    from unet_zoo.training.data import synthetic_cells

    levers = _script("rand_error_levers")
    out = tmp_path / "levers.json"
    args = ["--smoke", "--variants", "0,3", "--workdir", str(tmp_path / "runs"), "--out", str(out)]
    results = levers.main(args)
    names = list(levers.variants(3))
    assert list(results["variants"]) == [names[0], names[3]]
    assert json.loads(out.read_text()) == json.loads(json.dumps(results))
    _, labels = synthetic_cells(8, 64, seed=0)
    for entry in results["variants"].values():
        for scores in (entry["with_tta"], entry["without_tta"]):
            assert 0 <= scores["rand_error"] <= 1 and 0 <= scores["membrane_fraction_predicted"] <= 1
            assert scores["membrane_fraction_truth"] == np.mean(labels[6:] == 0)
    assert entry["overrides"] == {"loss": {"w0": 0.0, "balance": False}}
    levers.main(args)  # a second run keeps the finished variants instead of training them again
    assert capsys.readouterr().out.count("done earlier, kept") == 2


@pytest.mark.slow
def test_quick_spread_trains_each_seed_in_its_own_process_and_resumes(tmp_path, monkeypatch, capsys):
    spread = _script("quick_spread")
    monkeypatch.chdir(tmp_path)  # run folders of the children go under the working directory
    out = tmp_path / "spread.jsonl"
    args = ["--recipe", "tiny", "--seeds", "3", "--steps", "2", "--kernels", "avx2", "--out", str(out)]
    (row,) = spread.main(args)
    assert "error" not in row, row.get("error")
    assert (row["seed"], row["kernel"]) == (3, "avx2") and 0 <= row["tta"]["vrand_thinned"] <= 1
    assert spread.kernel_env("avx2") == {"ATEN_CPU_CAPABILITY": "avx2"}
    assert spread.kernel_env("onednn:AVX2") == {"ONEDNN_MAX_CPU_ISA": "AVX2"} and spread.kernel_env("default") == {}
    assert "| avx2 | 1 |" in capsys.readouterr().out
    assert spread.main(args) == [row]  # a second call keeps the finished run instead of training it again
    assert len(out.read_text().splitlines()) == 1


@pytest.mark.slow
def test_cpu_precision_script_runs_with_tiny_options(tmp_path, capsys):
    script = _script("cpu_precision")
    out = tmp_path / "precision.json"
    args = ["--side", "32", "--tile", "16", "--batch", "1", "--repeats", "1", "--matmul-n", "64", "--json", str(out)]
    result = script.main(args)
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert result["matmul_n"] == 64 and result["settings"]["side"] == 32 and result["tile"] == 16
    assert set(result["peak_tflops"]) == {"fp32", "bf16"}
    assert {"torch-fp32", "torch-bf16"} <= set(result["inference"])
    assert list(result["training"]) == ["torch-fp32", "torch-bf16"]
    assert result["auto"]["inference"]["path"] == "torch-fp32" and result["threads"]["threads"][0] == 1
    assert all(row["seconds"] > 0 for row in [*result["inference"].values(), *result["training"].values()])
    printed = capsys.readouterr().out
    assert printed.startswith("CPU: ") and "| inference | torch-fp32 (auto) |" in printed
