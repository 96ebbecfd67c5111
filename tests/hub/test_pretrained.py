"""unet_zoo.hub.pretrained: save/load round trips, and the real huggingface_hub client against tests/hub_server.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import unet_zoo
from unet_zoo import from_pretrained
from unet_zoo.hub.pretrained import (
    CheckpointError,
    HubAccessError,
    download,
    push_folder,
    weights_sha256,
)
from unet_zoo.hub.sources import SourceError
from unet_zoo.models.provenance import provenance_of
from unet_zoo.models.registry import PRETRAINED, PretrainedCfg, register_pretrained
from unet_zoo.utils.files import file_sha256

REPO_ROOT = Path(__file__).resolve().parents[2]


def tiny(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return unet_zoo.create_model("small", base_channels=4).eval()


def outputs(model: torch.nn.Module) -> torch.Tensor:
    torch.manual_seed(123)
    with torch.no_grad():
        return model.eval()(torch.rand(1, 1, 32, 32))


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture
def saved(tmp_path) -> tuple[torch.nn.Module, Path]:
    model = tiny()
    folder = tmp_path / "ckpt"
    unet_zoo.save_pretrained(model, folder)
    return model, folder


@pytest.fixture
def pretrained_entry():
    """Registers PretrainedCfg entries for one test and removes them afterwards."""
    names = []

    def register(**kwargs) -> PretrainedCfg:
        cfg = register_pretrained(PretrainedCfg(**kwargs))
        names.append(cfg.name)
        return cfg

    yield register
    for name in names:
        PRETRAINED.pop(name, None)


# --- local folders ---------------------------------------------------------------------------------


def test_save_pretrained_writes_config_weights_and_card(saved):
    model, folder = saved
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["model_name"] == "small" and config["library_name"] == "unet_zoo"
    assert config["model_args"] == provenance_of(model).args
    assert config["unet_zoo_version"] == unet_zoo.__version__
    assert config["weights"]["files"] == ["model.safetensors"]
    assert config["weights"]["sha256"] == weights_sha256(folder)
    assert set(load_file(folder / "model.safetensors")) == set(model.state_dict())
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary files left behind


def test_local_roundtrip_gives_identical_model(saved):
    model, folder = saved
    loaded = from_pretrained(folder)
    assert type(loaded) is type(model) and provenance_of(loaded).architecture == "small"
    assert provenance_of(loaded).args == provenance_of(model).args and not loaded.training
    assert same_weights(model, loaded)
    assert torch.equal(outputs(model), outputs(loaded))


def test_directly_built_model_is_saved_through_a_registry_builder(tmp_path):
    model = unet_zoo.UNet(base_channels=4, padding=1, depth=3).eval()
    unet_zoo.save_pretrained(model, tmp_path / "direct")
    loaded = from_pretrained(tmp_path / "direct")
    assert provenance_of(loaded).args["depth"] == 3 and same_weights(model, loaded)


def test_float16_storage_loads_as_float32_unless_asked(tmp_path):
    model = tiny()
    unet_zoo.save_pretrained(model, tmp_path / "f32")
    unet_zoo.save_pretrained(model, tmp_path / "f16", dtype=torch.float16)
    size32 = (tmp_path / "f32" / "model.safetensors").stat().st_size
    size16 = (tmp_path / "f16" / "model.safetensors").stat().st_size
    assert size16 < 0.6 * size32
    assert json.loads((tmp_path / "f16" / "config.json").read_text())["weights"]["dtype"] == "float16"
    stored = load_file(tmp_path / "f16" / "model.safetensors")
    assert all(v.dtype == torch.float16 for v in stored.values() if v.is_floating_point())
    loaded = from_pretrained(tmp_path / "f16")
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, model.state_dict()[k].half().float())
    assert torch.allclose(outputs(loaded), outputs(model), atol=0.05)
    assert {p.dtype for p in from_pretrained(tmp_path / "f16", dtype=None).parameters()} == {torch.float16}
    with pytest.raises(ValueError, match="floating torch.dtype"):
        unet_zoo.save_pretrained(model, tmp_path / "bad", dtype=torch.int8)


def test_sharded_safetensors_roundtrip_and_stale_shards_removed(tmp_path):
    model = tiny()
    folder = tmp_path / "sharded"
    limit = 200_000  # the model is ~480 kB in float32; its biggest tensor 147 kB
    unet_zoo.save_pretrained(model, folder, max_shard_size=limit)
    shards = sorted(folder.glob("model-*-of-*.safetensors"))
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    assert len(shards) > 1 and not (folder / "model.safetensors").exists()
    assert set(index["weight_map"]) == set(model.state_dict())
    assert all(p.stat().st_size <= limit for p in shards)  # file size, headers included
    loaded = from_pretrained(folder)
    assert same_weights(model, loaded)
    with pytest.warns(UserWarning, match=r"exceed max_shard_size=1,000 bytes: safetensors cannot split one tensor"):
        unet_zoo.save_pretrained(
            model, tmp_path / "tiny-shards", max_shard_size=1000
        )  # the 64x64x3x3 bottleneck conv alone is 147,456 B
    unet_zoo.save_pretrained(model, folder)  # unsharded again: old shards and index must go
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]


def test_shape_mismatch_is_refused_with_names(saved):
    _, folder = saved
    config = json.loads((folder / "config.json").read_text())
    config["model_args"]["base_channels"] = 8
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        CheckpointError, match=r"shape mismatch.*encoder\.0\.0\.weight: file \(4, 1, 3, 3\) vs model \(8, 1, 3, 3\)"
    ):
        from_pretrained(folder)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        from_pretrained(folder, strict=False)  # shapes are checked even when not strict


def test_name_mismatch_is_refused_unless_not_strict(saved):
    model, folder = saved
    state = load_file(folder / "model.safetensors")
    state["head.renamed"] = state.pop("head.bias")
    save_file(state, folder / "model.safetensors")
    config = json.loads((folder / "config.json").read_text())
    config["weights"]["sha256"] = weights_sha256(folder)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        CheckpointError, match=r"1 missing tensor\(s\) \(head\.bias\).*1 unexpected tensor\(s\) \(head\.renamed\)"
    ):
        from_pretrained(folder)
    with pytest.warns(UserWarning, match="loaded anyway"):
        loaded = from_pretrained(folder, strict=False)
    assert torch.equal(loaded.head.weight, model.head.weight)


def test_truncated_local_file_is_refused(saved):
    _, folder = saved
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="sha256 of its weights .* config.json records"):
        from_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    del config["weights"]["sha256"]  # without the recorded digest, safetensors itself must notice
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        from_pretrained(folder)


def test_folders_not_written_by_unet_zoo_are_refused(tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"hidden_size": 8}')
    with pytest.raises(CheckpointError, match="not written by unet_zoo"):
        from_pretrained(tmp_path / "other")
    (tmp_path / "pickled").mkdir()
    (tmp_path / "pickled" / "config.json").write_text(json.dumps({"library_name": "unet_zoo", "model_name": "small"}))
    (tmp_path / "pickled" / "pytorch_model.bin").write_bytes(b"not unpickled")
    with pytest.raises(CheckpointError, match="never unpickles"):
        from_pretrained(tmp_path / "pickled")
    with pytest.raises(CheckpointError, match="does not exist"):
        from_pretrained("./no/such/folder")


def test_unknown_name_suggests_registered_checkpoints(pretrained_entry):
    pretrained_entry(name="isbi-test-small", architecture="small", hf_hub_id="testuser/isbi-test-small")
    with pytest.raises(SourceError, match="Did you mean 'isbi-test-small'"):
        from_pretrained("isbi-test-smal")


# --- against the test Hub --------------------------------------------------------------------------


def test_push_to_hub_then_download_into_a_fresh_cache(hub_server, hub_token, fresh_cache):
    from huggingface_hub import ModelCard

    model = tiny(1)
    url = unet_zoo.push_to_hub(model, "testuser/push-mixin", token=hub_token, private=False)
    commit = url.rsplit("/", 1)[-1]
    assert url.startswith(hub_server.url) and "/testuser/push-mixin/commit/" in url
    assert hub_server.repos[("model", "testuser/push-mixin")].branches["main"] == commit
    assert not any(
        path.startswith(("/api/models/testuser/push-mixin/xet", "/testuser/push-mixin.git")) for _, path in hub_server.requests
    )
    loaded = from_pretrained("testuser/push-mixin", cache_dir=fresh_cache)
    assert same_weights(model, loaded) and torch.equal(outputs(model), outputs(loaded))
    snapshot = fresh_cache / "models--testuser--push-mixin" / "snapshots" / commit
    assert (snapshot / "model.safetensors").is_file() and (snapshot / "config.json").is_file()
    card = ModelCard.load("testuser/push-mixin")  # through HF_ENDPOINT
    assert card.data.library_name == "unet_zoo" and card.data.pipeline_tag == "image-segmentation"
    assert 'unet_zoo.from_pretrained("testuser/push-mixin")' in card.text


def test_push_folder_exactly_as_is_and_registry_resolution(hub_server, hub_token, fresh_cache, tmp_path, pretrained_entry):
    model = tiny(2)
    folder = tmp_path / "cards" / "test-small"
    unet_zoo.save_pretrained(
        model, folder, dtype=torch.float16, card_data={"checkpoint_name": "test-small", "metrics": {"rand_error": 0.07}}
    )
    url = push_folder(folder, "testuser/test-small", token=hub_token, commit_message="publish test-small")
    commit = url.rsplit("/", 1)[-1]
    for name in ("config.json", "model.safetensors", "README.md"):
        assert hub_server.read("testuser/test-small", name, commit) == (folder / name).read_bytes()
    pretrained_entry(
        name="test-small", architecture="small", hf_hub_id="testuser/test-small", revision=commit, sha256=weights_sha256(folder)
    )
    loaded = from_pretrained("test-small", cache_dir=fresh_cache)
    assert provenance_of(loaded).checkpoint == "test-small" and provenance_of(loaded).card["metrics"] == {"rand_error": 0.07}
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    assert torch.allclose(outputs(loaded), outputs(model), atol=0.05)
    assert "small" in unet_zoo.list_models(pretrained=True)


@pytest.mark.slow
def test_download_then_load_offline_in_a_subprocess(hub_server, hub_token, fresh_cache, tmp_path, pretrained_entry):
    model = tiny(3)
    url = unet_zoo.push_to_hub(model, "testuser/offline-small", token=hub_token)
    commit = url.rsplit("/", 1)[-1]
    cfg = pretrained_entry(
        name="offline-small",
        architecture="small",
        hf_hub_id="testuser/offline-small",
        revision=commit,
        sha256=hub_server.repos[("model", "testuser/offline-small")].commits[commit].files["model.safetensors"].sha256,
    )
    folder = download("offline-small", cache_dir=fresh_cache)
    assert folder.name == commit and (folder / "README.md").is_file()
    assert download("testuser/offline-small", cache_dir=fresh_cache) == folder  # records refs/main for offline use
    expected = outputs(model).sum().item()
    script = textwrap.dedent(
        f"""
        import torch, unet_zoo
        from huggingface_hub import constants
        from unet_zoo.models.registry import PretrainedCfg, register_pretrained
        from unet_zoo.hub.pretrained import HubAccessError
        assert constants.HF_HUB_OFFLINE
        register_pretrained(PretrainedCfg(name="offline-small", architecture="small",
                            hf_hub_id={cfg.hf_hub_id!r}, revision={cfg.revision!r}, sha256={cfg.sha256!r}))
        register_pretrained(PretrainedCfg(name="never-downloaded", architecture="small", hf_hub_id="testuser/never"))
        torch.manual_seed(123)
        x = torch.rand(1, 1, 32, 32)
        for name in ("offline-small", "testuser/offline-small"):
            with torch.no_grad():
                print(name, unet_zoo.from_pretrained(name)(x).sum().item())
        try:
            unet_zoo.from_pretrained("never-downloaded")
        except HubAccessError as err:
            print("ERROR", err)
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(fresh_cache)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert float(lines["offline-small"]) == pytest.approx(expected, rel=1e-5)
    assert float(lines["testuser/offline-small"]) == pytest.approx(expected, rel=1e-5)
    assert "HF_HUB_OFFLINE=1" in lines["ERROR"] and "unet-zoo download never-downloaded" in lines["ERROR"]
    assert "unet-zoo reproduce isbi" in lines["ERROR"]


def _raise_local_entry_not_found(*args, **kwargs):
    from huggingface_hub.errors import LocalEntryNotFoundError

    raise LocalEntryNotFoundError("not cached")


def test_source_checkout_cards_with_the_pinned_weights_load_without_the_hub(monkeypatch, tmp_path, fresh_cache, pretrained_entry):
    model = tiny(4)
    cards = tmp_path / "cards"
    unet_zoo.save_pretrained(model, cards / "cards-small")
    pretrained_entry(
        name="cards-small", architecture="small", hf_hub_id="testuser/cards-small", sha256=weights_sha256(cards / "cards-small")
    )
    monkeypatch.setattr(unet_zoo.hub.pretrained, "source_cards_dir", lambda: cards)
    # The card holds the pinned weights: it loads from there at once, without asking the Hub or the cache.
    monkeypatch.setattr(unet_zoo.hub.pretrained, "_download_checkpoint", lambda *a, **k: pytest.fail("no download expected"))
    loaded = from_pretrained("cards-small", local_files_only=True, cache_dir=fresh_cache)
    assert same_weights(model, loaded) and provenance_of(loaded).checkpoint == "cards-small"
    # A card whose weights differ from the pin is not used in place of the pinned download.
    pretrained_entry(name="cards-small", architecture="small", hf_hub_id="testuser/cards-small", sha256="0" * 64)
    with pytest.raises(HubAccessError):
        monkeypatch.setattr(unet_zoo.hub.pretrained, "_download_checkpoint", _raise_local_entry_not_found)
        from_pretrained("cards-small", local_files_only=True, cache_dir=fresh_cache)
    assert unet_zoo.hub.pretrained.source_cards_dir() == cards
    monkeypatch.undo()
    assert unet_zoo.hub.pretrained.source_cards_dir() == REPO_ROOT / "cards"  # this test runs in a source checkout


def test_unreachable_hub_and_nothing_cached_says_what_to_run(monkeypatch, fresh_cache, pretrained_entry):
    from huggingface_hub import constants, file_download

    from tests.conftest import _free_port

    # Not cached + connection refused: huggingface_hub retries with back-off (~23 s per file) before giving
    # up, as it should for flaky networks; the test skips the waiting, not the behaviour after it.
    monkeypatch.setattr(file_download, "_DEFAULT_RETRY_ON_EXCEPTIONS", ())

    dead = f"http://127.0.0.1:{_free_port()}"
    monkeypatch.setattr(constants, "ENDPOINT", dead)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", dead + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(unet_zoo.hub.pretrained, "source_cards_dir", lambda: None)
    pretrained_entry(name="unreachable-small", architecture="small", hf_hub_id="testuser/unreachable")
    with pytest.raises(
        HubAccessError, match=r"could not be reached.*unet-zoo download unreachable-small.*unet-zoo reproduce isbi"
    ):
        from_pretrained("unreachable-small", cache_dir=fresh_cache)
    with pytest.raises(HubAccessError, match="unet-zoo download testuser/unreachable"):
        from_pretrained("testuser/unreachable", cache_dir=fresh_cache)


def test_tampered_hub_file_is_refused_by_the_pinned_sha(hub_server, hub_token, fresh_cache, tmp_path, pretrained_entry):
    folder = tmp_path / "tamper"
    unet_zoo.save_pretrained(tiny(5), folder)
    push_folder(folder, "testuser/tamper", token=hub_token)
    pretrained_entry(
        name="tamper-small", architecture="small", hf_hub_id="testuser/tamper", revision="main", sha256=weights_sha256(folder)
    )
    assert provenance_of(from_pretrained("tamper-small", cache_dir=fresh_cache)).architecture == "small"
    unet_zoo.save_pretrained(tiny(6), folder)  # someone replaces the weights (and a consistent config.json) on main
    push_folder(folder, "testuser/tamper", token=hub_token)
    with pytest.raises(CheckpointError, match="refusing to load 'tamper-small'.*registry pins"):
        from_pretrained("tamper-small", cache_dir=tmp_path / "other-cache")
    with pytest.raises(CheckpointError, match="registry pins"):
        download("tamper-small", cache_dir=tmp_path / "third-cache")


def test_a_changed_config_json_is_refused_by_the_pinned_config_sha(
    hub_server, hub_token, fresh_cache, tmp_path, pretrained_entry, monkeypatch
):
    folder = tmp_path / "config-tamper"
    unet_zoo.save_pretrained(tiny(8), folder)
    push_folder(folder, "testuser/config-tamper", token=hub_token)
    pinned = dict(name="config-small", architecture="small", hf_hub_id="testuser/config-tamper", revision="main")
    pretrained_entry(**pinned, sha256=weights_sha256(folder), config_sha256=file_sha256(folder / "config.json"))
    assert provenance_of(from_pretrained("config-small", cache_dir=fresh_cache)).architecture == "small"
    config = json.loads((folder / "config.json").read_text())
    config["model_args"]["dropout"] = 0.0  # same weights, another network: someone edits config.json on main
    (folder / "config.json").write_text(json.dumps(config))
    push_folder(folder, "testuser/config-tamper", token=hub_token)
    with pytest.raises(CheckpointError, match="sha256 of its config.json is .* registry pins"):
        from_pretrained("config-small", cache_dir=tmp_path / "other-cache")
    with pytest.raises(CheckpointError, match="config.json .* registry pins"):
        download("config-small", cache_dir=tmp_path / "third-cache")


def test_tampered_cache_file_is_refused(hub_server, hub_token, fresh_cache, pretrained_entry):
    model = tiny(7)
    url = unet_zoo.push_to_hub(model, "testuser/cache-tamper", token=hub_token)
    commit = url.rsplit("/", 1)[-1]
    repo = hub_server.repos[("model", "testuser/cache-tamper")]
    pretrained_entry(
        name="cache-tamper",
        architecture="small",
        hf_hub_id="testuser/cache-tamper",
        revision=commit,
        sha256=repo.commits[commit].files["model.safetensors"].sha256,
    )
    folder = download("cache-tamper", cache_dir=fresh_cache)
    weights = (folder / "model.safetensors").resolve()  # the blob behind the snapshot symlink
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256 of its weights is [0-9a-f]{64}, but the registry pins"):
        from_pretrained("cache-tamper", cache_dir=fresh_cache)


def test_truncated_download_is_refused(hub_server, hub_token, fresh_cache):
    unet_zoo.push_to_hub(tiny(8), "testuser/truncated", token=hub_token)
    hub_server.truncate.add(("testuser/truncated", "model.safetensors"))
    try:
        with pytest.raises(CheckpointError, match="download of model.safetensors .* was truncated"):
            from_pretrained("testuser/truncated", cache_dir=fresh_cache)
    finally:
        hub_server.truncate.discard(("testuser/truncated", "model.safetensors"))
    assert (
        provenance_of(from_pretrained("testuser/truncated", cache_dir=fresh_cache)).architecture == "small"
    )  # a clean retry works


def test_missing_repo_unknown_revision_and_non_zoo_repo(hub_server, hub_token, fresh_cache):
    from huggingface_hub import HfApi

    with pytest.raises(HubAccessError, match="Hub repo 'testuser/does-not-exist' not found"):
        from_pretrained("testuser/does-not-exist", cache_dir=fresh_cache)
    unet_zoo.push_to_hub(tiny(9), "testuser/revisions", token=hub_token)
    with pytest.raises(HubAccessError, match="revision 'v9' not found in Hub repo 'testuser/revisions'"):
        from_pretrained("testuser/revisions", revision="v9", cache_dir=fresh_cache)
    api = HfApi(token=hub_token)
    api.create_repo("testuser/not-zoo")
    api.upload_file(path_or_fileobj=b'{"hidden_size": 8}', path_in_repo="config.json", repo_id="testuser/not-zoo")
    with pytest.raises(CheckpointError, match="not written by unet_zoo"):
        from_pretrained("testuser/not-zoo", cache_dir=fresh_cache)


def test_wrong_token_and_private_repos(hub_server, hub_token, fresh_cache, tmp_path):
    with pytest.raises(HubAccessError, match="HTTP 401 Unauthorized.*HF_TOKEN"):
        unet_zoo.push_to_hub(tiny(), "testuser/wrong-token", token="hf_wrong")
    assert ("model", "testuser/wrong-token") not in hub_server.repos
    model = tiny(10)
    unet_zoo.push_to_hub(model, "testuser/private-small", token=hub_token, private=True)
    assert hub_server.repos[("model", "testuser/private-small")].private
    with pytest.raises(HubAccessError, match="not found .* private"):
        from_pretrained("testuser/private-small", cache_dir=fresh_cache)  # no token
    with pytest.raises(HubAccessError, match="HTTP 401"):
        from_pretrained("testuser/private-small", cache_dir=fresh_cache, token="hf_wrong")
    assert same_weights(model, from_pretrained("testuser/private-small", cache_dir=fresh_cache, token=hub_token))


def test_push_to_a_branch_and_load_that_revision(hub_server, hub_token, fresh_cache, tmp_path):
    main_model, dev_model = tiny(11), tiny(12)
    unet_zoo.push_to_hub(main_model, "testuser/branches", token=hub_token)
    unet_zoo.push_to_hub(dev_model, "testuser/branches", token=hub_token, revision="dev/exp")
    assert same_weights(dev_model, from_pretrained("testuser/branches", revision="dev/exp", cache_dir=fresh_cache))
    assert same_weights(main_model, from_pretrained("testuser/branches", cache_dir=fresh_cache))


def test_sharded_checkpoint_through_the_hub(hub_server, hub_token, fresh_cache, tmp_path):
    model = tiny(13)
    url = unet_zoo.push_to_hub(model, "testuser/sharded", token=hub_token, max_shard_size=100_000, dtype=torch.float16)
    files = hub_server.repos[("model", "testuser/sharded")].commits[url.rsplit("/", 1)[-1]].files
    assert "model.safetensors.index.json" in files and sum(f.startswith("model-") for f in files) > 1
    loaded = from_pretrained("testuser/sharded", cache_dir=fresh_cache)
    assert torch.allclose(outputs(loaded), outputs(model), atol=0.05)
    unet_zoo.push_to_hub(model, "testuser/sharded", token=hub_token)  # unsharded: the stale shards are deleted on the Hub
    files = (
        hub_server.repos[("model", "testuser/sharded")]
        .commits[hub_server.repos[("model", "testuser/sharded")].branches["main"]]
        .files
    )
    assert sorted(files) == [".gitattributes", "README.md", "config.json", "model.safetensors"]


def test_hf_token_from_the_environment_is_used(hub_server, hub_token, fresh_cache, monkeypatch):
    # No token= anywhere: huggingface_hub reads HF_TOKEN at call time, for pushes and for private downloads.
    monkeypatch.setenv("HF_TOKEN", hub_token)
    model = tiny(14)
    url = unet_zoo.push_to_hub(model, "testuser/env-token", private=True)
    assert "/testuser/env-token/commit/" in url and hub_server.repos[("model", "testuser/env-token")].private
    assert same_weights(model, from_pretrained("testuser/env-token", cache_dir=fresh_cache))
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    with pytest.raises(HubAccessError, match="HTTP 401"):
        from_pretrained("testuser/env-token", cache_dir=fresh_cache, force_download=True)


def test_local_files_only_uses_the_cache_without_any_request(hub_server, hub_token, fresh_cache, pretrained_entry):
    model = tiny(15)
    url = unet_zoo.push_to_hub(model, "testuser/local-only", token=hub_token)
    commit = url.rsplit("/", 1)[-1]
    with pytest.raises(
        HubAccessError, match=r"not in the Hugging Face cache .* local_files_only=True.*unet-zoo download testuser/local-only"
    ):
        from_pretrained("testuser/local-only", cache_dir=fresh_cache, local_files_only=True)
    download("testuser/local-only", cache_dir=fresh_cache)
    pretrained_entry(
        name="local-only",
        architecture="small",
        hf_hub_id="testuser/local-only",
        revision=commit,
        sha256=hub_server.repos[("model", "testuser/local-only")].commits[commit].files["model.safetensors"].sha256,
    )
    before = len(hub_server.requests)
    for name in ("testuser/local-only", "local-only"):
        assert same_weights(model, from_pretrained(name, cache_dir=fresh_cache, local_files_only=True))
    assert len(hub_server.requests) == before  # the server was never asked


def test_unpublished_recipe_name_and_mistyped_folder_say_what_to_do(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(unet_zoo.hub.sources, "source_cards_dir", lambda: tmp_path / "cards")
    if "isbi-original" not in PRETRAINED:  # before the checkpoint is published: how to get it
        with pytest.raises(
            SourceError,
            match=r"not published yet: train it with `unet-zoo reproduce isbi --recipe isbi-original-cpu`.*--variant original",
        ):
            from_pretrained("isbi-original")
    unet_zoo.save_pretrained(tiny(), tmp_path / "cards" / "my-run")
    with pytest.raises(SourceError, match=r"checkpoint folder .*cards/my-run: load it with unet_zoo.from_pretrained"):
        from_pretrained("my-run")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubAccessError, match=r"unet-zoo download cards/my-rnu.*no local folder cards/my-rnu either"):
        from_pretrained("cards/my-rnu")
    with pytest.raises(SourceError, match=r"write \./cards/my-run for the folder or hf-hub:cards/my-run for the Hub"):
        from_pretrained("cards/my-run")  # a folder and a possible Hub id: refused, never guessed
    assert provenance_of(from_pretrained("./cards/my-run")).architecture == "small"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert provenance_of(from_pretrained("~/cards/my-run")).architecture == "small"


def test_push_to_hub_with_the_hub_unreachable_raises_hub_access_error(monkeypatch):
    """Nothing listens at the endpoint: the client's connection error becomes a HubAccessError that says what to check."""
    from huggingface_hub import constants

    from tests.conftest import _free_port

    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{_free_port()}")  # nothing listens there
    from unet_zoo.hub.pretrained import HubAccessError

    model = unet_zoo.create_model("small", base_channels=4)
    with pytest.raises(HubAccessError, match="could not reach the Hub at http://127.0.0.1"):
        unet_zoo.push_to_hub(model, "testuser/unreachable", token="hf_x")


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A training run folder of the tiny recipe (recipe.json + checkpoint.safetensors, no config.json)."""
    from unet_zoo.training.recipes import load_recipe
    from unet_zoo.training.trainer import train

    folder = tmp_path_factory.mktemp("runs") / "tiny-run"
    result = train(load_recipe("tiny").with_overrides(train={"steps": 3}), out_dir=folder, final_outputs=False)
    return folder, {k: v.detach().clone() for k, v in result.model.state_dict().items()}


def test_a_training_run_folder_loads_as_a_model(run_folder):
    folder, trained = run_folder
    assert not (folder / "config.json").exists()
    model = from_pretrained(folder)
    assert provenance_of(model).architecture == "small" and not model.training
    assert all(torch.equal(v, trained[k]) for k, v in model.state_dict().items())
    record = provenance_of(model)
    assert record.kind == "run" and record.source == str(folder) and "at step 3" in record.card["description"]
    assert provenance_of(from_pretrained(str(folder))).args == record.args


def test_a_folder_that_is_neither_checkpoint_nor_run_says_what_it_expects(tmp_path):
    (tmp_path / "recipe.json").write_text("{}")
    with pytest.raises(CheckpointError, match="training run folder"):
        from_pretrained(tmp_path)


def test_a_training_run_folder_pushes_as_a_checkpoint(run_folder, hub_server, hub_token, fresh_cache):
    folder, trained = run_folder
    url = push_folder(folder, "testuser/tiny-run", token=hub_token)
    assert "testuser/tiny-run" in url
    loaded = from_pretrained("testuser/tiny-run", cache_dir=fresh_cache)
    assert all(torch.equal(v, trained[k]) for k, v in loaded.state_dict().items())
    card = (download("testuser/tiny-run", cache_dir=fresh_cache) / "README.md").read_text()
    assert "training run tiny-run of recipe 'tiny' at step 3" in card
