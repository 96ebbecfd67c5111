"""Nothing lost: a failed download leaves every file that was there as it was, and a full disk while a command
writes its outputs leaves no half set of them behind (so the same command runs again), each with one error line."""

from __future__ import annotations

import errno
import hashlib
import http.server
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from unet_zoo.cli import app
from unet_zoo.utils import files

runner = CliRunner()


def _text(result) -> str:
    return " ".join(result.output.split())


def _snapshot(folder: Path) -> dict[str, str]:
    """Every entry under `folder` (hidden ones too) with a digest of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
    }


def _tiff_bytes(tmp_path: Path, shape: tuple[int, ...]) -> bytes:
    path = tmp_path / "served.tif"
    tifffile.imwrite(path, np.zeros(shape, np.uint8))
    return path.read_bytes()


class _Mirror:
    """A loopback HTTP server answering every GET with `reply(path) -> (status, headers, body)`; counts requests."""

    def __init__(self, reply):
        mirror = self
        self.requests = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802  (http.server's name)
                mirror.requests += 1
                status, headers, body = reply(self.path)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _junk(_tmp):
    return lambda path: (200, {"Content-Length": "11"}, b"not a tiff!")


def _truncated(tmp):
    body = _tiff_bytes(tmp, (30, 512, 512))
    return lambda path: (200, {"Content-Length": str(len(body))}, body[: len(body) // 3])


def _wrong_shape(tmp):
    body = _tiff_bytes(tmp, (3, 64, 64))
    return lambda path: (200, {"Content-Length": str(len(body))}, body)


def _unknown_pixels(tmp):
    body = _tiff_bytes(tmp, (30, 512, 512))  # the right shape and dtype, but no known checksum
    return lambda path: (200, {"Content-Length": str(len(body))}, body)


def _missing(_tmp):
    return lambda path: (404, {"Content-Length": "0"}, b"")


@pytest.mark.parametrize("serve", [_junk, _truncated, _wrong_shape, _unknown_pixels, _missing])
def test_a_failed_download_leaves_every_existing_file_as_it_was(tmp_path, serve):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("train-volume.tif", "train-labels.tif"):
        (data / name).write_bytes(b"the user's own copy of " + name.encode())
    before = _snapshot(data)
    mirror = _Mirror(serve(tmp_path))
    try:
        args = ["data", "download", "isbi", "--data-dir", str(data), "--url", mirror.url, "--timeout", "5"]
        refused = runner.invoke(app, args)  # present files that do not verify are only replaced with --overwrite
        assert refused.exit_code == 2 and mirror.requests == 0, refused.output
        assert "--overwrite" in _text(refused) and _snapshot(data) == before
        failed = runner.invoke(app, [*args, "--overwrite"])
    finally:
        mirror.close()
    assert failed.exit_code == 2, failed.output
    assert mirror.requests >= 1 and "Traceback" not in failed.output and _text(failed).count("error:") == 1
    assert "could not download train-volume.tif" in _text(failed) and "left as it was" in _text(failed)
    assert _snapshot(data) == before  # nothing replaced, deleted or left behind (no temporary files)


def _a_file(tmp_path: Path) -> Path:
    (tmp_path / "data").write_text("a file")
    return tmp_path / "data"


def _under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "blocker").write_text("a file")
    return tmp_path / "blocker" / "data"


@pytest.mark.parametrize(("make", "message"), [(_a_file, "is an existing file"), (_under_a_file, "is a file, not a folder")])
def test_download_refuses_a_data_dir_it_cannot_write_before_downloading(tmp_path, make, message):
    data_dir = make(tmp_path)
    mirror = _Mirror(_junk(tmp_path))
    try:
        result = runner.invoke(app, ["data", "download", "isbi", "--data-dir", str(data_dir), "--url", mirror.url])
    finally:
        mirror.close()
    assert result.exit_code == 2 and mirror.requests == 0
    assert _text(result).startswith("error: --data-dir:") and message in _text(result) and "Traceback" not in result.output


@pytest.mark.parametrize("timeout", ["0", "-1", "nan"])
def test_download_timeout_must_be_positive(tmp_path, timeout):
    result = runner.invoke(app, ["data", "download", "isbi", "--data-dir", str(tmp_path), "--timeout", timeout])
    assert result.exit_code == 2 and "--timeout" in _text(result)


# --- a full disk while writing outputs -------------------------------------------------------------------------


def _disk_full_after(monkeypatch, good: int) -> None:
    """Every atomic write after the first `good` ones fails as on a full disk (when its data reaches the disk)."""
    real, calls = files.move_into_place, []

    def move(tmp, path):
        calls.append(path)
        if len(calls) > good:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(tmp, path)

    monkeypatch.setattr(files, "move_into_place", move)


@pytest.fixture
def two_probability_maps(tmp_path):
    from tests.segmentation.conftest import probabilities_of
    from unet_zoo.training.data import synthetic_cells

    _, labels = synthetic_cells(2, 64, seed=3)
    paths = []
    for i, label in enumerate(labels):
        paths.append(tmp_path / f"s{i}_prob.tif")
        tifffile.imwrite(paths[-1], probabilities_of(label, seed=i)[1].astype(np.float32))
    return paths


@pytest.fixture
def two_images(tmp_path):
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"img{i}.tif")
        tifffile.imwrite(paths[-1], np.random.default_rng(i).integers(0, 256, (48, 48), dtype=np.uint8))
    return paths


COMMANDS = {
    "segment": lambda maps, images, out: ["segment", "default", *map(str, maps), "--from-probabilities", "--out", str(out)],
    "predict": lambda maps, images, out: ["predict", "small", *map(str, images), "--out", str(out), "--device", "cpu"],
}


@pytest.mark.slow
@pytest.mark.parametrize("good", [0, 1, 3])  # the disk fills at the first file, within an input's files, or at the second input
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_full_disk_leaves_no_half_outputs_and_the_rerun_works(
    tmp_path, monkeypatch, two_probability_maps, two_images, command, good
):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("a file of the user's in the output folder")
    before = _snapshot(out)
    args = COMMANDS[command](two_probability_maps, two_images, out)
    with monkeypatch.context() as patch:
        _disk_full_after(patch, good)
        full = runner.invoke(app, args)
    assert full.exit_code == 2, full.output
    text = _text(full)
    assert "Traceback" not in full.output and text.count("error:") == 1
    assert "No space left on device" in text and "run the same command again" in text
    assert _snapshot(out) == before  # no outputs of the failed run, no temporary files
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert len(_snapshot(out)) > len(before)


def test_a_full_disk_during_a_download_keeps_the_file_that_was_there(tmp_path, monkeypatch, isbi_dir):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train-labels.tif").write_bytes(b"an older copy")
    before = _snapshot(data)
    _disk_full_after(monkeypatch, 0)
    args = ["data", "download", "isbi", "--data-dir", str(data), "--url", isbi_dir.as_uri(), "--overwrite"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "No space left on device" in _text(result) and _snapshot(data) == before
