"""Hugging Face Hub integration: `from_pretrained`, `save_pretrained`, `push_to_hub`, `push_folder`, `download`.

A checkpoint folder (local, in the Hugging Face cache, or a Hub repo) holds:

- ``config.json``: ``{"model_name": <registry architecture>, "model_args": {...}, "library_name": "unet_zoo",
  "unet_zoo_version": ..., "weights": {"files": [...], "sha256": ..., "dtype": ...}, "pretrained": {...}}``;
  the registry builder and arguments that rebuild the network;
- ``model.safetensors`` (or shards ``model-0000i-of-0000n.safetensors`` + ``model.safetensors.index.json``):
  the state dict, safetensors only; nothing is ever unpickled;
- ``README.md``: the model card (`unet_zoo.cards.render_model_card`).

The weights digest (`weights_sha256`) is the sha256 of ``model.safetensors``, or, for a sharded
checkpoint, of the shards' bytes concatenated in file-name order (``cat model-*.safetensors | sha256sum``).
Registry entries (`unet_zoo.registry.PRETRAINED`) pin the Hub repo, the revision and this digest.

Downloads go through ``huggingface_hub`` (its cache, ``revision``, ``HF_TOKEN``, ``HF_ENDPOINT``,
``HF_HUB_OFFLINE`` and ``local_files_only`` behave as everywhere in that ecosystem).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch
from huggingface_hub import ModelHubMixin, ModelCard
from torch import nn

from ._version import LIBRARY_NAME, __version__
from .cards import render_model_card
from .checkpoint_names import variant_of
from .paper import PAPER_URL
from .checkpoint import CHECKPOINT_NAME, load_checkpoint
from .files import atomic_write_bytes, file_sha256, files_sha256

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
CARD_NAME = "README.md"
RUN_RECIPE_NAME = "recipe.json"  # a training run folder: recipe.json + checkpoint.safetensors (unet_zoo.training)
CARD_DATA_KEYS = (
    "checkpoint_name",
    "metrics",
    "training",
    "repo_id",
    "license",
    "datasets",
    "tags",
    "description",
    "limitations",
)
_SAFE_FILE = re.compile(r"^[A-Za-z0-9_.-]+\.safetensors(\.index\.json)?$")
_SHA = re.compile(r"^[0-9a-f]{40}$")

T = TypeVar("T")


class CheckpointError(ValueError):
    """A checkpoint's files are wrong: not unet_zoo's, corrupt, truncated, tampered, or not matching the model."""


class HubAccessError(OSError):
    """The Hub (or the cache, offline) cannot deliver a checkpoint: missing repo/revision, bad token, offline."""


# --- files ---------------------------------------------------------------------------------------


def weights_sha256(folder: str | Path, files: list[str] | None = None) -> str:
    """Hex sha256 of a checkpoint's weights: of model.safetensors, or of its shards concatenated in name order.

    `files` are the weight file names (index files are skipped); by default those found in `folder`.
    """
    folder = Path(folder)
    shards = sorted(f for f in (files if files is not None else weight_files(folder)) if f.endswith(".safetensors"))
    return files_sha256(folder / name for name in shards)


def read_config(path: str | Path) -> dict[str, Any]:
    """Parse and check a unet_zoo config.json; CheckpointError if it was not written by unet_zoo."""
    path = Path(path)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"cannot read {path}: {err}") from err
    if not isinstance(config, dict) or config.get("library_name") != LIBRARY_NAME or "model_name" not in config:
        found = config.get("library_name") if isinstance(config, dict) else type(config).__name__
        raise CheckpointError(
            f"{path} was not written by unet_zoo (library_name={found!r}, expected {LIBRARY_NAME!r} with a "
            "'model_name'); unet_zoo loads folders and Hub repos saved with model.save_pretrained or push_to_hub"
        )
    if not isinstance(config.get("model_args", {}), dict):
        raise CheckpointError(f"{path}: 'model_args' must be a JSON object, got {config['model_args']!r}")
    return config


def weight_files(folder: str | Path, config: dict[str, Any] | None = None) -> list[str]:
    """Names of the weight files of a checkpoint folder (index first when sharded); CheckpointError if none."""
    folder = Path(folder)
    listed = (config or {}).get("weights", {}).get("files")
    if listed:
        bad = [f for f in listed if not isinstance(f, str) or not _SAFE_FILE.match(f)]
        if bad:
            raise CheckpointError(f"config.json lists weight files that are not plain *.safetensors names: {bad}")
        return list(listed)
    if (folder / WEIGHTS_NAME).is_file():
        return [WEIGHTS_NAME]
    if (folder / WEIGHTS_INDEX_NAME).is_file():
        return [WEIGHTS_INDEX_NAME, *_index_shards(folder / WEIGHTS_INDEX_NAME)]
    pickles = sorted(p.name for p in folder.glob("*") if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
    hint = f" (found {', '.join(pickles)}: unet_zoo never unpickles; convert them to safetensors)" if pickles else ""
    raise CheckpointError(f"no {WEIGHTS_NAME} or {WEIGHTS_INDEX_NAME} in {folder}{hint}")


def _index_shards(index_path: Path) -> list[str]:
    try:
        weight_map = json.loads(index_path.read_text(encoding="utf-8"))["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{index_path} is not a valid safetensors index ({err!r}); save the model again") from err
    shards = sorted(set(weight_map.values()))
    bad = [s for s in shards if not _SAFE_FILE.match(s)]
    if bad:
        raise CheckpointError(f"{index_path} names shard files that are not plain *.safetensors names: {bad}")
    return shards


# --- saving --------------------------------------------------------------------------------------


def model_identity(model: nn.Module) -> tuple[str, dict[str, Any]]:
    """(registry architecture name, full JSON-serialisable arguments) that rebuild `model` via create_model."""
    from .registry import get_entry, list_models

    name, args = getattr(model, "model_name", None), getattr(model, "model_args", None)
    if name is None or args is None:
        init_args = getattr(model, "_hub_mixin_config", None) or {}  # __init__ arguments, captured by ModelHubMixin
        same_class = [n for n in list_models() if get_entry(n).model_class is type(model)]
        if not same_class:
            raise ValueError(
                f"cannot save a {type(model).__name__}: no registered architecture builds it; "
                "register one with unet_zoo.register_model or build the model with unet_zoo.create_model"
            )
        name = name or same_class[0]
        args = {**get_entry(name).default_args, **dict(init_args)}
    try:
        args = json.loads(json.dumps(args))
    except TypeError as err:
        raise ValueError(f"model_args of {name!r} must be JSON-serialisable to be saved: {err}") from err
    return name, args


def save_weights(
    model: nn.Module, folder: str | Path, *, dtype: torch.dtype | None = None, max_shard_size: int | None = None
) -> list[str]:
    """Write `model`'s state dict as safetensors into `folder`; returns the file names written.

    dtype: cast floating tensors (e.g. torch.float16 halves the size); integer buffers are kept.
    max_shard_size: bytes per file; when given and exceeded, shards plus model.safetensors.index.json.
    Files appear atomically (written in a temporary folder, then `os.replace`d); stale weight files are removed.
    """
    from huggingface_hub import save_torch_state_dict

    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype must be a floating torch.dtype such as torch.float16, got {dtype!r}")
    if max_shard_size is not None and (not isinstance(max_shard_size, int) or max_shard_size <= 0):
        raise ValueError(f"max_shard_size must be a positive number of bytes, got {max_shard_size!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {
        k: (v.detach().to("cpu", dtype) if dtype is not None and v.is_floating_point() else v.detach().cpu())
        for k, v in model.state_dict().items()
    }
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=".unet_zoo-save-"))
    try:
        # The splitter counts tensor bytes only; leave room for each file's JSON header so files stay <= the limit.
        header = 8 + len(json.dumps({k: {"dtype": "BF16", "shape": list(v.shape), "data_offsets": [1 << 40] * 2}
                                     for k, v in state.items()})) + 64
        budget = max(1, max_shard_size - header) if max_shard_size else 1 << 62
        save_torch_state_dict(state, tmp, max_shard_size=budget)
        written = sorted(p.name for p in tmp.iterdir())
        if max_shard_size:
            too_big = [f"{n} ({(tmp / n).stat().st_size:,} bytes)" for n in written if (tmp / n).stat().st_size > max_shard_size]
            if too_big:
                biggest = max(state, key=lambda k: state[k].numel() * state[k].element_size())
                warnings.warn(
                    f"{', '.join(too_big)} exceed max_shard_size={max_shard_size:,} bytes: safetensors cannot split "
                    f"one tensor, and {biggest} {tuple(state[biggest].shape)} alone is "
                    f"{state[biggest].numel() * state[biggest].element_size():,} bytes",
                    stacklevel=3,
                )
        for name in written:
            os.replace(tmp / name, folder / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    stale = re.compile(r"^model(-\d{5}-of-\d{5})?\.safetensors(\.index\.json)?$")
    for old in folder.iterdir():
        if stale.match(old.name) and old.name not in written:
            old.unlink()
    index_first = sorted(written, key=lambda n: (not n.endswith(".index.json"), n))
    return index_first


def checkpoint_config(
    model: nn.Module, *, weights: dict[str, Any] | None = None, pretrained: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The config.json dict of `model`: registry name and arguments, library, version, weights, pretrained info."""
    name, args = model_identity(model)
    config: dict[str, Any] = {
        "model_name": name,
        "model_args": args,
        "library_name": LIBRARY_NAME,
        "unet_zoo_version": __version__,
    }
    if weights:
        config["weights"] = weights
    if pretrained:
        config["pretrained"] = pretrained
    return config


def save_pretrained(
    model: nn.Module,
    save_directory: str | Path,
    *,
    dtype: torch.dtype | None = None,
    card: str | None = None,
    card_data: dict[str, Any] | None = None,
    max_shard_size: int | None = None,
) -> Path:
    """Write model.safetensors (or shards), config.json and README.md into `save_directory`; returns it.

    card: README.md text to write as is; by default one is rendered from what is known (see `card_data`).
    card_data: optional {"checkpoint_name", "metrics", "training", "repo_id", "license", "datasets", "tags",
    "description", "limitations"}; metrics/training/checkpoint_name are also stored under config["pretrained"].
    """
    folder = Path(save_directory)
    known = dict(getattr(model, "pretrained_info", None) or {})
    extra = dict(card_data or {})
    unknown = sorted(set(extra) - set(CARD_DATA_KEYS))
    if unknown:
        raise ValueError(f"unknown card_data keys {unknown}; allowed: {', '.join(CARD_DATA_KEYS)}")
    info = {**known, **extra}
    name, args = model_identity(model)
    files = save_weights(model, folder, dtype=dtype, max_shard_size=max_shard_size)
    state = model.state_dict()
    floating = [v.dtype for v in state.values() if v.is_floating_point()]
    stored = dtype or (floating[0] if floating else torch.float32)
    weights = {
        "files": files,
        "sha256": weights_sha256(folder, files),
        "dtype": str(stored).removeprefix("torch."),
        "num_tensors": len(state),
    }
    pretrained = {k: info[k] for k in ("checkpoint_name", "metrics", "training", "license", "datasets") if info.get(k)}
    config = checkpoint_config(model, weights=weights, pretrained=pretrained or None)
    atomic_write_bytes(folder / CONFIG_NAME, json.dumps(config, indent=2) + "\n")
    if card is None:
        card = render_model_card(
            name,
            args,
            params=sum(p.numel() for p in model.parameters()),
            metrics=info.get("metrics"),
            training=info.get("training"),
            checkpoint_name=info.get("checkpoint_name"),
            repo_id=info.get("repo_id"),
            license=info.get("license") or "mit",
            datasets=info.get("datasets"),
            tags=info.get("tags"),
            description=info.get("description"),
            limitations=info.get("limitations"),
        )
    atomic_write_bytes(folder / CARD_NAME, card)
    return folder


# --- loading -------------------------------------------------------------------------------------


def read_weights(folder: str | Path, files: list[str]) -> dict[str, torch.Tensor]:
    """Load safetensors `files` of `folder` into one CPU state dict; CheckpointError if corrupt or inconsistent."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    state: dict[str, torch.Tensor] = {}
    for name in files:
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"weight file {name} listed for {folder} is missing; download or save it again")
        if name.endswith(".index.json"):
            continue
        try:
            part = load_file(path, device="cpu")
        except (SafetensorError, OSError, ValueError) as err:
            raise CheckpointError(
                f"{path} is not a readable safetensors file ({err}): it is truncated or corrupted. Delete it and "
                "download it again (force_download=True / `unet-zoo download NAME`) or save the model again"
            ) from err
        overlap = set(part) & set(state)
        if overlap:
            raise CheckpointError(f"tensor(s) {sorted(overlap)[:3]} appear in more than one shard of {folder}")
        state.update(part)
    index = [n for n in files if n.endswith(".index.json")]
    if index:
        weight_map = json.loads((folder / index[0]).read_text(encoding="utf-8"))["weight_map"]
        if set(weight_map) != set(state):
            diff = sorted(set(weight_map) ^ set(state))[:5]
            raise CheckpointError(f"{folder / index[0]} does not match its shards (differences: {diff}); save again")
    return state


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], *, strict: bool = True, source: str = "") -> None:
    """Compare every tensor name and shape of `state` with `model`; CheckpointError on any mismatch.

    With strict=False, missing and unexpected names only warn; shape mismatches always fail.
    """
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {expected[k]}" for k in expected if k in state and tuple(state[k].shape) != expected[k]]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing tensor(s) ({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensor(s) ({', '.join(unexpected[:4])}{', ...' if len(unexpected) > 4 else ''})")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es) ({'; '.join(shapes[:4])}{'; ...' if len(shapes) > 4 else ''})")
    if not problems:
        return
    what = f"the weights in {source}" if source else "the weights"
    model_desc = f"{getattr(model, 'model_name', type(model).__name__)!r}"
    message = (
        f"{what} do not match the model rebuilt from config.json ({model_desc}): {'; '.join(problems)}. "
        "config.json and the weights come from different models; save the model again with model.save_pretrained"
    )
    if shapes or strict:
        raise CheckpointError(message)
    warnings.warn(message + " (loaded anyway: strict=False)", stacklevel=3)


def build_model(config: dict[str, Any], source: str = "") -> nn.Module:
    """Rebuild the (randomly initialised) network a config.json describes, through the registry."""
    from .registry import create_model

    args = dict(config.get("model_args", {}))
    if "pretrained_encoder" in args:
        args["pretrained_encoder"] = False  # the checkpoint holds the encoder weights: download nothing from timm
    try:
        return create_model(config["model_name"], **args)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(
            f"config.json{f' of {source}' if source else ''} does not describe a model this unet_zoo can build "
            f"({err.args[0] if err.args else err}); upgrade unet_zoo or check model_name/model_args"
        ) from err


def load_folder(
    folder: str | Path,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = torch.float32,
    strict: bool = True,
    expected_sha256: str | None = None,
    source: str | None = None,
) -> nn.Module:
    """Build and load the model of a checkpoint folder; eval mode, on `device`, floating tensors in `dtype`.

    dtype=None keeps the stored dtype. expected_sha256 (a registry pin) is compared with `weights_sha256`;
    the digest recorded in config.json is always checked. CheckpointError on any inconsistency.
    """
    folder = Path(folder)
    source = source or str(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder")
    if not (folder / CONFIG_NAME).is_file():
        if is_run_folder(folder):
            return load_run_folder(folder, device=device, dtype=dtype, strict=strict)
        raise CheckpointError(
            f"no {CONFIG_NAME} in {folder}: not a unet_zoo checkpoint (save one with model.save_pretrained) "
            f"nor a training run folder ({RUN_RECIPE_NAME} + {CHECKPOINT_NAME}, written by `unet-zoo train`)"
        )
    config = read_config(folder / CONFIG_NAME)
    files = weight_files(folder, config)
    for name in files:
        if not (folder / name).is_file():
            raise CheckpointError(f"{source}: weight file {name} (listed in config.json) is missing")
    digest = weights_sha256(folder, files)
    if expected_sha256 and digest != expected_sha256.lower():
        raise CheckpointError(
            f"refusing to load {source}: the sha256 of its weights is {digest}, but the registry pins "
            f"{expected_sha256}. The download is corrupted or the files were tampered with. Delete the copy in "
            f"{folder} (`hf cache delete` for the Hugging Face cache) and download again; if it persists, report it"
        )
    recorded = config.get("weights", {}).get("sha256")
    if recorded and digest != recorded:
        raise CheckpointError(
            f"refusing to load {source}: the sha256 of its weights is {digest}, but its config.json records "
            f"{recorded}. The weights were modified, truncated or corrupted after saving; download or save them again"
        )
    state = read_weights(folder, files)
    model = build_model(config, source)
    check_state_dict(model, state, strict=strict, source=source)
    floating = [v.dtype for v in state.values() if v.is_floating_point()]
    model.load_state_dict(state, strict=strict)
    target = dtype if dtype is not None else (floating[0] if floating else None)
    model.to(device=device, dtype=target)
    model.eval()
    model.pretrained_info = dict(config.get("pretrained") or {})
    model.checkpoint_source = source
    model.weights_sha256 = digest  # provenance for what the model writes (e.g. predict_volume's attributes)
    return model


def is_run_folder(folder: str | Path) -> bool:
    """Whether `folder` is a training run folder (``recipe.json`` + ``checkpoint.safetensors``) without a config.json."""
    folder = Path(folder)
    return (folder / RUN_RECIPE_NAME).is_file() and (folder / CHECKPOINT_NAME).is_file() and not (folder / CONFIG_NAME).is_file()


def load_run_folder(
    folder: str | Path, *, device: str | torch.device | None = None, dtype: torch.dtype | None = torch.float32,
    strict: bool = True,
) -> nn.Module:
    """The model of a training run folder (``unet-zoo train`` output) at its last checkpointed step, in eval mode.

    The architecture comes from ``recipe.json``, the weights from ``checkpoint.safetensors``. The model's
    ``pretrained_info`` says which recipe and step it is (``training``), so a card written from it says so too.
    """
    folder = Path(folder)
    try:
        recipe = json.loads((folder / RUN_RECIPE_NAME).read_text())
        model_cfg = recipe["model"]
        config = {"model_name": model_cfg["name"], "model_args": model_cfg.get("args", {})}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{folder / RUN_RECIPE_NAME} is not a unet_zoo recipe record ({err})") from err
    try:
        ckpt = load_checkpoint(folder / CHECKPOINT_NAME)
    except (OSError, ValueError, KeyError) as err:
        raise CheckpointError(f"cannot read the training checkpoint {folder / CHECKPOINT_NAME} ({err})") from err
    model = build_model(config, str(folder))
    check_state_dict(model, ckpt.model, strict=strict, source=str(folder / CHECKPOINT_NAME))
    model.load_state_dict(ckpt.model, strict=strict)
    model.to(device=device, dtype=dtype)
    model.eval()
    name = recipe.get("recipe", {}).get("name", "")
    total = recipe.get("train", {}).get("steps")
    model.pretrained_info = {
        "description": f"training run {folder.name} of recipe {name!r} at step {ckpt.step}"
                       + (f" of {total}" if total else ""),
        "training": {"recipe": f"{name} (run folder {folder.name})", "steps": ckpt.step,
                     "time_s": ckpt.extra.get("train_seconds")},
    }
    model.checkpoint_source = f"{folder} (training run, step {ckpt.step})"
    return model


# --- the Hub -------------------------------------------------------------------------------------


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP client's 'could not reach the server' errors (huggingface_hub 2.x uses httpx2, older httpx)."""
    import importlib

    found: list[type[BaseException]] = []
    for module in ("httpx2", "httpx"):
        try:
            found.append(importlib.import_module(module).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def _hub_call(fn: Callable[[], T], repo_id: str, revision: str | None, what: str) -> T:
    """Run a huggingface_hub call, turning its errors into HubAccessError/CheckpointError that say what to do.

    LocalEntryNotFoundError (not cached and offline/unreachable) is re-raised untouched for the caller.
    """
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id!r}{f' at revision {revision!r}' if revision else ''} on {_endpoint()}"
    try:
        return fn()
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        raise
    except ValueError as err:  # force_download=True wraps the real failure: "Force download failed ..."
        cause = err.__cause__
        if not str(err).startswith(("Force download failed", "Cannot pass 'force_download=True'")) or cause is None:
            raise
        if isinstance(cause, (HfHubHTTPError, OSError)):
            def again() -> T:
                raise cause

            return _hub_call(again, repo_id, revision, what)
        raise HubAccessError(
            f"cannot download {what} of {where} (force_download=True needs the Hub): {cause!r}; "
            "check the connection, or load the cached copy without forcing a download"
        ) from err
    except RepositoryNotFoundError as err:
        raise HubAccessError(
            f"Hub repo {repo_id!r} not found on {_endpoint()} (or it is private and no valid token was sent): "
            "check the repo id; for a private repo pass token=... (--token), set HF_TOKEN or run `hf auth login`"
        ) from err
    except RevisionNotFoundError as err:
        raise HubAccessError(
            f"revision {revision!r} not found in Hub repo {repo_id!r}: use a branch, tag or commit sha that exists "
            f"(list them with huggingface_hub.HfApi().list_repo_refs({repo_id!r}))"
        ) from err
    except RemoteEntryNotFoundError as err:
        raise CheckpointError(
            f"{where} has no {what}: it was not written by unet_zoo (save_pretrained / push_to_hub writes "
            f"{CONFIG_NAME}, {WEIGHTS_NAME} and {CARD_NAME})"
        ) from err
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else None
        if status == 401:
            raise HubAccessError(
                f"the Hub rejected the request for {where} (HTTP 401 Unauthorized): the token is missing, invalid "
                "or expired. Pass a valid token=... (--token), set HF_TOKEN or run `hf auth login`"
            ) from err
        if status == 403:
            raise HubAccessError(
                f"the Hub refused access to {where} (HTTP 403 Forbidden): the token has no write access to that "
                "namespace; use a repo under your own user or a token with write permission"
            ) from err
        raise HubAccessError(f"Hub request for {what} of {where} failed: {err}") from err
    except _transport_errors() as err:  # connection refused, DNS failure, timeout: neither OSError nor HTTP error
        raise HubAccessError(
            f"could not reach the Hub at {_endpoint()} for {what} of {repo_id!r}: {err or type(err).__name__}. "
            "Check the network connection or HF_ENDPOINT; to load files already in the cache set HF_HUB_OFFLINE=1"
        ) from err
    except OSError as err:
        if "Consistency check failed" in str(err):
            raise CheckpointError(
                f"the download of {what} from {where} was truncated ({str(err).splitlines()[0]}); "
                "retry (force_download=True / `unet-zoo download ... --force`) on a stable connection"
            ) from err
        raise


def _download_checkpoint(
    repo_id: str,
    revision: str | None,
    *,
    token: str | bool | None,
    cache_dir: str | Path | None,
    local_files_only: bool,
    force_download: bool = False,
    with_card: bool = False,
) -> Path:
    """Download config.json and the weights of a Hub repo into the HF cache; returns the snapshot folder."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RemoteEntryNotFoundError

    def get(filename: str, rev: str | None) -> Path:
        return Path(
            _hub_call(
                lambda: hf_hub_download(
                    repo_id,
                    filename,
                    revision=rev,
                    cache_dir=cache_dir,
                    token=token,
                    local_files_only=local_files_only,
                    force_download=force_download,
                ),
                repo_id,
                revision,
                filename,
            )
        )

    config_path = get(CONFIG_NAME, revision)
    folder = config_path.parent
    commit = folder.name if _SHA.match(folder.name) else revision  # pin the rest of the files to the same commit
    config = read_config(config_path)
    listed = config.get("weights", {}).get("files")
    if listed:
        for name in weight_files(folder, config):
            get(name, commit)
    else:  # a config without a file list: the Hub's conventions, single file first
        try:
            get(WEIGHTS_NAME, commit)
        except CheckpointError as err:
            if not isinstance(err.__cause__, RemoteEntryNotFoundError):
                raise
            for name in [WEIGHTS_INDEX_NAME, *_index_shards(get(WEIGHTS_INDEX_NAME, commit))]:
                get(name, commit)
    if with_card:
        try:
            get(CARD_NAME, commit)
        except CheckpointError:
            pass  # a checkpoint without a card still loads
    return folder


def source_cards_dir() -> Path | None:
    """The `cards/` folder of a source checkout of unet_zoo (next to its pyproject.toml), or None when installed.

    The folder need not exist yet (a fresh clone before any checkpoint is trained); callers check
    for the checkpoint they want inside it.
    """
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "unet_zoo" / "__init__.py").is_file():
        return root / "cards"
    return None


def _offline_reason(local_files_only: bool) -> str:
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE=1 is set"
    if local_files_only:
        return "local_files_only=True"
    return f"the Hub at {constants.ENDPOINT} could not be reached"


def _cache_location(cache_dir: str | Path | None) -> str:
    from huggingface_hub import constants

    return str(cache_dir or constants.HF_HUB_CACHE)


def download(
    name_or_repo_id: str,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | Path | None = None,
    force_download: bool = False,
    local_files_only: bool = False,
) -> Path:
    """Download a checkpoint (registry name or Hub repo id) into the HF cache for offline use; returns its folder.

    The files (config.json, weights, README.md) are verified: a registry name's weights must match its pinned
    sha256, any checkpoint's weights the digest recorded in its config.json (CheckpointError otherwise).
    """
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    from .registry import PRETRAINED

    cfg = PRETRAINED.get(name_or_repo_id)
    repo_id = cfg.hf_hub_id if cfg else name_or_repo_id
    rev = revision or (cfg.revision if cfg else None)
    if cfg is None and "/" not in repo_id:
        _raise_unknown(name_or_repo_id)
    try:
        folder = _download_checkpoint(
            repo_id, rev, token=token, cache_dir=cache_dir, local_files_only=local_files_only,
            force_download=force_download, with_card=True,
        )
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as err:
        if force_download:
            raise HubAccessError(
                f"cannot download {name_or_repo_id!r} ({repo_id}@{rev or 'main'}) again: "
                f"{_offline_reason(local_files_only)}, and force_download=True (--force) needs the Hub; "
                "drop --force to use the copy in the cache, or run this again while online"
            ) from err
        raise HubAccessError(
            f"cannot download {name_or_repo_id!r} ({repo_id}@{rev or 'main'}): {_offline_reason(local_files_only)} "
            f"and it is not in the cache ({_cache_location(cache_dir)}). Run this again while online"
        ) from err
    _verify_folder(folder, cfg.sha256 if cfg and rev == cfg.revision else None, f"{repo_id}@{rev or 'main'}")
    return folder


def _verify_folder(folder: Path, pinned: str | None, source: str) -> None:
    config = read_config(folder / CONFIG_NAME)
    files = weight_files(folder, config)
    digest = weights_sha256(folder, files)
    for expected, by in ((pinned, "the registry pins"), (config.get("weights", {}).get("sha256"), "its config.json records")):
        if expected and digest != expected.lower():
            raise CheckpointError(
                f"refusing {source}: the sha256 of its weights is {digest}, but {by} {expected}. The download is "
                "corrupted or the files were tampered with; delete the cached copy and download again"
            )


def _raise_unknown(name: str) -> None:
    import difflib

    from .registry import PRETRAINED

    close = difflib.get_close_matches(name, list(PRETRAINED), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise HubAccessError(
        f"{name!r} is not a local folder, a pretrained checkpoint ({', '.join(PRETRAINED) or 'none registered yet'}) "
        f"or a Hub repo id ('namespace/name').{hint}{_unpublished_hint(name)}"
    )


def _unpublished_hint(name: str) -> str:
    """What to do when `name` is a checkpoint trained in this source checkout, or a recipe not published yet."""
    cards = source_cards_dir()
    if cards is not None and (cards / name / CONFIG_NAME).is_file():
        return (
            f" This source checkout has a checkpoint folder {cards / name}: load it with "
            f"unet_zoo.from_pretrained({str(cards / name)!r})"
        )
    variant = variant_of(name)
    if variant is None:
        return ""
    return (
        f" The {name!r} checkpoint is not published yet: train it with `unet-zoo reproduce isbi --variant {variant}` "
        f"(it writes the folder cards/{name}/) and load that folder with unet_zoo.from_pretrained('cards/{name}')"
    )


def from_pretrained(
    name_or_path: str | Path,
    *,
    revision: str | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = torch.float32,
    strict: bool = True,
    local_files_only: bool | None = None,
    token: str | bool | None = None,
    cache_dir: str | Path | None = None,
    force_download: bool = False,
) -> nn.Module:
    """Load a trained U-Net: a registry checkpoint name, a Hub repo id written by unet_zoo, or a local folder.

    Returns the model in eval mode on `device` (default CPU) with floating tensors in `dtype`
    (float16-stored weights load as float32 unless dtype says otherwise; None keeps the stored dtype).
    Registry names use their pinned repo, revision and sha256 (a mismatch is refused). Offline
    (HF_HUB_OFFLINE=1, local_files_only=True or no network) the Hugging Face cache is used. Safetensors only.
    A source checkout whose ``cards/<name>/`` records the pinned sha256 in its config.json loads a registry
    name from there without any network (the weights are hashed again and must match the pin).
    Raises CheckpointError (bad files) or HubAccessError (repo/revision/token/offline problems).
    """
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    from .registry import PRETRAINED

    name = str(name_or_path)
    offline_only = bool(local_files_only)
    load = dict(device=device, dtype=dtype, strict=strict)
    if os.path.isdir(os.path.expanduser(name)):
        return load_folder(os.path.expanduser(name), **load)
    cfg = PRETRAINED.get(name)
    if cfg is None:
        if name.startswith((".", "/", "~")) or "\\" in name:
            raise CheckpointError(f"checkpoint folder {name} does not exist")
        if "/" not in name:
            _raise_unknown(name)
        # "cards/x" where ./cards exists is probably a mistyped folder rather than a Hub repo: say so on failure
        folder_note = f" (there is no local folder {name} either)" if os.path.isdir(name.split("/")[0]) else ""
        try:
            folder = _download_checkpoint(
                name, revision, token=token, cache_dir=cache_dir, local_files_only=offline_only, force_download=force_download
            )
        except (LocalEntryNotFoundError, OfflineModeIsEnabled) as err:
            raise HubAccessError(
                f"{name!r}{f'@{revision}' if revision else ''} is not in the Hugging Face cache "
                f"({_cache_location(cache_dir)}) and {_offline_reason(offline_only)}. "
                f"Run `unet-zoo download {name}` while online, then load it offline{folder_note}"
            ) from err
        except HubAccessError as err:
            if folder_note:
                raise HubAccessError(f"{err}{folder_note}") from err
            raise
        return load_folder(folder, source=f"{name}@{revision or 'main'}", **load)

    rev = revision or cfg.revision
    pinned = cfg.sha256 if rev == cfg.revision else None
    local = None if force_download else _source_card(name, pinned)
    if local is not None:  # a source checkout ships the pinned weights: no network needed
        return _as_registered(load_folder(local, expected_sha256=pinned, source=f"{local} ({name!r})", **load), cfg)
    if cfg.sha256 and pinned is None:
        warnings.warn(
            f"{name!r}: revision {rev!r} differs from the pinned {cfg.revision!r}, so its sha256 pin is not checked",
            stacklevel=2,
        )
    source = f"{name!r} ({cfg.hf_hub_id}@{rev})"
    try:
        folder = _download_checkpoint(
            cfg.hf_hub_id, rev, token=token, cache_dir=cache_dir, local_files_only=offline_only, force_download=force_download
        )
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as err:
        cards = source_cards_dir()
        stale = cards is not None and (cards / name / CONFIG_NAME).is_file()  # not the pinned weights (else loaded above)
        raise HubAccessError(
            f"checkpoint {source} is not in the Hugging Face cache ({_cache_location(cache_dir)}) and "
            f"{_offline_reason(offline_only)}. Run `unet-zoo download {name}` while online, or train it "
            "yourself with `unet-zoo reproduce isbi`"
            + (f"; {cards / name} holds other weights than the pinned ones ({pinned}), so it is not used" if stale else "")
        ) from err
    return _as_registered(load_folder(folder, expected_sha256=pinned, source=source, **load), cfg)


def _source_card(name: str, pinned: str | None) -> Path | None:
    """``cards/<name>/`` of a source checkout when its config.json records the pinned weights digest, else None."""
    cards = source_cards_dir()
    if cards is None or not pinned or not (cards / name / CONFIG_NAME).is_file():
        return None
    try:
        recorded = read_config(cards / name / CONFIG_NAME).get("weights", {}).get("sha256")
    except CheckpointError:
        return None
    return cards / name if recorded == pinned.lower() else None


def _as_registered(model: nn.Module, cfg: Any) -> nn.Module:
    """Check that a loaded registry checkpoint is the architecture the registry says; attach its config."""
    if model.model_name != cfg.architecture:
        raise CheckpointError(
            f"{model.checkpoint_source} holds a {model.model_name!r} model, but the registry says {cfg.name!r} is a "
            f"{cfg.architecture!r}"
        )
    model.pretrained_cfg = cfg
    return model


def _check_folder_for_push(folder: Path) -> None:
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder; give the checkpoint folder written by save_pretrained")
    if not (folder / CARD_NAME).is_file():
        raise CheckpointError(f"{folder} has no {CARD_NAME} model card; write one with model.save_pretrained")
    load_folder(folder)  # config, files, digest, names and shapes: publish only what loads


def push_folder(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Upload a checkpoint folder (e.g. cards/<name>/) exactly as it is to Hub repo `repo_id`; returns the commit URL.

    The folder must load (config.json, weights, README.md); a training run folder (``unet-zoo train`` output) is
    converted to one (weights of its last checkpoint, float32, a generated card) and that is uploaded. The repo is created if needed (private or public);
    `revision` names the branch to commit to (created from main if missing). Weight files present on the Hub
    but not in the folder are deleted in the same commit.
    """
    from huggingface_hub import HfApi

    folder = Path(folder)
    if folder.is_dir() and is_run_folder(folder):  # a training run: publish its model as a checkpoint folder
        with tempfile.TemporaryDirectory(prefix="unet_zoo-push-") as tmp:
            hub_folder = save_pretrained(load_run_folder(folder), Path(tmp) / folder.name, card_data={"repo_id": repo_id})
            return push_folder(hub_folder, repo_id, private=private, revision=revision, token=token,
                               commit_message=commit_message or f"Upload training run {folder.name} with unet_zoo")
    _check_folder_for_push(folder)
    api = HfApi(token=token)
    repo_url = _hub_call(lambda: api.create_repo(repo_id, private=private, exist_ok=True), repo_id, None, "the repo")
    repo_id = repo_url.repo_id
    if revision and revision != "main":
        _hub_call(lambda: api.create_branch(repo_id, branch=revision, exist_ok=True), repo_id, revision, "the branch")
    info = _hub_call(
        lambda: api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            revision=revision,
            commit_message=commit_message or f"Upload {folder.name} with unet_zoo",
            delete_patterns=["*.safetensors", "*.safetensors.index.json"],
        ),
        repo_id,
        revision,
        "the upload",
    )
    return info.commit_url


# --- the mixin -----------------------------------------------------------------------------------


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
        card is README.md text to use as is; card_data feeds the generated card (see unet_zoo.hub.save_pretrained).
        """
        return save_pretrained(
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
        card_data = {"repo_id": repo_id, **(card_data or {})}
        with tempfile.TemporaryDirectory(prefix="unet_zoo-push-") as tmp:
            folder = Path(tmp) / repo_id.replace("/", "--")
            self.save_pretrained(folder, dtype=dtype, card=card, card_data=card_data, max_shard_size=max_shard_size)
            return push_folder(
                folder, repo_id, private=private, revision=revision, token=token, commit_message=commit_message
            )

    @classmethod
    def from_pretrained(cls: type[T], name_or_path: str | Path, **kwargs: Any) -> T:  # type: ignore[override]
        """`unet_zoo.from_pretrained`, checking that the checkpoint holds an instance of this class."""
        model = from_pretrained(name_or_path, **kwargs)
        if not isinstance(model, cls):
            raise CheckpointError(
                f"{name_or_path} holds a {type(model).__name__} ({getattr(model, 'model_name', '?')!r}), not a "
                f"{cls.__name__}; load it with unet_zoo.from_pretrained"
            )
        return model

    def generate_model_card(self, *args: Any, **kwargs: Any) -> ModelCard:
        """The model card save_pretrained writes, as a huggingface_hub.ModelCard."""
        name, model_args = model_identity(self)
        info = {**(getattr(self, "pretrained_info", None) or {}), **kwargs}
        text = render_model_card(
            name,
            model_args,
            params=sum(p.numel() for p in self.parameters()),
            metrics=info.get("metrics"),
            training=info.get("training"),
            checkpoint_name=info.get("checkpoint_name"),
            repo_id=info.get("repo_id"),
        )
        return ModelCard(text)

    def _save_pretrained(self, save_directory: Path) -> None:
        save_weights(self, save_directory)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision: str | None, cache_dir: str | Path | None,
                         force_download: bool, local_files_only: bool, token: str | bool | None, **model_kwargs: Any):
        return cls.from_pretrained(
            model_id, revision=revision, cache_dir=cache_dir, force_download=force_download,
            local_files_only=local_files_only, token=token, **model_kwargs,
        )


__all__ = [
    "CheckpointError",
    "HubAccessError",
    "HubMixin",
    "download",
    "file_sha256",
    "from_pretrained",
    "load_folder",
    "push_folder",
    "save_pretrained",
    "weights_sha256",
]
