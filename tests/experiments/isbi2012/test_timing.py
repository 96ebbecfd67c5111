"""unet_zoo.experiments.isbi2012.timing: the wall time of a reproduction and the scores it reached."""

from __future__ import annotations

import json

import pytest

from unet_zoo.experiments.isbi2012 import reproduce
from unet_zoo.experiments.isbi2012.timing import bench_reproduce


def fake_reproduce(calls):
    """A stand-in for unet_zoo.experiments.isbi2012.reproduce.reproduce_isbi: records its arguments, returns one finished run."""
    from types import SimpleNamespace

    from unet_zoo.training.recipes import load_recipe

    def fake(variant, **kwargs):
        calls.append((variant, kwargs))
        recipe = load_recipe("isbi-quick")
        return [
            SimpleNamespace(
                recipe=recipe,
                run_dir="runs/isbi-quick-x",
                train_seconds=4.0,
                eval_seconds=1.5,
                train_result=SimpleNamespace(step=10),
                metrics={"rand_error": 0.1, "warping_error": 0.002, "pixel_error": 0.08},
            )
        ]

    return fake


def test_bench_reproduce_times_the_command_and_reports_scores(monkeypatch):
    from unet_zoo.training.recipes import load_recipe

    calls = []
    monkeypatch.setattr(reproduce, "reproduce_isbi", fake_reproduce(calls))
    r = json.loads(json.dumps(bench_reproduce("original", "cpu", quick=True, steps=10, data_dir="/data")))
    ((variant, kwargs),) = calls
    assert variant == "original" and kwargs["quick"] is True and kwargs["steps"] == 10 and kwargs["data_dir"] == "/data"
    assert kwargs["device"] == "cpu" and kwargs["out"] is not None  # never the default cards/ folder
    assert r["command"] == "unet-zoo reproduce isbi --quick --steps 10 --device cpu" and r["wall_s"] >= 0
    (rec,) = r["recipes"]
    assert rec["recipe"] == "isbi-quick" and rec["steps"] == 10
    assert rec["tiles"] == 10 * load_recipe("isbi-quick").train.batch_size
    assert rec["tiles_per_s"] == pytest.approx(rec["tiles"] / 4.0) and rec["rand_error"] == 0.1
