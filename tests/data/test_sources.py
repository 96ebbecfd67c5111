"""unet_zoo.data.sources: a named source is loaded through the loader registered under its name."""

from __future__ import annotations

import numpy as np
import pytest

from unet_zoo.data import sources


def test_a_registered_loader_is_called_with_the_data_dir(monkeypatch):
    monkeypatch.setattr(sources, "_SOURCES", {})
    calls = []

    def loader(data_dir):
        calls.append(data_dir)
        return sources.LabelledStack(np.zeros((2, 4, 4), np.uint8), np.ones((2, 4, 4), np.uint8), "two slices", 5.0)

    sources.register_source("two", loader)
    assert sources.source_names() == ["two"]
    stack = sources.load_source("two", "/some/folder")
    assert calls == ["/some/folder"] and stack.description == "two slices" and stack.pixel_size == 5.0


def test_an_unknown_source_names_the_registered_ones(monkeypatch):
    monkeypatch.setattr(sources, "_SOURCES", {})
    sources.register_source("known", lambda data_dir: None)
    with pytest.raises(ValueError, match="unknown data source 'nope'; registered sources: known"):
        sources.load_source("nope")
