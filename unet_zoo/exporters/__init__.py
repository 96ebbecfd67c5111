"""Exporters of zoo models to the files other tools read: ONNX, TorchScript and bioimage.io packages.

`export(model, format, path)` (also ``unet_zoo.export``) is the front door (`api`); the other modules do
one job each: `traced` (the probability wrapper, TorchScript and ONNX bytes, the check against torch),
`runtime` (onnxruntime as a tiling backend) and `bioimageio` (a bioimage.io model package). onnx,
onnxruntime and bioimageio.* (the ``export`` extra) are imported inside the functions that need them.
"""

from __future__ import annotations

from unet_zoo.exporters.api import FORMATS, ExportError, export, working_formats

__all__ = ["ExportError", "FORMATS", "export", "working_formats"]
