"""How much the quick demo's result moves between seeds and CPU kernels.

    python3 studies/quick_spread.py --seeds 0 1 2 3 4 --kernels default avx2 --out quick-spread.jsonl

Trains the recipe (default ``isbi-quick``, the README's first command) once per seed and kernel set, each in
a fresh process (``ATEN_CPU_CAPABILITY`` / ``ONEDNN_MAX_CPU_ISA`` choose PyTorch's kernels at start-up),
scores the held-out slices with and without test-time augmentation, appends one JSON line per run to
--out (runs already there are kept, so an interrupted study resumes) and prints the spread per kernel.

Kernels: "default" (what PyTorch picks on this CPU), "avx2" / "avx512" (ATEN_CPU_CAPABILITY), or
"onednn:ISA" (ONEDNN_MAX_CPU_ISA, e.g. onednn:AVX2 for oneDNN's convolutions).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCORES = ("vrand_thinned", "vinfo_thinned", "rand_error", "pixel_error", "warping_error")

CHILD = r"""
import json, sys, tempfile
from unet_zoo.experiments.isbi2012.reproduce import reproduce_isbi
recipe, data_dir, steps = sys.argv[1], sys.argv[2] or None, int(sys.argv[3]) or None
with tempfile.TemporaryDirectory() as tmp:
    (r,) = reproduce_isbi(recipe=recipe, data_dir=data_dir, out=tmp + "/hub", overwrite=True, steps=steps)
keys = KEYS
print("RESULT " + json.dumps({"train_s": r.train_seconds, "eval_s": r.eval_seconds,
    "tta": {k: r.metrics.get(k) for k in keys}, "no_tta": {k: (r.metrics_without_tta or {}).get(k) for k in keys}}))
""".replace("KEYS", repr(SCORES))


def kernel_env(kernel: str) -> dict[str, str]:
    """The environment variables that make PyTorch use `kernel` (see the module docstring)."""
    if kernel == "default":
        return {}
    if kernel.startswith("onednn:"):
        return {"ONEDNN_MAX_CPU_ISA": kernel.split(":", 1)[1]}
    return {"ATEN_CPU_CAPABILITY": kernel}


def recipe_with_seed(recipe: str, seed: int, folder: Path) -> Path:
    """A copy of `recipe` (a name or a .toml path) whose ``train.seed`` is `seed`."""
    from unet_zoo.training.recipes import recipe_path

    text = recipe_path(recipe).read_text()
    if not re.search(r"(?m)^seed = \d+", text):
        raise SystemExit(f"{recipe}: no 'seed = N' line in its [train] table")
    path = folder / f"seed{seed}.toml"
    path.write_text(re.sub(r"(?m)^seed = \d+", f"seed = {seed}", text))
    return path


def run_one(recipe: str, seed: int, kernel: str, data_dir: str | None, steps: int | None) -> dict:
    """Train and score one seed with one kernel set in a fresh process; returns the JSON row."""
    with tempfile.TemporaryDirectory(prefix="quick-spread-") as tmp:
        path = recipe_with_seed(recipe, seed, Path(tmp))
        env = {**os.environ, **kernel_env(kernel)}
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(path), data_dir or "", str(steps or 0)],
            env=env,
            capture_output=True,
            text=True,
            cwd=tmp,
        )
    row = {"recipe": recipe, "seed": seed, "kernel": kernel, "wall_s": round(time.perf_counter() - start, 1)}
    line = next((line for line in proc.stdout.splitlines() if line.startswith("RESULT ")), None)
    row.update(json.loads(line[len("RESULT ") :]) if line else {"error": proc.stderr[-3000:]})
    return row


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def describe(row: dict) -> str:
    """One finished run in a line."""
    return (
        f"seed {row['seed']}, {row['kernel']}: V_rand thinned {_fmt(row['tta']['vrand_thinned'])} with TTA, "
        f"{_fmt(row['no_tta']['vrand_thinned'])} without; {row['train_s']:.0f} s of training"
    )


def summary(rows: list[dict]) -> str:
    """A Markdown table: per kernel, min / median / max of each score with and without TTA, and the training time."""
    lines = [
        "| kernel | runs | V_rand thinned, TTA | V_rand thinned, no TTA | TTA - no TTA | Rand error, TTA | train s |",
        "|---|---|---|---|---|---|---|",
    ]
    for kernel in dict.fromkeys(r["kernel"] for r in rows):
        done = [r for r in rows if r["kernel"] == kernel and "error" not in r]
        if not done:
            continue

        def spread(values: list[float | None], digits: int = 4) -> str:
            known = [v for v in values if v is not None]
            if len(known) < len(values) or not known:
                return "-"
            return f"{min(known):.{digits}f} / {statistics.median(known):.{digits}f} / {max(known):.{digits}f}"

        tta = [r["tta"]["vrand_thinned"] for r in done]
        plain = [r["no_tta"]["vrand_thinned"] for r in done]
        gain = [None if b is None else a - b for a, b in zip(tta, plain)]
        lines.append(
            f"| {kernel} | {len(done)} | {spread(tta)} | {spread(plain)} | {spread(gain)} | "
            f"{spread([r['tta']['rand_error'] for r in done])} | {spread([r['train_s'] for r in done], 0)} |"
        )
    return "\n".join(lines) + "\n(min / median / max over seeds)"


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="isbi-quick", help="recipe name or .toml path (default: isbi-quick)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--kernels", nargs="+", default=["default"], help="default, avx2, avx512 or onednn:ISA")
    parser.add_argument("--data-dir", default=None, help="ISBI 2012 folder (default: UNET_ZOO_DATA_DIR or the cache)")
    parser.add_argument("--steps", type=int, default=None, help="override train.steps (smoke runs)")
    parser.add_argument("--out", type=Path, required=True, help="JSON lines, one per run; existing runs are kept")
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in args.out.read_text().splitlines() if line.strip()] if args.out.is_file() else []
    done = {(r["seed"], r["kernel"]) for r in rows if "error" not in r}
    for kernel in args.kernels:
        for seed in args.seeds:
            if (seed, kernel) in done:
                continue
            row = run_one(args.recipe, seed, kernel, args.data_dir, args.steps)
            rows = [r for r in rows if (r["seed"], r["kernel"]) != (seed, kernel)] + [row]
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row) if "error" in row else describe(row), flush=True)
    print(summary([r for r in rows if (r["seed"], r["kernel"]) in {(s, k) for s in args.seeds for k in args.kernels}]))
    return rows


if __name__ == "__main__":
    main()
