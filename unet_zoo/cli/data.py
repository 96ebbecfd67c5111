"""`unet-zoo data download isbi`, `unet-zoo data info`: fetch and inspect the ISBI 2012 data."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.table import Table

from unet_zoo.cli import options as opt
from unet_zoo.cli.app import ZooTyper, app, console, fail, print_json
from unet_zoo.experiments.isbi2012.data import (
    ENV_VAR,
    DatasetNotFoundError,
    describe,
    download_isbi,
    find_data_dir,
    resolve_data_dir,
)
from unet_zoo.utils.files import check_output_path

data_app = ZooTyper(help="The ISBI 2012 EM data: download it, see where it is and what it holds.", no_args_is_help=True)
app.add_typer(data_app, name="data")

DATASETS = ("isbi",)


def _data_dir_option(data_dir: Path | None) -> str:
    """Where the data folder came from, as the user set it: --data-dir, else $UNET_ZOO_DATA_DIR, else the cache."""
    if data_dir is not None and str(data_dir):
        return "--data-dir"
    return f"${ENV_VAR}" if os.environ.get(ENV_VAR) else "data folder"


def _check_dataset(name: str) -> None:
    if name not in DATASETS:
        raise fail(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")


@data_app.command("download")
def download_command(
    dataset: str = typer.Argument(..., help="dataset name: isbi"),
    data_dir: opt.DataDir = None,
    url: list[str] | None = typer.Option(
        None, "--url", help="base URL serving the three tifs (repeatable; replaces the mirror list)"
    ),
    timeout: float = typer.Option(10.0, help="seconds before a connection attempt gives up"),
    no_verify: bool = typer.Option(
        False, "--no-verify", help="accept files that match no known checksum (shape is still checked)"
    ),
    overwrite: bool = opt.overwrite_option(
        "download again, replacing files already present (each only once its download verified)"
    ),
) -> None:
    """Download train-volume.tif, train-labels.tif and test-volume.tif, verifying each against known checksums."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TransferSpeedColumn

    _check_dataset(dataset)
    if timeout <= 0 or timeout != timeout:
        raise fail(f"--timeout must be a number of seconds > 0, got {timeout}")
    folder = resolve_data_dir(data_dir)
    try:  # before anything is downloaded
        check_output_path(folder, folder=True)
    except OSError as err:
        raise fail(f"{_data_dir_option(data_dir)}: {err}") from None
    console.print(f"downloading ISBI 2012 into {folder}")
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=console) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(name: str, done: int, total: int | None) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done, total=total)

        try:
            report = download_isbi(
                folder, urls=url or None, timeout=timeout, verify=not no_verify, force=overwrite, progress=progress
            )
        except DatasetNotFoundError as err:
            raise fail(str(err)) from None
        except OSError as err:  # the folder cannot be written, or a file there is not ours to replace
            raise fail(f"{_data_dir_option(data_dir)}: {err}") from None
    for name, how in report.items():
        console.print(f"[green]ok[/green] {name}: {how}")


@data_app.command("info")
def info_command(
    dataset: str = typer.Argument("isbi", help="dataset name: isbi"),
    data_dir: opt.DataDir = None,
    as_json: opt.Json = False,
    checksums: bool = typer.Option(True, "--checksums/--no-checksums", help="compute and verify sha256 (slower)"),
) -> None:
    """Where the data is looked for and found, each file's shape and checksum, and the train/validation split."""
    _check_dataset(dataset)
    info = describe(data_dir, checksums=checksums)
    if as_json:
        print_json(info)
    else:
        console.print(f"data folder: {info['data_dir']} (from {info['source']})")
        table = Table(title="ISBI 2012 files")
        for col in ("file", "state", "shape", "sha256", "verified"):
            table.add_column(col)
        for name, f in info["files"].items():
            state = "[red]missing[/red]" if not f["present"] else ("[red]broken[/red]" if "error" in f else "[green]ok[/green]")
            table.add_row(
                name,
                state,
                "x".join(map(str, f.get("shape", []))) or "-",
                f.get("sha256", "-")[:16],
                f.get("verified", f.get("error", "-")),
            )
        console.print(table)
        split = info["split"]
        console.print(
            f"split (k={split['k']}, fold={split['fold']}, contiguous blocks): train slices "
            f"{split['train'][0]}..{split['train'][-1]}, validation slices {split['validation'][0]}..{split['validation'][-1]}"
        )
    if not info["ready"]:
        try:
            find_data_dir(data_dir)
        except DatasetNotFoundError as err:
            raise fail(str(err), code=1) from None
        raise fail(
            f"ISBI 2012 is not ready in {info['data_dir']}: a file is broken (see the table above); "
            "run `unet-zoo data download isbi --overwrite` or replace it.",
            code=1,
        )
