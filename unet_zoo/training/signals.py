"""SIGTERM / SIGINT during training: noted, so the loop can checkpoint after the step and stop."""

from __future__ import annotations

import signal
import threading
from typing import Any


class StopSignals:
    """While active, SIGTERM/SIGINT only set `received` (the loop checkpoints and stops after the step).

    A second signal gets the previous handler (e.g. Ctrl-C twice kills at once). Only the main thread
    can install handlers; elsewhere this does nothing.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signum
        self._restore()

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def __exit__(self, *exc: Any) -> None:
        self._restore()


__all__ = ["StopSignals"]
