"""Fine-tuning a trained U-Net on your own images and labels (`finetune`)."""

from __future__ import annotations

from unet_zoo.finetuning.finetune import FinetuneResult, FinetuneStage, finetune

__all__ = ["FinetuneResult", "FinetuneStage", "finetune"]
