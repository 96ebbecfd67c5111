"""The `unet-zoo` command line: a thin layer over the Python API (one module per area)."""

from __future__ import annotations

# the order of these imports is the order of the commands in `unet-zoo --help`
# isort: off
from .app import app
from . import models as _models  # noqa: F401  list, info, compare
from . import data as _data  # noqa: F401  data download / info
from . import inference as _inference  # noqa: F401  predict, evaluate
from . import training as _training  # noqa: F401  train, reproduce
from . import hub as _hub  # noqa: F401  push, download
from . import bench as _bench  # noqa: F401  benchmark
from . import export as _export  # noqa: F401  export
# isort: on


def main() -> None:
    """Entry point of the `unet-zoo` console script."""
    app()


__all__ = ["app", "main"]
