"""What answers at a scheduler's address, asked before dask.distributed is.

A dask scheduler speaks first: it sends its handshake (an 8-byte length, then a short
msgpack frame) as soon as a connection opens. :func:`check_scheduler` connects with a
deadline and reads that handshake, so that an HTTP server (the dashboard's port given by
mistake), a silent port or a peer that sends garbage is named in one sentence instead of
a hang, or an attempt to allocate the exabytes a garbage length declares.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from pathlib import PurePath

from napari_unet.core.errors import InputError

#: Seconds a scheduler has to send its handshake once connected (it sends it at once).
HANDSHAKE_TIMEOUT = 10.0
#: The largest handshake accepted (a real one is about 60 bytes).
MAX_HANDSHAKE = 1 << 16


def _tcp_address(address: str) -> tuple[str, int] | None:
    """(host, port) of a ``tcp://`` (or bare ``host:port``) address; ``None`` for the
    other protocols (tls, ucx, inproc), which are left to distributed."""
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "tcp", address
    if scheme != "tcp":
        return None
    host, _, port = rest.rstrip("/").rpartition(":")
    host = host.strip("[]")
    try:
        return host or "127.0.0.1", int(port)
    except ValueError:
        raise InputError(f"{address} is not a scheduler address: write tcp://HOST:PORT "
                         "(for example tcp://127.0.0.1:8786)") from None


def _recv_exactly(sock: socket.socket, n: int, deadline: float) -> bytes:
    data = b""
    while len(data) < n:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def protocol_error(address: str, detail: str = "") -> InputError:
    """The error of a peer at ``address`` that does not speak the dask protocol."""
    detail = f" ({detail})" if detail else ""
    return InputError(f"{address} answered with something that is not the dask protocol"
                      f"{detail}: is it a dask scheduler's address (usually port 8786)?")


def _is_http(sock: socket.socket, host: str, deadline: float) -> bool:
    try:
        sock.sendall(f"HEAD / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        return _recv_exactly(sock, 5, deadline).startswith(b"HTTP/")
    except OSError:
        return False


def check_scheduler(address: str, timeout: float) -> None:
    """Return when a dask scheduler answers at ``address``; else :class:`InputError`
    that says what answered: nothing (within ``timeout`` seconds to connect), an HTTP
    server, a silent peer, or bytes that are not a dask handshake."""
    where = _tcp_address(address)
    if where is None:
        return
    host, port = where
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except (OSError, TimeoutError) as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise InputError(f"cannot reach the dask scheduler at {address} ({reason})") from None
    with sock:
        deadline = time.monotonic() + min(timeout, HANDSHAKE_TIMEOUT)
        try:
            head = _recv_exactly(sock, 8, deadline)
        except TimeoutError:
            head = None
        except OSError as exc:
            raise InputError(f"the dask scheduler at {address} closed the connection "
                             f"({exc.strerror or exc})") from None
        if head is None:
            if _is_http(sock, host, time.monotonic() + min(timeout, HANDSHAKE_TIMEOUT)):
                raise InputError(f"{address} answered like an HTTP server (the dashboard?), "
                                 "not a dask scheduler: give the scheduler's own port "
                                 "(usually 8786)")
            raise InputError(f"{address} accepted the connection but sent nothing in "
                             f"{min(timeout, HANDSHAKE_TIMEOUT):g} s: not a dask scheduler")
        if len(head) < 8:
            raise InputError(f"{address} closed the connection without a dask handshake: "
                             "not a dask scheduler")
        (length,) = struct.unpack("<Q", head)
        if head.startswith(b"HTTP/"):
            raise InputError(f"{address} answered like an HTTP server, not a dask scheduler")
        if not 16 <= length <= MAX_HANDSHAKE:
            raise protocol_error(address, f"it began with {head!r}")
        try:
            body = _recv_exactly(sock, length, deadline)
        except (OSError, TimeoutError):
            body = b""
        if len(body) < length or b"compression" not in body or b"python" not in body:
            raise protocol_error(address, "no handshake")
        with contextlib.suppress(OSError):  # its own handshake is a valid reply: the
            sock.sendall(head + body)           # scheduler then sees a clean close


def from_the_wire(exc: BaseException) -> bool:
    """Whether ``exc`` was raised while distributed read or decoded a message (a
    MemoryError there is a length a peer declared, not this computer's memory)."""
    tb = exc.__traceback__
    while tb is not None:
        parts = PurePath(tb.tb_frame.f_code.co_filename).parts
        if "distributed" in parts and ("comm" in parts or "protocol" in parts):
            return True
        tb = tb.tb_next
    return False
