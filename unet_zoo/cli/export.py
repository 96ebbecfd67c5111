"""`unet-zoo export`: a thin layer over unet_zoo.exporters.export."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from unet_zoo.cli import inference  # its _load: the model loading every command shares
from unet_zoo.cli import options as opt
from unet_zoo.cli.app import app, check_output, console, fail
from unet_zoo.cli.progress import ProgressDisplay
from unet_zoo.exporters import FORMATS, ExportError, export
from unet_zoo.exporters.api import check_suffix


@app.command("export")
def export_command(
    model: opt.Model,
    format: str = typer.Option(..., "--format", "-f", help="bioimageio (a .zip package), onnx or torchscript"),
    out: Path = opt.out_option(..., "output file, e.g. isbi-small.bioimageio.zip, model.onnx, model.pt"),
    overwrite: bool = opt.overwrite_option("replace an existing output file"),
    quiet: opt.Quiet = False,
) -> None:
    """Export a model for ilastik, Fiji/deepImageJ, QuPath, napari or any ONNX / TorchScript runtime.

    onnx and bioimageio need the export extra: pip install "unet-zoo\\[export]" (torchscript needs only torch).
    """
    if format not in FORMATS:
        raise fail(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    check_suffix(format, out)  # an ONNX file named .pt: refused before the model is loaded
    out = check_output(out, "--out", overwrite=overwrite)
    net = inference._load(model, "cpu")
    with ProgressDisplay(console, quiet=quiet) as display, display.stage(f"exporting {model} to {format}"):
        try:
            path = export(
                net, format, out, force=overwrite, note=lambda message: console.print(f"[yellow]note:[/yellow] {escape(message)}")
            )
        except (ExportError, ImportError, ValueError, OSError) as err:
            raise fail(str(err)) from None
    console.print(f"{escape(model)} -> {escape(str(path))} ({format}, {path.stat().st_size / 1e6:.1f} MB)", highlight=False)
