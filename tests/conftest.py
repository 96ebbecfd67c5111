"""Shared fixtures. Tests run on 2 CPU cores without a GPU and without ../shared (skipping what needs it)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _auto_precision_as_without_amx(request, monkeypatch):
    """`--precision auto` picks bf16 on CPUs with AMX, and the tests compare predictions with float32
    references, so every test sees the CPU as one without a bf16 unit, whatever CPU runs it: the same results
    on AMD and Intel machines. Tests of the decision set the CPU's answer themselves (monkeypatch
    `cpu_bf16_hardware`), bf16 tests ask for bf16, and tests of the detection itself are marked
    ``real_cpu_capabilities``."""
    if request.node.get_closest_marker("real_cpu_capabilities") is None:
        from unet_zoo.utils import runtime

        monkeypatch.setattr(runtime, "cpu_bf16_hardware", lambda: None)


# The tests find the ISBI 2012 folder the way the package does (`unet_zoo.data.isbi.find_data_dir`: an argument,
# else $UNET_ZOO_DATA_DIR, else the cache). On the developers' machines the data sits at ../shared/data/isbi2012:
# when $UNET_ZOO_DATA_DIR is unset and that folder exists, it is set here, as `.ci/run` does.
_SHARED_ISBI = REPO_ROOT.parent / "shared" / "data" / "isbi2012"
if not os.environ.get("UNET_ZOO_DATA_DIR") and (_SHARED_ISBI / "train-volume.tif").is_file():
    os.environ["UNET_ZOO_DATA_DIR"] = str(_SHARED_ISBI)


@pytest.fixture(scope="session")
def isbi_dir() -> Path:
    """The real ISBI 2012 folder (`find_data_dir()`); skips the test, saying how to get it, when it is not here."""
    from unet_zoo.data.isbi import DatasetNotFoundError, find_data_dir

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
