"""The trainer-overhead benchmark: both sides run, in one process, and the periodic work is amortised."""

from __future__ import annotations

import math

import pytest

from unet_zoo.benchmark.trainer_overhead import TARGET_RATIO, bench_trainer_overhead
from unet_zoo.training.recipes import load_recipe

pytestmark = pytest.mark.slow  # the module's fixture trains both sides of the benchmark: 30 s on 2 busy cores


@pytest.fixture(scope="module")
def result():
    recipe = load_recipe("tiny").with_overrides(train={"eval_every": 4, "checkpoint_every": 2})
    return bench_trainer_overhead(recipe, steps=9, warmup=1, rounds=2, profile=True)


def test_both_sides_are_timed_each_round(result):
    assert len(result["rounds"]) == 2
    for r in result["rounds"]:
        assert r["step_s"] > 0 and r["bare_step_s"] > 0
        assert r["plain_steps"] >= 4  # 9 timed steps minus those after a checkpoint or validation
        assert math.isclose(r["ratio"], r["amortised_step_s"] / r["bare_step_s"])


def test_periodic_work_is_amortised_over_the_recipes_intervals(result):
    for r in result["rounds"]:
        expected = r["step_s"] + r["validation_s"] / 4 + r["checkpoint_s"] / 2
        assert math.isclose(r["amortised_step_s"], expected)
        assert r["amortised_step_s"] >= r["step_s"]
    assert result["met"] == (result["ratio"] <= TARGET_RATIO)


def test_profile_lists_the_trainers_regions(result):
    for region in ("trainer.sample", "trainer.forward_loss", "trainer.backward_update", "trainer.checkpoint", "trainer.validate"):
        assert region in result["profile"]
