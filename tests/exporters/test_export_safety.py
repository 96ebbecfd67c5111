"""Exports pack only regular files inside the model folder and are named as their format.

Two classes: (1) any model-folder file the export reads (the card, README.md) that is a symlink, resolves
outside the folder, is not a regular file or is not UTF-8 is refused with one line naming it, and nothing is
written; (2) a file name whose suffix belongs to no format or to another format is refused before any work.
"""

from __future__ import annotations

import os

import pytest

import unet_zoo
from unet_zoo.exporters import export
from unet_zoo.exporters.api import ACCEPTED_SUFFIXES, FORMATS
from unet_zoo.utils.errors import InputError
from unet_zoo.utils.files import read_folder_file


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "model"
    unet_zoo.save_pretrained(unet_zoo.create_model("small", base_channels=4, depth=2), path)
    return path


def _secret(tmp_path):
    secret = tmp_path / "token.txt"
    secret.write_text("hf_SECRET_TOKEN")
    return secret


def _symlink_outside(folder, tmp_path):
    (folder / "README.md").unlink()
    (folder / "README.md").symlink_to(_secret(tmp_path))


def _symlink_inside(folder, tmp_path):
    (folder / "notes.md").write_text("# card")
    (folder / "README.md").unlink()
    (folder / "README.md").symlink_to(folder / "notes.md")


def _folder_instead(folder, tmp_path):
    (folder / "README.md").unlink()
    (folder / "README.md").mkdir()


def _not_utf8(folder, tmp_path):
    (folder / "README.md").write_bytes(b"# caf\xe9 card\n")


@pytest.mark.parametrize("spoil", [_symlink_outside, _symlink_inside, _folder_instead, _not_utf8])
def test_read_folder_file_refuses_anything_but_a_regular_file_inside(folder, tmp_path, spoil):
    spoil(folder, tmp_path)
    if spoil is _not_utf8:
        assert read_folder_file(folder, "README.md").startswith(b"# caf")  # bytes are fine; the export decodes
        return
    with pytest.raises(InputError) as caught:
        read_folder_file(folder, "README.md", what="model card")
    assert "\n" not in str(caught.value) and "README.md" in str(caught.value)


@pytest.mark.parametrize("name", ["../model/README.md", "/etc/passwd", "sub/README.md", ".."])
def test_read_folder_file_refuses_names_that_leave_the_folder(folder, name):
    with pytest.raises(InputError, match="plain file name"):
        read_folder_file(folder, name)


@pytest.mark.slow
@pytest.mark.parametrize("spoil", [_symlink_outside, _symlink_inside, _folder_instead, _not_utf8])
def test_a_bioimageio_export_never_packs_what_a_card_points_at(folder, tmp_path, spoil):
    pytest.importorskip("bioimageio.spec", reason="bioimage.io export needs the export extra")
    spoil(folder, tmp_path)
    out = tmp_path / "package.zip"
    with pytest.raises(InputError) as caught:
        export(unet_zoo.from_pretrained(str(folder)), "bioimageio", out)
    assert "README.md" in str(caught.value) and "cannot export" not in str(caught.value)  # blamed on the card
    assert not out.exists() and not any(p.suffix == ".zip" for p in tmp_path.iterdir())


WRONG_NAMES = [
    (fmt, name)
    for fmt in FORMATS
    for name in ("m.onnx", "m.pt", "m.zip", "m.bin", "m")
    if not name.endswith(ACCEPTED_SUFFIXES[fmt])
]


@pytest.mark.parametrize(("fmt", "name"), WRONG_NAMES)
def test_an_export_named_as_another_format_is_refused_before_work(tmp_path, fmt, name, monkeypatch):
    from unet_zoo.exporters import api

    monkeypatch.setattr(api, "_onnx", lambda *a: pytest.fail("exported despite the wrong suffix"))
    monkeypatch.setattr(api, "_torchscript", lambda *a: pytest.fail("exported despite the wrong suffix"))
    monkeypatch.setattr(api, "export_bioimageio", lambda *a, **k: pytest.fail("exported despite the wrong suffix"))
    with pytest.raises(InputError) as caught:
        export(unet_zoo.create_model("small", base_channels=4, depth=2), fmt, tmp_path / name)
    assert fmt in str(caught.value) and ACCEPTED_SUFFIXES[fmt][0] in str(caught.value)
    assert not os.listdir(tmp_path)
