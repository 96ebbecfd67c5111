import os
import stat

import pytest

from unet_zoo.utils import files
from unet_zoo.utils.files import (
    atomic_write_bytes,
    atomic_write_with,
    cache_dir,
    file_sha256,
    files_sha256,
    publish_folder,
    source_checkout_root,
    staging_folder,
)


def test_atomic_write_gives_the_mode_a_plain_open_would(tmp_path):
    written = atomic_write_bytes(tmp_path / "a.txt", "hello")
    with open(tmp_path / "plain.txt", "w") as f:
        f.write("hello")
    assert stat.S_IMODE(os.stat(written).st_mode) == stat.S_IMODE(os.stat(tmp_path / "plain.txt").st_mode)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    atomic_write_bytes(tmp_path / "a.bin", b"old")

    def fail(tmp):
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write_with(tmp_path / "a.bin", fail)
    assert (tmp_path / "a.bin").read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


def test_sha256_of_concatenated_files(tmp_path):
    (tmp_path / "x").write_bytes(b"ab")
    (tmp_path / "y").write_bytes(b"c")
    (tmp_path / "xy").write_bytes(b"abc")
    assert files_sha256([tmp_path / "x", tmp_path / "y"]) == file_sha256(tmp_path / "xy")


def test_publish_a_staged_folder(tmp_path):
    target = tmp_path / "cards" / "model"
    staging = staging_folder(target)
    assert staging.parent == target.parent and not target.exists()
    (staging / "a.txt").write_text("new")
    os.mkdir(tmp_path / "plain")
    assert stat.S_IMODE(os.stat(staging).st_mode) == stat.S_IMODE(os.stat(tmp_path / "plain").st_mode)
    assert publish_folder(staging, target) == target
    assert (target / "a.txt").read_text() == "new" and not staging.exists()


def test_publish_folder_replaces_only_when_asked(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    staging = staging_folder(target)
    (staging / "a.txt").write_text("new")
    with pytest.raises(FileExistsError, match="overwrite"):
        publish_folder(staging, target)
    assert sorted(p.name for p in target.iterdir()) == ["old.txt"] and staging.is_dir()
    publish_folder(staging, target, overwrite=True)
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no staging or old copy left behind


def test_cache_dir_follows_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir("weight_maps") == tmp_path / "xdg" / "unet_zoo" / "weight_maps"
    assert cache_dir() == tmp_path / "xdg" / "unet_zoo"
    monkeypatch.setenv("XDG_CACHE_HOME", "")  # empty means unset
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir("isbi2012", "x") == tmp_path / "home" / ".cache" / "unet_zoo" / "isbi2012" / "x"


def test_source_checkout_root_needs_pyproject_beside_the_package(tmp_path, monkeypatch):
    root = source_checkout_root()
    assert root is not None and (root / "pyproject.toml").is_file()  # the tests run from a checkout
    package = tmp_path / "site-packages" / "unet_zoo"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    monkeypatch.setattr(files, "PACKAGE_ROOT", package)
    assert source_checkout_root() is None  # installed: no pyproject.toml next to the package
    (tmp_path / "site-packages" / "pyproject.toml").write_text("")
    assert source_checkout_root() == tmp_path / "site-packages"
