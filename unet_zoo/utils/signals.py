"""SIGTERM / SIGINT during training: noted, so the loop can checkpoint after the step and stop.

Python runs its signal handlers on the thread's alternate signal stack when one is set (``SA_ONSTACK``).
Some native runtimes install their own alternate stack on the thread that loads them and later free it
without putting the previous one back (OpenVINO's CPU plugin does so when two compiled models are released
in the order they were made); the next signal then kills the process with a segmentation fault before any
handler runs. `repair_signal_stack` detects such a dangling stack and installs a valid one, and
`keep_signal_stack` restores the caller's stack around a call into such a runtime. Both are Linux-only and
do nothing elsewhere.
"""

from __future__ import annotations

import ctypes
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

SS_DISABLE = 4  # Linux: the alternate stack is off
STACK_BYTES = 1 << 16  # what unet_zoo installs when it has to replace a dangling stack (glibc's SIGSTKSZ is 8 KiB)


class _StackT(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


_own_stacks: list[Any] = []  # the buffers of stacks unet_zoo installed: kept alive for the whole process


def _libc() -> Any | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def current_signal_stack() -> tuple[int, int, int] | None:
    """This thread's alternate signal stack as (address, size in bytes, flags), or None where it cannot be read."""
    libc = _libc()
    if libc is None:
        return None
    stack = _StackT()
    if libc.sigaltstack(None, ctypes.byref(stack)) != 0:
        return None
    return int(stack.ss_sp or 0), int(stack.ss_size), int(stack.ss_flags)


def _set_signal_stack(address: int, size: int, flags: int) -> bool:
    libc = _libc()
    if libc is None:
        return False
    stack = _StackT(ctypes.c_void_p(address or None), flags, size)
    return libc.sigaltstack(ctypes.byref(stack), None) == 0


def _is_mapped(address: int, size: int) -> bool:
    """Whether [address, address + size) lies in writable memory of this process (per /proc/self/maps)."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                span, perms = line.split()[:2]
                start, end = (int(x, 16) for x in span.split("-"))
                if start <= address and address + size <= end:
                    return "w" in perms
    except OSError:
        return True  # cannot tell: leave it alone
    return False


def repair_signal_stack() -> bool:
    """Replace this thread's alternate signal stack when it is set but its memory is gone; returns True if replaced.

    A signal delivered on such a stack kills the process (SIGSEGV) before any handler runs.
    """
    stack = current_signal_stack()
    if stack is None:
        return False
    address, size, flags = stack
    if flags & SS_DISABLE or not address or _is_mapped(address, size):
        return False
    buffer = ctypes.create_string_buffer(STACK_BYTES)
    if not _set_signal_stack(ctypes.addressof(buffer), STACK_BYTES, 0):
        return False
    _own_stacks.append(buffer)
    return True


@contextmanager
def keep_signal_stack() -> Iterator[None]:
    """Run a call into a native runtime and then put this thread's alternate signal stack back as it was."""
    before = current_signal_stack()
    try:
        yield
    finally:
        if before is not None and current_signal_stack() != before:
            _set_signal_stack(*before)


class StopSignals:
    """While active, SIGTERM/SIGINT only set `received` (the loop checkpoints and stops after the step).

    A second signal gets the previous handler (e.g. Ctrl-C twice kills at once). Only the main thread
    can install handlers; elsewhere this does nothing. Entering repairs a dangling alternate signal stack
    (`repair_signal_stack`), so a signal cannot crash the process whatever native runtimes were loaded.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            repair_signal_stack()
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        # Python runs this between bytecodes on the main thread, not in the C signal handler: it only notes the
        # signal and hands the next one to the previous handler.
        self.received = signum
        self._restore()

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            if handler is not None:  # None: a handler not installed from Python, which cannot be put back
                signal.signal(sig, handler)
        self._previous = {}

    def __exit__(self, *exc: Any) -> None:
        self._restore()


__all__ = ["StopSignals", "current_signal_stack", "keep_signal_stack", "repair_signal_stack"]
