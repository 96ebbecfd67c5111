import dataclasses
import json

import numpy as np
import pytest
import torch

import unet_zoo
from unet_zoo.hub.training_state import load_training_state
from unet_zoo.training import trainer as training
from unet_zoo.training.optim import lr_factor
from unet_zoo.training.precision import execution_config
from unet_zoo.training.recipes import load_recipe
from unet_zoo.training.trainer import NonFiniteLossError, Trainer, train


@pytest.fixture(scope="module")
def tiny():
    return load_recipe("tiny")


def _params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class Killed(Exception):
    """What SIGKILL leaves behind: the process ends after a step, before that step's checkpoint is written."""


def kill_after(step: int):
    """A progress callback that ends the run like SIGKILL once `step` steps are done."""

    def callback(progress):
        if progress.event == "step" and progress.step == step:
            raise Killed

    return callback


def change_losses(monkeypatch, change):
    """Apply ``change(completed_steps, loss) -> loss`` to the loss of every training step."""
    original, calls = training.step_loss, []

    def step_loss(*args, **kwargs):
        calls.append(None)
        return change(len(calls) - 1, original(*args, **kwargs))

    monkeypatch.setattr(training, "step_loss", step_loss)


@pytest.mark.slow
def test_tiny_run_writes_everything(tmp_path, tiny):
    result = train(tiny.with_overrides(train={"steps": 12, "eval_every": 6}, optimizer={"lr": 0.003}), out_dir=tmp_path)
    assert result.step == 12
    names = {p.name for p in tmp_path.iterdir()}
    assert {"checkpoint.safetensors", "metrics.jsonl", "curves.png", "predictions.png", "recipe.json", "summary.json"} <= names
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == list(range(1, 13))
    assert all(np.isfinite(r["loss"]) and r["tiles_per_s"] > 0 for r in records if "loss" in r)
    assert [r["step"] for r in records if "val_loss" in r] == [6, 12]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 12 and summary["final_loss"] == [r["loss"] for r in records if "loss" in r][-1]
    assert summary["val_pixel_error"] == records[-1]["val_pixel_error"]
    assert load_training_state(tmp_path).step == 12
    from PIL import Image

    assert Image.open(tmp_path / "predictions.png").size[0] > 100


@pytest.mark.slow
def test_resume_after_kill_gives_identical_weights(tmp_path, tiny):
    full = train(tiny, out_dir=tmp_path / "full", final_outputs=False)
    # "kill" after step 4: the last checkpoint is from step 3 (checkpoint_every = 3); step 4 is lost.
    with pytest.raises(Killed):
        Trainer.from_recipe(tiny, out_dir=tmp_path / "killed", callback=kill_after(4), final_outputs=False).fit()
    assert load_training_state(tmp_path / "killed").step == 3
    with open(tmp_path / "killed" / "metrics.jsonl", "a") as f:  # the kill cut a log line in half
        f.write('{"step": 5, "loss": 0.6')
    resumed = Trainer.from_recipe(tiny, resume=tmp_path / "killed", final_outputs=False).fit()
    assert resumed.step == full.step == tiny.train.steps
    a, b = _params(full.model), _params(resumed.model)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # and the weights did change during training
    first = load_training_state(tmp_path / "killed")  # now the final checkpoint
    assert first.step == tiny.train.steps
    records = [json.loads(line) for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "loss" in r]
    assert steps == list(range(1, tiny.train.steps + 1)), "resumed log must hold every step once"


@pytest.mark.slow
def test_resume_keeps_the_precision_the_run_started_with(tmp_path, tiny, monkeypatch):
    """precision "auto" decided bf16 when the run started; the resumed session keeps bf16 although "auto" would
    now say fp32, and finishes bit-identical to an uninterrupted bf16 run."""
    from unet_zoo.runtime import measured

    auto = tiny.with_overrides(train={"precision": "auto"})
    monkeypatch.setenv(measured.TRAINING_PRECISION_ENV, "bf16")
    full = train(auto, out_dir=tmp_path / "full", final_outputs=False)
    assert full.precision == "bf16"
    with pytest.raises(Killed):
        Trainer.from_recipe(auto, out_dir=tmp_path / "killed", callback=kill_after(4), final_outputs=False).fit()
    assert load_training_state(tmp_path / "killed").extra["precision"] == "bf16"
    monkeypatch.setenv(measured.TRAINING_PRECISION_ENV, "fp32")
    reports = []
    resumed = Trainer.from_recipe(auto, resume=tmp_path / "killed", final_outputs=False, callback=reports.append).fit()
    assert resumed.precision == "bf16" and reports[0].precision.startswith("bf16 (resumed")
    for k, v in _params(full.model).items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    assert train(auto, out_dir=tmp_path / "fp32", final_outputs=False).precision == "fp32"  # a new run decides anew


def test_resume_beyond_the_requested_steps_is_explained(tmp_path, tiny):
    train(tiny, out_dir=tmp_path, final_outputs=False)
    with pytest.raises(ValueError, match=r"checkpoint .* is at step 6, beyond the 4 steps"):
        Trainer.from_recipe(tiny, resume=tmp_path, steps=4)


@pytest.mark.slow
def test_resume_without_rng_restore_would_differ(tmp_path, tiny):
    """Guards the test above: dropping the RNG state changes the result, so the equality is meaningful."""
    full = train(tiny, out_dir=tmp_path / "full", final_outputs=False)
    with pytest.raises(Killed):
        Trainer.from_recipe(tiny, out_dir=tmp_path / "k", callback=kill_after(4), final_outputs=False).fit()
    state = load_training_state(tmp_path / "k")
    state.rng.clear()
    with pytest.warns(RuntimeWarning, match="fresh random streams"):
        trainer = Trainer.from_recipe(tiny, resume=state, out_dir=tmp_path / "k", final_outputs=False)
    other = trainer.fit()
    assert any(not torch.equal(v, other.model.state_dict()[k]) for k, v in full.model.state_dict().items())


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, tiny, monkeypatch):
    change_losses(monkeypatch, lambda step, loss: loss * float("nan") if step == 4 else loss)
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at step 5.*last good checkpoint"):
        train(tiny, out_dir=tmp_path)
    ckpt = load_training_state(tmp_path)
    assert ckpt.step == 3 and all(torch.isfinite(v).all() for v in ckpt.model.values())


@pytest.mark.slow
def test_non_finite_weights_are_never_checkpointed(tmp_path, tiny, monkeypatch):
    """A finite loss with NaN gradients at a checkpoint step: the NaN weights must not replace the last good file."""
    trainer = Trainer.from_recipe(tiny, out_dir=tmp_path, final_outputs=False)

    def nan_gradient(step, loss):
        if step != tiny.train.steps - 1:  # the last step, which is also a checkpoint step
            return loss
        p = next(trainer.model.parameters())
        zero = p.sum() - p.sum().detach()  # value 0, gradient 1
        return loss + 0 * torch.sqrt(zero)  # same (finite) loss value, gradient 0 * inf = NaN

    change_losses(monkeypatch, nan_gradient)
    with pytest.raises(NonFiniteLossError, match=r"weights became NaN/inf at step 6.*last good checkpoint"):
        trainer.fit()
    ckpt = load_training_state(tmp_path)
    assert ckpt.step == 3 and all(torch.isfinite(v).all() for v in ckpt.model.values())


def test_absurd_learning_rate_is_caught(tmp_path, tiny):
    recipe = tiny.with_overrides(
        optimizer={"lr": 1e30, "momentum": 0.0},
        schedule={"warmup_steps": 0, "kind": "constant"},
        train={"steps": 20, "checkpoint_every": 1},
    )
    with pytest.raises(NonFiniteLossError):
        train(recipe, out_dir=tmp_path)
    assert load_training_state(tmp_path).step >= 1


def test_lr_schedule(tiny):
    r = tiny.with_overrides(train={"steps": 100}, schedule={"kind": "cosine", "warmup_steps": 10, "min_lr_ratio": 0.1})
    assert lr_factor(r.schedule, r.train.steps, 0) == pytest.approx(0.1)
    assert lr_factor(r.schedule, r.train.steps, 9) == pytest.approx(1.0)
    assert lr_factor(r.schedule, r.train.steps, 10) == pytest.approx(1.0)
    assert lr_factor(r.schedule, r.train.steps, 100) == pytest.approx(0.1)
    assert 0.1 < lr_factor(r.schedule, r.train.steps, 55) < 1.0


@pytest.mark.slow
def test_valid_convolution_model_trains_with_mirrored_context(tmp_path, tiny):
    """The paper's unpadded network: input tiles larger than output tiles, labels cropped to the output."""
    recipe = tiny.with_overrides(
        model={"name": "original", "args": {"base_channels": 4, "depth": 2}},
        data={"tile": 60},
        train={"steps": 2, "checkpoint_every": 2},
    )
    result = train(recipe, out_dir=tmp_path)
    assert result.model.output_size(60) == 20 and result.step == 2
    assert np.isfinite(result.final_loss) and (tmp_path / "predictions.png").is_file()


@pytest.mark.slow
def test_progress_goes_to_the_callback_and_nothing_is_printed(tmp_path, tiny, capsys):
    reports = []
    recipe = tiny.with_overrides(train={"steps": 4, "log_every": 2, "eval_every": 2})
    train(recipe, out_dir=tmp_path, final_outputs=False, callback=reports.append)
    assert capsys.readouterr() == ("", "")
    assert [r.event for r in reports] == ["start", "step", "step", "validation", "step", "step", "validation", "end"]
    assert all(r.total_steps == 4 for r in reports) and reports[0].step == 0 and reports[-1].step == 4
    logged = [r for r in reports if r.event == "step" and r.loss is not None]
    assert [r.step for r in logged] == [2, 4] and all(r.tiles_per_s and r.tiles_per_s > 0 for r in logged)
    assert set(reports[3].scores) == {"val_loss", "val_pixel_error"}
    assert all(b.elapsed_s >= a.elapsed_s for a, b in zip(reports, reports[1:]))


def test_execution_config_fast_path_on_gpu_plain_on_cpu(monkeypatch):
    from unet_zoo.runtime import measured
    from unet_zoo.training import precision

    monkeypatch.setattr(precision, "cpu_bf16_hardware", lambda: None)  # a CPU without bf16 units: fp32 unmeasured
    monkeypatch.delenv(measured.TRAINING_PRECISION_ENV)  # the rules themselves, not conftest's fp32
    original = load_recipe("isbi-original")  # precision/channels_last "auto", compile = true
    cpu = execution_config(original, torch.device("cpu"))
    assert (cpu.amp_dtype, cpu.channels_last, cpu.compile) == (None, False, False)
    assert execution_config(original, torch.device("cpu"), compile=True).compile
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    gpu = execution_config(original, torch.device("cuda"))
    assert (gpu.amp_dtype, gpu.channels_last, gpu.compile) == (torch.bfloat16, True, True)
    assert not execution_config(original, torch.device("cuda"), compile=False).compile
    fp32 = original.with_overrides(train={"precision": "fp32", "channels_last": "off"})
    assert execution_config(fp32, torch.device("cuda")).amp_dtype is None
    assert not execution_config(fp32, torch.device("cuda")).channels_last
    # a GPU without bf16 (before Ampere): "auto" falls back to float32, an explicit "bf16" is an error
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla V100")
    assert execution_config(original, torch.device("cuda")).amp_dtype is None
    with pytest.raises(ValueError, match="Tesla V100 has no bfloat16 support"):
        execution_config(original.with_overrides(train={"precision": "bf16"}), torch.device("cuda"))
    assert execution_config(original.with_overrides(train={"precision": "bf16"}), torch.device("cpu")).amp_dtype == torch.bfloat16


def _backend_state():
    return torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()


@pytest.mark.slow
def test_a_run_leaves_the_global_backend_settings_as_they_were(tmp_path, tiny, monkeypatch):
    before = _backend_state()
    train(tiny.with_overrides(train={"steps": 2}), out_dir=tmp_path / "cpu", final_outputs=False)
    assert _backend_state() == before
    # The CUDA setting (cuDNN autotuning and TF32 under runtime.fast_backend) forced on the CPU: on during the run only.
    real = training.execution_config
    monkeypatch.setattr(training, "execution_config", lambda *a, **k: dataclasses.replace(real(*a, **k), fast_backend=True))
    during = []
    train(
        tiny.with_overrides(train={"steps": 2}),
        out_dir=tmp_path / "fast",
        final_outputs=False,
        callback=lambda p: during.append(_backend_state()),
    )
    assert during and all(state == (True, True, "high") for state in during)
    assert _backend_state() == before


@pytest.mark.slow
def test_gpu_code_path_bf16_channels_last_runs_on_cpu(tmp_path, tiny):
    """The GPU settings (bf16 autocast, channels_last) forced on the CPU: the same code path trains and checkpoints."""
    recipe = tiny.with_overrides(train={"steps": 3, "precision": "bf16", "channels_last": "on"})
    trainer = Trainer.from_recipe(recipe, out_dir=tmp_path)
    result = trainer.fit()
    assert trainer.execution.amp_dtype == torch.bfloat16 and trainer.execution.channels_last
    assert trainer.sampler.device == trainer.device == torch.device("cpu")  # augmentation where the model is
    first_conv = next(p for p in result.model.parameters() if p.ndim == 4)
    assert first_conv.is_contiguous(memory_format=torch.channels_last)
    assert np.isfinite(result.final_loss) and load_training_state(tmp_path).step == 3
    assert all(v.dtype == torch.float32 for v in load_training_state(tmp_path).model.values() if v.is_floating_point())


@pytest.mark.slow
def test_sigterm_checkpoints_the_current_step_and_resume_finishes_identically(tmp_path, tiny, monkeypatch, request):
    """SIGTERM mid-step: the step completes, is checkpointed (not the older periodic one), and resume matches.

    The test signals its own process, so it runs alone in a fresh pytest process: whatever native runtimes
    other tests loaded into this one cannot change what the signal does."""
    import os
    import signal

    from tests.utils.test_signals import run_alone
    from unet_zoo.training.trainer import TrainingInterrupted

    if run_alone(request):
        return

    full = train(tiny, out_dir=tmp_path / "full", final_outputs=False)

    def terminate_during_step_5(step, loss):  # step is the number of completed steps
        if step == 4:
            os.kill(os.getpid(), signal.SIGTERM)
        return loss

    previous = signal.getsignal(signal.SIGTERM)
    change_losses(monkeypatch, terminate_during_step_5)
    with pytest.raises(TrainingInterrupted, match=r"SIGTERM stopped training of 'tiny' after step 5 of 6.*--resume") as info:
        Trainer.from_recipe(tiny, out_dir=tmp_path / "stopped", final_outputs=False).fit()
    monkeypatch.undo()
    assert signal.getsignal(signal.SIGTERM) is previous  # handlers restored
    assert info.value.step == 5 and info.value.signal_number == signal.SIGTERM
    stopped = load_training_state(tmp_path / "stopped")
    assert stopped.step == 5  # checkpoint_every is 3: only the signal explains a step-5 checkpoint
    assert stopped.extra["train_seconds"] > 0
    resumed = train(tiny, resume=tmp_path / "stopped")
    for k, v in _params(full.model).items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    # times cover both sessions: the resumed run's total includes the first session's seconds
    assert resumed.seconds >= stopped.extra["train_seconds"]
    summary = json.loads((tmp_path / "stopped" / "summary.json").read_text())
    assert summary["train_seconds"] >= stopped.extra["train_seconds"]


@pytest.mark.slow
def test_time_limit_checkpoints_before_the_budget_and_resume_finishes_identically(tmp_path, tiny, monkeypatch):
    from unet_zoo.training import trainer as training
    from unet_zoo.training.trainer import TimeLimitReached

    full = train(tiny, out_dir=tmp_path / "full", final_outputs=False)
    # A clock that advances 10 s per reading: a 45 s budget ends the session after a few steps, deterministically.
    ticks = iter(range(0, 10**6, 10))
    monkeypatch.setattr(training.time, "perf_counter", lambda: float(next(ticks)))
    with pytest.raises(TimeLimitReached, match="time limit of 0.75 min") as stopped:
        Trainer.from_recipe(tiny, out_dir=tmp_path / "cut", final_outputs=False, time_limit=45).fit()
    monkeypatch.undo()
    step = stopped.value.step
    assert 0 < step < tiny.train.steps
    assert load_training_state(tmp_path / "cut").step == step  # the step it stopped at is saved, none is lost
    resumed = Trainer.from_recipe(tiny, resume=tmp_path / "cut", final_outputs=False).fit()
    assert resumed.step == tiny.train.steps
    a, b = _params(full.model), _params(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_time_limit_must_be_positive(tiny):
    with pytest.raises(ValueError, match="time_limit"):
        Trainer.from_recipe(tiny, time_limit=0)


@pytest.mark.slow
def test_init_from_starts_from_a_saved_checkpoint_and_records_it(tmp_path, tiny):
    source = train(tiny.with_overrides(train={"steps": 3}), out_dir=tmp_path / "first", final_outputs=False)
    unet_zoo.save_pretrained(source.model, tmp_path / "start")
    recipe = tiny.with_overrides(model={"init_from": str(tmp_path / "start")})
    trainer = Trainer.from_recipe(recipe, out_dir=tmp_path / "second", final_outputs=False)
    expected = _params(source.model)
    assert all(torch.equal(v, expected[k]) for k, v in trainer.model.state_dict().items())
    assert trainer.init_info["source"] == str(tmp_path / "start")
    result = trainer.fit()
    assert result.init_from["source"] == str(tmp_path / "start")
    assert load_training_state(tmp_path / "second").extra["init_from"]["source"] == str(tmp_path / "start")


def test_init_from_with_other_shapes_is_a_clear_error(tmp_path, tiny):
    from unet_zoo import create_model
    from unet_zoo.hub.pretrained import CheckpointError

    unet_zoo.save_pretrained(create_model("small", base_channels=8, depth=2), tmp_path / "other")  # tiny has 4 base channels
    recipe = tiny.with_overrides(model={"init_from": str(tmp_path / "other")})
    with pytest.raises(CheckpointError, match="init_from"):
        Trainer.from_recipe(recipe, out_dir=tmp_path / "run", final_outputs=False).fit()
    with pytest.raises(ValueError, match="cannot be loaded"):
        Trainer.from_recipe(
            tiny.with_overrides(model={"init_from": str(tmp_path / "missing")}),
            out_dir=tmp_path / "r2",
            final_outputs=False,
        ).fit()


def test_execution_config_uses_the_measured_precision_on_the_cpu_unless_the_recipe_says_fp32(monkeypatch):
    from unet_zoo.runtime import measured
    from unet_zoo.training import precision

    monkeypatch.delenv(measured.TRAINING_PRECISION_ENV)
    monkeypatch.setattr(precision, "cpu_bf16_hardware", lambda: "avx512_bf16")
    timings = {"fp32": 1.0, "bf16": 0.4}
    monkeypatch.setattr(precision, "measure_training_precisions", lambda *a, **k: dict(timings))
    cpu = execution_config(load_recipe("isbi-original"), torch.device("cpu"))
    assert (cpu.amp_dtype, cpu.channels_last, cpu.compile) == (torch.bfloat16, True, False)
    for name in ("isbi-small-cpu", "isbi-padded-cpu", "isbi-original-cpu", "isbi-quick"):  # trained in float32
        assert execution_config(load_recipe(name), torch.device("cpu")).precision == "fp32", name
    timings["bf16"] = 2.0  # bf16 measured slower: float32 (a fresh cache, another step shape)
    recipe = load_recipe("isbi-original").with_overrides(data={"tile": 188})
    assert execution_config(recipe, torch.device("cpu")).precision == "fp32"
    # what a resumed run started with wins over the recipe and the measurement
    assert execution_config(recipe, torch.device("cpu"), precision="bf16").precision == "bf16"


@pytest.mark.slow
def test_bf16_training_follows_the_fp32_loss_curve_and_records_its_precision(tmp_path, tiny):
    def run(precision):
        recipe = tiny.with_overrides(train={"steps": 4, "precision": precision, "eval_every": 4, "overlay_slices": 0})
        return train(recipe, out_dir=tmp_path / precision, device="cpu")

    fp32, bf16 = run("fp32"), run("bf16")
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    for result in (fp32, bf16):
        summary = json.loads((result.run_dir / "summary.json").read_text())
        assert summary["precision"] == result.precision
        assert summary["channels_last"] is (result.precision == "bf16")
    curve = {r.precision: np.array([h["loss"] for h in r.history if "loss" in h]) for r in (fp32, bf16)}
    assert len(curve["bf16"]) == len(curve["fp32"]) == 4 and np.isfinite(curve["bf16"]).all()
    np.testing.assert_allclose(curve["bf16"], curve["fp32"], rtol=0.05)  # same data, same init: bf16 rounding only
