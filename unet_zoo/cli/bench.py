"""`unet-zoo benchmark`: our fast path vs the float32 eager baseline (see `unet_zoo.benchmark.run_all`)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import typer

from unet_zoo.benchmark import ALL_SECTIONS, run_all
from unet_zoo.benchmark.suite import RESULT_FILES
from unet_zoo.cli import options as opt
from unet_zoo.cli.app import app, check_output, console, fail
from unet_zoo.models.checkpoint_names import VARIANT_RECIPES
from unet_zoo.utils.device import resolve_device


@app.command("benchmark")
def benchmark_command(
    device: opt.Device = None,
    smoke: bool = typer.Option(False, "--smoke", help="tiny models and sizes: checks the suite runs (timings mean nothing)"),
    only: str = typer.Option(
        None,
        "--only",
        help="comma-separated subset of: train, inference, augment, precision, reproduce (default: train, inference, "
        "augment, and on a CPU precision: fp32, bf16, onnxruntime and OpenVINO side by side; reproduce is long and "
        "needs the ISBI data)",
    ),
    out: Path = opt.out_option(Path("bench-results"), "folder for results.json and results.md"),
    overwrite: bool = opt.overwrite_option("replace results.json and results.md already in --out"),
    compile: opt.Compile = None,
    profile: bool = typer.Option(False, "--profile", help="add a torch.profiler table of our training step"),
    inference_side: int = typer.Option(
        None, "--inference-side", help="image side for the inference benchmark (default: 4096 on CUDA, 1024 on CPU)"
    ),
    train_batch: int = typer.Option(None, "--train-batch", help="tiles per training step (default: 8 on CUDA, 1 on CPU)"),
    reproduce_variant: str = typer.Option(
        None, "--reproduce-variant", help="reproduce section: original (default), padded, small or all"
    ),
    reproduce_quick: bool = typer.Option(
        None,
        "--reproduce-quick/--reproduce-full",
        help="reproduce section: the --quick CPU demo or the paper recipe (default: full on CUDA, quick on CPU)",
    ),
    reproduce_steps: int = typer.Option(None, "--reproduce-steps", min=1, help="reproduce section: override train.steps"),
    data_dir: opt.DataDir = None,
) -> None:
    """Benchmark training, inference, augmentation and (on a CPU) precision; write JSON + a Markdown table to --out.

    --data-dir is read by the reproduce section (the ISBI 2012 data)."""
    sections = None if only is None else [s.strip() for s in only.split(",") if s.strip()]
    unknown = sorted(set(sections or ()) - set(ALL_SECTIONS))
    if unknown or sections == []:
        raise fail(f"--only takes a comma-separated subset of {', '.join(ALL_SECTIONS)}; got {only!r}")
    if reproduce_variant is not None and reproduce_variant not in [*VARIANT_RECIPES, "all"]:
        raise fail(f"--reproduce-variant must be one of {', '.join([*VARIANT_RECIPES, 'all'])}; got {reproduce_variant!r}")
    try:
        dev = resolve_device(device)
    except (ValueError, RuntimeError) as err:
        raise fail(str(err)) from None
    if inference_side is not None and inference_side < 1:
        raise fail(f"--inference-side must be >= 1 pixel, got {inference_side}")
    if train_batch is not None and train_batch < 1:
        raise fail(f"--train-batch must be >= 1, got {train_batch}")
    out = check_output(out, "--out", folder=True, contents=RESULT_FILES, overwrite=overwrite)
    settings: dict[str, Any] = {}
    if inference_side is not None:
        settings["inference_side"] = inference_side
    if train_batch is not None:
        settings["train_batch"] = train_batch
    for key, value in (
        ("reproduce_variant", reproduce_variant),
        ("reproduce_quick", reproduce_quick),
        ("reproduce_steps", reproduce_steps),
        ("data_dir", data_dir),
    ):
        if value is not None:
            settings[key] = value
    command = "unet-zoo " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else None
    with console.status("benchmarking...") as status:

        def log(msg: str) -> None:
            status.update(msg)
            console.log(msg)

        results = run_all(
            dev,
            smoke=smoke,
            out_dir=out,
            only=sections,
            command=command,
            compile=compile,
            profile=profile,
            log=log,
            **settings,
        )
    console.print((out / "results.md").read_text(), markup=False, highlight=False, soft_wrap=True)
    console.print(f"wrote {out / 'results.json'} and {out / 'results.md'}")
    if results["errors"]:
        raise fail(f"{len(results['errors'])} benchmark(s) failed: {', '.join(results['errors'])}", code=1)
