"""Run a volume's blocks on a dask.distributed cluster: a local one (`workers`) or an existing one (`scheduler`).

The model goes to every worker once, in a worker plugin (also to workers that join later); tasks carry
only a block index, so a worker loads the model once however many blocks it runs. Workers read their
blocks from the source and write them to the output themselves (both must be reachable at the same paths).
"""

from __future__ import annotations

import io
import logging
import socket
import struct
import time
import uuid
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from unet_zoo.runtime.settings import threads_per_worker

try:
    from distributed import Client, LocalCluster, WorkerPlugin, as_completed, get_worker
except ImportError as _err:  # the optional extra: keep the message actionable
    raise ImportError('distributed volume prediction needs dask.distributed: pip install "unet-zoo[volumes]"') from _err

CONNECT_TIMEOUT_S = 10  # a scheduler that cannot be reached, or a service that is no scheduler, fails within this time
HANDSHAKE_MAX_BYTES = 1 << 20  # a dask handshake is a few hundred bytes; a larger first frame is not dask speaking
IN_FLIGHT_PER_WORKER = 2  # blocks queued per worker thread: enough to keep workers busy, little scheduler state

# per-process counters, readable on each worker with client.run (tests check the model is loaded once)
MODEL_LOADS = 0
BLOCKS_RUN = 0


def _serialise(model: nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save(model, buffer)  # the module (architecture + weights + provenance attributes), as it is
    return buffer.getvalue()


class VolumeModelPlugin(WorkerPlugin):
    """Holds the job and the serialised model; `setup` (once per worker) loads the model."""

    def __init__(self, name: str, job: Any, payload: bytes, device: str | None, torch_threads: int | None):
        self.name, self.job, self.payload = name, job, payload
        self.device, self.torch_threads = device, torch_threads
        self.model: nn.Module | None = None

    def setup(self, worker) -> None:
        global MODEL_LOADS
        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        model = torch.load(io.BytesIO(self.payload), map_location=device, weights_only=False)
        self.model = model.eval()
        MODEL_LOADS += 1

    def teardown(self, worker) -> None:
        self.model = None


def _run_block(plugin_name: str, index: tuple[int, int, int]) -> str:
    """A task: run block `index` with the model the worker's plugin loaded."""
    global BLOCKS_RUN
    plugin = get_worker().plugins[plugin_name]
    name = plugin.job.run(plugin.model, index)
    BLOCKS_RUN += 1
    return name


def connect(scheduler: Any = None, workers: int | None = None, memory_limit: str | float | None = "auto"):
    """(client, cluster or None): a Client of `scheduler` (address or Client) or of a new LocalCluster."""
    if isinstance(scheduler, Client):
        return scheduler, None
    if scheduler is not None:
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        check_scheduler(str(scheduler), CONNECT_TIMEOUT_S)
        try:
            return Client(str(scheduler), timeout=max(1.0, deadline - time.monotonic())), None
        except Exception as err:  # noqa: BLE001  whatever the connection raised: say which address and what to do
            raise ConnectionError(
                f"cannot reach the dask scheduler at {scheduler} within {CONNECT_TIMEOUT_S} s ({type(err).__name__}: "
                f"{str(err)[:200]}); {_ADVICE}"
            ) from None
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",
        memory_limit=memory_limit,
        silence_logs=logging.ERROR,
    )
    return Client(cluster), cluster


_ADVICE = "check the address and that `dask scheduler` runs there, or use workers=N (--workers N) for a local cluster"


def check_scheduler(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise ConnectionError unless a dask scheduler answers at the tcp `address` within `timeout` seconds.

    A dask scheduler sends its handshake as soon as a connection is accepted: the first 8 bytes are the length
    of a small frame. The check connects, reads those bytes with a deadline and checks the length is plausible,
    so a closed port, a web server (which waits for a request) or a service sending other bytes is refused
    within `timeout` instead of hanging or being read as a frame of exabytes. Other protocols (tls://, ucx://,
    inproc://) are left to dask.distributed. ValueError for an address without a port or a timeout <= 0.
    """
    if not timeout > 0:
        raise ValueError(f"the scheduler timeout must be > 0 seconds, got {timeout}")
    scheme, _, rest = address.rpartition("://")
    if scheme not in ("", "tcp"):
        return
    host, _, port = rest.rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--scheduler {address}: expected tcp://HOST:PORT, e.g. tcp://127.0.0.1:8786")
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as sock:
            head = b""
            while len(head) < 8:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                block = sock.recv(8 - len(head))
                if not block:
                    break
                head += block
    except TimeoutError:
        raise ConnectionError(
            f"{address} accepted the connection but sent no dask handshake within {timeout:g} s: it is not a dask "
            f"scheduler (a web server, or the dashboard's port?); {_ADVICE}"
        ) from None
    except OSError as err:
        raise ConnectionError(f"cannot reach the dask scheduler at {address} within {timeout:g} s ({err}); {_ADVICE}") from None
    if len(head) < 8:
        raise ConnectionError(f"{address} closed the connection without a dask handshake: it is not a dask scheduler; {_ADVICE}")
    (size,) = struct.unpack("Q", head)
    if not 0 < size <= HANDSHAKE_MAX_BYTES:
        raise ConnectionError(f"{address} answered with {head!r}, not a dask handshake: it is not a dask scheduler; {_ADVICE}")


def run_on_cluster(
    job: Any,
    model: nn.Module,
    indices: list[tuple[int, int, int]],
    advance: Callable[[], None],
    client: Client,
    *,
    device: str | None = None,
    local_workers: int | None = None,
) -> None:
    """Run `job.run(model, index)` for every index on `client`'s cluster; `advance()` after each finished block.

    `local_workers`: the number of worker processes of a local cluster, which share this machine's cores
    (each then runs torch with cores / workers threads: `unet_zoo.runtime.settings.threads_per_worker`, the cores
    being those this process may use); None leaves the workers' torch threads alone.
    """
    threads = threads_per_worker(local_workers) if local_workers else None
    name = f"unet_zoo-volume-{uuid.uuid4().hex[:12]}"
    plugin = VolumeModelPlugin(name, job, _serialise(model), device, threads)
    try:
        client.register_plugin(plugin, name=name)
        slots = IN_FLIGHT_PER_WORKER * max(1, sum(client.nthreads().values()))
        pending = iter(indices)

        def submit(index):
            return client.submit(_run_block, name, index, pure=False, key=f"{name}-{'.'.join(map(str, index))}")

        running = as_completed([submit(i) for _, i in zip(range(slots), pending)])
        for future in running:
            try:
                future.result()
            except BaseException:
                client.cancel(list(running.futures))
                raise
            advance()
            following = next(pending, None)
            if following is not None:
                running.add(submit(following))
    finally:
        try:
            client.unregister_worker_plugin(name)
        except Exception:  # the cluster may already be gone (the error being raised says why)
            pass


__all__ = ["VolumeModelPlugin", "check_scheduler", "connect", "run_on_cluster"]
