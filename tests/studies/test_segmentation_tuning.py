"""studies/segmentation_tuning.py runs (smoke size) and stores what it chose."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "studies" / "segmentation_tuning.py"


def test_tune_smoke_stores_the_chosen_parameters_and_their_scores(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("segmentation_tuning", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "tuning.json"
    module.main(["tune", "--smoke", "--workdir", str(tmp_path / "runs"), "--out", str(out)])
    tuning = json.loads(out.read_text())["tuning"]
    mean = [(r["tta"]["rand_error"] + r["no_tta"]["rand_error"]) / 2 for r in tuning["rows"]]
    chosen = tuning["chosen_scores"]
    assert (chosen["tta"]["rand_error"] + chosen["no_tta"]["rand_error"]) / 2 == min(mean[8:])  # best of stage 2
    assert len(tuning["rows"]) == 2 * 2 * 2 + 2 * 2
    assert "| threshold |" in capsys.readouterr().out
