"""The plugin as napari sees it: the npe2 manifest validates, npe2 discovers the installed plugin, and its widget
docks through napari's plugin machinery (what Plugins > unet_zoo does)."""

from __future__ import annotations

from pathlib import Path

import pytest

import unet_zoo

MANIFEST = Path(unet_zoo.__file__).parent / "napari" / "napari.yaml"


def test_manifest_validates_and_its_commands_import():
    pytest.importorskip("napari", reason='the widget imports napari: pip install -e ".[napari]"')
    npe2 = pytest.importorskip("npe2", reason='npe2 comes with napari: pip install -e ".[napari]"')
    manifest = npe2.PluginManifest.from_file(MANIFEST)  # pydantic validation of the schema
    manifest.validate_imports()  # every python_name resolves (npe2 validate --imports)
    assert manifest.name == "unet-zoo"
    assert [w.display_name for w in manifest.contributions.widgets] == ["Segment membranes"]
    assert [s.key for s in manifest.contributions.sample_data] == ["isbi2012"]


def test_installed_plugin_is_discovered_and_docks(make_napari_viewer):
    from npe2 import PluginManager

    from unet_zoo.napari._widget import SegmentWidget

    manager = PluginManager.instance()
    manager.discover()
    manifest = manager.get_manifest("unet-zoo")  # found through the napari.manifest entry point of the install
    assert manifest.package_metadata is not None and manifest.package_metadata.name == "unet-zoo"
    viewer = make_napari_viewer()
    _dock, widget = viewer.window.add_plugin_dock_widget("unet-zoo", "Segment membranes")
    assert isinstance(widget, SegmentWidget)  # napari hands it a proxy of the viewer
    assert widget.model_box.count() == len(unet_zoo.list_pretrained()) + 1
