"""Signals during training stop it cleanly whatever native runtimes were loaded into the process.

A native library that leaves the thread's alternate signal stack pointing at freed memory (OpenVINO does,
see unet_zoo.utils.signals) turns the next signal into a segmentation fault. Tests that signal their own
process run in a fresh interpreter, so such a state cannot leak between tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from unet_zoo.utils.signals import current_signal_stack

ROOT = Path(__file__).resolve().parents[2]
CHILD = "UNET_ZOO_TEST_ALONE"

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or current_signal_stack() is None, reason="alternate signal stacks: Linux only"
)


def run_alone(request: pytest.FixtureRequest, timeout: float = 600) -> bool:
    """Run the calling test again, alone, in a fresh pytest process; returns True here (the parent: the test is
    done, its outcome asserted) and False in that child (which then runs the test's body)."""
    node = request.node.nodeid
    if os.environ.get(CHILD) == node:
        return False
    env = {**os.environ, CHILD: node, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore", node]
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{node} alone: exit {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
    return True


# A freed alternate signal stack, as a native runtime leaves it: mmap a stack, install it, unmap it.
DANGLING_STACK = """
import ctypes, faulthandler, mmap, os, signal
faulthandler.enable()  # installs a valid alternate stack first, as pytest does
from unet_zoo.utils.signals import _StackT, _is_mapped, current_signal_stack
region = mmap.mmap(-1, 1 << 16)
cell = ctypes.c_char.from_buffer(region)
stack = _StackT(ctypes.addressof(cell), 0, 1 << 16)
assert ctypes.CDLL(None).sigaltstack(ctypes.byref(stack), None) == 0
del cell
region.close()
address, size, flags = current_signal_stack()
assert not _is_mapped(address, size)
"""


def _run(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_a_freed_alternate_signal_stack_no_longer_crashes_a_stopped_training_loop():
    plain = _run(DANGLING_STACK + "signal.signal(signal.SIGTERM, lambda *a: None)\nos.kill(os.getpid(), signal.SIGTERM)\n")
    assert plain.returncode == -11  # the hazard: a Python handler on a freed stack is a segmentation fault
    guarded = _run(
        DANGLING_STACK
        + textwrap.dedent(
            """
            from unet_zoo.utils.signals import StopSignals
            with StopSignals() as stop:
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(100):  # the Python-level handler runs between bytecodes
                    pass
            assert stop.received == signal.SIGTERM, stop.received
            address, size, flags = current_signal_stack()
            assert _is_mapped(address, size)
            print("stopped cleanly")
            """
        )
    )
    assert guarded.returncode == 0, guarded.stderr
    assert "stopped cleanly" in guarded.stdout


@pytest.mark.slow
def test_openvino_leaves_the_callers_signal_stack_as_it_was():
    pytest.importorskip("openvino", reason='needs the openvino extra: pip install "unet-zoo[openvino]"')
    code = textwrap.dedent(
        """
        import faulthandler, gc
        faulthandler.enable()
        import unet_zoo
        from unet_zoo.benchmark.precision import openvino_forward
        from unet_zoo.utils.signals import _is_mapped, current_signal_stack
        before = current_signal_stack()
        net = unet_zoo.create_model("small", base_channels=4, depth=2).eval()
        first, second = openvino_forward(net, "f32"), openvino_forward(net, None)
        tiles = __import__("numpy").zeros((1, 1, 64, 64), "float32")
        first(tiles), second(tiles)  # each compiles its model on first use
        del first
        gc.collect()
        del second
        gc.collect()  # released in the order they were made: OpenVINO alone would leave the first one's freed stack
        assert current_signal_stack() == before, (before, current_signal_stack())
        print("kept")
        """
    )
    done = _run(code)
    assert done.returncode == 0 and "kept" in done.stdout, done.stderr[-3000:]
