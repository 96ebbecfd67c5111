"""Cells from probability maps: seeded watershed, small-segment filter, agglomeration, blockwise segmentation."""

from __future__ import annotations

from unet_zoo.segmentation.api import checkpoint_params, segment, segment_probabilities, segment_stack
from unet_zoo.utils.segmentation_params import SegmentationParams

__all__ = ["SegmentationParams", "checkpoint_params", "segment", "segment_probabilities", "segment_stack"]
