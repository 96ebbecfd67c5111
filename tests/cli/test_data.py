"""`unet-zoo data info` and `unet-zoo data download isbi` through typer's CliRunner."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from unet_zoo.cli import app

runner = CliRunner()


def test_info_missing_folder(tmp_path):
    result = runner.invoke(app, ["data", "info", "--data-dir", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert "missing" in result.output and "unet-zoo data download isbi" in result.output


def test_info_json_on_env_folder(tmp_path, monkeypatch, isbi_dir):
    monkeypatch.setenv("UNET_ZOO_DATA_DIR", str(isbi_dir))
    result = runner.invoke(app, ["data", "info", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["source"] == "$UNET_ZOO_DATA_DIR" and info["ready"]
    assert info["files"]["train-labels.tif"]["shape"] == [30, 512, 512]
    assert info["files"]["train-volume.tif"]["verified"].startswith("file sha256")
    assert info["split"]["validation"] == [24, 25, 26, 27, 28, 29]


def test_info_table(isbi_dir):
    result = runner.invoke(app, ["data", "info", "--data-dir", str(isbi_dir), "--no-checksums"])
    assert result.exit_code == 0, result.output
    assert "30x512x512" in result.output and "validation slices 24..29" in " ".join(result.output.split())


def test_download_offline_message(tmp_path):
    result = runner.invoke(
        app, ["data", "download", "isbi", "--data-dir", str(tmp_path), "--url", "http://127.0.0.1:9/", "--timeout", "2"]
    )
    assert result.exit_code == 2
    out = " ".join(result.output.split())
    assert "could not download train-volume.tif" in out and str(tmp_path) in out


def test_download_from_local_mirror(tmp_path, isbi_dir):
    result = runner.invoke(app, ["data", "download", "isbi", "--data-dir", str(tmp_path), "--url", isbi_dir.as_uri()])
    assert result.exit_code == 0, result.output
    assert result.output.count("file sha256 (rebuilt)") == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test-volume.tif", "train-labels.tif", "train-volume.tif"]


def test_unknown_dataset():
    result = runner.invoke(app, ["data", "download", "mnist"])
    assert result.exit_code == 2 and "unknown dataset 'mnist'" in result.output
