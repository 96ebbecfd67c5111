"""Choosing the device a model runs on: the one place that turns "cuda", "cpu", "cuda:1" or nothing into one.

Training (`unet_zoo.training.distributed.init_distributed`), prediction (`unet_zoo.inference.tiling`, the
device a command loads its model on), the runtime settings (`unet_zoo.runtime.settings`), the timers
(`unet_zoo.utils.timing`) and the CLI's ``--device`` all resolve devices here.
"""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`device` as a torch.device; None (or "") means "cuda" when a GPU is visible, else "cpu".

    Raises a ValueError for a string torch does not know as a device, and a RuntimeError when CUDA is
    asked for but not available, or a GPU index beyond the GPUs of this machine.
    """
    if device is None or (isinstance(device, str) and not device.strip()):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N'") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {str(device)!r}: CUDA is not available on this machine; use --device cpu (device='cpu' in Python)"
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise RuntimeError(f"device {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev


__all__ = ["resolve_device"]
