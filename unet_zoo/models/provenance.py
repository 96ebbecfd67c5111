"""Where a model came from: one typed record, `Provenance`, kept on the model as ``model.provenance``.

Every loader (`unet_zoo.from_pretrained`) and builder (`unet_zoo.create_model`) attaches one; everything that
reports, rescales, segments, exports or publishes reads it through `provenance_of(model)`, never through loose
attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from torch import nn

SourceKind = Literal["built", "registry", "hub", "folder", "run"]
"""How the weights were found: ``built`` (random weights from the registry), ``registry`` (a published checkpoint
by name), ``hub`` (a Hugging Face Hub repo), ``folder`` (a folder written by ``save_pretrained``), ``run`` (the
last checkpoint of a training run folder)."""

ATTRIBUTE = "provenance"


@dataclass(frozen=True)
class Provenance:
    """Where a model came from and what its checkpoint records.

    - ``architecture``: the registry architecture name (``unet_zoo.list_models()``); ``args`` its arguments.
    - ``kind`` / ``source``: how and from where it came: ``built`` / the architecture name, ``registry`` / the
      checkpoint's Hub repo (also when a source checkout's ``cards/<name>/`` holds the pinned files),
      ``hub`` / ``owner/repo``, ``folder`` / the folder path, ``run`` / the run folder path.
    - ``checkpoint``: the published checkpoint's name (``isbi-small``) when it is one, else None.
    - ``revision``: the Hub revision asked for (a published checkpoint's pinned one); ``sha256``: the digest of the
      weights files (`unet_zoo.hub.serialization.weights_sha256`), None for built models and training runs.
    - ``card``: the checkpoint's ``pretrained`` block of config.json (description, training record, scores,
      segmentation defaults), as stored; `pixel_size_nm` and `segmentation` read it.
    """

    architecture: str
    args: dict[str, Any] = field(default_factory=dict)
    kind: SourceKind = "built"
    source: str = ""
    checkpoint: str | None = None
    revision: str | None = None
    sha256: str | None = None
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def pixel_size_nm(self) -> Any:
        """The pixel size in nm the model was trained at as its card records it (``training.pixel_size_nm``, else
        ``pixel_size_nm``), or None. Unchecked: `unet_zoo.inference.rescale.model_pixel_size` checks it and
        supplies the default for checkpoints that record none."""
        training = self.card.get("training")
        if isinstance(training, dict) and training.get("pixel_size_nm") is not None:
            return training["pixel_size_nm"]
        return self.card.get("pixel_size_nm")

    @property
    def segmentation(self) -> dict[str, Any] | None:
        """The segmentation defaults stored with the checkpoint (a `SegmentationParams` dict), or None."""
        block = self.card.get("segmentation")
        return block if isinstance(block, dict) and block else None

    @property
    def label(self) -> str:
        """A short human name: the checkpoint name, else the source, else the architecture."""
        return self.checkpoint or self.source or self.architecture

    def updated(self, **changes: Any) -> Provenance:
        """A copy with `changes` applied."""
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for output metadata and reports)."""
        return {
            "architecture": self.architecture,
            "args": dict(self.args),
            "kind": self.kind,
            "source": self.source,
            "checkpoint": self.checkpoint,
            "revision": self.revision,
            "sha256": self.sha256,
            "pixel_size_nm": self.pixel_size_nm,
        }


def provenance_of(model: nn.Module) -> Provenance:
    """The model's `Provenance`; a model built outside the zoo gets a minimal record naming its class."""
    record = getattr(model, ATTRIBUTE, None)
    if isinstance(record, Provenance):
        return record
    return Provenance(architecture=type(model).__name__, source=type(model).__name__)


def set_provenance(model: nn.Module, record: Provenance) -> nn.Module:
    """Attach `record` to `model` (returned for chaining)."""
    setattr(model, ATTRIBUTE, record)
    return model


__all__ = ["Provenance", "SourceKind", "provenance_of", "set_provenance"]
