"""`unet-zoo push` and `unet-zoo download`: publish a checkpoint folder, fetch one into the Hugging Face cache."""

from __future__ import annotations

from pathlib import Path

import typer

from unet_zoo.cli import options as opt
from unet_zoo.cli.app import app, console, fail
from unet_zoo.hub.pretrained import CheckpointError, HubAccessError, download, push_folder, weights_sha256
from unet_zoo.hub.sources import SourceError


@app.command("push")
def push_command(
    card_dir: Path = typer.Argument(..., help="checkpoint folder to publish as is, e.g. cards/isbi-original"),
    repo_id: str = typer.Option(..., "--repo-id", help="Hub repo, 'namespace/name' (created if missing)"),
    private: bool = typer.Option(False, "--private", help="create the repo as private"),
    revision: str | None = opt.revision_option("branch to commit to (default: main)"),
    token: opt.Token = None,
    message: str | None = typer.Option(None, "--message", "-m", help="commit message"),
) -> None:
    """Upload CARD_DIR (config.json, safetensors weights, README.md) exactly as it is; prints the commit URL."""
    try:
        url = push_folder(card_dir, repo_id, private=private, revision=revision, token=token, commit_message=message)
    except (CheckpointError, HubAccessError, ValueError) as err:
        raise fail(str(err)) from None
    console.print(f"pushed {card_dir} to {repo_id}: {url}", highlight=False, soft_wrap=True)


@app.command("download")
def download_command(
    name: str = typer.Argument(..., help="pretrained checkpoint name (e.g. isbi-original) or Hub repo id"),
    revision: str | None = opt.revision_option("branch, tag or commit (default: the pinned one)"),
    token: opt.Token = None,
    overwrite: bool = opt.overwrite_option("download again, replacing the cached copy"),
) -> None:
    """Download a checkpoint into the Hugging Face cache and verify it, for offline use (HF_HUB_OFFLINE=1) later."""
    try:
        folder = download(name, revision=revision, token=token, force_download=overwrite)
    except (CheckpointError, HubAccessError, SourceError) as err:
        raise fail(str(err)) from None
    console.print(f"{name}: {folder}", highlight=False, soft_wrap=True)
    console.print(f"weights sha256 {weights_sha256(folder)} (verified)", highlight=False, soft_wrap=True)
