"""``--scheduler`` pointed at what is not a dask scheduler, and ``--workers`` beyond the
computer: one line and exit 2, in bounded time, inputs unchanged (loopback only)."""

from __future__ import annotations

import contextlib
import http.server
import os
import socket
import struct
import threading

import numpy as np
import pytest
import tifffile

from .cli_process import digests, run_cli
from .conftest import assert_refused

#: A dask scheduler's real handshake: an 8-byte length, then the msgpack frames.
_BODY = (b"\x01\x00\x00\x00\x00\x00\x00\x00*\x00\x00\x00\x00\x00\x00\x00\x83\xabcompression"
         b"\xc0\xa6python\x93\x03\x0b\x07\xafpickle-protocol\x05")
HANDSHAKE = struct.pack("<Q", len(_BODY)) + _BODY


@pytest.fixture
def inputs(tmp_path, model_file):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        tifffile.imwrite(images / f"{name}.tif", rng.random((32, 32), dtype=np.float32))
    return model_file, images


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no access log on the test's stderr
        pass


@pytest.fixture
def http_port():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _peer(payload: bytes):
    """A loopback server that sends ``payload`` to every connection, then keeps it open."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            held.append(conn)
            with contextlib.suppress(OSError):
                conn.sendall(payload)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, stop, held, thread


@pytest.fixture
def peer():
    opened = []

    def start(payload: bytes) -> int:
        opened.append(_peer(payload))
        return opened[-1][0].getsockname()[1]

    yield start
    for listener, stop, held, thread in opened:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


def _predict(model, images, tmp_path, *where):
    before = digests(images)
    result = run_cli("predict", "--model", model, "--image", images / "*.tif", "--out",
                     tmp_path / "out", *where, timeout=600)
    assert digests(images) == before
    return result


def test_an_http_server_as_scheduler_is_named(inputs, tmp_path, http_port):
    model, images = inputs
    result = _predict(model, images, tmp_path, "--scheduler", f"tcp://127.0.0.1:{http_port}")
    assert_refused(result, rf"tcp://127\.0\.0\.1:{http_port} answered like an HTTP server "
                           r"\(the dashboard\?\), not a dask scheduler")


@pytest.mark.parametrize("garbage", [b"\xff" * 64, b"SSH-2.0-OpenSSH_9.6\r\n",
                                     struct.pack("<Q", 1 << 50)])
def test_garbage_instead_of_a_handshake_is_a_protocol_error(garbage, inputs, tmp_path, peer):
    model, images = inputs
    port = peer(garbage)
    result = _predict(model, images, tmp_path, "--scheduler", f"tcp://127.0.0.1:{port}")
    assert_refused(result, rf"127\.0\.0\.1:{port} answered with something that is not the "
                           "dask protocol")
    assert "out of memory" not in result[1]


@pytest.mark.parametrize("frame", [struct.pack("<Q", 1 << 50), b"\xff" * 64])
def test_a_garbage_frame_after_the_handshake_is_not_out_of_memory(frame, inputs, tmp_path,
                                                                  peer):
    """A peer that shakes hands and then declares a petabyte (or an impossible length):
    distributed fails to allocate it, which is the peer's fault, not this computer's."""
    model, images = inputs
    port = peer(HANDSHAKE + frame)
    result = _predict(model, images, tmp_path, "--scheduler", f"tcp://127.0.0.1:{port}")
    assert_refused(result, "not the dask protocol")
    assert "out of memory" not in result[1]


def test_a_silent_peer_is_named_within_the_deadline(inputs, tmp_path, peer):
    model, images = inputs
    port = peer(b"")
    result = _predict(model, images, tmp_path, "--scheduler", f"tcp://127.0.0.1:{port}")
    assert_refused(result, rf"127\.0\.0\.1:{port} accepted the connection but sent nothing")


def test_a_port_nobody_listens_on_is_one_line(inputs, tmp_path):
    model, images = inputs
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]  # free once closed
    result = _predict(model, images, tmp_path, "--scheduler", f"127.0.0.1:{port}")
    assert_refused(result, rf"cannot reach the dask scheduler at 127\.0\.0\.1:{port}")


def test_a_scheduler_address_that_is_no_address_is_one_line(inputs, tmp_path):
    model, images = inputs
    result = _predict(model, images, tmp_path, "--scheduler", "tcp://127.0.0.1:dashboard")
    assert_refused(result, "is not a scheduler address: write tcp://HOST:PORT")


def test_more_workers_than_cores_are_refused_with_the_limit(inputs, tmp_path):
    model, images = inputs
    cores = len(os.sched_getaffinity(0))
    result = _predict(model, images, tmp_path, "--workers", str(500 * cores))
    assert_refused(result, rf"^napari-unet: error: {500 * cores} worker processes asked for, "
                           rf"but this computer has .*: at most \d+ local workers?")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_more_workers_than_cores_on_one_image_are_refused(inputs, tmp_path):
    model, images = inputs
    before = digests(images)
    result = run_cli("predict", "--model", model, "--image", images / "a.tif", "--out",
                     tmp_path / "a.ome.zarr", "--workers", "1000", timeout=600)
    assert_refused(result, "1000 worker processes asked for")
    assert digests(images) == before and not (tmp_path / "a.ome.zarr").exists()
