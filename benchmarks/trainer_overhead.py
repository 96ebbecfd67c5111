"""The trainer's step beside a bare training loop, side by side in one process (target: <= 1.10x).

    python3 benchmarks/trainer_overhead.py                      # isbi-small-cpu on ISBI 2012 (UNET_ZOO_DATA_DIR)
    python3 benchmarks/trainer_overhead.py --synthetic --profile --out bench-trainer

See `unet_zoo.benchmark.trainer_overhead` for what each side does and how periodic work is amortised.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from unet_zoo.benchmark.suite import environment
from unet_zoo.benchmark.trainer_overhead import bench_trainer_overhead
from unet_zoo.training.recipes import load_recipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="isbi-small-cpu")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per round and side")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--synthetic", action="store_true", help="synthetic data instead of ISBI 2012")
    parser.add_argument("--profile", action="store_true", help="add a torch.profiler table of the trainer")
    parser.add_argument("--out", type=Path, default=None, help="folder for trainer_overhead.json")
    args = parser.parse_args()
    recipe = load_recipe(args.recipe)
    if args.synthetic:
        recipe = recipe.with_overrides(data={"source": "synthetic"})
    result = bench_trainer_overhead(recipe, steps=args.steps, rounds=args.rounds, profile=args.profile, log=print)
    result["environment"] = environment("cpu")
    profile = result.pop("profile", None)
    if profile:
        print(profile)
    for i, r in enumerate(result["rounds"], 1):
        plain, validation, checkpoint = r["step_s"], r["validation_s"], r["checkpoint_s"]
        print(
            f"round {i}: trainer {r['amortised_step_s']:.3f} s/step (plain {plain:.3f}, "
            f"validation {validation:.2f} s every {result['eval_every']}, "
            f"checkpoint {checkpoint:.2f} s every {result['checkpoint_every']}), "
            f"bare loop {r['bare_step_s']:.3f} s/step: {r['ratio']:.3f}x"
        )
    machine = platform.processor() or platform.machine()
    print(
        f"{result['recipe']} ({result['model']}, {result['tile']} px x {result['batch_size']}, "
        f"{torch.get_num_threads()} threads, {machine}): trainer {result['trainer_step_s']:.3f} s/step, "
        f"bare loop {result['bare_step_s']:.3f} s/step, ratio {result['ratio']:.3f}x "
        f"(target {result['target']}: {'met' if result['met'] else 'missed'})"
    )
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "trainer_overhead.json").write_text(json.dumps({**result, "profile": profile}, indent=2, default=str))


if __name__ == "__main__":
    main()
