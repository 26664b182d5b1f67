"""What `serve` refuses before any route runs: an empty token (it would mean no authentication), a
Host it was not bound as (DNS rebinding from a web page), an image bomb or a header OpenCV
refuses over HTTP (413 in JSON, never a 500); and the headers every answer carries."""

from __future__ import annotations

import urllib.parse

import pytest

from .support import edge_cifar_process, hdr_bomb, wait_for_url
from .test_serve import assert_json_error, request, stop


@pytest.fixture(scope="module")
def server(model_path, slow_video):
    """A tokenless loopback `serve`, told of one more name it may be reached by."""
    process = edge_cifar_process("serve", "-d", slow_video, "--port", 0, "--allow-host", "Pi.local")
    url = wait_for_url(process)
    yield process, url
    if process.poll() is None:
        stop(process)


@pytest.mark.parametrize("how", ["--token ''", "EDGE_CIFAR_TOKEN=''"])
def test_an_empty_token_is_refused_not_taken_as_no_authentication(
    model_path, cli_process, monkeypatch, how
):
    if how.startswith("--token"):
        result = cli_process("serve", "-d", "0", "--token", "", "--port", 0)
    else:
        monkeypatch.setenv("EDGE_CIFAR_TOKEN", "")
        result = cli_process("serve", "-d", "0", "--port", 0)
    result.assert_one_error_line(2, "--token or EDGE_CIFAR_TOKEN is empty")


@pytest.mark.parametrize("path", ["/", "/healthz", "/nothing-here"])
def test_every_answer_forbids_sniffing_and_framing(server, path):
    _, url = server
    _, headers, _ = request(url, path=path)
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-security-policy"] == "frame-ancestors 'none'"
    assert headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("pi.local", True),  # --allow-host, in any case
        ("attacker.example", False),  # a rebinding page's own name
        ("192.168.1.20", False),
    ],
)
def test_a_loopback_server_answers_only_to_its_own_names(server, host, allowed):
    _, url = server
    port = urllib.parse.urlsplit(url).port
    answer = request(url, path="/healthz", headers={"Host": f"{host}:{port}"})
    if allowed:
        assert answer[0] == 200, answer
    else:
        assert "unknown host" in assert_json_error(*answer, 400)


def test_an_hdr_bomb_and_an_opencv_refused_header_are_413_not_500(server, tmp_path):
    _, url = server
    bomb = hdr_bomb(tmp_path / "bomb.hdr")  # 6.4 MB declaring 10,000 x 10,000
    wide = b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 1 +X 2000000\n"
    for body in (bomb.read_bytes(), wide):
        message = assert_json_error(*request(url, "POST", "/classify", body=body), 413)
        assert "not decoded" in message
    process, _ = server
    assert request(url, path="/healthz")[0] == 200  # still up
    _, stderr = stop(process)
    assert "Traceback" not in stderr, stderr
