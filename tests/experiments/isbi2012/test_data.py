"""unet_zoo.experiments.isbi2012.data: folder resolution, validation errors on tiny tifs, download offline, real data,
and the data source it registers."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from unet_zoo.data.sources import load_source, source_names
from unet_zoo.experiments.isbi2012 import data
from unet_zoo.experiments.isbi2012.data import DatasetNotFoundError, find_data_dir, load_isbi, resolve_data_dir


def write_isbi(folder: Path, rng: np.random.Generator, test: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic ISBI folder: random (30, 512, 512) uint8 volumes, 0/255 labels."""
    folder.mkdir(parents=True, exist_ok=True)
    images = rng.integers(0, 256, data.SHAPE, dtype=np.uint8)
    labels = np.where(rng.random(data.SHAPE) < 0.8, 255, 0).astype(np.uint8)
    tifffile.imwrite(folder / "train-volume.tif", images)
    tifffile.imwrite(folder / "train-labels.tif", labels)
    if test:
        tifffile.imwrite(folder / "test-volume.tif", images[::-1])
    return images, labels


def test_resolve_data_dir_order(tmp_path, monkeypatch):
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_dir() == tmp_path / "xdg" / "unet_zoo" / "isbi2012"
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "env"))
    assert resolve_data_dir() == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir(str(tmp_path / "arg")) == tmp_path / "arg"


def _touch_isbi(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in data.REQUIRED_FILES:
        (folder / name).write_bytes(b"")
    return folder


def test_find_data_dir_argument_then_env_then_cache(tmp_path, monkeypatch):
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cache = _touch_isbi(tmp_path / "xdg" / "unet_zoo" / "isbi2012")
    env, arg = _touch_isbi(tmp_path / "env"), _touch_isbi(tmp_path / "arg")
    assert find_data_dir() == cache
    monkeypatch.setenv(data.ENV_VAR, str(env))
    assert find_data_dir() == env
    assert find_data_dir(arg) == arg and find_data_dir(str(arg)) == arg
    (env / "train-labels.tif").unlink()
    with pytest.raises(DatasetNotFoundError, match="train-labels.tif not found in"):
        find_data_dir()  # the variable names a folder: it is used, never silently passed over for the cache


def test_find_data_dir_error_says_all_three_ways(tmp_path, monkeypatch):
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with pytest.raises(DatasetNotFoundError) as info:
        find_data_dir()
    message = str(info.value)
    assert "\n" not in message
    for needle in ("--data-dir", data.ENV_VAR, str(tmp_path / "xdg" / "unet_zoo" / "isbi2012"), "unet-zoo data download isbi"):
        assert needle in message
    assert message.index("--data-dir") < message.index(data.ENV_VAR) < message.index("cache folder")


def test_load_synthetic(tmp_path, rng):
    images, labels = write_isbi(tmp_path, rng)
    loaded = load_isbi(tmp_path)
    np.testing.assert_array_equal(loaded.images, images)
    np.testing.assert_array_equal(loaded.labels, labels // 255)
    assert loaded.labels.dtype == np.uint8 and set(np.unique(loaded.labels)) == {0, 1}
    np.testing.assert_array_equal(loaded.test_images, images[::-1])
    assert loaded.data_dir == tmp_path


def test_load_uses_env_var(tmp_path, rng, monkeypatch):
    write_isbi(tmp_path, rng, test=False)
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    loaded = load_isbi()
    assert loaded.test_images is None and loaded.data_dir == tmp_path


def test_missing_folder_message(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load_isbi(tmp_path / "nowhere")
    msg = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    for needle in (
        "train-volume.tif",
        "train-labels.tif",
        str(tmp_path / "nowhere"),
        "--data-dir",
        data.ENV_VAR,
        "unet-zoo data download isbi",
    ):
        assert needle in msg


def test_missing_file_names_it(tmp_path, rng):
    write_isbi(tmp_path, rng)
    (tmp_path / "train-labels.tif").unlink()
    with pytest.raises(DatasetNotFoundError, match="train-labels.tif not found in"):
        load_isbi(tmp_path)


def test_truncated_file(tmp_path, rng):
    write_isbi(tmp_path, rng)
    path = tmp_path / "train-volume.tif"
    path.write_bytes(path.read_bytes()[: 3 * 512 * 512])
    with pytest.raises(ValueError, match="train-volume.tif"):
        load_isbi(tmp_path)


@pytest.mark.parametrize("cut", [100, 1000])
def test_truncated_tail_is_refused(tmp_path, rng, cut):
    """Cutting the page headers at the end of a stack leaves the pixels readable (tifffile only logs and
    rebuilds the stack from the first page); the file is still truncated and must be refused, by name."""
    write_isbi(tmp_path, rng)
    path = tmp_path / "train-labels.tif"
    path.write_bytes(path.read_bytes()[:-cut])
    with pytest.raises(ValueError, match=r"train-labels.tif has a damaged TIFF structure.*truncated"):
        load_isbi(tmp_path)
    with pytest.raises(ValueError, match="train-labels.tif"):
        data.verify_file(path)


def test_wrong_shape(tmp_path, rng):
    write_isbi(tmp_path, rng)
    tifffile.imwrite(tmp_path / "train-volume.tif", np.zeros((30, 256, 256), np.uint8))
    with pytest.raises(ValueError, match=r"train-volume.tif has shape \(30, 256, 256\), expected \(30, 512, 512\)"):
        load_isbi(tmp_path)


def test_wrong_dtype(tmp_path, rng):
    write_isbi(tmp_path, rng)
    tifffile.imwrite(tmp_path / "test-volume.tif", np.zeros(data.SHAPE, np.uint16))
    with pytest.raises(ValueError, match="test-volume.tif has dtype uint16"):
        load_isbi(tmp_path)


def test_non_binary_labels(tmp_path, rng):
    write_isbi(tmp_path, rng)
    labels = np.full(data.SHAPE, 255, np.uint8)
    labels[0, 0, :3] = [0, 7, 128]
    tifffile.imwrite(tmp_path / "train-labels.tif", labels)
    with pytest.raises(ValueError, match=r"train-labels.tif is not a binary label stack: .*0, 7, 128, 255"):
        load_isbi(tmp_path)


def test_download_offline_fails_fast(tmp_path):
    start = time.perf_counter()
    with pytest.raises(DatasetNotFoundError) as info:
        # port 9 on localhost: connection refused at once, like an offline machine
        data.download_isbi(tmp_path, urls=["http://127.0.0.1:9/isbi/"], timeout=2)
    assert time.perf_counter() - start < 10
    msg = str(info.value)
    assert "train-volume.tif" in msg and str(tmp_path) in msg and "http://127.0.0.1:9/isbi/train-volume.tif" in msg
    assert not list(tmp_path.glob("*.tif")) and not list(tmp_path.glob(".*part"))


def test_download_from_file_url_verifies(tmp_path, isbi_dir):
    """file:// URLs go through the same code path as http(s): the shared copy verifies by its sha256."""
    report = data.download_isbi(tmp_path / "dl", urls=[isbi_dir.as_uri() + "/"], files=["train-labels.tif"])
    assert report == {"train-labels.tif": "file sha256 (rebuilt)"}
    assert data.file_sha256(tmp_path / "dl" / "train-labels.tif") == data.file_sha256(isbi_dir / "train-labels.tif")


def test_download_rejects_unknown_checksum(tmp_path, rng):
    src = tmp_path / "src"
    write_isbi(src, rng)
    with pytest.raises(DatasetNotFoundError, match="matches no known checksum"):
        data.download_isbi(tmp_path / "dl", urls=[src.as_uri()], files=["train-volume.tif"])
    assert not (tmp_path / "dl" / "train-volume.tif").exists()
    report = data.download_isbi(tmp_path / "dl", urls=[src.as_uri()], files=["train-volume.tif"], verify=False)
    assert report == {"train-volume.tif": "downloaded (not verified)"}


def test_pixel_hash_recognises_relayout(tmp_path, isbi_dir):
    """The same pixels in a differently written TIFF (compressed) verify by pixel hash."""
    stack = tifffile.imread(isbi_dir / "train-labels.tif")
    tifffile.imwrite(tmp_path / "train-labels.tif", stack, compression="zlib")
    assert data.verify_file(tmp_path / "train-labels.tif") == "pixel sha256"


def test_real_isbi(isbi_dir):
    loaded = load_isbi(isbi_dir)
    assert loaded.images.shape == loaded.labels.shape == (30, 512, 512)
    assert loaded.images.dtype == loaded.labels.dtype == np.uint8
    assert set(np.unique(loaded.labels)) == {0, 1}
    assert 0.6 < loaded.labels.mean() < 0.9  # mostly cell interior, thin membranes
    assert loaded.test_images is not None and loaded.test_images.shape == (30, 512, 512)
    info = data.describe(isbi_dir)
    assert info["ready"] and all("verified" in f for f in info["files"].values())


def test_the_experiment_registers_its_data_as_the_recipes_source(tmp_path, rng):
    images, labels = write_isbi(tmp_path, rng, test=False)
    assert "isbi2012" in source_names()
    stack = load_source("isbi2012", tmp_path)
    np.testing.assert_array_equal(stack.images, images)
    np.testing.assert_array_equal(stack.labels, (labels > 0).astype(np.uint8))
    assert stack.pixel_size == data.ISBI_PIXEL_SIZE_NM and str(tmp_path) in stack.description
    with pytest.raises(DatasetNotFoundError, match="train-volume.tif"):
        load_source("isbi2012", tmp_path / "empty")
