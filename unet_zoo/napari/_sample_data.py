"""napari sample data: a few ISBI 2012 sections from the folder `unet-zoo data` manages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from unet_zoo.experiments.isbi2012.data import TRAIN_LABELS, TRAIN_VOLUME, find_data_dir, read_stack

# The checkpoints' held-out fold (split_slices' default): sections the published models were not trained on.
SECTIONS = slice(24, 30)


def isbi_sections(data_dir: str | Path | None = None) -> list[tuple[Any, dict[str, Any], str]]:
    """ISBI 2012 training sections 24-29 as napari layer data: the EM image (6, 512, 512) uint8 and its
    membranes (train-labels.tif) as a hidden labels layer (1 = membrane).

    The folder is found as everywhere in unet_zoo (`unet_zoo.experiments.isbi2012.data.find_data_dir`): `data_dir`, else
    $UNET_ZOO_DATA_DIR, else the cache; missing data raises DatasetNotFoundError saying all three ways to
    point at it and how to download it.
    """
    folder = find_data_dir(data_dir)
    images = read_stack(folder / TRAIN_VOLUME)[SECTIONS]
    layers: list[tuple[Any, dict[str, Any], str]] = [
        (images, {"name": "ISBI 2012 sections 24-29", "metadata": {"source": str(folder / TRAIN_VOLUME)}}, "image")
    ]
    membranes = (read_stack(folder / TRAIN_LABELS, labels=True)[SECTIONS] == 0).astype("uint8")
    meta = {"source": str(folder / TRAIN_LABELS), "values": "1 = membrane (ground truth)"}
    layers.append((membranes, {"name": "ISBI 2012 membranes (ground truth)", "visible": False, "metadata": meta}, "labels"))
    return layers


__all__ = ["SECTIONS", "isbi_sections"]
