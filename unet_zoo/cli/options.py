"""The options of the `unet-zoo` commands, each defined once: its name, help, value checks and short alias.

A command takes an option by annotating a parameter with the type here, its default in the signature::

    def predict_command(..., tta: opt.Tta = False, device: opt.Device = None, quiet: opt.Quiet = False) -> None:

so one name has one meaning, type and help in every command that takes it (tests/cli/test_vocabulary.py
checks the whole command tree). `--out`, `--overwrite` and `--revision` mean the same everywhere (where a
command writes; replace what is there; which Hub revision) but each command says what exactly: they are made
with `out_option`, `overwrite_option` and `revision_option`. Names that changed are in `RENAMED`: they work for
one release with a warning (see `unet_zoo.cli.help`).
"""

from __future__ import annotations

import math
from pathlib import Path
from types import EllipsisType
from typing import Annotated, Any

import torch
import typer

from unet_zoo.data.pixel_size import PixelSizeError, check_pixel_size
from unet_zoo.runtime.measured import BACKENDS
from unet_zoo.runtime.settings import PRECISIONS


def _one_of(choices: tuple[str, ...]):
    """A callback accepting None or one of `choices`; anything else is a usage error naming the option."""

    def check(value: str | None) -> str | None:
        if value is not None and value not in choices:
            raise typer.BadParameter(f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    return check


def _at_least(low: int):
    """A callback accepting None or a whole number >= `low` (checked here rather than with typer's min=, which
    would show ``<int range> [x>=0]`` in the help)."""

    def check(value: int | None) -> int | None:
        if value is not None and value < low:
            raise typer.BadParameter(f"must be >= {low}, got {value}")
        return value

    return check


def _pixel_size(value: float | None) -> float | None:
    if value is None:
        return None
    try:
        return check_pixel_size(value, "--pixel-size")
    except PixelSizeError as err:
        raise typer.BadParameter(str(err).removeprefix("--pixel-size: ")) from None


def _device(value: str | None) -> str | None:
    """A device torch knows by name (whether this machine has it is checked when the command runs)."""
    if value is None or not value.strip():
        return None
    try:
        torch.device(value)
    except (RuntimeError, TypeError):
        raise typer.BadParameter(f"unknown device {value!r}; use cpu, cuda or cuda:N") from None
    return value


def _probability(value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and 0 <= value <= 1):
        raise typer.BadParameter(f"must be a probability in [0, 1], got {value}")
    return value


# \\[: rich would take [export] for markup and drop it
BACKEND_HELP = (
    "auto (the fastest path measured on this machine, cached), torch, onnxruntime "
    '(CPU; pip install "unet-zoo\\[export]") or openvino (CPU; pip install "unet-zoo\\[openvino]")'
)
PRECISION_HELP = (
    "auto (bf16 where it measured faster on this machine, else fp32), bf16 (emulated and slow on CPUs without "
    "AVX512-BF16 or AMX) or fp32; training defaults to the recipe's train.precision"
)
DATA_DIR_HELP = "ISBI 2012 folder (default: $UNET_ZOO_DATA_DIR, else the cache ~/.cache/unet_zoo/isbi2012)"
MODEL_HELP = "checkpoint name, checkpoint folder, Hub id, or architecture (random weights)"

# --- arguments -------------------------------------------------------------------------------------------------
Model = Annotated[str, typer.Argument(help=MODEL_HELP)]

# --- running a model -------------------------------------------------------------------------------------------
Device = Annotated[
    str | None, typer.Option("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)", callback=_device)
]
Backend = Annotated[str, typer.Option("--backend", help=BACKEND_HELP, callback=_one_of(BACKENDS))]
Precision = Annotated[str | None, typer.Option("--precision", help=PRECISION_HELP, callback=_one_of(PRECISIONS))]
Tile = Annotated[int, typer.Option("--tile", callback=_at_least(0), help="input tile side in pixels (0: the model's default)")]
BatchSize = Annotated[int, typer.Option("--batch-size", callback=_at_least(1), help="tiles per forward pass")]
Tta = Annotated[bool, typer.Option("--tta", help="average the prediction over the 8 rotations/flips")]
PixelSize = Annotated[
    float | None,
    typer.Option(
        "--pixel-size",
        metavar="NM",
        callback=_pixel_size,
        help="nm per pixel of the images (default: their TIFF resolution tags or OME-Zarr scale, if any); they are "
        "rescaled to the model's pixel size (its card; ISBI 2012: 4 nm)",
    ),
]
_THRESHOLD = typer.Option("--threshold", callback=_probability, help="P(cell) above which a pixel counts as cell")
Threshold = Annotated[float, _THRESHOLD]
OptionalThreshold = Annotated[float | None, _THRESHOLD]  # None: a default decided later (the checkpoint's)

# --- volumes (Zarr, dask) --------------------------------------------------------------------------------------
Workers = Annotated[
    int | None, typer.Option("--workers", callback=_at_least(1), help="volumes: run on a local dask cluster of N processes")
]
Scheduler = Annotated[str, typer.Option("--scheduler", help="volumes: address of a dask scheduler, tcp://host:8786")]
Block = Annotated[
    int | None,
    typer.Option(
        "--block", callback=_at_least(1), help="volumes: side in y/x (px) of the blocks predicted at once (default 2048)"
    ),
]
SegmentBlock = Annotated[
    int | None,
    typer.Option(
        "--segment-block",
        callback=_at_least(1),
        help="volumes: sections larger than this (px) are segmented in blocks of this side, with --halo of context "
        "(default 1024)",
    ),
]
Halo = Annotated[
    int | None,
    typer.Option("--halo", callback=_at_least(0), help="volumes: context (px) around each --segment-block (default 64)"),
]

# --- training --------------------------------------------------------------------------------------------------
DataDir = Annotated[Path | None, typer.Option("--data-dir", help=DATA_DIR_HELP)]
Steps = Annotated[
    int | None, typer.Option("--steps", callback=_at_least(1), help="optimiser steps (default: the recipe's train.steps)")
]
Resume = Annotated[
    str | None,
    typer.Option(
        "--resume",
        metavar="DIR|latest",
        help="continue a stopped run from its run folder; latest: the newest run of this recipe with a checkpoint",
    ),
]
TimeLimit = Annotated[
    float | None,
    typer.Option(
        "--time-limit",
        metavar="MINUTES",
        min=0.01,
        help="wall-clock budget of this session: checkpoint and exit (code 3) before it runs out; continue with --resume latest",
    ),
]
Recipe = Annotated[str | None, typer.Option("--recipe", help="the training recipe: a name (see recipes/) or a .toml path")]
Compile = Annotated[
    bool | None,
    typer.Option(
        "--compile/--no-compile",
        help="torch.compile the model (default: off on the CPU; on CUDA, on unless the recipe's train.compile is false)",
    ),
]

# --- the Hub ---------------------------------------------------------------------------------------------------
Token = Annotated[
    str | None, typer.Option("--token", help="Hub token (default: $HF_TOKEN or `hf auth login`); push needs write access")
]

# --- output ----------------------------------------------------------------------------------------------------
Json = Annotated[bool, typer.Option("--json", help="print the result as JSON on stdout (messages and progress go to stderr)")]
Quiet = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="no progress bars or progress lines; results, warnings and errors are still printed"),
]


def out_option(default: Path | EllipsisType | None, help: str) -> Any:
    """`--out` / `-o` with its `default`: where the command writes (`help` says what: a folder, a file, a store)."""
    return typer.Option(default, "--out", "-o", help=help)


def overwrite_option(help: str = "replace existing outputs") -> Any:
    """`--overwrite`: replace what the command would write over (`help` says what); never files unet_zoo did not
    write."""
    return typer.Option(False, "--overwrite", help=help)


def revision_option(help: str) -> Any:
    """`--revision`: a Hub branch, tag or commit (`help` says which one the command uses by default)."""
    return typer.Option(None, "--revision", help=help)


# Option names with a meaning said per command (same type everywhere); every other name has one help text.
PER_COMMAND_HELP = ("--out", "--overwrite", "--revision")

# Renamed options, per command ("data download" for a sub-command): old name -> new name. The old name still
# works for one release with a one-line warning; a value that must look like `when_value` (a suffix) to count.
RENAMED: dict[str, dict[str, str]] = {
    "export": {"--force": "--overwrite"},
    "download": {"--force": "--overwrite"},
    "data download": {"--force": "--overwrite"},
    "segment": {"--block": "--segment-block"},
    "evaluate": {"--json": "--out"},  # only as `--json PATH.json`: --json is now a flag (JSON on stdout)
}
RENAMED_WITH_VALUE: dict[tuple[str, str], str] = {("evaluate", "--json"): ".json"}

__all__ = [
    "BACKEND_HELP",
    "DATA_DIR_HELP",
    "MODEL_HELP",
    "PER_COMMAND_HELP",
    "PRECISION_HELP",
    "RENAMED",
    "RENAMED_WITH_VALUE",
    "Backend",
    "BatchSize",
    "Block",
    "Compile",
    "DataDir",
    "Device",
    "Halo",
    "Json",
    "Model",
    "OptionalThreshold",
    "PixelSize",
    "Precision",
    "Quiet",
    "Recipe",
    "Resume",
    "Scheduler",
    "SegmentBlock",
    "Steps",
    "Threshold",
    "Tile",
    "TimeLimit",
    "Token",
    "Tta",
    "Workers",
    "out_option",
    "overwrite_option",
    "revision_option",
]
