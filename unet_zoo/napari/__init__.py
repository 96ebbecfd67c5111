"""The napari plugin: a dock widget that predicts membranes and segments cells, and ISBI 2012 sample data.

napari finds it through the ``napari.manifest`` entry point (``napari.yaml`` in this folder); napari and Qt are
imported only by the modules napari loads, never by ``import unet_zoo``. Install with ``pip install "unet-zoo[napari]"``.
"""
