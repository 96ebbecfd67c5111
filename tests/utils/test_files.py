import os
import stat

import pytest

from unet_zoo.utils import files
from unet_zoo.utils.files import (
    OWNER_FILE,
    atomic_write_bytes,
    atomic_write_with,
    cache_dir,
    check_output_path,
    check_replaceable,
    file_sha256,
    files_sha256,
    mark_owned,
    owner_record,
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


def test_publish_folder_replaces_only_when_asked_and_only_its_own_folders(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    staging = staging_folder(target)
    (staging / "a.txt").write_text("new")
    with pytest.raises(FileExistsError, match="overwrite"):
        publish_folder(staging, target)
    with pytest.raises(FileExistsError, match="unet_zoo did not create"):  # a user's folder, even with overwrite
        publish_folder(staging, target, overwrite=True)
    assert sorted(p.name for p in target.iterdir()) == ["old.txt"] and staging.is_dir()
    (target / "old.txt").unlink()
    publish_folder(staging, target, overwrite=True)  # an empty folder holds nothing to lose
    assert sorted(p.name for p in target.iterdir()) == sorted(["a.txt", OWNER_FILE]) and owner_record(target)
    staging = staging_folder(target)
    (staging / "b.txt").write_text("newer")
    publish_folder(staging, target, overwrite=True)  # marked as ours when published: replaced
    assert sorted(p.name for p in target.iterdir()) == sorted(["b.txt", OWNER_FILE])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no staging or old copy left behind


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda p: (p.mkdir(), (p / "mine.txt").write_text("x")), id="folder"),
        pytest.param(lambda p: p.write_text("x"), id="file"),
        pytest.param(lambda p: (p.mkdir(), (p / OWNER_FILE).write_text("{not json")), id="broken-marker"),
        pytest.param(lambda p: (p.mkdir(), (p / OWNER_FILE).write_text('{"written_by": "other"}')), id="foreign-marker"),
        pytest.param(lambda p: (p.mkdir(), mark_owned(p, "training run")), id="another-kind"),
    ],
)
def test_only_marked_or_empty_folders_are_replaceable(tmp_path, make):
    """The one check every --overwrite goes through: anything not marked by unet_zoo (as this kind) is kept."""
    path = tmp_path / "out"
    make(path)
    with pytest.raises(FileExistsError, match="choose another path"):
        check_replaceable(path, what="Hub folder")
    check_replaceable(tmp_path / "missing", what="Hub folder")
    (tmp_path / "empty").mkdir()
    check_replaceable(tmp_path / "empty", what="Hub folder")
    mark_owned(tmp_path / "empty", "Hub folder")
    check_replaceable(tmp_path / "empty", what="Hub folder")
    check_replaceable(tmp_path / "empty")


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


def _plain_mode(folder) -> int:
    """The mode `open(path, "w")` gives a new file under this process's umask."""
    with open(folder / "plain-open.txt", "w") as f:
        f.write("x")
    return stat.S_IMODE(os.stat(folder / "plain-open.txt").st_mode)


def test_every_file_the_package_writes_has_the_mode_of_a_plain_open(tmp_path):
    import numpy as np

    import unet_zoo
    from unet_zoo.data.images import write_prediction
    from unet_zoo.exporters import export

    model = unet_zoo.create_model("small", base_channels=4, depth=2)
    unet_zoo.save_pretrained(model, tmp_path / "checkpoint")  # config.json, model.safetensors, README.md
    unet_zoo.save_pretrained(model, tmp_path / "sharded", max_shard_size=20_000)  # shards and their index
    export(model, "torchscript", tmp_path / "model.pt")
    image = np.zeros((16, 16), np.uint8)
    write_prediction(tmp_path / "preds", "a", image, np.full((16, 16), 0.7, np.float32))
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"model.safetensors", "model.safetensors.index.json", "model.pt", "a_prob.tif"}
    expected = _plain_mode(tmp_path)
    assert {p.relative_to(tmp_path).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in written} == {
        p.relative_to(tmp_path).as_posix(): expected for p in written
    }


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_temporaries_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    target = tmp_path / "model.onnx"
    host = files.socket.gethostname()
    stale_file = tmp_path / f".model.onnx.unet_zoo-{host}-{_dead_pid()}.abc123.tmp"
    stale_folder = tmp_path / f".model.onnx.unet_zoo-{host}-{_dead_pid()}.abc123.partial"
    running = tmp_path / f".model.onnx.unet_zoo-{host}-1.abc123.tmp"  # pid 1 is alive: a write in progress
    other_host = tmp_path / f".model.onnx.unet_zoo-elsewhere.invalid-{_dead_pid()}.abc123.tmp"
    unrelated = tmp_path / ".model.onnx.mine"
    for path in (stale_file, running, other_host, unrelated):
        path.write_bytes(b"x" * 100)
    stale_folder.mkdir()
    (stale_folder / "weights.bin").write_bytes(b"x")
    atomic_write_bytes(target, b"new")
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {"model.onnx", running.name, other_host.name, unrelated.name}
    staging_folder(target)  # a staged folder cleans the same way, and names itself so it can be cleaned
    assert running.exists()


@pytest.mark.parametrize(
    "case, kwargs, error, message",
    [
        ("below-a-file", {}, NotADirectoryError, "is a file, not a folder"),
        ("below-a-file", {"folder": True}, NotADirectoryError, "is a file, not a folder"),
        ("existing-folder", {}, IsADirectoryError, "a file is expected"),
        ("existing-file", {"folder": True}, NotADirectoryError, "a folder is expected"),
        ("existing-file", {}, FileExistsError, "already exists; pass overwrite=True"),
        ("folder-with-result", {"folder": True, "contents": ["r.json"]}, FileExistsError, "r.json already exists"),
        ("folder-with-folder", {"folder": True, "contents": ["r.json"]}, IsADirectoryError, "a file is expected"),
    ],
)
def test_check_output_path_refuses_what_cannot_be_written_and_creates_nothing(tmp_path, case, kwargs, error, message):
    (tmp_path / "file").write_text("keep")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "r.json").write_text("keep")
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "r.json").mkdir()
    path = {
        "below-a-file": tmp_path / "file" / "sub" / "out",
        "existing-folder": tmp_path / "folder",
        "existing-file": tmp_path / "file",
        "folder-with-result": tmp_path / "folder",
        "folder-with-folder": tmp_path / "nested",
    }[case]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(error, match=message):
        check_output_path(path, **kwargs)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_check_output_path_accepts_new_paths_and_overwrite_when_asked(tmp_path):
    (tmp_path / "file").write_text("keep")
    (tmp_path / "folder").mkdir()
    assert check_output_path(tmp_path / "new" / "deeper" / "a.json") == tmp_path / "new" / "deeper" / "a.json"
    assert check_output_path(tmp_path / "file", overwrite=True) == tmp_path / "file"
    assert check_output_path(tmp_path / "folder", folder=True, contents=["a", "b"]) == tmp_path / "folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder"]  # nothing created, no probe left


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc (a folder nobody can write, even root)")
@pytest.mark.parametrize("folder", [False, True])
def test_check_output_path_refuses_an_unwritable_place(folder):
    with pytest.raises(PermissionError, match="/proc is not writable"):
        check_output_path("/proc/unet-zoo-out", folder=folder)
