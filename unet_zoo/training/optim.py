"""The optimiser and learning-rate schedule of a run, from a recipe's ``[optimizer]`` and ``[schedule]`` settings."""

from __future__ import annotations

import math

import torch
from torch import nn

from unet_zoo.training.recipes import OptimizerCfg, ScheduleCfg


def build_optimizer(model: nn.Module, settings: OptimizerCfg) -> torch.optim.Optimizer:
    """SGD (paper: momentum 0.99), Adam or AdamW over `model`'s parameters, as `settings` say."""
    o = settings
    if o.name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, nesterov=o.nesterov, weight_decay=o.weight_decay)
    cls = torch.optim.Adam if o.name == "adam" else torch.optim.AdamW
    beta1, beta2 = o.betas
    return cls(model.parameters(), lr=o.lr, betas=(beta1, beta2), weight_decay=o.weight_decay)


def lr_factor(schedule: ScheduleCfg, total_steps: int, step: int) -> float:
    """Multiplier of the base learning rate at `step` (0-based) of `total_steps`: linear warm-up, then
    constant/cosine/step."""
    s, total = schedule, total_steps
    if s.warmup_steps and step < s.warmup_steps:
        return (step + 1) / s.warmup_steps
    if s.kind == "cosine":
        progress = min(1.0, (step - s.warmup_steps) / max(1, total - s.warmup_steps))
        return s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    if s.kind == "step" and s.step_every:
        return s.gamma ** ((step - s.warmup_steps) // s.step_every)
    return 1.0


def build_scheduler(
    optimizer: torch.optim.Optimizer, schedule: ScheduleCfg, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """The `lr_factor` schedule of `optimizer`, stepped once per optimiser step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(schedule, total_steps, step))


__all__ = ["build_optimizer", "build_scheduler", "lr_factor"]
