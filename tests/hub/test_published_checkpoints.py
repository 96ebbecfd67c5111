"""The published checkpoints in cards/: complete, pinned, loadable by name offline and through the Hub client,
and good at what they were trained for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import unet_zoo
from tests.conftest import ORG_TOKEN, REPO_ROOT
from unet_zoo.cli import app
from unet_zoo.hub.pretrained import push_folder, weights_sha256
from unet_zoo.models.provenance import provenance_of
from unet_zoo.models.registry import PRETRAINED
from unet_zoo.utils.files import file_sha256

CARDS = REPO_ROOT / "cards"
PUBLISHED = sorted(PRETRAINED)
CARD_FILES = ("model.safetensors", "config.json", "README.md", "predictions.png", "curves.png", "scores.json")
runner = CliRunner()


def _no_download(*args, **kwargs):
    pytest.fail("the source checkout's card holds the pinned weights: nothing should be downloaded")


def test_every_published_checkpoint_has_a_card_folder():
    assert PUBLISHED, "no checkpoint is registered in unet_zoo.models.registry.PRETRAINED"
    assert sorted(p.name for p in CARDS.iterdir() if p.is_dir()) == PUBLISHED


@pytest.mark.parametrize("name", PUBLISHED)
def test_card_folder_is_complete_float16_and_matches_the_registry(name):
    folder, cfg = CARDS / name, PRETRAINED[name]
    assert all((folder / f).is_file() for f in CARD_FILES), sorted(p.name for p in folder.iterdir())
    assert weights_sha256(folder) == cfg.sha256
    assert file_sha256(folder / "config.json") == cfg.config_sha256  # config.json is pinned too
    config = json.loads((folder / "config.json").read_text())
    assert config["model_name"] == cfg.architecture and config["weights"]["dtype"] == "float16"
    scores = json.loads((folder / "scores.json").read_text())
    for key, value in cfg.metrics.items():  # the registry's numbers are the card's, not typed by hand
        assert scores[key] == pytest.approx(value, abs=5e-7), key
    assert scores["stored_weights"]["equal"] is True
    card = (folder / "README.md").read_text()
    assert f'from_pretrained("{name}")' in card and "0.000353" in card  # usage and the paper's Table 1


@pytest.mark.parametrize("name", PUBLISHED)
def test_committed_card_is_what_the_card_renderer_writes_from_the_folder(name, tmp_path):
    """One renderer: the committed README.md is refresh_run_card's output for the folder's config, scores and recipe."""
    import shutil

    from unet_zoo.training.run_card import refresh_run_card

    copy = tmp_path / name
    copy.mkdir()
    for file in ("config.json", "scores.json", "predictions.png", "curves.png"):
        shutil.copyfile(CARDS / name / file, copy / file)
    assert refresh_run_card(copy).read_text() == (CARDS / name / "README.md").read_text()


@pytest.mark.parametrize("name", PUBLISHED)
def test_load_by_name_without_network_in_a_source_checkout(name, monkeypatch):
    monkeypatch.setattr(unet_zoo.hub.pretrained, "_download_checkpoint", _no_download)
    cfg = PRETRAINED[name]
    model = unet_zoo.from_pretrained(name)
    record = provenance_of(model)
    assert record.architecture == cfg.architecture and record.checkpoint == name and record.sha256 == cfg.sha256
    assert record.kind == "registry" and record.source == cfg.hf_hub_id and record.revision == cfg.revision
    assert next(model.parameters()).dtype == torch.float32  # float16 on disk, float32 in use
    again = unet_zoo.from_pretrained(CARDS / name)  # the same files, as a folder
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_list_pretrained_shows_the_checkpoints_with_their_scores():
    result = runner.invoke(app, ["list", "--pretrained"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for name in PUBLISHED:
        assert name in result.output
        assert f"{PRETRAINED[name].metrics['vrand_thinned']:.4g}" in result.output


@pytest.mark.slow
def test_published_isbi_small_segments_a_held_out_slice(isbi_dir):
    """Held-out slice 24 (never trained on), without TTA: close to the card's scores, far from an untrained network."""
    from unet_zoo.evaluation.metrics import isbi_scores
    from unet_zoo.experiments.isbi2012.data import load_isbi
    from unet_zoo.inference.tiling import predict_tiled

    data = load_isbi(isbi_dir)
    image, label = data.images[24], data.labels[24]
    trained = isbi_scores(predict_tiled(unet_zoo.from_pretrained("isbi-small"), image)[1], label, warping=False)
    torch.manual_seed(0)
    untrained = isbi_scores(predict_tiled(unet_zoo.create_model("small"), image)[1], label, warping=False)
    assert trained["vrand_thinned"] > 0.95 and untrained["vrand_thinned"] < 0.5, (trained, untrained)
    assert trained["rand_error"] < 0.2 < untrained["rand_error"]
    assert trained["pixel_error"] < 0.5 * untrained["pixel_error"]


@pytest.mark.slow
def test_predict_with_a_published_name_on_the_command_line(tmp_path):
    import tifffile

    image = tmp_path / "crop.tif"
    rng = np.random.default_rng(0)
    tifffile.imwrite(image, rng.integers(0, 255, (96, 96), dtype=np.uint8))
    result = runner.invoke(app, ["predict", "isbi-small", str(image), "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    prob = tifffile.imread(tmp_path / "out" / "crop_prob.tif")
    assert prob.shape == (96, 96) and 0 <= prob.min() <= prob.max() <= 1


@pytest.mark.slow
def test_published_cards_through_the_hub_client_then_offline(hub_server, fresh_cache, monkeypatch):
    """Push every card to the test Hub under its registry repo, load each by name from a fresh cache as an
    installed package would (no cards/ folder; sha256 pin checked), then again with HF_HUB_OFFLINE=1."""
    for name in PUBLISHED:
        push_folder(CARDS / name, PRETRAINED[name].hf_hub_id, token=ORG_TOKEN)
    monkeypatch.setattr(unet_zoo.hub.pretrained, "source_cards_dir", lambda: None)
    expected = {}
    for name in PUBLISHED:
        model = unet_zoo.from_pretrained(name, cache_dir=fresh_cache)
        side = 204 if provenance_of(model).args["padding"] == 0 else 208  # valid convolutions: 12 + 16k; padded: 16k
        x = torch.rand(1, 1, side, side, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            expected[name] = float(model(x).sum())
        reference = unet_zoo.from_pretrained(CARDS / name)
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))
    script = textwrap.dedent(
        """
        import sys, torch, unet_zoo
        from huggingface_hub import constants
        assert constants.HF_HUB_OFFLINE
        unet_zoo.hub.pretrained.source_cards_dir = lambda: None  # as installed from a wheel
        for name in sys.argv[1:]:
            model = unet_zoo.from_pretrained(name)
            side = 204 if unet_zoo.provenance_of(model).args["padding"] == 0 else 208
            x = torch.rand(1, 1, side, side, generator=torch.Generator().manual_seed(0))
            with torch.no_grad():
                print(name, float(model(x).sum()))
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(fresh_cache)}
    out = subprocess.run([sys.executable, "-c", script, *PUBLISHED], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    offline = {line.split()[0]: float(line.split()[1]) for line in out.stdout.splitlines()}
    assert offline == pytest.approx(expected, rel=1e-5)
