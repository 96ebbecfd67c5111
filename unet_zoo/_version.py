"""The package's name and version, importable from every layer without importing the package root."""

from __future__ import annotations

#: ``library_name`` in config.json and on model cards: how the Hub knows a checkpoint is unet_zoo's.
LIBRARY_NAME = "unet_zoo"

__version__ = "0.1.0"

__all__ = ["LIBRARY_NAME", "__version__"]
