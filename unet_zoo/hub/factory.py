"""The one door to a trained model: `from_pretrained(source)`, and `create_model` for an architecture.

A source is read by the explicit rules of `unet_zoo.hub.sources.parse_source` (a published checkpoint name,
``hf-hub:owner/repo`` or ``owner/repo``, a folder written as a path or ``local-dir:PATH``); what the working
directory holds never decides between a name and a folder (an ``owner/repo`` that is also a folder here is
refused). Every model that comes through here carries its `Provenance`
(``unet_zoo.models.provenance.provenance_of``). Saving and publishing: `save_pretrained`, `push_to_hub`.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unet_zoo.hub.pretrained import load_hub_checkpoint, load_registry_checkpoint, push_to_hub
from unet_zoo.hub.serialization import CheckpointError, read_folder, save_pretrained
from unet_zoo.hub.sources import SourceError, parse_source
from unet_zoo.models import legacy, registry

logger = logging.getLogger(__name__)


def from_pretrained(
    source: str | os.PathLike[str],
    *,
    revision: str | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = torch.float32,
    strict: bool = True,
    local_files_only: bool | None = None,
    token: str | bool | None = None,
    cache_dir: str | Path | None = None,
    force_download: bool = False,
    allow_architecture: bool = False,
) -> nn.Module:
    """Load a trained U-Net from `source`; returns it in eval mode on `device` (default CPU), floating tensors in
    `dtype` (None keeps the stored dtype), with its `Provenance` attached.

    `source` (rules in `unet_zoo.hub.sources`): a published checkpoint name (``"isbi-small"``; pinned revision and
    sha256, a mismatch is refused; a source checkout's ``cards/<name>/`` is used without any network);
    ``"hf-hub:owner/repo"`` or ``"owner/repo"`` (``@revision`` optional) for a Hub repo written by unet_zoo; a
    `pathlib.Path`, ``"./folder"``, ``"/abs/folder"``, ``"~/folder"`` or ``"local-dir:folder"`` for a folder written
    by `save_pretrained` or a training run folder (``unet-zoo train``, its last checkpoint). ``owner/repo`` that is
    also a folder here is refused: write ``./owner/repo`` or ``hf-hub:owner/repo``. An architecture name
    (``"small"``) is refused, pointing to `create_model`, unless `allow_architecture` (for front-ends whose MODEL
    argument takes architectures): then it is built with random weights and a warning says so.

    revision / token / cache_dir / local_files_only / force_download apply to the Hub (HF_ENDPOINT, HF_TOKEN and
    HF_HUB_OFFLINE are honoured; offline, the Hugging Face cache is used). Safetensors only, nothing unpickled.
    Raises SourceError (what `source` names), CheckpointError (bad files) or HubAccessError (repo, revision,
    token, network).
    """
    parsed = parse_source(source, allow_architecture=allow_architecture)
    if parsed.revision and revision and parsed.revision != revision:
        raise SourceError(f"{source!r} names revision {parsed.revision!r} but revision={revision!r} was passed: give one")
    revision = revision or parsed.revision
    load: dict[str, Any] = dict(device=device, dtype=dtype, strict=strict)
    hub: dict[str, Any] = dict(
        revision=revision,
        token=token,
        cache_dir=cache_dir,
        local_files_only=bool(local_files_only),
        force_download=force_download,
    )
    if parsed.kind == "registry":
        return load_registry_checkpoint(parsed.location, load=load, **hub)
    if parsed.kind == "hub":
        return load_hub_checkpoint(parsed.location, load=load, **hub)
    if revision:
        raise SourceError(f"revision={revision!r} applies to the Hub, and {source!r} is not a Hub source")
    if parsed.kind == "architecture":
        logger.warning(
            "%r is an architecture name, not a checkpoint: its weights are random and its predictions are "
            "meaningless. Pass a checkpoint name (unet_zoo.list_pretrained()), folder or Hub id.",
            parsed.location,
        )
        model = registry.create_model(parsed.location)
        return model.to(device=device, dtype=dtype if dtype is not None else torch.float32).eval()
    folder = Path(parsed.location)
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint folder {parsed.location} does not exist")
    return read_folder(folder, **load)


def create_model(name: str, pretrained: bool = False, **overrides: Any) -> nn.Module:
    """Build architecture `name` (``unet_zoo.list_models()``) with random (paper) initialisation; keyword
    overrides change its arguments (`unet_zoo.models.registry.create_model`). Trained weights: `from_pretrained`.

    ``pretrained=True`` is deprecated (for one release it loads the architecture's published checkpoint, the
    overrides then being `from_pretrained`'s options): use ``unet_zoo.from_pretrained("isbi-small")``.
    """
    if not pretrained:
        return registry.create_model(name, **overrides)
    checkpoint = registry.checkpoint_of(name)
    warnings.warn(
        f"create_model({name!r}, pretrained=True) is deprecated and will be removed in the next release; "
        f"use unet_zoo.from_pretrained({checkpoint!r})",
        FutureWarning,
        stacklevel=2,
    )
    return from_pretrained(checkpoint, **overrides)


# The deprecated Hub methods of the networks (model.save_pretrained, UNet.from_pretrained) call these.
legacy.HUB_FUNCTIONS.update(save_pretrained=save_pretrained, push_to_hub=push_to_hub, from_pretrained=from_pretrained)

__all__ = ["create_model", "from_pretrained", "push_to_hub", "save_pretrained"]
