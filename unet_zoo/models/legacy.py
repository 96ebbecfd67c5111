"""Deprecated Hub methods of the zoo's networks (``model.save_pretrained``, ``model.push_to_hub``,
``UNet.from_pretrained``), kept for one release; they warn and call the functions that replace them.

The networks are plain `torch.nn.Module`s. Saving, publishing and loading are functions of the Hub layer, one
level up: ``unet_zoo.save_pretrained(model, folder)``, ``unet_zoo.push_to_hub(model, repo_id)`` and
``unet_zoo.from_pretrained(source)``. The models layer imports nothing from that layer, so these shims find
those functions in `HUB_FUNCTIONS`, which `unet_zoo.hub.factory` fills when it is imported (``import unet_zoo``
imports it).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: "save_pretrained", "push_to_hub", "from_pretrained" -> the Hub layer's function (set by unet_zoo.hub.factory).
HUB_FUNCTIONS: dict[str, Callable[..., Any]] = {}


def _hub_function(key: str, old: str, replacement: str) -> Callable[..., Any]:
    warnings.warn(
        f"{old} is deprecated and will be removed in the next release; use {replacement}",
        FutureWarning,
        stacklevel=3,
    )
    try:
        return HUB_FUNCTIONS[key]
    except KeyError:
        raise RuntimeError(f"{replacement} is not loaded: import unet_zoo first") from None


class LegacyHubMethods:
    """The Hub methods the networks had before they became plain modules; each call warns (FutureWarning)."""

    def save_pretrained(self, save_directory: Any, **kwargs: Any) -> Any:
        """Deprecated: ``unet_zoo.save_pretrained(model, folder)``."""
        return _hub_function("save_pretrained", "model.save_pretrained(folder)", "unet_zoo.save_pretrained(model, folder)")(
            self, save_directory, **kwargs
        )

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> Any:
        """Deprecated: ``unet_zoo.push_to_hub(model, repo_id)``."""
        return _hub_function("push_to_hub", "model.push_to_hub(repo_id)", "unet_zoo.push_to_hub(model, repo_id)")(
            self, repo_id, **kwargs
        )

    @classmethod
    def from_pretrained(cls: type[T], source: Any, **kwargs: Any) -> T:
        """Deprecated: ``unet_zoo.from_pretrained(source)``; refuses a checkpoint of another class."""
        load = _hub_function("from_pretrained", f"{cls.__name__}.from_pretrained(source)", "unet_zoo.from_pretrained(source)")
        model = load(source, **kwargs)
        if not isinstance(model, cls):
            raise TypeError(
                f"{source} holds a {type(model).__name__}, not a {cls.__name__}; load it with unet_zoo.from_pretrained"
            )
        return model


__all__ = ["HUB_FUNCTIONS", "LegacyHubMethods"]
