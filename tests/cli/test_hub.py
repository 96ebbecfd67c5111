"""`unet-zoo push` and `unet-zoo download` against the test Hub."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

import unet_zoo
from unet_zoo.cli import app
from unet_zoo.hub.pretrained import weights_sha256
from unet_zoo.models.registry import PRETRAINED, PretrainedCfg, register_pretrained

runner = CliRunner()


def text(result) -> str:
    """The command's output with rich's line wrapping undone."""
    return " ".join(result.output.split())


@pytest.fixture
def card_dir(tmp_path):
    torch.manual_seed(0)
    folder = tmp_path / "cards" / "cli-small"
    unet_zoo.save_pretrained(unet_zoo.create_model("small", base_channels=4), folder, card_data={"checkpoint_name": "cli-small"})
    return folder


def test_push_uploads_the_folder_and_prints_the_commit_url(hub_server, hub_token, card_dir):
    result = runner.invoke(app, ["push", str(card_dir), "--repo-id", "testuser/cli-small", "--token", hub_token, "--private"])
    assert result.exit_code == 0, result.output
    repo = hub_server.repos[("model", "testuser/cli-small")]
    assert repo.private and f"/testuser/cli-small/commit/{repo.branches['main']}" in result.output.replace("\n", "")
    assert hub_server.read("testuser/cli-small", "model.safetensors") == (card_dir / "model.safetensors").read_bytes()
    result = runner.invoke(
        app, ["push", str(card_dir), "--repo-id", "testuser/cli-small", "--token", hub_token, "--revision", "v2"]
    )
    assert result.exit_code == 0, result.output
    assert "v2" in repo.branches


def test_push_errors_are_clear(hub_server, hub_token, card_dir, tmp_path):
    result = runner.invoke(app, ["push", str(card_dir), "--repo-id", "testuser/cli-bad", "--token", "hf_wrong"])
    assert result.exit_code == 2 and "HTTP 401" in text(result)
    result = runner.invoke(app, ["push", str(tmp_path / "missing"), "--repo-id", "testuser/cli-bad", "--token", hub_token])
    assert result.exit_code == 2 and "is not a folder" in text(result)
    (card_dir / "README.md").unlink()
    result = runner.invoke(app, ["push", str(card_dir), "--repo-id", "testuser/cli-bad", "--token", hub_token])
    assert result.exit_code == 2 and "no README.md" in text(result)
    assert ("model", "testuser/cli-bad") not in hub_server.repos


def test_download_fetches_a_registry_checkpoint_into_the_cache(hub_server, hub_token, card_dir, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cli-cache"))
    url = unet_zoo.hub.pretrained.push_folder(card_dir, "testuser/cli-download", token=hub_token)
    commit = url.rsplit("/", 1)[-1]
    register_pretrained(
        PretrainedCfg(
            name="cli-download",
            architecture="small",
            hf_hub_id="testuser/cli-download",
            revision=commit,
            sha256=weights_sha256(card_dir),
        )
    )
    try:
        result = runner.invoke(app, ["download", "cli-download"])
        assert result.exit_code == 0, result.output
        assert commit in text(result) and "(verified)" in text(result)
        snapshot = tmp_path / "cli-cache" / "models--testuser--cli-download" / "snapshots" / commit
        assert {p.name for p in snapshot.iterdir()} == {"config.json", "model.safetensors", "README.md"}
        result = runner.invoke(app, ["download", "cli-download", "--revision", "no-such-branch"])
        assert result.exit_code == 2 and "revision 'no-such-branch' not found" in text(result)
    finally:
        PRETRAINED.pop("cli-download", None)
    result = runner.invoke(app, ["download", "cli-downlaod"])
    assert result.exit_code == 2 and "is not a published checkpoint" in text(result)


def test_push_with_the_hub_unreachable_is_a_clean_error(card_dir, monkeypatch):
    """The endpoint is a port where nothing listens: connection refused."""
    from huggingface_hub import constants

    from tests.conftest import _free_port

    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{_free_port()}")  # nothing listens there
    result = runner.invoke(app, ["push", str(card_dir), "--repo-id", "testuser/cli-small", "--token", "hf_x"])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    assert "could not reach the Hub" in text(result) and "HF_ENDPOINT" in text(result)
