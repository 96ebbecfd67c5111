"""The Hugging Face Hub: `from_pretrained`, `download`, `push_folder` and the names they resolve.

`from_pretrained` takes a registry checkpoint name (``unet_zoo.list_pretrained()``: pinned Hub repo, revision
and weights sha256, see `unet_zoo.models.registry.PRETRAINED`), a Hub repo id written by unet_zoo, or a local
folder. The folder format itself (config.json, safetensors, shards, digests) is `unet_zoo.hub.serialization`;
its names are re-exported here (``unet_zoo.hub.pretrained.save_pretrained``, ``load_folder``, ``CheckpointError``, ...).

Downloads go through ``huggingface_hub`` (its cache, ``revision``, ``HF_TOKEN``, ``HF_ENDPOINT``,
``HF_HUB_OFFLINE`` and ``local_files_only`` behave as everywhere in that ecosystem); its errors become
`HubAccessError` / `CheckpointError` messages that say what to do.

``model.save_pretrained``, ``model.push_to_hub``, ``UNet.from_pretrained`` and ``create_model(name, pretrained=True)``
run the functions here (`unet_zoo.models.hub_mixin.hub_layer`).
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from unet_zoo.hub.serialization import (
    CARD_DATA_KEYS,
    CARD_NAME,
    CONFIG_NAME,
    RUN_RECIPE_NAME,
    WEIGHTS_INDEX_NAME,
    WEIGHTS_NAME,
    CheckpointError,
    _index_shards,
    build_model,
    check_state_dict,
    checkpoint_config,
    is_run_folder,
    load_folder,
    load_run_folder,
    model_card_text,
    model_identity,
    read_config,
    read_weights,
    save_pretrained,
    save_weights,
    weight_files,
    weights_sha256,
)
from unet_zoo.models.checkpoint_names import variant_of
from unet_zoo.models.hub_mixin import HubMixin
from unet_zoo.models.registry import PRETRAINED
from unet_zoo.utils.files import OWNER_FILE, file_sha256, source_checkout_root
from unet_zoo.utils.suggest import did_you_mean

logger = logging.getLogger(__name__)
_SHA = re.compile(r"^[0-9a-f]{40}$")

T = TypeVar("T")


class HubAccessError(OSError):
    """The Hub (or the cache, offline) cannot deliver a checkpoint: missing repo/revision, bad token, offline."""


# --- the Hub -------------------------------------------------------------------------------------


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP client's 'could not reach the server' errors (huggingface_hub 2.x uses httpx2, older httpx)."""
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
                "retry (force_download=True / `unet-zoo download ... --overwrite`) on a stable connection"
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
    root = source_checkout_root()
    return None if root is None else root / "cards"


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

    cfg = PRETRAINED.get(name_or_repo_id)
    repo_id = cfg.hf_hub_id if cfg else name_or_repo_id
    rev = revision or (cfg.revision if cfg else None)
    if cfg is None and "/" not in repo_id:
        _raise_unknown(name_or_repo_id)
    try:
        folder = _download_checkpoint(
            repo_id,
            rev,
            token=token,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            force_download=force_download,
            with_card=True,
        )
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as err:
        if force_download:
            raise HubAccessError(
                f"cannot download {name_or_repo_id!r} ({repo_id}@{rev or 'main'}) again: "
                f"{_offline_reason(local_files_only)}, and force_download=True (--overwrite) needs the Hub; "
                "drop it to use the copy in the cache, or run this again while online"
            ) from err
        raise HubAccessError(
            f"cannot download {name_or_repo_id!r} ({repo_id}@{rev or 'main'}): {_offline_reason(local_files_only)} "
            f"and it is not in the cache ({_cache_location(cache_dir)}). Run this again while online"
        ) from err
    pinned = cfg is not None and rev == cfg.revision
    _verify_folder(folder, cfg.sha256 if cfg and pinned else None, f"{repo_id}@{rev or 'main'}")
    check_config_pin(folder, cfg.config_sha256 if cfg and pinned else None, f"{repo_id}@{rev or 'main'}")
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


def check_config_pin(folder: Path, pinned: str | None, source: str) -> None:
    """Refuse a registry checkpoint whose config.json is not the bytes the registry pins (sha256 `pinned`)."""
    if not pinned:
        return
    digest = file_sha256(folder / CONFIG_NAME)
    if digest != pinned.lower():
        raise CheckpointError(
            f"refusing {source}: the sha256 of its config.json is {digest}, but the registry pins {pinned}. The "
            "download is corrupted or the file was changed after publishing; delete the cached copy and download again"
        )


def _raise_unknown(name: str) -> None:
    hint = did_you_mean(name, PRETRAINED)
    raise HubAccessError(
        f"{name!r} is not a local folder, a pretrained checkpoint ({', '.join(PRETRAINED) or 'none registered yet'}) "
        f"or a Hub repo id ('namespace/name').{hint}{unpublished_hint(name)}"
    )


def unpublished_hint(name: str) -> str:
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
        f" The {name!r} checkpoint is not published yet: train it with `unet-zoo reproduce isbi --recipe {name}-cpu` "
        f"(on a CPU, in resumable parts with --time-limit) or `unet-zoo reproduce isbi --variant {variant}` (on a GPU); "
        f"either writes the folder cards/{name}/, which then loads with unet_zoo.from_pretrained('cards/{name}')"
    )


def is_path_like(name: str) -> bool:
    """True when `name` is written as a path (``./x``, ``~/x``, ``/x``, ``a/b`` that exists, ``a\\b``), not a bare name.

    A bare registry name ("isbi-small") always means the registry's pinned checkpoint, even where the working
    directory holds a folder of that name; "owner/repo" is a Hub id unless such a folder exists.
    """
    if name.startswith((".", "/", "~")) or "\\" in name or os.path.isabs(name):
        return True
    return os.sep in name and os.path.isdir(name)


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

    name = str(name_or_path)
    offline_only = bool(local_files_only)
    load: dict[str, Any] = dict(device=device, dtype=dtype, strict=strict)
    cfg = None if isinstance(name_or_path, Path) or is_path_like(name) else PRETRAINED.get(name)
    if cfg is None and os.path.isdir(os.path.expanduser(name)):
        return load_folder(os.path.expanduser(name), **load)
    if cfg is not None and os.path.isdir(name):  # a registry name always means its pinned weights
        logger.warning(
            "%r is a registered checkpoint, so its pinned weights are loaded, not the folder %s in the working "
            "directory; pass ./%s to load that folder",
            name,
            os.path.abspath(name),
            name,
        )
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
    pinned_config = cfg.config_sha256 if rev == cfg.revision else None
    local = None if force_download else _source_card(name, pinned, pinned_config)
    if local is not None:  # a source checkout ships the pinned files: no network needed
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
        card = cards / name if cards is not None else None
        stale = card is not None and (card / CONFIG_NAME).is_file()  # not the pinned weights (else loaded above)
        raise HubAccessError(
            f"checkpoint {source} is not in the Hugging Face cache ({_cache_location(cache_dir)}) and "
            f"{_offline_reason(offline_only)}. Run `unet-zoo download {name}` while online, or train it "
            "yourself with `unet-zoo reproduce isbi`"
            + (f"; {card} holds other weights than the pinned ones ({pinned}), so it is not used" if stale else "")
        ) from err
    check_config_pin(folder, pinned_config, source)
    return _as_registered(load_folder(folder, expected_sha256=pinned, source=source, **load), cfg)


def _source_card(name: str, pinned: str | None, pinned_config: str | None = None) -> Path | None:
    """``cards/<name>/`` of a source checkout when its config.json records the pinned weights digest (and is the
    pinned config.json, where the registry pins one), else None."""
    cards = source_cards_dir()
    if cards is None or not pinned or not (cards / name / CONFIG_NAME).is_file():
        return None
    if pinned_config and file_sha256(cards / name / CONFIG_NAME) != pinned_config.lower():
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
    converted to one (weights of its last checkpoint, float32, a generated card) and that is uploaded. The repo
    is created if needed (private or public); `revision` names the branch to commit to (created from main if
    missing). Weight files present on the Hub
    but not in the folder are deleted in the same commit.
    """
    from huggingface_hub import HfApi

    folder = Path(folder)
    if folder.is_dir() and is_run_folder(folder):  # a training run: publish its model as a checkpoint folder
        with tempfile.TemporaryDirectory(prefix="unet_zoo-push-") as tmp:
            hub_folder = save_pretrained(load_run_folder(folder), Path(tmp) / folder.name, card_data={"repo_id": repo_id})
            return push_folder(
                hub_folder,
                repo_id,
                private=private,
                revision=revision,
                token=token,
                commit_message=commit_message or f"Upload training run {folder.name} with unet_zoo",
            )
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
            ignore_patterns=[OWNER_FILE],  # the local "written by unet_zoo" marker is not part of the model
        ),
        repo_id,
        revision,
        "the upload",
    )
    return info.commit_url


def push_model(
    model: nn.Module,
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
    """`save_pretrained` `model` into a temporary folder and `push_folder` it to `repo_id`; returns the commit URL."""
    card_data = {"repo_id": repo_id, **(card_data or {})}
    with tempfile.TemporaryDirectory(prefix="unet_zoo-push-") as tmp:
        folder = Path(tmp) / repo_id.replace("/", "--")
        save_pretrained(model, folder, dtype=dtype, card=card, card_data=card_data, max_shard_size=max_shard_size)
        return push_folder(folder, repo_id, private=private, revision=revision, token=token, commit_message=commit_message)


def load_instance_of(model_class: type[T], name_or_path: str | Path, **kwargs: Any) -> T:
    """`from_pretrained`, checking that the checkpoint holds an instance of `model_class` (CheckpointError if not)."""
    model = from_pretrained(name_or_path, **kwargs)
    if not isinstance(model, model_class):
        raise CheckpointError(
            f"{name_or_path} holds a {type(model).__name__} ({getattr(model, 'model_name', '?')!r}), not a "
            f"{model_class.__name__}; load it with unet_zoo.from_pretrained"
        )
    return model


__all__ = [
    "CARD_DATA_KEYS",
    "CARD_NAME",
    "CONFIG_NAME",
    "CheckpointError",
    "HubAccessError",
    "HubMixin",
    "RUN_RECIPE_NAME",
    "WEIGHTS_INDEX_NAME",
    "WEIGHTS_NAME",
    "build_model",
    "check_config_pin",
    "check_state_dict",
    "checkpoint_config",
    "download",
    "file_sha256",
    "from_pretrained",
    "is_path_like",
    "is_run_folder",
    "load_folder",
    "load_instance_of",
    "load_run_folder",
    "model_card_text",
    "model_identity",
    "push_folder",
    "push_model",
    "read_config",
    "read_weights",
    "save_pretrained",
    "save_weights",
    "source_cards_dir",
    "unpublished_hint",
    "weight_files",
    "weights_sha256",
]
