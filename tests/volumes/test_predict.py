"""predict_volume: equal to predict_tiled slice by slice, every source format, OME metadata, resume, errors, dask."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

zarr = pytest.importorskip("zarr", reason='needs the volumes extra: pip install "unet-zoo[volumes]"')

import unet_zoo  # noqa: E402
from unet_zoo.data.reading import read_image  # noqa: E402
from unet_zoo.inference.rescale import predict_at_pixel_size  # noqa: E402
from unet_zoo.inference.tiling import predict_tiled  # noqa: E402
from unet_zoo.volumes.io import MARKERS, VolumeInputError, open_source  # noqa: E402
from unet_zoo.volumes.predict import BlockPlan, VolumeJob, plan_blocks, predict_volume  # noqa: E402

SHAPE = (3, 100, 117)  # not a multiple of any block or chunk below


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {name: unet_zoo.create_model(name, base_channels=4).eval() for name in ("original", "small")}


@pytest.fixture(scope="module")
def volume() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, SHAPE, dtype=np.uint8)


def _reference(model, volume, **kwargs) -> np.ndarray:
    return np.stack([predict_tiled(model, section, **kwargs)[1] for section in volume])


def _zarr_input(path, volume, chunks=(2, 32, 48), zarr_format=3, **kwargs):
    array = zarr.create_array(str(path), shape=volume.shape, chunks=chunks, dtype=volume.dtype, zarr_format=zarr_format, **kwargs)
    array[:] = volume
    return path


def _info(path) -> dict:
    node = zarr.open(str(path), mode="r")
    return dict(node.attrs)["unet_zoo"]


@pytest.mark.parametrize(
    "name, tile, tta", [("original", 220, False), ("original", 220, True), ("small", 64, False), ("small", 64, True)]
)
@pytest.mark.slow
def test_equals_predict_tiled_on_whole_sections(tmp_path, models, volume, name, tile, tta):
    """Blocks of 64 px (whole 32 x 48 chunks: 64 x 96) over 100 x 117 sections, chunks 2 sections deep."""
    model = models[name]
    source = _zarr_input(tmp_path / "in.zarr", volume)
    calls = []
    out = predict_volume(
        model,
        source,
        tmp_path / "out.zarr",
        block=64,
        tile=tile,
        tta=tta,
        progress=lambda done, total: calls.append((done, total)),
    )
    result = zarr.open(str(out), mode="r")
    assert result.shape == SHAPE and result.dtype == np.float32 and result.chunks == (2, 32, 48)
    np.testing.assert_allclose(result[:], _reference(model, volume, tile=tile, tta=tta), atol=2e-6)
    assert calls[0] == (0, 8) and calls[-1] == (8, 8) and len(calls) == 9  # 2 x 2 x 2 blocks of (2, 64, 96)
    info = _info(out)
    assert info["complete"] and info["model"] == name and info["tta"] is tta and info["block"] == [2, 64, 96]
    assert not (out / MARKERS).exists()


def test_default_tile_zarr_v2_and_uint8(tmp_path, models, volume):
    model = models["small"]
    source = _zarr_input(tmp_path / "in.zarr", volume, chunks=(1, 50, 60), zarr_format=2)
    out = predict_volume(model, source, tmp_path / "out.zarr", dtype="uint8")
    result = zarr.open(str(out), mode="r")
    assert result.metadata.zarr_format == 2 and result.dtype == np.uint8 and result.chunks == (1, 50, 60)
    expected = np.rint(_reference(model, volume) * 255)
    assert np.abs(result[:].astype(int) - expected).max() <= 1  # rounding of a probability at x.5 / 255


@pytest.mark.slow
def test_sharded_input_blocks_are_whole_shards(tmp_path, models, volume):
    source = _zarr_input(tmp_path / "in.zarr", volume, chunks=(1, 16, 16), shards=(1, 64, 64))
    out = predict_volume(models["small"], source, tmp_path / "out.zarr", block=64, tile=64)
    result = zarr.open(str(out), mode="r")
    assert result.shards == (1, 64, 64) and result.chunks == (1, 16, 16) and _info(out)["block"] == [1, 64, 64]
    np.testing.assert_allclose(result[:], _reference(models["small"], volume, tile=64), atol=2e-6)


@pytest.mark.parametrize("fmt, wrapped", [(2, False), (3, True)])
def test_ome_zarr_level_and_metadata(tmp_path, models, volume, fmt, wrapped):
    group = zarr.open_group(str(tmp_path / "in.ome.zarr"), mode="w", zarr_format=fmt)
    group.create_array("s0", shape=SHAPE, chunks=(1, 64, 64), dtype="uint8")[:] = volume
    half = volume[:, ::2, ::2]
    group.create_array("s1", shape=half.shape, chunks=(1, 64, 64), dtype="uint8")[:] = half
    axes = [
        {"name": "z", "type": "space", "unit": "nanometer"},
        {"name": "y", "type": "space", "unit": "nanometer"},
        {"name": "x", "type": "space", "unit": "nanometer"},
    ]
    scales = {
        "axes": axes,
        "name": "em",
        "datasets": [
            {"path": "s0", "coordinateTransformations": [{"type": "scale", "scale": [50.0, 4.0, 4.0]}]},
            {"path": "s1", "coordinateTransformations": [{"type": "scale", "scale": [50.0, 8.0, 8.0]}]},
        ],
    }
    if wrapped:
        group.attrs["ome"] = {"version": "0.5", "multiscales": [scales]}
    else:
        group.attrs["multiscales"] = [{"version": "0.4", **scales}]
    out = predict_volume(models["small"], tmp_path / "in.ome.zarr", tmp_path / "out.zarr", level=1)
    result = zarr.open_group(str(out), mode="r")
    attrs = dict(result.attrs)
    (written,) = (attrs["ome"] if wrapped else attrs)["multiscales"]
    assert written["axes"] == axes
    assert written["datasets"] == [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [50.0, 8.0, 8.0]}]}]
    assert result["0"].shape == half.shape and result["0"].metadata.zarr_format == fmt
    # level 1 is at 8 nm/px, the model at ISBI's 4 nm/px: every section is predicted rescaled to 4 nm and back
    expected = predict_at_pixel_size(models["small"], half, 8.0)[:, 1]
    np.testing.assert_allclose(result["0"][:], expected, atol=2e-6)
    assert _info(out / "0")["complete"] and _info(out / "0")["pixel_size_nm"] == 8.0
    with pytest.raises(ValueError, match="2 resolution level"):
        predict_volume(models["small"], tmp_path / "in.ome.zarr", tmp_path / "other.zarr", level=2)


@pytest.mark.parametrize("compression", [None, "zlib"])
@pytest.mark.slow
def test_tiff_stacks(tmp_path, models, volume, compression):
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "in.tif", volume, photometric="minisblack", compression=compression)
    out = predict_volume(models["small"], tmp_path / "in.tif", tmp_path / "out.zarr", block=64, tile=64)
    result = zarr.open(str(out), mode="r")
    assert result.chunks == (1, 64, 64)  # unchunked sources: the output's chunks are the blocks
    np.testing.assert_allclose(result[:], _reference(models["small"], volume, tile=64), atol=2e-6)


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_a_tiff_stack_opens_through_the_reader_with_its_pixel_size(tmp_path, models, volume, compression):
    """A TIFF volume is opened by `read_image` (lazily): its resolution tags give its pixel size, as for a 2-D
    TIFF, none without tags; a pickled source (what a dask worker gets) reopens the file and reads its blocks."""
    tifffile = pytest.importorskip("tifffile")
    tagged, plain = tmp_path / "tagged.tif", tmp_path / "plain.tif"
    tags = dict(imagej=True, resolution=(1 / 8.0, 1 / 8.0), metadata={"unit": "nm"})
    tifffile.imwrite(tagged, volume, compression=compression, **tags)
    tifffile.imwrite(plain, volume, compression=compression, photometric="minisblack")
    assert open_source(tagged).pixel_size_nm == pytest.approx(read_image(tagged).pixel_size_nm) == pytest.approx(8.0)
    assert open_source(plain).pixel_size_nm is None and read_image(plain).pixel_size_nm is None
    region = (slice(1, 3), slice(10, 70), slice(5, 100))
    for path in (tagged, plain):
        source = open_source(path)
        assert source.shape == volume.shape and source.dtype == volume.dtype and source.ndim == 3
        again = pickle.loads(pickle.dumps(source))
        assert again.array is None and again.path == str(path.resolve())
        np.testing.assert_array_equal(again.read(*region), volume[region])
    out = predict_volume(models["small"], tagged, tmp_path / "out.zarr", block=64, tile=64)
    assert _info(out)["pixel_size_nm"] == pytest.approx(8.0)  # rescaled to the model's pixel size, as recorded


def test_numpy_2d_and_dask_sources(tmp_path, models, volume):
    da = pytest.importorskip("dask.array")
    model = models["small"]
    section = volume[0]
    out = predict_volume(model, section, tmp_path / "one.zarr", block=64, tile=64)
    result = zarr.open(str(out), mode="r")
    assert result.shape == section.shape
    np.testing.assert_allclose(result[:], predict_tiled(model, section, tile=64)[1], atol=2e-6)
    lazy = da.from_array(volume, chunks=(1, 50, 50))
    out = predict_volume(model, lazy, tmp_path / "dask.zarr", block=64, tile=64)
    result = zarr.open(str(out), mode="r")
    assert result.chunks == (1, 50, 50)
    np.testing.assert_allclose(result[:], _reference(model, volume, tile=64), atol=2e-6)


def test_interrupted_run_resumes_without_recomputing(tmp_path, models, volume, monkeypatch):
    model = models["small"]
    computed = []
    predict = VolumeJob.predict

    def counting(self, net, index):
        computed.append(index)
        return predict(self, net, index)

    monkeypatch.setattr(VolumeJob, "predict", counting)

    def stop_after_two(done, total):
        if done == 2:
            raise KeyboardInterrupt

    volume = volume[1:]
    source = _zarr_input(tmp_path / "in.zarr", volume, chunks=(1, 64, 64))
    with pytest.raises(KeyboardInterrupt):
        predict_volume(model, source, tmp_path / "out.zarr", block=64, tile=64, progress=stop_after_two)
    assert len(computed) == 2 and len(list((tmp_path / "out.zarr" / MARKERS).iterdir())) == 2
    assert not _info(tmp_path / "out.zarr")["complete"]
    with pytest.raises(FileExistsError, match="other settings.*tta"):
        predict_volume(model, source, tmp_path / "out.zarr", block=64, tile=64, tta=True)
    with pytest.raises(FileExistsError, match="other settings.*state_sha256"):  # same architecture, other weights
        predict_volume(unet_zoo.create_model("small", base_channels=4), source, tmp_path / "out.zarr", block=64, tile=64)
    with pytest.raises(FileExistsError, match="unfinished"):
        predict_volume(model, source, tmp_path / "out.zarr", block=64, tile=64, resume=False)
    calls = []
    out = predict_volume(model, source, tmp_path / "out.zarr", block=64, tile=64, progress=lambda *a: calls.append(a))
    assert calls[0] == (2, 8) and calls[-1] == (8, 8)
    assert len(computed) == 8 and len(set(computed)) == 8  # the 2 finished blocks were not computed again
    np.testing.assert_allclose(zarr.open(str(out))[:], _reference(model, volume, tile=64), atol=2e-6)
    with pytest.raises(FileExistsError, match="finished prediction.*overwrite"):
        predict_volume(model, source, out, block=64, tile=64)
    predict_volume(model, source, out, block=128, tile=64, overwrite=True)
    assert _info(out)["block"] == [1, 100, 117] and _info(out)["complete"]


def _stop_after_two(done, total):
    if done == 2:
        raise KeyboardInterrupt


@pytest.mark.parametrize("kind", ["zarr", "tiff", "numpy"])
def test_resuming_onto_a_changed_input_is_refused(tmp_path, models, volume, kind):
    """Kill a run, rewrite the input in place, run again: refused, never a mix of both inputs marked complete."""
    tifffile = pytest.importorskip("tifffile")
    model, volume = models["small"], volume[1:].copy()
    source = {
        "zarr": lambda: _zarr_input(tmp_path / "in.zarr", volume, chunks=(1, 64, 64)),
        "tiff": lambda: tifffile.imwrite(tmp_path / "in.tif", volume, photometric="minisblack") or tmp_path / "in.tif",
        "numpy": lambda: volume,
    }[kind]()
    out = tmp_path / "out.zarr"
    with pytest.raises(KeyboardInterrupt):
        predict_volume(model, source, out, block=64, tile=64, progress=_stop_after_two)
    changed = 255 - volume
    if kind == "zarr":
        zarr.open(str(source), mode="r+")[:] = changed
    elif kind == "tiff":
        tifffile.imwrite(source, changed, photometric="minisblack")
    else:
        volume[:] = changed  # the same array object, changed in place
    kept = sorted(p.name for p in (out / MARKERS).iterdir())
    with pytest.raises(FileExistsError, match="unfinished prediction of another input.*overwrite"):
        predict_volume(model, source, out, block=64, tile=64)
    assert sorted(p.name for p in (out / MARKERS).iterdir()) == kept and not _info(out)["complete"]
    predict_volume(model, source, out, block=64, tile=64, overwrite=True)
    np.testing.assert_allclose(zarr.open(str(out))[:], _reference(model, changed, tile=64), atol=2e-6)


def test_a_damaged_chunk_names_the_input_and_the_chunk(tmp_path, models, volume):
    source = _zarr_input(tmp_path / "in.zarr", volume, chunks=(1, 64, 64))
    (source / "c" / "1" / "1" / "0").write_bytes(b"not a zstd frame")  # section 1, rows 64.., columns 0..63
    with pytest.raises(VolumeInputError, match=r"cannot read the input .*in\.zarr at chunk 1\.1\.0 .*damaged") as err:
        predict_volume(models["small"], source, tmp_path / "out.zarr", block=64, tile=64)
    assert "resume" not in str(err.value)


def test_ome_metadata_without_a_path_says_what_is_missing(tmp_path, models, volume):
    group = zarr.open_group(str(tmp_path / "in.ome.zarr"), mode="w")
    group.create_array("0", shape=volume.shape, dtype="uint8")[:] = volume
    group.attrs["multiscales"] = [{"version": "0.4", "axes": [], "datasets": [{"coordinateTransformations": []}]}]
    with pytest.raises(VolumeInputError, match=r"in\.ome\.zarr.*datasets\[0\]\) has no 'path'"):
        predict_volume(models["small"], tmp_path / "in.ome.zarr", tmp_path / "out.zarr")
    assert not (tmp_path / "out.zarr").exists()


def test_never_overwrites_what_it_did_not_write(tmp_path, models, volume):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="already exists"):
        predict_volume(models["small"], volume, tmp_path / "notes")
    with pytest.raises(FileExistsError, match="unet_zoo did not create"):
        predict_volume(models["small"], volume, tmp_path / "notes", overwrite=True)
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"
    source = _zarr_input(tmp_path / "in.zarr", volume)
    with pytest.raises(ValueError, match="is the input"):
        predict_volume(models["small"], source, source, overwrite=True)
    before = sorted(p.name for p in Path(source).rglob("*"))
    with pytest.raises(ValueError, match="inside the input"):  # it would change the input, so it could never resume
        predict_volume(models["small"], source, Path(source) / "out.zarr")
    with pytest.raises(ValueError, match="holds the input"):  # replacing it would delete the input
        predict_volume(models["small"], source, tmp_path, overwrite=True)
    assert sorted(p.name for p in Path(source).rglob("*")) == before


def test_bad_inputs_say_what_is_wrong(tmp_path, models, volume):
    model = models["small"]
    with pytest.raises(FileNotFoundError, match="no such file"):
        predict_volume(model, tmp_path / "missing.zarr", tmp_path / "out.zarr")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match="not a readable Zarr"):
        predict_volume(model, tmp_path / "plain", tmp_path / "out.zarr")
    group = zarr.open_group(str(tmp_path / "group.zarr"), mode="w")
    group.create_array("raw", shape=(2, 8, 8), dtype="uint8")
    with pytest.raises(ValueError, match="without OME-Zarr multiscales.*raw"):
        predict_volume(model, tmp_path / "group.zarr", tmp_path / "out.zarr")
    with pytest.raises(ValueError, match=r"shape \(2, 2, 8, 8\).*\(Z, Y, X\)"):
        predict_volume(model, np.zeros((2, 2, 8, 8), np.uint8), tmp_path / "out.zarr")
    with pytest.raises(ValueError, match="block 32 px is smaller than the model's tile"):
        predict_volume(model, volume, tmp_path / "out.zarr", block=32, tile=64)
    with pytest.raises(ValueError, match="dtype"):
        predict_volume(model, volume, tmp_path / "out.zarr", dtype="float16")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="not a TIFF"):
        predict_volume(model, tmp_path / "notes.txt", tmp_path / "out.zarr")
    assert not (tmp_path / "out.zarr").exists()


def test_block_plan_rounds_to_whole_chunks():
    plan = plan_blocks((5, 1000, 700), (2, 128, 100), 300, 100)
    assert plan.block == (2, 384, 300) and plan.grid == (3, 3, 3)
    assert plan.region((2, 2, 2)) == (slice(4, 5), slice(768, 1000), slice(600, 700))
    assert plan_blocks((1, 100, 90), None, 4096, 64).block == (1, 100, 90)
    assert plan_blocks((64, 10000, 10000), (64, 64, 64), None, 64).block == (64, 1024, 1024)  # deep chunks: smaller
    assert BlockPlan.name((1, 2, 3)) == "1.2.3"


def test_provenance_of_a_checkpoint_folder(tmp_path, models, volume):
    from unet_zoo.hub.pretrained import save_pretrained

    folder = save_pretrained(models["small"], tmp_path / "ckpt")
    config = json.loads((folder / "config.json").read_text())
    out = predict_volume(str(folder), volume[:1], tmp_path / "out.zarr", device="cpu")
    info = _info(out)
    assert info["sha256"] == config["weights"]["sha256"] and info["checkpoint"] == str(folder)
    assert info["model"] == "small" and info["model_args"]["base_channels"] == 4 and info["unet_zoo_version"]


def test_import_unet_zoo_stays_free_of_zarr_and_dask():
    code = "import sys, unet_zoo; print(sorted(m for m in ('zarr', 'dask', 'distributed') if m in sys.modules))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "[]"
    assert unet_zoo.predict_volume is predict_volume


# --- dask.distributed -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",
        memory_limit="1.5GiB",
    ) as local:
        yield local


def _counters(client) -> dict:
    def read():
        from unet_zoo.volumes import cluster as volume_cluster

        return volume_cluster.MODEL_LOADS, volume_cluster.BLOCKS_RUN

    return client.run(read)


@pytest.mark.slow
def test_local_cluster_of_two_processes_equals_in_memory(tmp_path, models, volume, cluster):
    from distributed import Client

    model = models["original"]
    source = _zarr_input(tmp_path / "in.zarr", volume, chunks=(1, 40, 40))
    with Client(cluster) as client:
        before = _counters(client)
        calls = []
        out = predict_volume(
            model,
            source,
            tmp_path / "out.zarr",
            block=40,
            tile=220,
            scheduler=cluster.scheduler_address,
            progress=lambda *a: calls.append(a),
        )
        after = _counters(client)
    np.testing.assert_allclose(zarr.open(str(out))[:], _reference(model, volume, tile=220), atol=2e-6)
    assert calls[-1] == (27, 27)
    assert len(after) == 2
    loads = {w: after[w][0] - before[w][0] for w in after}
    blocks = {w: after[w][1] - before[w][1] for w in after}
    assert set(loads.values()) == {1}, loads  # each worker loaded the model once ...
    assert sum(blocks.values()) == 27 and all(n > 1 for n in blocks.values()), blocks  # ... for many blocks


@pytest.mark.slow
def test_workers_start_a_local_cluster(tmp_path, models, volume):
    pytest.importorskip("distributed")
    model = models["small"]
    out = predict_volume(model, volume, tmp_path / "out.zarr", block=64, tile=64, tta=True, workers=2, memory_limit="1.5GiB")
    np.testing.assert_allclose(zarr.open(str(out))[:], _reference(model, volume, tile=64, tta=True), atol=2e-6)


def test_unreachable_scheduler_fails_fast_with_its_address(tmp_path, models, volume, monkeypatch):
    pytest.importorskip("distributed")
    from unet_zoo.volumes import cluster as volume_cluster

    monkeypatch.setattr(volume_cluster, "CONNECT_TIMEOUT_S", 2)
    with pytest.raises(ConnectionError, match=r"tcp://127\.0\.0\.1:9 within 2 s"):
        predict_volume(models["small"], volume, tmp_path / "out.zarr", scheduler="tcp://127.0.0.1:9")


KILLED_RUN = """
import sys, torch, unet_zoo
from unet_zoo.volumes.predict import predict_volume
torch.manual_seed(0)
model = unet_zoo.create_model("small", base_channels=4).eval()
predict_volume(model, sys.argv[1], sys.argv[2], block=64, tile=64)
"""


@pytest.mark.slow
def test_a_killed_process_resumes_with_its_finished_blocks(tmp_path, models, volume, monkeypatch):
    """SIGKILL a real run after some blocks; the next run computes only the blocks without a marker."""
    import os
    import signal
    import time

    source = _zarr_input(tmp_path / "in.zarr", volume, chunks=(1, 64, 64))
    out = tmp_path / "out.zarr"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(source), str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / MARKERS).is_dir() and len(list((out / MARKERS).iterdir())) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.name for p in (out / MARKERS).iterdir() if not p.name.startswith(".")}
    assert 2 <= len(finished) < 12 and not _info(out)["complete"]
    computed = []
    predict = VolumeJob.predict
    monkeypatch.setattr(VolumeJob, "predict", lambda self, net, index: computed.append(index) or predict(self, net, index))
    torch.manual_seed(0)
    model = unet_zoo.create_model("small", base_channels=4).eval()  # the same weights as the killed run's
    predict_volume(model, source, out, block=64, tile=64)
    assert {BlockPlan.name(i) for i in computed}.isdisjoint(finished) and len(computed) == 12 - len(finished)
    np.testing.assert_allclose(zarr.open(str(out))[:], _reference(model, volume, tile=64), atol=2e-6)


def test_bf16_precision_runs_in_every_block_and_is_recorded(tmp_path, models, volume):
    model = models["small"]
    section = volume[:1]
    fp32 = predict_volume(model, section, tmp_path / "fp32.zarr", tile=64)
    bf16 = predict_volume(model, section, tmp_path / "bf16.zarr", tile=64, precision="bf16")
    assert (_info(fp32)["precision"], _info(bf16)["precision"]) == ("fp32", "bf16")
    expected = _reference(model, section, tile=64, precision="bf16")
    np.testing.assert_allclose(zarr.open(str(bf16), mode="r")[:], expected, atol=2e-6)
    assert np.abs(zarr.open(str(bf16), mode="r")[:] - zarr.open(str(fp32), mode="r")[:]).max() > 0


@pytest.mark.parametrize("factor_nm, block", [(8.0, 64), (2.5, 96)])
def test_rescaled_blocks_equal_the_whole_section_rescaled(tmp_path, models, volume, factor_nm, block):
    """A volume at another pixel size than the model's, in blocks smaller than a section: the same numbers as
    `predict_at_pixel_size` of each whole section (sections rescaled, predicted, resized back)."""
    model = models["small"]
    source = _zarr_input(tmp_path / "in.zarr", volume, chunks=(1, 32, 32))
    out = predict_volume(model, source, tmp_path / "out.zarr", block=block, tile=64, pixel_size=factor_nm)
    expected = predict_at_pixel_size(model, volume, factor_nm, tile=64)[:, 1]
    np.testing.assert_allclose(zarr.open(str(out), mode="r")[:], expected, atol=2e-6)
    settings = _info(out)
    assert settings["pixel_size_nm"] == factor_nm and settings["model_pixel_size_nm"] == 4.0
    # as is (no pixel size): plain predict_tiled, and not the same as the rescaled result
    plain = predict_volume(model, source, tmp_path / "plain.zarr", block=block, tile=64)
    assert _info(plain)["pixel_size_nm"] is None
    assert np.abs(zarr.open(str(plain), mode="r")[:] - expected).max() > 1e-3
