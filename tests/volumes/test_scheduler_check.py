"""--scheduler pointing at something that is not a dask scheduler fails within the promised time, with one line."""

from __future__ import annotations

import http.server
import socket
import threading
import time

import numpy as np
import pytest

pytest.importorskip("distributed", reason='cluster runs need the volumes extra: pip install "unet-zoo[volumes]"')

from unet_zoo.volumes import cluster as volume_cluster  # noqa: E402


class _Junk(threading.Thread):
    """A raw TCP server on loopback that sends `payload` to every connection (and closes it when `close`)."""

    def __init__(self, payload: bytes, close: bool):
        super().__init__(daemon=True)
        self.payload, self.close_after = payload, close
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address = f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []

    def run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.sendall(self.payload)
            if self.close_after:
                conn.close()
            else:
                self.held.append(conn)

    def stop(self):
        self.sock.close()
        for conn in self.held:
            conn.close()


def _http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"tcp://127.0.0.1:{server.server_address[1]}"


SERVICES = {
    "web server": lambda: _http_server(),
    "junk bytes": lambda: _started(_Junk(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>" * 4, close=False)),
    "a huge frame length": lambda: _started(_Junk(b"\xff" * 64, close=False)),
    "closes at once": lambda: _started(_Junk(b"", close=True)),
}


def _started(server: _Junk):
    server.start()
    return server, server.address


def _stop(server) -> None:
    if isinstance(server, _Junk):
        server.stop()
    else:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_service_that_is_no_dask_scheduler_is_refused_in_time(tmp_path, monkeypatch, service):
    import unet_zoo
    from unet_zoo.volumes.predict import predict_volume

    monkeypatch.setattr(volume_cluster, "CONNECT_TIMEOUT_S", 2)
    server, address = SERVICES[service]()
    model = unet_zoo.create_model("small", base_channels=4, depth=2).eval()
    start = time.monotonic()
    try:
        with pytest.raises(ConnectionError) as info:
            predict_volume(model, np.zeros((1, 64, 64), np.uint8), tmp_path / "out.zarr", tile=64, scheduler=address)
    finally:
        _stop(server)
    assert time.monotonic() - start < 2 + 3  # the limit, plus the time to build the settings
    message = str(info.value)
    assert address in message and "\n" not in message and "--workers" in message
    assert not (tmp_path / "out.zarr").exists()


@pytest.mark.parametrize("timeout", [0, -1, float("nan")])
def test_the_scheduler_timeout_must_be_positive(timeout):
    with pytest.raises(ValueError, match="timeout must be > 0"):
        volume_cluster.check_scheduler("tcp://127.0.0.1:9", timeout)


def test_a_scheduler_address_needs_a_port():
    with pytest.raises(ValueError, match="tcp://HOST:PORT"):
        volume_cluster.check_scheduler("tcp://127.0.0.1", 1)
