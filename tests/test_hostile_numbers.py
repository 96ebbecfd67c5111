"""Property-based: arbitrary numbers (NaN, infinities, zero, negatives, huge, tiny) in every numeric option and
metadata field that reaches rescaling, segmentation or model building give a correct result or a clean refusal.

A clean refusal is exit status 2 with one ``error:`` line (the API: the module's `InputError`), never a
traceback; and no example may raise this process's peak memory by more than `MEMORY_BOUND` (the pixel-size
bounds cap a rescaled 64 x 64 image at 4096 x 4096, the checkpoint bounds a model at 200 M parameters).
"""

from __future__ import annotations

import json
import math
import resource
import shutil

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import unet_zoo
from unet_zoo.cli import app
from unet_zoo.hub.serialization import CONFIG_NAME, CheckpointError
from unet_zoo.inference.rescale import predict_at_pixel_size
from unet_zoo.models.provenance import provenance_of, set_provenance
from unet_zoo.models.registry import MAX_PARAMETERS, expected_state_shapes, model_args
from unet_zoo.segmentation import checkpoint_params, segment_probabilities
from unet_zoo.utils.errors import InputError

MEMORY_BOUND = 2 << 30  # bytes of peak memory (RSS) one example may add
SIDE = 64
runner = CliRunner()
SPECIAL = [math.nan, math.inf, -math.inf, 0.0, -0.0, -1.0, 1e-300, 5e-324, 1e-6, 1e5, 1e300, 1.0, 0.5]
FLOATS = st.one_of(st.sampled_from(SPECIAL), st.floats(allow_nan=True, allow_infinity=True), st.floats(-1e4, 1e4))
INTS = st.one_of(st.sampled_from([0, -1, 1, 2, 10**6, 10**12, -(10**12)]), st.integers(-(10**15), 10**15), st.integers(-4, 300))
NUMBERS = st.one_of(FLOATS, INTS)
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def _arg(value: float | int) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def _clean(result) -> str:
    """'ok' or 'refused' for a finished command; fails the test on a traceback or an unclean refusal."""
    assert "Traceback" not in result.output, result.output
    if result.exit_code == 0:
        return "ok"
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return "refused"


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    unet_zoo.save_pretrained(unet_zoo.create_model("small", base_channels=4, depth=2), root / "model")
    yy, xx = np.mgrid[:SIDE, :SIDE]
    image = (128 + 100 * np.sin(xx / 5.0) * np.cos(yy / 7.0)).astype(np.uint8)
    tifffile.imwrite(root / "img.tif", image)
    prob = (0.5 + 0.5 * np.sin(xx / 4.0) * np.sin(yy / 4.0)).astype(np.float32)
    tifffile.imwrite(root / "img_prob.tif", prob)
    expected_state_shapes("small", model_args("small"))  # the meta device's one-time start-up
    return root


SEGMENT_OPTIONS = {
    "--threshold": FLOATS,
    "--sigma": FLOATS,
    "--min-distance": INTS,
    "--min-size": INTS,
    "--merge-threshold": FLOATS,
}
PREDICT_OPTIONS = {"--pixel-size": FLOATS, "--threshold": FLOATS, "--tile": INTS, "--batch-size": INTS}


def _option_and_value(options: dict) -> st.SearchStrategy:
    """One option with an arbitrary value (the others keep their defaults, so that valid values run through)."""
    return st.sampled_from(sorted(options)).flatmap(lambda name: st.tuples(st.just(name), options[name]))


@SETTINGS
@given(choice=_option_and_value(SEGMENT_OPTIONS))
def test_segmentation_options(work, choice):
    option, value = choice
    out = work / "seg"
    shutil.rmtree(out, ignore_errors=True)
    start = _peak_bytes()
    args = ["segment", "default", str(work / "img_prob.tif"), "--from-probabilities", "--out", str(out), option, _arg(value)]
    if _clean(runner.invoke(app, args)) == "ok":
        labels = tifffile.imread(out / "img_labels.tif")
        assert labels.shape == (SIDE, SIDE) and labels.min() >= 1
    assert _peak_bytes() - start < MEMORY_BOUND


@pytest.mark.slow
@SETTINGS
@given(choice=_option_and_value(PREDICT_OPTIONS))
def test_prediction_options(work, choice):
    option, value = choice
    out = work / "pred"
    shutil.rmtree(out, ignore_errors=True)
    start = _peak_bytes()
    args = ["predict", str(work / "model"), str(work / "img.tif"), "--out", str(out), "--backend", "torch", option, _arg(value)]
    if _clean(runner.invoke(app, args)) == "ok":
        prob = tifffile.imread(out / "img_prob.tif")
        assert prob.shape == (SIDE, SIDE) and np.isfinite(prob).all() and 0 <= prob.min() <= prob.max() <= 1
    assert _peak_bytes() - start < MEMORY_BOUND


@SETTINGS
@given(
    field=st.sampled_from(["base_channels", "depth", "in_channels", "num_classes", "dropout", "padding"]),
    value=NUMBERS,
)
def test_model_args_in_a_checkpoint(work, tmp_path, field, value):
    folder = tmp_path / "ckpt"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(work / "model", folder)
    config = json.loads((folder / CONFIG_NAME).read_text())
    config["model_args"][field] = value
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    start = _peak_bytes()
    try:
        model = unet_zoo.from_pretrained(folder)
    except CheckpointError as err:
        assert "\n" not in str(err) and str(folder) in str(err)
    else:  # only a value the weights fit can load: the original model, unchanged
        assert sum(p.numel() for p in model.parameters()) <= MAX_PARAMETERS
        assert provenance_of(model).args[field] == value
    assert _peak_bytes() - start < MEMORY_BOUND


@SETTINGS
@given(
    image_size=FLOATS,
    card_size=st.one_of(FLOATS, st.none()),
    segmentation=st.fixed_dictionaries({}, optional={"sigma": FLOATS, "threshold": FLOATS, "min_size": INTS}),
)
def test_pixel_sizes_and_segmentation_defaults_in_metadata(work, image_size, card_size, segmentation, monkeypatch):
    from unet_zoo.inference import rescale

    def fake_network(model, stack, **kwargs):  # the rescaling is under test, not the network: uniform probabilities
        return np.full((len(stack), 2, *stack.shape[-2:]), 0.5, np.float32)

    monkeypatch.setattr(rescale, "predict_stack", fake_network)
    model = unet_zoo.from_pretrained(work / "model")
    card = {"training": {"pixel_size_nm": card_size}, "segmentation": segmentation}
    set_provenance(model, provenance_of(model).updated(card=card))
    image = tifffile.imread(work / "img.tif")
    start = _peak_bytes()
    probs = np.full((1, 2, SIDE, SIDE), 0.5, np.float32)
    try:
        probs = predict_at_pixel_size(model, image, pixel_size=image_size, tile=64)
    except InputError as err:
        assert "\n" not in str(err) and "pixel" in str(err)
    else:
        assert probs.shape == (1, 2, SIDE, SIDE) and np.isfinite(probs).all()
    try:
        params = checkpoint_params(model)
    except InputError as err:
        assert "\n" not in str(err) and "segmentation" in str(err)
    else:
        labels = segment_probabilities(probs[0], params)
        assert labels.shape == (SIDE, SIDE) and labels.min() >= 1
    assert _peak_bytes() - start < MEMORY_BOUND
