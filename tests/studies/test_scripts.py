"""The studies under studies/ run (smoke sizes) and write what they promise."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

STUDIES = Path(__file__).resolve().parents[2] / "studies"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, STUDIES / f"{name}.py")
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


def test_context_margin_sets_the_context_of_one_tile_and_restores_the_rule():
    import unet_zoo
    from unet_zoo.inference.tiling import choose_tile, predict_tiled

    study = _script("context_margin")
    model = unet_zoo.create_model("padded", base_channels=4).eval()
    image = np.random.default_rng(0).random((64, 64), dtype=np.float32)
    before = choose_tile(model, 512, 512)
    with study.margin_of(32):
        assert choose_tile(model, 512, 512) == 576
        inside = predict_tiled(model, image)
    with study.margin_of(None):
        assert choose_tile(model, 512, 512) == before
    assert choose_tile(model, 512, 512) == before == 592
    assert inside.shape == (2, 64, 64)
