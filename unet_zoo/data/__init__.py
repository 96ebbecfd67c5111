"""Data: reading images (`reading`: `read_image` -> `Image`), ISBI 2012 loading and the split (`isbi`), your own
labelled images (`files`), writing predictions (`images`), the paper's weight maps (`weight_maps`) and elastic
deformation and training tiles (`augment`).
"""

from unet_zoo.data.reading import Image, read_image

__all__ = ["Image", "read_image"]
