"""The checkpoint folder format: what `save_pretrained` writes and `load_folder` reads. No network.

A checkpoint folder (local, in the Hugging Face cache, or a Hub repo) holds:

- ``config.json``: ``{"model_name": <registry architecture>, "model_args": {...}, "library_name": "unet_zoo",
  "unet_zoo_version": ..., "weights": {"files": [...], "sha256": ..., "dtype": ...}, "pretrained": {...}}``;
  the registry builder and arguments that rebuild the network;
- ``model.safetensors`` (or shards ``model-0000i-of-0000n.safetensors`` + ``model.safetensors.index.json``):
  the state dict, safetensors only; nothing is ever unpickled;
- ``README.md``: the model card (`unet_zoo.hub.card.render_model_card`).

The weights digest (`weights_sha256`) is the sha256 of ``model.safetensors``, or, for a sharded
checkpoint, of the shards' bytes concatenated in file-name order (``cat model-*.safetensors | sha256sum``).
Registry entries (`unet_zoo.models.registry.PRETRAINED`) pin the Hub repo, the revision and this digest.

A training run folder (``unet-zoo train`` output: ``recipe.json`` + ``checkpoint.safetensors``) loads too.
Every model read here carries its `Provenance` (``unet_zoo.models.provenance``). Downloading and pushing live in
`unet_zoo.hub.pretrained`; the one way in for users, `unet_zoo.from_pretrained`, in `unet_zoo.hub.factory`.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unet_zoo._version import LIBRARY_NAME, __version__
from unet_zoo.hub.card import CARD_DATA_KEYS, CardInfo, render_model_card
from unet_zoo.hub.training_state import TRAINING_STATE_FILE, load_training_state
from unet_zoo.models.provenance import provenance_of, set_provenance
from unet_zoo.models.registry import MAX_PARAMETERS, ModelArgsError, create_model, expected_state_shapes, get_entry, list_models
from unet_zoo.utils.errors import InputError
from unet_zoo.utils.files import atomic_write_bytes, files_sha256, move_into_place
from unet_zoo.utils.segmentation_params import SegmentationParams

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
CARD_NAME = "README.md"
RUN_RECIPE_NAME = "recipe.json"  # a training run folder: recipe.json + TRAINING_STATE_FILE (unet_zoo.hub.training_state)
_SAFE_FILE = re.compile(r"^[A-Za-z0-9_.-]+\.safetensors(\.index\.json)?$")


class CheckpointError(InputError):
    """A checkpoint's files are wrong: not unet_zoo's, corrupt, truncated, tampered, or not matching the model."""


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
    except UnicodeDecodeError as err:
        raise CheckpointError(
            f"{path} is not UTF-8 text ({err.reason} at byte {err.start}): not a unet_zoo config.json; save the model again"
        ) from None
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
    if not isinstance(config["model_name"], str):
        raise CheckpointError(f"{path}: 'model_name' must be a registered architecture name, got {config['model_name']!r}")
    check_segmentation_block(config, str(path))
    return config


def check_segmentation_block(config: dict[str, Any], source: str) -> None:
    """CheckpointError unless config["pretrained"]["segmentation"] (the checkpoint's segmentation defaults), when
    present, is a valid `SegmentationParams` block (types, finiteness and ranges)."""
    pretrained = config.get("pretrained") or {}
    if not isinstance(pretrained, dict):
        raise CheckpointError(f"{source}: 'pretrained' must be a JSON object, got {type(pretrained).__name__}")
    block = pretrained.get("segmentation")
    if block is None:
        return
    try:
        if not isinstance(block, dict):
            raise ValueError(f"it must be a JSON object, got {block!r}")
        SegmentationParams.from_dict(block)
    except (TypeError, ValueError) as err:
        raise CheckpointError(
            f"{source}: bad segmentation defaults in 'pretrained.segmentation' ({err}); fix or remove that block"
        ) from None


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
    """(registry architecture name, full JSON-serialisable arguments) that rebuild `model` via create_model: its
    `Provenance`, or for a network built directly (``UNet(...)``) the first architecture of its class and the
    arguments it records (``init_args``)."""
    record = provenance_of(model)
    name: str | None = record.architecture if record.architecture in list_models() else None
    args: dict[str, Any] | None = dict(record.args) if name is not None else None
    if name is None or not args:
        init_args = dict(getattr(model, "init_args", None) or {})  # the zoo's networks record their arguments
        same_class = [n for n in list_models() if get_entry(n).model_class is type(model)]
        if not same_class:
            raise ValueError(
                f"cannot save a {type(model).__name__}: no registered architecture builds it; "
                "register one with unet_zoo.register_model or build the model with unet_zoo.create_model"
            )
        name = name or same_class[0]
        args = {**get_entry(name).default_args, **init_args}
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
        header = (
            8
            + len(
                json.dumps(
                    {k: {"dtype": "BF16", "shape": list(v.shape), "data_offsets": [1 << 40] * 2} for k, v in state.items()}
                )
            )
            + 64
        )
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
            move_into_place(tmp / name, folder / name)  # with the mode a plain open() gives (the writer makes 0600)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    stale = re.compile(r"^model(-\d{5}-of-\d{5})?\.safetensors(\.index\.json)?$")
    for old in folder.iterdir():
        if stale.match(old.name) and old.name not in written:
            old.unlink()
    index_first = sorted(written, key=lambda n: (not n.endswith(".index.json"), n))
    return index_first


def model_card_text(model: nn.Module, card_data: dict[str, Any] | None = None) -> str:
    """The README.md `save_pretrained` writes for `model`: what its provenance's card records, updated with
    `card_data` (any of ``CARD_DATA_KEYS``, passed to `unet_zoo.hub.card.render_model_card`)."""
    info = {**provenance_of(model).card, **(card_data or {})}
    name, args = model_identity(model)
    known = {key: info[key] for key in CARD_DATA_KEYS if info.get(key) is not None}
    return render_model_card(CardInfo(name, args, params=sum(p.numel() for p in model.parameters()), **known))


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


def save_weights_and_config(
    model: nn.Module,
    save_directory: str | Path,
    *,
    dtype: torch.dtype | None = None,
    card_data: dict[str, Any] | None = None,
    max_shard_size: int | None = None,
) -> Path:
    """Write model.safetensors (or shards) and config.json into `save_directory` (no card); returns it.

    A folder written so loads with `load_folder`; `save_pretrained` adds the README.md. card_data as there.
    """
    folder = Path(save_directory)
    known = dict(provenance_of(model).card)
    extra = dict(card_data or {})
    unknown = sorted(set(extra) - set(CARD_DATA_KEYS))
    if unknown:
        raise ValueError(f"unknown card_data keys {unknown}; allowed: {', '.join(CARD_DATA_KEYS)}")
    info = {**known, **extra}
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
    return folder


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
    "description", "limitations", "held_out_scores", "held_out_scores_without_tta", "stored_weights", "notes",
    "deviations", "figures"} (see `unet_zoo.hub.card.render_model_card`); metrics/training/checkpoint_name are
    also stored under config["pretrained"].
    """
    folder = save_weights_and_config(model, save_directory, dtype=dtype, card_data=card_data, max_shard_size=max_shard_size)
    if card is None:
        card = model_card_text(model, card_data)
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


def read_header_shapes(folder: str | Path, files: list[str]) -> tuple[dict[str, tuple[int, ...]], int]:
    """({tensor name: shape}, total bytes of the tensors) from the safetensors headers of `files` alone: the
    tensors are not read (the files are memory-mapped, nothing is allocated). CheckpointError if unreadable."""
    from safetensors import SafetensorError, safe_open

    folder = Path(folder)
    shapes: dict[str, tuple[int, ...]] = {}
    nbytes = 0
    sizes = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2, "U16": 2}
    for name in files:
        if name.endswith(".index.json"):
            continue
        path = folder / name
        try:
            with safe_open(str(path), framework="pt") as handle:
                for key in handle.keys():  # noqa: SIM118  safe_open is not a mapping
                    part = handle.get_slice(key)
                    shape = tuple(int(n) for n in part.get_shape())
                    shapes[key] = shape
                    nbytes += math.prod(shape) * sizes.get(part.get_dtype(), 1)
        except (SafetensorError, OSError, ValueError) as err:
            raise CheckpointError(
                f"{path} is not a readable safetensors file ({err}): it is truncated or corrupted. Delete it and "
                "download it again (force_download=True / `unet-zoo download NAME`) or save the model again"
            ) from err
    return shapes, nbytes


def expected_shapes(config: dict[str, Any], source: str = "") -> dict[str, tuple[int, ...]]:
    """The state-dict shapes of the model `config` describes, found on the ``meta`` device (nothing allocated)
    after its model_args were checked against the architecture's bounds; CheckpointError otherwise."""
    args = dict(config.get("model_args", {}))
    if "pretrained_encoder" in args:
        args["pretrained_encoder"] = False
    where = f"config.json of {source}" if source else "config.json"
    try:
        return expected_state_shapes(config["model_name"], args, where)
    except ModelArgsError as err:
        raise CheckpointError(f"{err}; fix config.json or save the model again") from None
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(
            f"{where} does not describe a model this unet_zoo can build "
            f"({err.args[0] if err.args else err}); upgrade unet_zoo or check model_name/model_args"
        ) from None


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], *, strict: bool = True, source: str = "") -> None:
    """Compare every tensor name and shape of `state` with `model`; CheckpointError on any mismatch.

    With strict=False, missing and unexpected names only warn; shape mismatches always fail.
    """
    found = {k: tuple(v.shape) for k, v in state.items()}
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    check_shapes(expected, found, strict=strict, source=source, model_desc=repr(provenance_of(model).architecture))


def check_shapes(
    expected: dict[str, tuple[int, ...]],
    state: dict[str, tuple[int, ...]],
    *,
    strict: bool = True,
    source: str = "",
    model_desc: str = "",
) -> None:
    """Compare tensor names and shapes `state` (from a file) with `expected` (the model's); CheckpointError on a
    mismatch (missing or unexpected names only warn with strict=False)."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k}: file {state[k]} vs model {expected[k]}" for k in expected if k in state and state[k] != expected[k]]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing tensor(s) ({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''})")
    if unexpected:
        problems.append(
            f"{len(unexpected)} unexpected tensor(s) ({', '.join(unexpected[:4])}{', ...' if len(unexpected) > 4 else ''})"
        )
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es) ({'; '.join(shapes[:4])}{'; ...' if len(shapes) > 4 else ''})")
    if not problems:
        return
    what = f"the weights in {source}" if source else "the weights"
    message = (
        f"{what} do not match the model rebuilt from config.json ({model_desc}): {'; '.join(problems)}. "
        "config.json and the weights come from different models; save the model again with model.save_pretrained"
    )
    if shapes or strict:
        raise CheckpointError(message)
    warnings.warn(message + " (loaded anyway: strict=False)", stacklevel=3)


def build_model(config: dict[str, Any], source: str = "") -> nn.Module:
    """Rebuild the (randomly initialised) network a config.json describes, through the registry."""
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
    """Deprecated: ``unet_zoo.from_pretrained(Path(folder))`` (or ``"./folder"``) loads a folder."""
    warnings.warn(
        "unet_zoo.hub.serialization.load_folder is deprecated and will be removed in the next release; "
        "use unet_zoo.from_pretrained(Path(folder)) or unet_zoo.from_pretrained('./folder')",
        FutureWarning,
        stacklevel=2,
    )
    return read_folder(folder, device=device, dtype=dtype, strict=strict, expected_sha256=expected_sha256, source=source)


def read_folder(
    folder: str | Path,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = torch.float32,
    strict: bool = True,
    expected_sha256: str | None = None,
    source: str | None = None,
) -> nn.Module:
    """Build and load the model of a checkpoint folder (or a training run folder); eval mode, on `device`,
    floating tensors in `dtype`. What `unet_zoo.from_pretrained` runs for every folder, downloaded or local.

    dtype=None keeps the stored dtype. expected_sha256 (a registry pin) is compared with `weights_sha256`;
    the digest recorded in config.json is always checked. CheckpointError on any inconsistency. The model's
    `Provenance` has kind "folder" (or "run"), `source` (default: the folder), the digest and config's card.
    """
    folder = Path(folder)
    source = source or str(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder")
    if not (folder / CONFIG_NAME).is_file():
        if is_run_folder(folder):
            return read_run_folder(folder, device=device, dtype=dtype, strict=strict)
        raise CheckpointError(
            f"no {CONFIG_NAME} in {folder}: not a unet_zoo checkpoint (save one with model.save_pretrained) "
            f"nor a training run folder ({RUN_RECIPE_NAME} + {TRAINING_STATE_FILE}, written by `unet-zoo train`)"
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
    # names, shapes and size from the headers and the meta device, before any tensor or the model is allocated
    expected = expected_shapes(config, source)
    header, nbytes = read_header_shapes(folder, files)
    check_shapes(expected, header, strict=strict, source=source, model_desc=repr(config["model_name"]))
    if nbytes > 8 * MAX_PARAMETERS:
        raise CheckpointError(f"{source}: its tensors hold {nbytes:,} bytes, more than a checkpoint may ({8 * MAX_PARAMETERS:,})")
    state = read_weights(folder, files)
    model = build_model(config, source)
    floating = [v.dtype for v in state.values() if v.is_floating_point()]
    model.load_state_dict(state, strict=strict)
    target = dtype if dtype is not None else (floating[0] if floating else None)
    model.to(device=device, dtype=target)
    model.eval()
    card = dict(config.get("pretrained") or {})
    return set_provenance(model, provenance_of(model).updated(kind="folder", source=source, sha256=digest, card=card))


def is_run_folder(folder: str | Path) -> bool:
    """Whether `folder` is a training run folder (``recipe.json`` + ``checkpoint.safetensors``) without a config.json."""
    folder = Path(folder)
    return (
        (folder / RUN_RECIPE_NAME).is_file() and (folder / TRAINING_STATE_FILE).is_file() and not (folder / CONFIG_NAME).is_file()
    )


def read_run_folder(
    folder: str | Path,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = torch.float32,
    strict: bool = True,
) -> nn.Module:
    """The model of a training run folder (``unet-zoo train`` output) at its last checkpointed step, in eval mode.

    The architecture comes from ``recipe.json``, the weights from ``checkpoint.safetensors``. The card of the
    model's `Provenance` (kind "run") says which recipe and step it is (``training``), so a card written from it
    says so too.
    """
    folder = Path(folder)
    try:
        recipe = json.loads((folder / RUN_RECIPE_NAME).read_text())
        model_cfg = recipe["model"]
        config = {"model_name": model_cfg["name"], "model_args": model_cfg.get("args", {})}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{folder / RUN_RECIPE_NAME} is not a unet_zoo recipe record ({err})") from err
    if not isinstance(config["model_args"], dict):
        raise CheckpointError(f"{folder / RUN_RECIPE_NAME}: the model's 'args' must be a JSON object")
    expected_shapes(config, str(folder / RUN_RECIPE_NAME))  # bounded before the checkpoint or the model is allocated
    try:
        ckpt = load_training_state(folder / TRAINING_STATE_FILE)
    except (OSError, ValueError, KeyError) as err:
        raise CheckpointError(f"cannot read the training checkpoint {folder / TRAINING_STATE_FILE} ({err})") from err
    model = build_model(config, str(folder))
    check_state_dict(model, ckpt.model, strict=strict, source=str(folder / TRAINING_STATE_FILE))
    model.load_state_dict(ckpt.model, strict=strict)
    model.to(device=device, dtype=dtype)
    model.eval()
    name = recipe.get("recipe", {}).get("name", "")
    total = recipe.get("train", {}).get("steps")
    card = {
        "description": f"training run {folder.name} of recipe {name!r} at step {ckpt.step}" + (f" of {total}" if total else ""),
        "training": {
            "recipe": f"{name} (run folder {folder.name})",
            "steps": ckpt.step,
            "time_s": ckpt.extra.get("train_seconds"),
        },
    }
    return set_provenance(model, provenance_of(model).updated(kind="run", source=str(folder), card=card))


__all__ = [
    "CARD_DATA_KEYS",
    "CARD_NAME",
    "CONFIG_NAME",
    "CheckpointError",
    "RUN_RECIPE_NAME",
    "WEIGHTS_INDEX_NAME",
    "WEIGHTS_NAME",
    "build_model",
    "check_segmentation_block",
    "check_shapes",
    "check_state_dict",
    "expected_shapes",
    "checkpoint_config",
    "is_run_folder",
    "load_folder",
    "read_folder",
    "read_run_folder",
    "model_card_text",
    "model_identity",
    "read_config",
    "read_header_shapes",
    "read_weights",
    "save_pretrained",
    "save_weights_and_config",
    "save_weights",
    "weight_files",
    "weights_sha256",
]
