"""`unet-zoo finetune MODEL --images PATH --labels PATH --out DIR`: a thin layer over unet_zoo.finetuning."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from unet_zoo.cli import options as opt
from unet_zoo.cli.app import app, check_device, check_output, check_owned, console, fail
from unet_zoo.cli.progress import TrainingDisplay
from unet_zoo.cli.training import interrupted
from unet_zoo.data.files import FOREGROUNDS, LABEL_FORMS
from unet_zoo.data.pixel_size import check_pixel_size
from unet_zoo.finetuning.finetune import FinetuneResult, FinetuneStage, comparison, finetune
from unet_zoo.hub.pretrained import CheckpointError, HubAccessError
from unet_zoo.hub.publish import HUB_FOLDER
from unet_zoo.training.recipes import RecipeError
from unet_zoo.training.trainer import NonFiniteLossError, TrainingInterrupted, TrainProgress

STAGE_TEXT = {
    "load": "reading the images and labels, computing weight maps",
    "score_base": "scoring the starting model on the held-out part",
    "train": "fine-tuning",
    "score_tuned": "scoring the fine-tuned model on the held-out part",
    "write": "writing the model folder",
}


class FinetuneDisplay:
    """Prints the stages and draws the trainer's progress bar (neither with `quiet`)."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.training = TrainingDisplay(console, quiet=quiet)

    def __call__(self, event: FinetuneStage | TrainProgress) -> None:
        if isinstance(event, FinetuneStage):
            if event.stage in STAGE_TEXT and not self.quiet:
                console.print(f"[bold]{STAGE_TEXT[event.stage]}[/bold]")
            elif event.note:
                console.print(f"data: {event.note}", markup=False, highlight=False)
        else:
            self.training(event)


def before_after_table(result: FinetuneResult) -> Table:
    """Scores of the starting and the fine-tuned model on the held-out part, side by side."""
    table = Table(title=f"held-out part: {result.held_out}")
    table.add_column("score")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    for name, before, after in comparison(result.before, result.after):
        table.add_row(name, f"{before:.4f}", f"{after:.4f}")
    return table


@app.command("finetune")
def finetune_command(
    model: str = typer.Argument(..., help="the starting checkpoint: a name (isbi-small), a folder, or a Hub id"),
    images: Path = typer.Option(..., "--images", help="your images: a TIFF (stack), a folder of TIFF/PNG files, or a .zarr"),
    labels: Path = typer.Option(..., "--labels", help="their labels, in the same form (folders: matched by file name)"),
    out: Path = opt.out_option(..., "the fine-tuned model's folder (weights, config, card, figures, scores)"),
    foreground: str = typer.Option("cell", "--foreground", help="binary masks: what the non-zero value is, cell or membrane"),
    label_form: str = typer.Option(
        "auto",
        "--label-form",
        help="auto, binary (a mask), instances (one ID per cell, 0 = boundary) or scribbles (0 = not labelled, "
        "1 = membrane, 2 = cell; only the strokes train)",
    ),
    boundary_width: int = typer.Option(2, "--boundary-width", min=1, help="instances: membrane width in px at each contact"),
    val_images: Path | None = typer.Option(None, "--val-images", help="held-out images (default: a slice or region of --images)"),
    val_labels: Path | None = typer.Option(None, "--val-labels", help="held-out labels (dense, also with scribbles)"),
    steps: opt.Steps = None,
    time_limit: opt.TimeLimit = None,
    resume: opt.Resume = None,
    overwrite: bool = opt.overwrite_option("replace an existing --out folder"),
    pixel_size: opt.PixelSize = None,
    recipe: opt.Recipe = "finetune",
    device: opt.Device = None,
    precision: opt.Precision = None,
    quiet: opt.Quiet = False,
) -> None:
    """Fine-tune a trained model on your images and labels; score it before and after on a held-out part."""
    if precision is not None and precision not in ("auto", "bf16", "fp32"):
        raise fail(f"--precision must be auto, bf16 or fp32, got {precision!r}")
    if foreground not in FOREGROUNDS:
        raise fail(f"--foreground must be cell or membrane, got {foreground!r}")
    if label_form not in LABEL_FORMS:
        raise fail(f"--label-form must be one of {', '.join(LABEL_FORMS)}, got {label_form!r}")
    if (val_images is None) != (val_labels is None):
        raise fail("--val-images and --val-labels go together: give both, or neither")
    for option, path in (("--images", images), ("--labels", labels), ("--val-images", val_images), ("--val-labels", val_labels)):
        if path is not None and not path.exists():
            raise fail(f"{option}: no such file or folder: {path}")
    if pixel_size is not None:
        check_pixel_size(pixel_size, "--pixel-size")
    if device:
        check_device(device)
    check_output(out, "--out", folder=True)
    if out.exists() and not overwrite:
        raise fail(f"--out: {out} already exists; pass --overwrite to replace it")
    if overwrite:
        check_owned(out, "--out", HUB_FOLDER)
    if val_images is None:
        console.print("no --val-images given: a part of --images is held out for the before/after scores")
    try:
        result = finetune(
            model,
            images,
            labels,
            out,
            foreground=foreground,  # type: ignore[arg-type]  # checked above
            label_form=label_form,  # type: ignore[arg-type]  # checked above
            boundary_width=boundary_width,
            val_images=val_images,
            val_labels=val_labels,
            steps=steps,
            time_limit=time_limit * 60 if time_limit else None,
            resume=resume,
            overwrite=overwrite,
            pixel_size=pixel_size,
            recipe=recipe or "finetune",
            device=device or None,
            callback=FinetuneDisplay(quiet),
            precision=precision,
        )
    except typer.Exit:  # a refusal already printed (typer.Exit is a RuntimeError)
        raise
    except TrainingInterrupted as err:
        raise interrupted(err) from None
    except (CheckpointError, HubAccessError, RecipeError, NonFiniteLossError, OSError, ValueError, KeyError) as err:
        raise fail(str(err.args[0] if isinstance(err, KeyError) and err.args else err)) from None
    console.print(f"held out: {result.held_out}", markup=False, highlight=False)
    console.print(before_after_table(result))
    console.print(f"fine-tuned model: {result.out} (run folder {result.run_dir})", markup=False, highlight=False)
