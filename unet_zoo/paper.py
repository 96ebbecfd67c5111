"""The paper this zoo reproduces, and its results: Ronneberger, Fischer & Brox (MICCAI 2015)."""

from __future__ import annotations

PAPER = "Ronneberger, Fischer & Brox, U-Net: Convolutional Networks for Biomedical Image Segmentation, MICCAI 2015"
PAPER_URL = "https://arxiv.org/abs/1505.04597"

#: The paper's Table 1: the u-net row on the ISBI 2012 challenge test set, scored by the organisers
#: (lower is better). Our held-out scores are set beside these numbers on model cards and in `evaluate`.
PAPER_TABLE1: dict[str, float] = {"warping_error": 0.000353, "rand_error": 0.0382, "pixel_error": 0.0611}

__all__ = ["PAPER", "PAPER_TABLE1", "PAPER_URL"]
