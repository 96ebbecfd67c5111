"""The Hugging Face Hub: loading a published checkpoint (`load_registry_checkpoint`) or a Hub repo
(`load_hub_checkpoint`), `download`, `push_folder` and `push_to_hub`.

Users load through `unet_zoo.from_pretrained` (`unet_zoo.hub.factory`), which parses the source and calls the
loaders here. A published checkpoint (``unet_zoo.list_pretrained()``) has a pinned Hub repo, revision and weights
sha256 (`unet_zoo.models.registry.PRETRAINED`). The folder format itself (config.json, safetensors, shards,
digests) is `unet_zoo.hub.serialization`; its names are re-exported here (``save_pretrained``,
``CheckpointError``, ...).

Downloads go through ``huggingface_hub`` (its cache, ``revision``, ``HF_TOKEN``, ``HF_ENDPOINT``,
``HF_HUB_OFFLINE`` and ``local_files_only`` behave as everywhere in that ecosystem); its errors become
`HubAccessError` / `CheckpointError` messages that say what to do.

Every model loaded here carries its `Provenance` (kind "registry" or "hub", the repo, revision and sha256).
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
    model_card_text,
    model_identity,
    read_config,
    read_folder,
    read_run_folder,
    read_weights,
    save_pretrained,
    save_weights,
    weight_files,
    weights_sha256,
)
from unet_zoo.hub.sources import SourceError, parse_source, source_cards_dir
from unet_zoo.models.provenance import provenance_of, set_provenance
from unet_zoo.models.registry import PRETRAINED, PretrainedCfg
from unet_zoo.utils.files import OWNER_FILE, file_sha256

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
    """Download a checkpoint (a published name, ``owner/repo`` or ``hf-hub:owner/repo[@revision]``, as
    `unet_zoo.hub.sources.parse_source` reads them) into the HF cache for offline use; returns its folder.

    The files (config.json, weights, README.md) are verified: a registry name's weights must match its pinned
    sha256, any checkpoint's weights the digest recorded in its config.json (CheckpointError otherwise).
    """
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    parsed = parse_source(name_or_repo_id)
    if parsed.kind not in ("registry", "hub"):
        raise SourceError(f"{name_or_repo_id!r} is a folder: download takes a checkpoint name or a Hub repo id")
    cfg = PRETRAINED.get(parsed.location) if parsed.kind == "registry" else None
    repo_id = cfg.hf_hub_id if cfg else parsed.location
    rev = revision or parsed.revision or (cfg.revision if cfg else None)
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


def load_registry_checkpoint(
    name: str,
    *,
    revision: str | None = None,
    load: dict[str, Any],
    token: str | bool | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    force_download: bool = False,
) -> nn.Module:
    """The published checkpoint `name` (`PRETRAINED`): from a source checkout's ``cards/<name>/`` when it holds the
    pinned files, else from the Hub or its cache; the weights and config.json must match their pins (a revision
    other than the pinned one skips the pins, with a warning). `load` holds read_folder's device, dtype, strict."""
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    cfg = PRETRAINED[name]
    if os.path.isdir(name):  # the rule is explicit (a published name is the registry's); say so all the same
        logger.warning(
            "%r is a published checkpoint, so its pinned weights are loaded, not the folder %s in the working "
            "directory; pass ./%s to load that folder",
            name,
            os.path.abspath(name),
            name,
        )
    rev = revision or cfg.revision
    pinned = cfg.sha256 if rev == cfg.revision else None
    pinned_config = cfg.config_sha256 if rev == cfg.revision else None
    local = None if force_download else _source_card(name, pinned, pinned_config)
    if local is not None:  # a source checkout ships the pinned files: no network needed
        return _as_registered(read_folder(local, expected_sha256=pinned, source=f"{local} ({name!r})", **load), cfg, rev)
    if cfg.sha256 and pinned is None:
        warnings.warn(
            f"{name!r}: revision {rev!r} differs from the pinned {cfg.revision!r}, so its sha256 pin is not checked",
            stacklevel=3,
        )
    source = f"{name!r} ({cfg.hf_hub_id}@{rev})"
    try:
        folder = _download_checkpoint(
            cfg.hf_hub_id, rev, token=token, cache_dir=cache_dir, local_files_only=local_files_only, force_download=force_download
        )
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as err:
        cards = source_cards_dir()
        card = cards / name if cards is not None else None
        stale = card is not None and (card / CONFIG_NAME).is_file()  # not the pinned weights (else loaded above)
        raise HubAccessError(
            f"checkpoint {source} is not in the Hugging Face cache ({_cache_location(cache_dir)}) and "
            f"{_offline_reason(local_files_only)}. Run `unet-zoo download {name}` while online, or train it "
            "yourself with `unet-zoo reproduce isbi`"
            + (f"; {card} holds other weights than the pinned ones ({pinned}), so it is not used" if stale else "")
        ) from err
    check_config_pin(folder, pinned_config, source)
    return _as_registered(read_folder(folder, expected_sha256=pinned, source=source, **load), cfg, rev)


def load_hub_checkpoint(
    repo_id: str,
    *,
    revision: str | None = None,
    load: dict[str, Any],
    token: str | bool | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    force_download: bool = False,
) -> nn.Module:
    """The checkpoint of Hub repo `repo_id` (written by unet_zoo) at `revision`, from the Hub or its cache; its
    weights must match the digest its config.json records. `load` holds read_folder's device, dtype, strict."""
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    # "cards/x" where ./cards exists is probably a mistyped folder rather than a Hub repo: say so on failure
    folder_note = f" (there is no local folder {repo_id} either)" if os.path.isdir(repo_id.split("/")[0]) else ""
    try:
        folder = _download_checkpoint(
            repo_id, revision, token=token, cache_dir=cache_dir, local_files_only=local_files_only, force_download=force_download
        )
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as err:
        raise HubAccessError(
            f"{repo_id!r}{f'@{revision}' if revision else ''} is not in the Hugging Face cache "
            f"({_cache_location(cache_dir)}) and {_offline_reason(local_files_only)}. "
            f"Run `unet-zoo download {repo_id}` while online, then load it offline{folder_note}"
        ) from err
    except HubAccessError as err:
        if folder_note:
            raise HubAccessError(f"{err}{folder_note}") from err
        raise
    model = read_folder(folder, source=f"{repo_id}@{revision or 'main'}", **load)
    record = provenance_of(model).updated(kind="hub", source=repo_id, revision=revision or "main")
    return set_provenance(model, record)


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


def _as_registered(model: nn.Module, cfg: PretrainedCfg, revision: str) -> nn.Module:
    """Check that a loaded registry checkpoint is the architecture the registry says; record it as that checkpoint."""
    record = provenance_of(model)
    if record.architecture != cfg.architecture:
        raise CheckpointError(
            f"{record.source} holds a {record.architecture!r} model, but the registry says {cfg.name!r} is a {cfg.architecture!r}"
        )
    registered = record.updated(kind="registry", source=cfg.hf_hub_id, checkpoint=cfg.name, revision=revision)
    return set_provenance(model, registered)


def _check_folder_for_push(folder: Path) -> None:
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder; give the checkpoint folder written by save_pretrained")
    if not (folder / CARD_NAME).is_file():
        raise CheckpointError(f"{folder} has no {CARD_NAME} model card; write one with model.save_pretrained")
    read_folder(folder)  # config, files, digest, names and shapes: publish only what loads


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
            hub_folder = save_pretrained(read_run_folder(folder), Path(tmp) / folder.name, card_data={"repo_id": repo_id})
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


def push_to_hub(
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


__all__ = [
    "CARD_DATA_KEYS",
    "CARD_NAME",
    "CONFIG_NAME",
    "CheckpointError",
    "HubAccessError",
    "RUN_RECIPE_NAME",
    "WEIGHTS_INDEX_NAME",
    "WEIGHTS_NAME",
    "build_model",
    "check_config_pin",
    "check_state_dict",
    "checkpoint_config",
    "download",
    "file_sha256",
    "is_run_folder",
    "load_hub_checkpoint",
    "load_registry_checkpoint",
    "model_card_text",
    "model_identity",
    "push_folder",
    "push_to_hub",
    "read_config",
    "read_weights",
    "save_pretrained",
    "save_weights",
    "weight_files",
    "weights_sha256",
]
