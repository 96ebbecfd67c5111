"""`save_pretrained`, `push_to_hub` and `from_pretrained` on the zoo's models, on huggingface_hub's ModelHubMixin.

The models sit below the checkpoint and Hub layers, so this mixin does not import them: `unet_zoo.hub.pretrained`
hands it the functions that do the work (`connect_hub`) when it is imported, which ``import unet_zoo``
does. `unet_zoo.models.registry.create_model(pretrained=True)` loads through the same functions.
ModelHubMixin records each model's ``__init__`` arguments and carries the class's card metadata.

The mixin overrides ModelHubMixin's public methods, not only its template methods `_save_pretrained` /
`_from_pretrained`: the zoo's config.json holds the registry name, arguments and a weights digest (not the raw
``__init__`` arguments), `save_pretrained` takes dtype / max_shard_size / card options and returns the folder,
and `from_pretrained` resolves registry checkpoint names (pinned revision and sha256, offline cache, source
checkout) that ModelHubMixin.from_pretrained would send to the Hub as repo ids.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from huggingface_hub import ModelCard, ModelHubMixin

from unet_zoo._version import LIBRARY_NAME
from unet_zoo.paper import PAPER_URL

T = TypeVar("T")


@dataclass(frozen=True)
class HubFunctions:
    """The checkpoint and Hub layer's entry points, as the models call them (`unet_zoo.hub.pretrained` provides them)."""

    save_pretrained: Callable[..., Path]  # (model, folder, *, dtype, card, card_data, max_shard_size) -> folder
    push_to_hub: Callable[..., str]  # (model, repo_id, *, private, revision, token, ...) -> commit URL
    from_pretrained: Callable[..., Any]  # (model class, name_or_path, **options) -> model of that class
    model_card: Callable[..., str]  # (model, card_data) -> README.md text


_functions: HubFunctions | None = None


def connect_hub(functions: HubFunctions) -> None:
    """Called by `unet_zoo.hub.pretrained` on import: the functions the mixin and `create_model(pretrained=True)` use."""
    global _functions
    _functions = functions


def hub_functions() -> HubFunctions:
    """The connected checkpoint/Hub functions; RuntimeError if `unet_zoo.hub.pretrained` was never imported."""
    if _functions is None:
        raise RuntimeError("saving and loading checkpoints needs unet_zoo.hub.pretrained: run `import unet_zoo` first")
    return _functions


class HubMixin(
    ModelHubMixin,
    library_name=LIBRARY_NAME,
    license="mit",
    pipeline_tag="image-segmentation",
    tags=["unet_zoo", "u-net", "image-segmentation"],
    paper_url=PAPER_URL,
):
    """save_pretrained / push_to_hub / from_pretrained for zoo models, on huggingface_hub's ModelHubMixin.

    The mixin records each model's __init__ arguments; config.json adds the registry name, so any
    checkpoint rebuilds through `unet_zoo.create_model`. Weights are safetensors only.
    """

    def save_pretrained(  # type: ignore[override]
        self,
        save_directory: str | Path,
        *,
        dtype: torch.dtype | None = None,
        card: str | None = None,
        card_data: dict[str, Any] | None = None,
        max_shard_size: int | None = None,
    ) -> Path:
        """Write model.safetensors (+ shards/index), config.json and README.md atomically; returns the folder.

        dtype casts floating weights (e.g. torch.float16); max_shard_size (bytes) shards big models;
        card is README.md text to use as is; card_data feeds the generated card (see unet_zoo.hub.pretrained.save_pretrained).
        """
        return hub_functions().save_pretrained(
            self, save_directory, dtype=dtype, card=card, card_data=card_data, max_shard_size=max_shard_size
        )

    def push_to_hub(  # type: ignore[override]
        self,
        repo_id: str,
        *,
        private: bool = False,
        revision: str | None = None,
        token: str | None = None,
        commit_message: str = "Upload unet_zoo model",
        dtype: torch.dtype | None = None,
        card: str | None = None,
        card_data: dict[str, Any] | None = None,
        max_shard_size: int | None = None,
    ) -> str:
        """Save to a temporary folder and upload it to `repo_id` (created if needed); returns the commit URL."""
        return hub_functions().push_to_hub(
            self,
            repo_id,
            private=private,
            revision=revision,
            token=token,
            commit_message=commit_message,
            dtype=dtype,
            card=card,
            card_data=card_data,
            max_shard_size=max_shard_size,
        )

    @classmethod
    def from_pretrained(cls: type[T], name_or_path: str | Path, **kwargs: Any) -> T:  # type: ignore[override]
        """`unet_zoo.from_pretrained`, checking that the checkpoint holds an instance of this class."""
        return hub_functions().from_pretrained(cls, name_or_path, **kwargs)

    def generate_model_card(self, *args: Any, **kwargs: Any) -> ModelCard:
        """The model card save_pretrained writes, as a huggingface_hub.ModelCard."""
        return ModelCard(hub_functions().model_card(self, kwargs))

    def _save_pretrained(self, save_directory: Path) -> None:
        self.save_pretrained(save_directory)

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        **model_kwargs: Any,
    ):
        return cls.from_pretrained(
            model_id,
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            local_files_only=local_files_only,
            token=token,
            **model_kwargs,
        )


__all__ = ["HubFunctions", "HubMixin", "connect_hub", "hub_functions"]
