"""`unet-zoo train RECIPE` and `unet-zoo reproduce isbi`: thin wrappers over `Trainer.from_recipe` / reproduce."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from unet_zoo.cli import options as opt
from unet_zoo.cli.app import ZooTyper, app, check_output, check_owned, console, err_console, fail
from unet_zoo.cli.progress import TrainingDisplay
from unet_zoo.experiments.isbi2012.data import DatasetNotFoundError
from unet_zoo.experiments.isbi2012.reproduce import recipes_for, reproduce_isbi
from unet_zoo.hub.training_state import TRAINING_STATE_FILE
from unet_zoo.runtime.settings import PRECISIONS
from unet_zoo.training.distributed import cleanup_distributed
from unet_zoo.training.recipes import RecipeError, load_recipe
from unet_zoo.training.run import RUN_FOLDER, latest_run_dir
from unet_zoo.training.trainer import NonFiniteLossError, TimeLimitReached, Trainer, TrainingInterrupted

reproduce_app = ZooTyper(help="Reproduce the paper's experiments and compare with its numbers.", no_args_is_help=True)
app.add_typer(reproduce_app, name="reproduce")


@app.command("train")
def train_command(
    recipe: str = typer.Argument(..., help="recipe name (isbi-original, isbi-small, tiny, ...) or path to a .toml file"),
    steps: opt.Steps = None,
    device: opt.Device = None,
    out: Path | None = opt.out_option(None, "run folder (default runs/<recipe>-<time>/)"),
    resume: opt.Resume = None,
    data_dir: opt.DataDir = None,
    compile: opt.Compile = None,
    time_limit: opt.TimeLimit = None,
    overwrite: bool = opt.overwrite_option("train a new run in an existing --out run folder, replacing the run there"),
    precision: opt.Precision = None,
    quiet: opt.Quiet = False,
) -> None:
    """Train a model from a recipe; checkpoints, metrics.jsonl and PNGs go to the run folder.

    An existing, non-empty --out folder is refused: continue its run with --resume, or replace it with --overwrite.
    """
    if precision is not None and precision not in PRECISIONS:
        raise fail(f"--precision must be auto, bf16 or fp32, got {precision!r}")
    try:
        loaded = load_recipe(recipe)
        if precision is not None:
            loaded = loaded.with_overrides(train={"precision": precision})
        resume_dir = latest_run_dir(loaded.name) if resume == "latest" else resume
        if out is not None:
            out = check_run_folder(out, resume_dir, overwrite)
        trainer = Trainer.from_recipe(
            loaded,
            steps=steps,
            device=device,
            out_dir=out,
            resume=resume_dir,
            data_dir=data_dir,
            compile=compile,
            callback=TrainingDisplay(console, quiet=quiet),
            time_limit=time_limit * 60 if time_limit else None,
        )
        result = trainer.fit()
    except typer.Exit:  # a refusal already printed (typer.Exit is a RuntimeError: let it through as it is)
        raise
    except TrainingInterrupted as err:
        raise interrupted(err) from None
    except (RecipeError, DatasetNotFoundError, FileNotFoundError, NonFiniteLossError, RuntimeError, ValueError) as err:
        raise fail(str(err)) from None
    finally:
        cleanup_distributed()
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 reports
        return
    last_val = next((h for h in reversed(result.history) if "val_loss" in h), None)
    extra = f", held-out tile pixel error {last_val['val_pixel_error']:.4f}" if last_val else ""
    if result.steps_this_session == 0 and resume_dir is not None:
        console.print(
            f"{result.run_dir} is already complete ({result.step} of {result.recipe.train.steps} steps): "
            "nothing left to train; pass a larger --steps to continue it."
        )
    console.print(
        f"trained {result.recipe.name} for {result.step} steps in {result.seconds:.0f} s: "
        f"final loss {result.final_loss:.4f}{extra}. Run folder: {result.run_dir}"
    )


def check_run_folder(out: Path, resume: str | Path | None, overwrite: bool) -> Path:
    """`train --out`, checked before training: a folder (or a new path) that holds no other run.

    An existing non-empty folder is accepted only when it is the run being resumed, or with `overwrite` when it
    is a run folder unet_zoo wrote (its checkpoint is then removed, so that no later --resume mixes the old run
    with the new one); a folder of other files is never trained into.
    """
    out = check_output(out, "--out", folder=True)
    if not out.is_dir() or not any(out.iterdir()):
        return out
    if resume is not None:
        resumed = Path(resume) if Path(resume).is_dir() else Path(resume).parent
        if resumed.resolve() == out.resolve():
            return out
    checkpoint = out / TRAINING_STATE_FILE
    if overwrite:
        if not checkpoint.is_file():  # a run folder of an older unet_zoo (no marker) is still recognised by its checkpoint
            check_owned(out, "--out", RUN_FOLDER)
        checkpoint.unlink(missing_ok=True)
        return out
    if checkpoint.is_file():
        raise fail(
            f"{out} already holds a training run ({checkpoint.name}); continue it with --resume {out}, "
            "or pass --overwrite to train a new run in its place"
        )
    raise fail(f"{out} exists and is not empty and holds no training run; pick another --out")


@reproduce_app.command("isbi")
def reproduce_isbi_command(
    variant: str = typer.Option("original", "--variant", help="original, padded, small or all"),
    steps: opt.Steps = None,
    device: opt.Device = None,
    data_dir: opt.DataDir = None,
    out: Path | None = opt.out_option(None, "Hub folder (default cards/<recipe>/; with --variant all, its parent)"),
    quick: bool = typer.Option(
        False, "--quick", help="a few-minute CPU demo (recipes/isbi-quick.toml); writes under runs/, not cards/"
    ),
    compile: opt.Compile = None,
    weights_dtype: str = typer.Option(
        "float16",
        "--weights-dtype",
        help="dtype of model.safetensors: float16 (half the size), bfloat16 or float32; "
        "the stored weights are evaluated again and the card says whether they score the same",
    ),
    resume: opt.Resume = None,
    max_shard_mb: float | None = typer.Option(
        None,
        "--max-shard-mb",
        min=0.001,
        help="shard weights into files of at most this many MB (10^6 bytes) with an index (default: one file)",
    ),
    overwrite: bool = opt.overwrite_option("replace an existing Hub folder (cards/<name>/ or --out)"),
    recipe: opt.Recipe = None,
    time_limit: opt.TimeLimit = None,
    quiet: opt.Quiet = False,
) -> None:
    """Train per the paper's recipe, evaluate held-out slices with TTA, print ours beside Table 1, write a Hub folder.

    --recipe trains that recipe instead of --variant's; --resume continues its training, then evaluates and writes
    the Hub folder."""
    try:
        recipes_for(variant, quick, recipe)  # an unknown variant is a clear error before anything runs
        reproduce_isbi(
            variant,  # type: ignore[arg-type]  # checked by recipes_for above
            quick=quick,
            steps=steps,
            device=device,
            data_dir=data_dir,
            out=out,
            compile=compile,
            callback=TrainingDisplay(console, quiet=quiet),
            weights_dtype=weights_dtype,
            max_shard_size=int(max_shard_mb * 1e6) if max_shard_mb else None,
            resume=resume,
            recipe=recipe,
            time_limit=time_limit * 60 if time_limit else None,
            overwrite=overwrite,
        )
    except typer.Exit:  # a refusal already printed (typer.Exit is a RuntimeError: let it through as it is)
        raise
    except TrainingInterrupted as err:
        raise interrupted(err) from None
    except (RecipeError, OSError, DatasetNotFoundError, NonFiniteLossError, RuntimeError, ValueError) as err:
        raise fail(str(err)) from None  # OSError: an unwritable --out, found before training, or a full disk
    finally:
        cleanup_distributed()


def interrupted(err: Exception) -> typer.Exit:
    """A stopped run is not an error: say where its checkpoint is; exit 3 at --time-limit, else 128 + signal number."""
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun every rank stops at the same step; one says so
        err_console.print(f"[yellow]stopped:[/yellow] {err}", highlight=False)
    if isinstance(err, TimeLimitReached):
        return typer.Exit(TIME_LIMIT_EXIT_CODE)
    return typer.Exit(128 + int(getattr(err, "signal_number", 15)))


TIME_LIMIT_EXIT_CODE = 3  # training stopped at --time-limit with a checkpoint: run again with --resume latest
