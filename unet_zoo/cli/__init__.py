"""The `unet-zoo` command line: a thin layer over the Python API (one module per area)."""

from __future__ import annotations

# the order of these imports is the order of the commands in `unet-zoo --help`
# isort: off
from unet_zoo.cli.app import app
from unet_zoo.cli import models as _models  # noqa: F401  list, info, compare
from unet_zoo.cli import data as _data  # noqa: F401  data download / info
from unet_zoo.cli import inference as _inference  # noqa: F401  predict, evaluate
from unet_zoo.cli import segment as _segment  # noqa: F401  segment
from unet_zoo.cli import training as _training  # noqa: F401  train, reproduce
from unet_zoo.cli import finetune as _finetune  # noqa: F401  finetune
from unet_zoo.cli import hub as _hub  # noqa: F401  push, download
from unet_zoo.cli import bench as _bench  # noqa: F401  benchmark
from unet_zoo.cli import export as _export  # noqa: F401  export
# isort: on


def main() -> None:
    """Entry point of the `unet-zoo` console script."""
    app()


__all__ = ["app", "main"]
