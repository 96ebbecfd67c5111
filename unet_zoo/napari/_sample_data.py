"""napari sample data: a few ISBI 2012 sections from the folder `unet-zoo data` manages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from unet_zoo.data.isbi import TRAIN_LABELS, TRAIN_VOLUME, read_stack, resolve_data_dir

# The checkpoints' held-out fold (split_slices' default): sections the published models were not trained on.
SECTIONS = slice(24, 30)


def isbi_sections(data_dir: str | Path | None = None) -> list[tuple[Any, dict[str, Any], str]]:
    """ISBI 2012 training sections 24-29 as napari layer data: the EM image (6, 512, 512) uint8 and, when
    train-labels.tif is there too, its membranes as a hidden labels layer (1 = membrane).

    The folder is `data_dir`, else $UNET_ZOO_DATA_DIR, else the cache (`unet_zoo.data.isbi.resolve_data_dir`);
    a missing file raises DatasetNotFoundError saying where to put it and how to download it.
    """
    folder = resolve_data_dir(data_dir)
    images = read_stack(folder / TRAIN_VOLUME)[SECTIONS]
    layers: list[tuple[Any, dict[str, Any], str]] = [
        (images, {"name": "ISBI 2012 sections 24-29", "metadata": {"source": str(folder / TRAIN_VOLUME)}}, "image")
    ]
    if (folder / TRAIN_LABELS).is_file():
        membranes = (read_stack(folder / TRAIN_LABELS, labels=True)[SECTIONS] == 0).astype("uint8")
        meta = {"source": str(folder / TRAIN_LABELS), "values": "1 = membrane (ground truth)"}
        layers.append((membranes, {"name": "ISBI 2012 membranes (ground truth)", "visible": False, "metadata": meta}, "labels"))
    return layers


__all__ = ["SECTIONS", "isbi_sections"]
