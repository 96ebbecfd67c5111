"""What a training run keeps besides its weights: its folder (`RunFolder`) and its clock (`Clock`).

A run folder (``runs/<recipe>-<YYYYmmdd-HHMMSS>/`` by default) holds ``recipe.json`` (what the run is),
``metrics.jsonl`` (one JSON object per logged step or validation), ``checkpoint.safetensors`` (the training state a
run resumes from, `unet_zoo.hub.training_state`), and at the end ``curves.png``, ``predictions.png`` and ``summary.json``.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from unet_zoo.hub.training_state import TRAINING_STATE_FILE
from unet_zoo.training.recipes import Recipe
from unet_zoo.utils.files import atomic_write_bytes, mark_owned

RUNS_DIR = Path("runs")
RUN_FOLDER = "training run"  # what a run folder is marked as (unet_zoo.utils.files.mark_owned)
RECIPE_FILE, METRICS_FILE, SUMMARY_FILE = "recipe.json", "metrics.jsonl", "summary.json"


def default_run_dir(name: str) -> Path:
    """``runs/<name>-<YYYYmmdd-HHMMSS>`` (relative to the working directory); `name` is the recipe's."""
    return RUNS_DIR / f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def latest_run_dir(recipe_name: str, runs_dir: str | Path = RUNS_DIR) -> Path:
    """The newest ``runs/<recipe_name>-*`` folder holding a checkpoint (for ``--resume`` without a folder)."""
    candidates = sorted(p for p in Path(runs_dir).glob(f"{recipe_name}-*") if (p / TRAINING_STATE_FILE).is_file())
    if not candidates:
        raise FileNotFoundError(f"no run of {recipe_name!r} with a checkpoint under {runs_dir}/; pass --resume DIR")
    return candidates[-1]


class RunFolder:
    """The folder a run writes to, and the run's history (the records of metrics.jsonl).

    Only the writing process (`writer`: rank 0 under torchrun) touches the disk; every process keeps the history.
    """

    def __init__(self, path: Path, writer: bool = True):
        self.path = Path(path)
        self.writer = writer
        self.history: list[dict[str, Any]] = []

    @property
    def state_file(self) -> Path:
        """The training state (``checkpoint.safetensors``) a resumed run continues from."""
        return self.path / TRAINING_STATE_FILE

    def open(self, recipe: Recipe, resumed_step: int | None = None) -> None:
        """Write recipe.json (marking a folder this run creates as unet_zoo's) and start metrics.jsonl; a resumed
        run (`resumed_step`: the step of its checkpoint) keeps the records up to that step and drops later ones."""
        if self.writer:
            new = not self.path.is_dir() or not any(self.path.iterdir())
            self.path.mkdir(parents=True, exist_ok=True)
            if new:  # a folder this run creates is marked as unet_zoo's (only such a folder --overwrite replaces)
                mark_owned(self.path, RUN_FOLDER)
            atomic_write_bytes(self.path / RECIPE_FILE, json.dumps(recipe.as_dict(), indent=2).encode())
        self.history = self._read_history(resumed_step) if resumed_step is not None else []
        if self.writer:
            atomic_write_bytes(self.path / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in self.history).encode())

    def log(self, record: dict[str, Any]) -> None:
        """Add `record` to the history and append it to metrics.jsonl."""
        self.history.append(record)
        if self.writer:
            with open(self.path / METRICS_FILE, "a") as f:
                f.write(json.dumps(record) + "\n")

    def last(self, key: str) -> Any:
        """The value of `key` in the latest record holding it, or None."""
        return next((h[key] for h in reversed(self.history) if key in h), None)

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        """Write `data` to the file `name` of the folder, atomically (writer only)."""
        if self.writer:
            atomic_write_bytes(self.path / name, json.dumps(data, indent=2).encode())

    def _read_history(self, step: int) -> list[dict[str, Any]]:
        path = self.path / METRICS_FILE
        if not path.is_file():
            return []
        records = []
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut off by the kill; the log is rewritten from the records kept
                continue
        return [rec for rec in records if rec.get("step", 0) <= step]  # drop steps after the checkpoint


class Clock:
    """The run's one clock (`time.perf_counter` seconds), started by `start`.

    It tells the run's training time, earlier sessions of a resumed run included (`run_seconds`), this session's
    (`session_seconds`, what ``time_limit`` bounds), the steps per second since the last log (`lap`) and the
    seconds per step since the last stop check (`seconds_per_step`).
    """

    def __init__(self) -> None:
        self.earlier = 0.0  # training seconds of the run's earlier sessions
        self.session_start = 0.0
        self.lap_start, self.lap_steps = 0.0, 0
        self.check_start, self.check_steps = 0.0, 0
        self.checkpoint_seconds = 0.0  # how long the last checkpoint took to write

    def start(self, earlier: float = 0.0) -> None:
        """Start this session; `earlier`: training seconds of the run's earlier sessions."""
        now = time.perf_counter()
        self.earlier = earlier
        self.session_start = self.lap_start = self.check_start = now
        self.lap_steps = self.check_steps = 0

    def step_done(self) -> None:
        """Count one more step in the current lap and check window."""
        self.lap_steps += 1
        self.check_steps += 1

    def run_seconds(self, now: float | None = None) -> float:
        """Training seconds of the whole run so far."""
        return self.earlier + (time.perf_counter() if now is None else now) - self.session_start

    def session_seconds(self, now: float) -> float:
        """Seconds since this session started."""
        return now - self.session_start

    def lap(self, now: float) -> tuple[int, float]:
        """(steps, seconds) since the previous lap; starts the next."""
        steps, seconds = self.lap_steps, now - self.lap_start
        self.lap_start, self.lap_steps = now, 0
        return steps, seconds

    def seconds_per_step(self, now: float) -> float:
        """Mean seconds per step since the previous call; starts the next window."""
        seconds = (now - self.check_start) / max(self.check_steps, 1)
        self.check_start, self.check_steps = now, 0
        return seconds


__all__ = ["Clock", "RUNS_DIR", "RUN_FOLDER", "RunFolder", "default_run_dir", "latest_run_dir"]
