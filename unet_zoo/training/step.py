"""One optimisation step of the paper's loss, shared by the trainer and the training benchmark.

A step is two halves so that the trainer can look at the loss between them (it notes a NaN/inf loss on the
device) while the benchmark times exactly the same operations:

    loss = step_loss(net, x, target, weight, device, amp=...)     # forward + weighted cross-entropy
    apply_gradients(optimizer, loss, parameters, grad_clip=...)   # backward, clip, update

`train_step` runs both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from unet_zoo.runtime.settings import autocast
from unet_zoo.training.losses import weighted_cross_entropy

LossFunction = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]
"""``loss(logits, target, weight) -> scalar``: logits (N, C, h, w), target (N, h, w) int64, weight (N, h, w) float
or None; e.g. `unet_zoo.training.losses.weighted_cross_entropy` (the paper's, the default)."""


def step_loss(
    net: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None,
    device: torch.device,
    *,
    amp: bool = False,
    loss: LossFunction = weighted_cross_entropy,
) -> torch.Tensor:
    """The training loss (paper eq. 1, or `loss`) of one batch: a float32 scalar in nats.

    Args:
        net: the model (in train mode), already on `device`.
        x: (N, C_in, H, W) float input tiles on `device`.
        target: (N, h, w) int64 labels of the output window (h, w = the model's output size).
        weight: (N, h, w) float per-pixel weights w(x), or None for 1.
        amp: run the forward pass under bf16 autocast; the loss itself is computed outside autocast.
        loss: the loss function (`LossFunction`); default the paper's weighted cross-entropy, in float32.
    """
    with autocast(device, enabled=amp):
        logits = net(x)
    return loss(logits, target, weight)


def apply_gradients(
    optimizer: torch.optim.Optimizer,
    loss: torch.Tensor,
    parameters: Iterable[nn.Parameter],
    *,
    grad_clip: float = 0.0,
) -> None:
    """Backpropagate `loss`, clip the gradients' global norm to `grad_clip` (0 = no clipping), update."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        nn.utils.clip_grad_norm_(parameters, grad_clip)
    optimizer.step()


def train_step(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None,
    device: torch.device,
    *,
    amp: bool = False,
    grad_clip: float = 0.0,
) -> torch.Tensor:
    """`step_loss` then `apply_gradients`; returns the (detached) loss of the batch before the update."""
    loss = step_loss(net, x, target, weight, device, amp=amp)
    apply_gradients(optimizer, loss, net.parameters(), grad_clip=grad_clip)
    return loss.detach()
