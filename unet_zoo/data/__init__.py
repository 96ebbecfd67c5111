"""Data: reading images (`reading`: `read_image` -> `Image`), image files (`images`, `files`), named data sources a
recipe reads (`sources`), the held-out split (`split`), the paper's weight maps (`weight_maps`), elastic deformation
and training tiles (`augment`).
"""

from unet_zoo.data.reading import Image, read_image

__all__ = ["Image", "read_image"]
