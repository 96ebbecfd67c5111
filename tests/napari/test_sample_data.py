"""The sample-data contribution: ISBI 2012 sections from the data folder, or an error saying how to get them."""

from __future__ import annotations

import numpy as np
import pytest

from unet_zoo.experiments.isbi2012.data import ENV_VAR, DatasetNotFoundError
from unet_zoo.napari._sample_data import isbi_sections


def test_missing_data_says_where_to_put_it_and_how_to_download_it(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(DatasetNotFoundError) as raised:
        isbi_sections()
    message = str(raised.value)
    assert str(tmp_path / "nowhere") in message and "unet-zoo data download isbi" in message and ENV_VAR in message
    assert "--data-dir" in message and "cache" in message


def test_sections_from_the_data_folder(isbi_dir):
    (image, image_meta, kind), (labels, label_meta, label_kind) = isbi_sections()
    assert (kind, label_kind) == ("image", "labels")
    assert image.shape == labels.shape == (6, 512, 512) and image.dtype == np.uint8
    assert set(np.unique(labels)) == {0, 1} and not label_meta["visible"]


def test_opens_from_napari_file_menu_entry(make_napari_viewer, isbi_dir):
    viewer = make_napari_viewer()
    viewer.open_sample("unet-zoo", "isbi2012")
    assert [layer.name for layer in viewer.layers] == ["ISBI 2012 sections 24-29", "ISBI 2012 membranes (ground truth)"]
