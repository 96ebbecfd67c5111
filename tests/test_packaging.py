"""Packaging: every sub-package is declared, and a wheel (a non-editable install) carries the recipes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from unet_zoo.training.recipes import PACKAGE_RECIPES_DIR, available_recipes, tomllib  # tomllib: or tomli on 3.10

ROOT = Path(__file__).resolve().parent.parent


def setuptools_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_subpackage_is_declared():
    """pyproject lists packages explicitly (for the recipes mapping): a new sub-package must be added."""
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "unet_zoo").rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert found <= set(setuptools_config()["packages"]), "add the new sub-package to pyproject.toml"


def test_recipes_are_mapped_into_the_package():
    config = setuptools_config()
    assert config["package-dir"]["unet_zoo._recipes"] == "recipes"
    assert config["package-data"]["unet_zoo._recipes"] == ["*.toml"]
    assert (PACKAGE_RECIPES_DIR.parent.name, PACKAGE_RECIPES_DIR.name) == ("unet_zoo", "_recipes")
    assert sorted(p.stem for p in (ROOT / "recipes").glob("*.toml")) == available_recipes()


@pytest.mark.slow
def test_every_third_party_import_is_a_dependency():
    """A module unet_zoo imports (at the top or inside a function) must be installed by `pip install unet-zoo`
    or, for optional features, by one of its extras."""
    import ast
    import re
    from importlib.metadata import packages_distributions

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    normalise = lambda name: re.sub(r"[-_.]+", "-", name).lower()  # noqa: E731
    extras = [dep for name, deps in project.get("optional-dependencies", {}).items() if name != "test" for dep in deps]
    # optional extras (e.g. export) count too: their modules are imported inside the functions that need them
    declared = {normalise(re.split(r"[<>=!~;\[ ]", dep, maxsplit=1)[0]) for dep in [*project["dependencies"], *extras]}
    distributions = packages_distributions()
    missing = {}
    for path in sorted((ROOT / "unet_zoo").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for top in {name.split(".")[0] for name in names}:
                if top in sys.stdlib_module_names or top == "unet_zoo":
                    continue
                provided = {normalise(d) for d in distributions.get(top, [top])}
                if not provided & declared:
                    missing[top] = str(path.relative_to(ROOT))
    assert not missing, f"imported but not in [project] dependencies: {missing}"


@pytest.mark.slow
def test_wheel_ships_recipes_and_the_installed_package_finds_them(tmp_path):
    pytest.importorskip("setuptools")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        if (ROOT / name).is_file():
            shutil.copy(ROOT / name, src / name)
    for folder in ("unet_zoo", "recipes"):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "dist"
    out.mkdir()
    build = subprocess.run(
        [sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_wheel({str(out)!r})"],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = out.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    recipes = available_recipes()
    assert recipes and all(f"unet_zoo/_recipes/{r}.toml" in names for r in recipes)
    assert "unet_zoo/cli/__init__.py" in names
    assert "unet_zoo/napari/napari.yaml" in names  # the napari manifest the entry point names

    # Unpacked like pip installs it, with no source checkout around: recipes load from unet_zoo/_recipes.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = (
        f"import sys, json; sys.path.insert(0, {str(site)!r}); import unet_zoo, unet_zoo.training.recipes as r; "
        "print(json.dumps([unet_zoo.__file__, str(r.RECIPES_DIR), r.available_recipes(), "
        "r.load_recipe('isbi-original').data.tile]))"
    )
    run = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    module, recipes_dir, found, tile = json.loads(run.stdout.strip().splitlines()[-1])
    assert Path(module).is_relative_to(site), "the probe imported the source checkout, not the wheel"
    assert Path(recipes_dir) == site / "unet_zoo" / "_recipes"
    assert found == recipes and tile == 572


OPTIONAL_EXTRAS = ("zarr", "distributed", "dask", "onnx", "onnxruntime", "openvino", "napari", "qtpy", "bioimageio")


def test_star_import_works_without_the_optional_extras():
    """`from unet_zoo import *` with every optional extra made unimportable: the base install's public names load."""
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {OPTIONAL_EXTRAS!r}:
            raise ImportError("blocked for the test: " + name)
sys.meta_path.insert(0, Block())
from unet_zoo import *
import unet_zoo
missing = [name for name in unet_zoo.__all__ if name not in globals()]
assert not missing, missing
print("imported", len(unet_zoo.__all__))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("imported")
