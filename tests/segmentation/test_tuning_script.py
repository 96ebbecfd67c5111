"""benchmarks/segmentation_tuning.py runs (smoke size) and stores what it chose."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "segmentation_tuning.py"


def test_tune_smoke_stores_the_chosen_parameters_and_their_scores(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("segmentation_tuning", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "tuning.json"
    module.main(["tune", "--smoke", "--workdir", str(tmp_path / "runs"), "--out", str(out)])
    tuning = json.loads(out.read_text())["tuning"]
    best = min(r["tta"]["rand_error"] for r in tuning["rows"])
    assert tuning["chosen_scores"]["tta"]["rand_error"] == best  # the chosen setting is the best one tried
    assert len(tuning["rows"]) == 2 * 2 * 2 + 2 * 2
    assert "| threshold |" in capsys.readouterr().out
