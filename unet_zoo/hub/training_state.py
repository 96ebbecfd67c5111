"""The training state a run resumes from, without pickle: one safetensors file, written atomically.

The format of a training run folder's ``checkpoint.safetensors`` (`TRAINING_STATE_FILE`), at the Hub layer because
two layers read it: the trainer writes it and resumes from it (`unet_zoo.training.trainer`), and a run folder loads
as a model (`unet_zoo.hub.serialization.read_run_folder`, reached by `from_pretrained("runs/...")`). Not to be
confused with a published checkpoint (a model folder, `unet_zoo.hub.serialization`). The training state holds

* ``model.<name>``: the model's state dict (float tensors as trained),
* ``optim.<param index>.<key>``: optimiser state tensors (momentum buffers, Adam moments, steps),
* ``rng.<rank>.<name>``: random-number-generator states (uint8 tensors) per process,

and, in the safetensors metadata (str -> str), one JSON document ``state`` with the step, the
optimiser's param groups and scalar state, the scheduler's state dict and any extra JSON data.
Files are written to a temporary name in the same folder and moved into place with `os.replace`,
so a kill never leaves a half-written state file: the previous one stays intact until the new one
is complete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from unet_zoo.utils.files import atomic_write_with

TRAINING_STATE_FILE = "checkpoint.safetensors"  # its name in a run folder
FORMAT_VERSION = 1


@dataclass
class TrainingState:
    """A loaded training state. Tensors are on the CPU.

    model: the model's state dict.
    optimizer: a state dict ready for ``optimizer.load_state_dict`` (or None).
    scheduler: a state dict ready for ``scheduler.load_state_dict`` (or None).
    rng: per-rank RNG states, ``{rank: {name: uint8 tensor}}``.
    step: optimiser steps completed.
    extra: the JSON data passed to `save_training_state`.
    """

    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None
    scheduler: dict[str, Any] | None
    rng: dict[int, dict[str, torch.Tensor]]
    step: int
    extra: dict[str, Any] = field(default_factory=dict)


def atomic_save_safetensors(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """`safetensors.torch.save_file`, atomically: the file at `path` is either the old or the new one."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    return atomic_write_with(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def _split_optimizer(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, per_param in state_dict["state"].items():
        for key, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _join_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = value
    for index, values in meta["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside DistributedDataParallel and/or torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def save_training_state(
    path: str | Path,
    *,
    model: torch.nn.Module,
    step: int,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    rng: dict[int, dict[str, torch.Tensor]] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the training state to `path` (a ``.safetensors`` file) atomically; returns the path.

    `rng` maps each process rank to its named RNG states (see `unet_zoo.training.rng.rng_state`);
    `extra` is any JSON-serialisable data (recipe, metrics). DDP/compiled models are unwrapped.
    """
    tensors = {f"model.{k}": v for k, v in _unwrap(model).state_dict().items()}
    meta: dict[str, Any] = {"format_version": FORMAT_VERSION, "step": int(step), "extra": extra or {}}
    if optimizer is not None:
        optim_tensors, meta["optimizer"] = _split_optimizer(optimizer.state_dict())
        tensors.update(optim_tensors)
    if scheduler is not None:
        meta["scheduler"] = scheduler.state_dict()
    for rank, states in (rng or {}).items():
        for name, value in states.items():
            tensors[f"rng.{rank}.{name}"] = value
    try:
        metadata = {"state": json.dumps(meta)}
    except TypeError as err:
        raise TypeError(f"checkpoint state must be JSON-serialisable: {err}") from None
    return atomic_save_safetensors(tensors, path, metadata)


def load_training_state(path: str | Path) -> TrainingState:
    """Read a training state written by `save_training_state` (no pickle involved); tensors on the CPU.

    `path` may be the file or the run folder holding ``checkpoint.safetensors``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / TRAINING_STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {path}; pass a run folder (runs/<recipe>-<time>/) or its {TRAINING_STATE_FILE}"
        )
    groups: dict[str, dict[str, torch.Tensor]] = {"model": {}, "optim": {}, "rng": {}}
    with safe_open(str(path), framework="pt", device="cpu") as f:
        metadata = f.metadata() or {}
        for name in f.keys():
            kind, _, rest = name.partition(".")
            if kind not in groups:
                raise ValueError(f"{path}: unexpected tensor {name!r}; is this a unet_zoo training checkpoint?")
            groups[kind][rest if kind != "optim" else name] = f.get_tensor(name)
    if "state" not in metadata:
        raise ValueError(
            f"{path} has no training state: it is a weights-only file (load it with from_pretrained), "
            "not a checkpoint written by the trainer"
        )
    meta = json.loads(metadata["state"])
    rng: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in groups["rng"].items():
        rank, _, key = name.partition(".")
        rng.setdefault(int(rank), {})[key] = value
    optimizer = _join_optimizer(groups["optim"], meta["optimizer"]) if "optimizer" in meta else None
    return TrainingState(
        model=groups["model"],
        optimizer=optimizer,
        scheduler=meta.get("scheduler"),
        rng=rng,
        step=int(meta["step"]),
        extra=meta.get("extra", {}),
    )


__all__ = [
    "TRAINING_STATE_FILE",
    "TrainingState",
    "atomic_save_safetensors",
    "load_training_state",
    "save_training_state",
]
