"""`save_pretrained`, `push_to_hub` and `from_pretrained` on the zoo's models, on huggingface_hub's ModelHubMixin.

The work is done by the checkpoint and Hub layer (`unet_zoo.hub.pretrained`), which sits above the models: the
mixin imports it when a method is first called (`hub_layer`, the models layer's one upward import).
ModelHubMixin records each model's ``__init__`` arguments and carries the class's card metadata.

The mixin overrides ModelHubMixin's public methods, not only its template methods `_save_pretrained` /
`_from_pretrained`: ModelHubMixin.save_pretrained writes into the folder in place (it deletes config.json first
and keeps an existing README.md), while the zoo's writes the whole folder atomically with a config.json that holds
the registry name, arguments and a weights digest, takes dtype / max_shard_size / card options and returns the
folder; and `from_pretrained` resolves registry checkpoint names (pinned revision and sha256, offline cache,
source checkout) that ModelHubMixin.from_pretrained would send to the Hub as repo ids.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import torch
from huggingface_hub import ModelCard, ModelHubMixin

from unet_zoo._version import LIBRARY_NAME
from unet_zoo.paper import PAPER_URL

T = TypeVar("T")


def hub_layer() -> ModuleType:
    """`unet_zoo.hub.pretrained`, the functions behind the mixin's methods and ``create_model(pretrained=True)``."""
    # lazy, and the models layer's only upward import: the Hub layer builds models through the registry, so it
    # imports this package; importing it here at call time keeps the graph one-way (tests/test_layers.py)
    from unet_zoo.hub import pretrained

    return pretrained


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
        return hub_layer().save_pretrained(
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
        return hub_layer().push_model(
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
        return hub_layer().load_instance_of(cls, name_or_path, **kwargs)

    def generate_model_card(self, *args: Any, **kwargs: Any) -> ModelCard:
        """The model card save_pretrained writes, as a huggingface_hub.ModelCard."""
        return ModelCard(hub_layer().model_card_text(self, kwargs))

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


__all__ = ["HubMixin", "hub_layer"]
