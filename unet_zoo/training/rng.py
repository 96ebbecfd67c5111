"""The random-number states a training run saves with its checkpoint, so that a resumed run continues exactly."""

from __future__ import annotations

import torch


def rng_state(generator: torch.Generator, device: torch.device) -> dict[str, torch.Tensor]:
    """This process's RNG states (uint8 tensors): torch CPU (dropout on CPU), CUDA (dropout on GPU), sampler."""
    state = {"torch": torch.get_rng_state(), "sampler": generator.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, torch.Tensor], generator: torch.Generator, device: torch.device) -> None:
    """Restore what `rng_state` saved."""
    torch.set_rng_state(state["torch"])
    generator.set_state(state["sampler"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


__all__ = ["rng_state", "set_rng_state"]
