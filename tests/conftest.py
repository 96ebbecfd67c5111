"""Shared fixtures. Tests run on 2 CPU cores without a GPU and without ../shared (skipping what needs it)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

# "auto" runs torch float32 in every test, module-scoped fixtures included, and nothing touches the user's
# runtime cache (see _runtime_choices_fixed below, which also lets tests opt in to the real decision)
os.environ["UNET_ZOO_CACHE"] = tempfile.mkdtemp(prefix="unet_zoo-cache-")
os.environ["UNET_ZOO_INFERENCE_PATH"] = "torch-fp32"
os.environ["UNET_ZOO_TRAINING_PRECISION"] = "fp32"
os.environ["UNET_ZOO_THREADS"] = str(torch.get_num_threads())  # the CLI sets torch's threads from it

REPO_ROOT = Path(__file__).resolve().parent.parent


# ==== the fast and the full test set ==============================================================
# `python3 -m pytest -q` (the README's command) runs the fast set: tests marked `slow` (more than a few seconds on
# 2 CPU cores) are deselected, and the summary says how many and how to run them. `--full` (what .ci/run passes)
# runs everything; so does a `-m` expression of your own (`-m slow`: only the slow ones) or naming a test by id.
FULL_OPTION = "--full"
_SLOW_DESELECTED = pytest.StashKey[int]()  # how many slow tests this run left out


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(FULL_OPTION, action="store_true", help="also run the tests marked slow (the full set, as CI runs it)")


def _named_by_id(config: pytest.Config) -> set[str]:
    """The test ids given on the command line (``tests/x.py::test_y``): those run even when slow."""
    return {arg.split("[")[0] for arg in config.args if "::" in arg}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption(FULL_OPTION) or config.getoption("markexpr"):
        return
    named = _named_by_id(config)
    slow = [
        item
        for item in items
        if item.get_closest_marker("slow") is not None and not any(item.nodeid.split("[")[0].endswith(n) for n in named)
    ]
    if slow:
        chosen = set(slow)
        items[:] = [item for item in items if item not in chosen]
        config.hook.pytest_deselected(items=slow)
        config.stash[_SLOW_DESELECTED] = len(slow)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    count = config.stash.get(_SLOW_DESELECTED, 0)
    if count:
        terminalreporter.write_line(
            f"{count} slow tests (more than a few seconds each) were deselected: "
            f"run everything with `python3 -m pytest -q {FULL_OPTION}` (as CI does), or only them with `-m slow`"
        )


@pytest.fixture(autouse=True)
def _runtime_choices_fixed(request, monkeypatch, tmp_path_factory):
    """Every test runs "auto" on the torch float32 path, whatever CPU runs it (AMX, AVX512-BF16, AVX2), so results
    compare with float32 references on any machine: ``$UNET_ZOO_INFERENCE_PATH`` = torch-fp32 and
    ``$UNET_ZOO_TRAINING_PRECISION`` = fp32 (subprocesses inherit them), the runtime cache in a fresh folder, the
    test process's thread count in ``$UNET_ZOO_THREADS`` (commands run in the test process set it), and
    a measurement (when flags leave several paths, e.g. ``--precision bf16``) replaced by fake timings that rank
    the paths in `INFERENCE_PATHS` order, torch first. Tests marked ``measured_auto`` see the real decision
    (still with a fresh cache folder)."""
    from unet_zoo.runtime import measured

    monkeypatch.setenv(measured.CACHE_ENV, str(tmp_path_factory.mktemp("unet_zoo-cache")))
    monkeypatch.setenv("UNET_ZOO_THREADS", str(torch.get_num_threads()))  # the CLI sets torch's threads from it
    if request.node.get_closest_marker("measured_auto") is not None:
        monkeypatch.delenv(measured.INFERENCE_PATH_ENV, raising=False)
        monkeypatch.delenv(measured.TRAINING_PRECISION_ENV, raising=False)
        return
    monkeypatch.setenv(measured.INFERENCE_PATH_ENV, "torch-fp32")
    monkeypatch.setenv(measured.TRAINING_PRECISION_ENV, "fp32")

    from unet_zoo.inference import paths as inference_paths

    def ranked(model, device=None, paths=None, **_):
        names = list(paths) if paths is not None else measured.INFERENCE_PATHS
        timings = {p: measured.PathTiming(1.0 + measured.INFERENCE_PATHS.index(p), 0.0, 0.0, True) for p in names}
        return timings, {}

    monkeypatch.setattr(inference_paths, "measure_paths", ranked)


# The tests find the ISBI 2012 folder the way the package does (`unet_zoo.experiments.isbi2012.data.find_data_dir`: an argument,
# else $UNET_ZOO_DATA_DIR, else the cache). On the developers' machines the data sits at ../shared/data/isbi2012:
# when $UNET_ZOO_DATA_DIR is unset and that folder exists, it is set here, as `.ci/run` does.
_SHARED_ISBI = REPO_ROOT.parent / "shared" / "data" / "isbi2012"
if not os.environ.get("UNET_ZOO_DATA_DIR") and (_SHARED_ISBI / "train-volume.tif").is_file():
    os.environ["UNET_ZOO_DATA_DIR"] = str(_SHARED_ISBI)


@pytest.fixture(scope="session")
def isbi_dir() -> Path:
    """The real ISBI 2012 folder (`find_data_dir()`); skips the test, saying how to get it, when it is not here."""
    from unet_zoo.experiments.isbi2012.data import DatasetNotFoundError, find_data_dir

    try:
        return find_data_dir()
    except DatasetNotFoundError as err:
        pytest.skip(f"ISBI 2012 data not found: {err}")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


# ==== hub (issue 6): a Hub-compatible server on 127.0.0.1 for the hub tests =======================
# huggingface_hub reads HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE once, at import, so they are set here,
# before any test module imports it. HF_HOME is a throw-away folder (no real token or cache is touched)
# and HF_ENDPOINT points at a local port where nothing listens until a test asks for `hub_server`:
# other tests that would reach out to the Hub fail fast ("connection refused") instead of calling it.
import socket as _socket  # noqa: E402
import tempfile as _tempfile  # noqa: E402


def _free_port() -> int:
    with _socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


HUB_PORT = _free_port()
HUB_TOKEN = "hf_unet_zoo_test_write_token"  # the test server's token of user "testuser"
ORG_TOKEN = "hf_unet_zoo_test_org_token"  # writes as "unet-zoo", the namespace of the published checkpoints
_HF_HOME = _tempfile.mkdtemp(prefix="unet_zoo-hf-home-")
os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{HUB_PORT}"
os.environ["HF_HOME"] = _HF_HOME
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
for _var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HUB_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
    os.environ.pop(_var, None)


@pytest.fixture(scope="session")
def hub_server(tmp_path_factory):
    """The test Hub (tests/hub_server.py) on HF_ENDPOINT, with token auth (HUB_TOKEN writes as 'testuser')."""

    from tests.hub_server import HubServer

    server = HubServer(
        tmp_path_factory.mktemp("hub-server"), port=HUB_PORT, tokens={HUB_TOKEN: "testuser", ORG_TOKEN: "unet-zoo"}
    ).start()
    yield server
    server.stop()


@pytest.fixture
def hub_token() -> str:
    return HUB_TOKEN


@pytest.fixture
def fresh_cache(tmp_path) -> Path:
    """An empty Hugging Face hub cache folder (pass as cache_dir= or HF_HUB_CACHE in a subprocess)."""
    path = tmp_path / "hf-cache"
    path.mkdir()
    return path


# ==== end of hub section ==========================================================================
