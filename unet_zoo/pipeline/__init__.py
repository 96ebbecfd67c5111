"""The pipeline from an image to probabilities and cells: `Predictor` (one place for reading, rescaling, tiling,
the inference path, segmentation and per-section cell IDs) and `segment`, the one-call form of it."""

from unet_zoo.pipeline.predictor import Prediction, Predictor, check_settings, model_record
from unet_zoo.pipeline.segment import segment

__all__ = ["Prediction", "Predictor", "check_settings", "model_record", "segment"]
