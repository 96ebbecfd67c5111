"""segment_volume: section by section into Zarr, IDs unique across the volume, resumable, equal to per-section segments."""

from __future__ import annotations

import numpy as np
import pytest

zarr = pytest.importorskip("zarr", reason="volume segmentation needs the optional volumes extra (zarr)")

from tests.segmentation.conftest import probabilities_of  # noqa: E402
from unet_zoo.evaluation.metrics import rand_pair_counts  # noqa: E402
from unet_zoo.segmentation import SegmentationParams, segment_probabilities  # noqa: E402
from unet_zoo.segmentation.volume import MARKERS, segment_volume  # noqa: E402
from unet_zoo.training.data import synthetic_cells  # noqa: E402


@pytest.fixture(scope="module")
def volume() -> np.ndarray:
    """(3, 96, 128) float32 P(cell) of synthetic cells."""
    _, labels = synthetic_cells(3, 128, seed=7)
    return np.stack([probabilities_of(label[:96], seed=i)[1] for i, label in enumerate(labels)])


def _store(tmp_path, volume) -> str:
    path = str(tmp_path / "prob.zarr")
    zarr.create_array(path, shape=volume.shape, chunks=(1, 96, 128), dtype="float32")[:] = volume
    return path


def test_sections_are_segmented_with_ids_unique_across_the_volume(tmp_path, volume):
    calls = []
    out = segment_volume(_store(tmp_path, volume), tmp_path / "seg.zarr", block=64, halo=32, progress=lambda *a: calls.append(a))
    seg = zarr.open_array(str(out), mode="r")[:]
    assert seg.dtype == np.uint32 and seg.shape == volume.shape and seg.min() >= 1
    assert calls[-1] == ("segment", 3, 3)
    ids = [set(np.unique(s).tolist()) for s in seg]
    assert not (ids[0] & ids[1]) and not (ids[1] & ids[2])
    for z in range(3):  # blockwise (2 x 2 blocks) agrees with the whole section in memory
        whole = segment_probabilities(volume[z]).astype(np.int64)
        assert rand_pair_counts(whole, seg[z].astype(np.int64)).fscore >= 0.999
    assert zarr.open_array(str(out)).attrs["unet_zoo_segmentation"]["complete"] is True
    assert not (out / MARKERS).exists()


def test_an_interrupted_run_resumes_and_a_finished_one_is_kept(tmp_path, volume, monkeypatch):
    import unet_zoo.segmentation.volume as module

    source, out = _store(tmp_path, volume), tmp_path / "seg.zarr"
    real, seen = module.segment_blockwise, []

    def fail_at_section_1(section, *args, **kwargs):
        seen.append(section.z)
        if section.z == 1 and seen.count(1) == 1:
            raise KeyboardInterrupt
        return real(section, *args, **kwargs)

    monkeypatch.setattr(module, "segment_blockwise", fail_at_section_1)
    with pytest.raises(KeyboardInterrupt):
        segment_volume(source, out, block=64)
    segment_volume(source, out, block=64)
    assert seen == [0, 1, 1, 2]  # section 0 was not segmented again
    resumed = zarr.open_array(str(out), mode="r")[:]
    monkeypatch.setattr(module, "segment_blockwise", real)
    fresh = segment_volume(source, tmp_path / "fresh.zarr", block=64)
    assert np.array_equal(resumed, zarr.open_array(str(fresh), mode="r")[:])
    with pytest.raises(FileExistsError, match="finished segmentation"):
        segment_volume(source, out, block=64)
    with pytest.raises(FileExistsError, match="other settings"):
        module.shutil.rmtree(out)  # start an unfinished one, then change the settings
        monkeypatch.setattr(module, "segment_blockwise", fail_at_section_1)
        seen.clear()
        with pytest.raises(KeyboardInterrupt):
            segment_volume(source, out, block=64)
        segment_volume(source, out, block=32)
    segment_volume(source, out, block=64, overwrite=True)


def test_a_model_predicts_first(tmp_path):
    import unet_zoo

    images, _ = synthetic_cells(2, 64, seed=1)
    model = unet_zoo.create_model("small", base_channels=4, depth=2)
    out = segment_volume(images, tmp_path / "seg.zarr", model=model, tile=64, block=64)
    assert zarr.open_array(str(out), mode="r").shape == (2, 64, 64)
    assert (tmp_path / "seg-probabilities.zarr").is_dir()


def test_a_volume_at_another_pixel_size_is_predicted_rescaled_with_the_lengths_converted(tmp_path, monkeypatch):
    import unet_zoo
    import unet_zoo.segmentation.volume as volume_module

    images, _ = synthetic_cells(1, 64, seed=1)
    model = unet_zoo.create_model("small", base_channels=4, depth=2)
    used = []
    real = volume_module.segment_blockwise
    monkeypatch.setattr(
        volume_module, "segment_blockwise", lambda prob, params, **kw: used.append(params) or real(prob, params, **kw)
    )
    out = segment_volume(images, tmp_path / "seg.zarr", model=model, tile=64, block=64, pixel_size=8.0)
    assert zarr.open_array(str(out), mode="r").shape == (1, 64, 64)
    assert zarr.open_array(str(tmp_path / "seg-probabilities.zarr"), mode="r").attrs["unet_zoo"]["pixel_size_nm"] == 8.0
    assert used and used[0] == SegmentationParams().coarser(2.0)


@pytest.mark.slow
def test_a_local_dask_cluster_gives_the_same_cells_as_one_process(tmp_path, volume):
    """Sections segmented on two worker processes, numbered here: identical to the run in one process."""
    pytest.importorskip("distributed", reason="cluster runs need the optional volumes extra (dask.distributed)")
    from unet_zoo.segmentation.volume import sections_path

    source = _store(tmp_path, volume)
    alone = zarr.open_array(str(segment_volume(source, tmp_path / "one.zarr", block=64, halo=32)), mode="r")[:]
    out = segment_volume(source, tmp_path / "cluster.zarr", block=64, halo=32, workers=2)
    assert np.array_equal(zarr.open_array(str(out), mode="r")[:], alone)
    assert not sections_path(out).exists()  # the workers' temporary store is removed once the IDs are written
    with pytest.raises(ValueError, match="either scheduler .* or workers"):
        segment_volume(source, tmp_path / "x.zarr", workers=1, scheduler="tcp://127.0.0.1:1")


def _interrupt_once(monkeypatch, owner, name, when):
    """Make `owner.name` raise KeyboardInterrupt (as Ctrl-C or a kill would stop the run) the first time `when(*args)`."""
    real, fired = getattr(owner, name), []

    def wrapper(*args, **kwargs):
        if not fired and when(*args):
            fired.append(True)
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)


def _stop_predicting(patch, module):
    from unet_zoo.volumes.predict import VolumeJob

    _interrupt_once(patch, VolumeJob, "run", lambda job, model, index: index[0] == 1)


STAGES = {
    "predicting": _stop_predicting,
    "between the stages": lambda patch, module: _interrupt_once(patch, module, "_open_output", lambda *a: True),
    "segmenting": lambda patch, module: _interrupt_once(patch, module, "segment_blockwise", lambda section, *a: section.z == 1),
}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_run_stopped_in_any_stage_resumes_and_gives_the_same_cells(tmp_path, monkeypatch, stage):
    """Stopped while predicting, after the prediction, or while segmenting: the same call again continues (finished
    blocks and sections are not computed again) and gives what an uninterrupted run gives. The kept prediction is
    used only for the same model: other weights are refused, not mixed in."""
    import torch

    import unet_zoo
    import unet_zoo.segmentation.volume as module
    from unet_zoo.volumes.predict import VolumeJob

    images, _ = synthetic_cells(3, 64, seed=2)
    torch.manual_seed(0)
    model = unet_zoo.create_model("small", base_channels=4, depth=2).eval()
    fresh = segment_volume(images, tmp_path / "fresh.zarr", model=model, tile=64, block=64)
    blocks = []
    real_run = VolumeJob.run
    monkeypatch.setattr(VolumeJob, "run", lambda job, net, index: blocks.append(index) or real_run(job, net, index))
    out = tmp_path / "seg.zarr"
    with monkeypatch.context() as patch:
        STAGES[stage](patch, module)
        with pytest.raises(KeyboardInterrupt):
            segment_volume(images, out, model=model, tile=64, block=64)
    if stage == "between the stages":
        other = unet_zoo.create_model("small", base_channels=4, depth=2).eval()
        with pytest.raises(FileExistsError, match="finished prediction"):
            segment_volume(images, out, model=other, tile=64, block=64)
    resumed = segment_volume(images, out, model=model, tile=64, block=64)
    assert len(blocks) == len(set(blocks)) == 3  # each block predicted once over both runs
    assert np.array_equal(zarr.open_array(str(resumed), mode="r")[:], zarr.open_array(str(fresh), mode="r")[:])
    assert zarr.open_array(str(resumed), mode="r").attrs["unet_zoo_segmentation"]["complete"] is True
