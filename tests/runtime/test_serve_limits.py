"""`serve` against clients that hold sockets: silent ones, slow ones, more than it has file
descriptors for, and more uploads at once than a Pi's memory takes. It stays up, answers
`/healthz`, says 503 (with JSON and Retry-After) where it must refuse, and keeps its log short."""

from __future__ import annotations

import http.client
import json
import resource
import socket
import time

import pytest

from edge_cifar.serve.server import BODY_READ_TIMEOUT_S, HEAD_TIMEOUT_S, RESERVED_DESCRIPTORS

from .support import edge_cifar_process, wait_for_url
from .test_serve import request, stop

DESCRIPTORS = 128  # the process: `ulimit -n 128`


def low_descriptor_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (DESCRIPTORS, DESCRIPTORS))


@pytest.fixture
def limited_server(model_path, slow_video):
    """`serve` with 128 file descriptors (a connection cap of 128 - RESERVED_DESCRIPTORS)."""
    process = edge_cifar_process(
        "serve", "-d", slow_video, "--port", 0, preexec_fn=low_descriptor_limit
    )
    url = wait_for_url(process)
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    yield process, url, port
    if process.poll() is None:
        stop(process)


def open_silent(port: int, count: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(count)]


def upload_head(length: int) -> bytes:
    """A POST /classify head for a body of `length` bytes; the Host is one a loopback server
    answers to (it refuses others with 400, before any upload slot is taken)."""
    head = f"POST /classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}\r\n\r\n"
    return head.encode()


def closed_by_server(connection: socket.socket) -> bytes:
    """What the server sent before closing (waits for the close, however long it takes)."""
    received = b""
    while chunk := connection.recv(4096):
        received += chunk
    return received


def test_healthz_answers_while_200_idle_sockets_are_open(limited_server):
    process, url, port = limited_server
    silent = open_silent(port, 200)
    try:
        # The cap is far below 200: each newer connection takes the place of the longest idle.
        status, _, body = request(url, path="/healthz")
        assert status == 200 and json.loads(body)["status"] in ("live", "starting")
        # The silent ones are closed: the oldest at once for newer ones, the rest when they have
        # sent no request for HEAD_TIMEOUT_S (a 408 in JSON, to a client that would read it).
        answers = [closed_by_server(connection) for connection in silent]
    finally:
        for connection in silent:
            connection.close()
    timed_out = [a for a in answers if a]
    assert timed_out and all(a.startswith(b"HTTP/1.1 408 ") for a in timed_out)
    assert b'{"error": "no complete request in time"}' in timed_out[0]
    assert len(timed_out) <= DESCRIPTORS - RESERVED_DESCRIPTORS
    _, stderr = stop(process)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and len(stderr.splitlines()) < 10, stderr


def test_a_request_head_sent_a_byte_at_a_time_is_cut(limited_server):
    _, _, port = limited_server
    connection = socket.create_connection(("127.0.0.1", port), timeout=60)
    start = time.monotonic()
    try:
        for byte in b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n":
            try:
                connection.send(bytes([byte]))
            except OSError:  # closed by the server: the deadline passed
                break
            time.sleep(HEAD_TIMEOUT_S / 5)
        answer = closed_by_server(connection)
    finally:
        connection.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert time.monotonic() - start >= HEAD_TIMEOUT_S


def test_beyond_the_cap_with_every_connection_busy_a_new_one_gets_503(limited_server):
    _, url, port = limited_server
    cap = DESCRIPTORS - RESERVED_DESCRIPTORS
    streams = []
    try:
        for _ in range(cap):  # live event streams: requests in progress, never idle
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            connection.request("GET", "/events")
            response = connection.getresponse()
            assert response.status == 200
            streams.append(connection)
        status, headers, body = request(url, path="/healthz")
    finally:
        for connection in streams:
            connection.close()
    assert status == 503 and headers["retry-after"] == "1", (status, body)
    assert json.loads(body) == {"error": "too many connections; retry shortly"}
    assert request(url, path="/healthz")[0] == 200  # the streams closed: room again


def test_a_third_upload_at_once_is_503_with_retry_after(limited_server):
    _, url, port = limited_server
    held = []
    try:
        for _ in range(2):  # two uploads under way: their heads sent, their bodies not yet
            connection = socket.create_connection(("127.0.0.1", port), timeout=60)
            connection.sendall(upload_head(1000) + bytes(10))
            held.append(connection)
        deadline = time.monotonic() + 60
        while True:  # the two have their slots once the server has read their heads
            status, headers, body = request(url, "POST", "/classify", body=b"x" * 100)
            if status == 503 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        for connection in held:
            connection.close()
    assert status == 503 and headers["retry-after"] == "1", (status, body)
    assert json.loads(body) == {"error": "busy with other uploads; retry shortly"}
    # The slots are free again once the two are gone.
    deadline = time.monotonic() + 60
    while (status := request(url, "POST", "/classify", body=b"x" * 100)[0]) == 503:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert status == 400  # not an image: the upload was taken and judged


def test_a_stalled_upload_is_cut_quietly(limited_server):
    process, url, port = limited_server
    connection = socket.create_connection(("127.0.0.1", port), timeout=60)
    start = time.monotonic()
    try:
        connection.sendall(upload_head(100_000) + bytes(10))
        closed_by_server(connection)  # nothing more is sent: the server gives up on it
    finally:
        connection.close()
    assert time.monotonic() - start >= BODY_READ_TIMEOUT_S
    assert request(url, path="/healthz")[0] == 200
    _, stderr = stop(process)
    assert process.returncode == 0 and "Traceback" not in stderr, stderr
