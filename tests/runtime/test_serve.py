"""`edge-cifar serve`: the live page in a real Chromium, the HTTP API and its refusals, and a
clean end. Each test talks to a real `serve` process over loopback."""

from __future__ import annotations

import http.client
import json
import signal
import time
import urllib.parse

import cv2
import numpy as np
import pytest

from .support import SAMPLE_VIDEO, edge_cifar_process, rss_mib, wait_for_url

TOKEN = "test-token-5b1e"
CHROMIUM = "/usr/bin/chromium"


def request(url, method="GET", path="/", body=None, headers=None, timeout=30):
    """(status, headers, body bytes) of one HTTP request; no redirects, no retries."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def stop(process, timeout=30):
    """SIGTERM, as systemd sends it: the process must end by itself with exit 0 and a summary."""
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=timeout)
    return stdout, stderr


@pytest.fixture(scope="module")
def server(model_path, slow_video):
    """A `serve --token` on the slow video; stopped with SIGTERM at the end of the module."""
    process = edge_cifar_process("serve", "-d", slow_video, "--port", 0, "--token", TOKEN)
    url = wait_for_url(process)
    yield process, url
    if process.poll() is None:
        stop(process)


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def assert_json_error(status, headers, body, expected_status):
    assert status == expected_status, body
    assert headers["content-type"].startswith("application/json"), headers
    payload = json.loads(body)
    assert set(payload) == {"error"} and payload["error"], payload
    assert b"Traceback" not in body
    return payload["error"]


@pytest.mark.parametrize("path", ["/", "/healthz", "/metrics", "/model", "/events"])
@pytest.mark.parametrize("auth", [None, "Bearer wrong-token", f"Basic {TOKEN}"])
def test_every_endpoint_refuses_a_missing_or_wrong_token(server, path, auth):
    _, url = server
    headers = {"Authorization": auth} if auth else {}
    assert_json_error(*request(url, path=path, headers=headers), 401)


def test_the_token_opens_the_endpoints_by_header_or_query(server, model_path):
    _, url = server
    deadline = time.monotonic() + 20
    while True:  # "starting" until the loop's first frame
        status, _, body = request(url, path="/healthz", headers=AUTH)
        if json.loads(body)["status"] != "starting" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 200 and json.loads(body)["status"] == "live"
    status, _, body = request(url, path=f"/model?token={TOKEN}")
    assert status == 200 and json.loads(body)["model"] == model_path.name


def test_the_token_can_come_from_the_environment_as_the_service_unit_sets_it(slow_video):
    process = edge_cifar_process(
        "serve", "-d", slow_video, "--port", 0, env={"EDGE_CIFAR_TOKEN": "from-env"}
    )
    try:
        url = wait_for_url(process)
        assert request(url, path="/healthz")[0] == 401
        assert request(url, path="/healthz", headers={"Authorization": "Bearer from-env"})[0] == 200
    finally:
        stop(process)
    assert process.returncode == 0


def test_classify_answers_like_classify_json(server, cli, model_path):
    _, url = server
    image = SAMPLE_VIDEO.parent / "images" / "0000_cat.png"
    status, _, body = request(url, "POST", "/classify", body=image.read_bytes(), headers=AUTH)
    assert status == 200, body
    answer = json.loads(body)
    [expected] = cli("classify", image, "--json").json_lines()
    # One decision shape: classify's line is the same object plus the file's path.
    assert set(expected) == {"path", *answer}
    assert {k: v for k, v in answer.items() if k != "ms"} == {
        k: v for k, v in expected.items() if k not in ("path", "ms")
    }
    assert set(answer["ms"]) == {"preprocess", "invoke", "postprocess"}


def test_an_oversized_upload_is_413(server):
    _, url = server
    body = bytes(10 * 1024 * 1024 + 1)
    assert "larger than" in assert_json_error(
        *request(url, "POST", "/classify", body=body, headers=AUTH), 413
    )


def test_a_decompression_bomb_is_refused_undecoded(server, bomb_png):
    process, url = server
    idle = rss_mib(process.pid)
    peak_before = rss_mib(process.pid, "VmHWM")
    message = assert_json_error(
        *request(url, "POST", "/classify", body=bomb_png.read_bytes(), headers=AUTH), 413
    )
    assert "not decoded" in message
    # Decoded, it would take 1.2 GB; refused from its header, the peak hardly moves.
    assert rss_mib(process.pid, "VmHWM") - max(idle, peak_before) < 200


def test_a_text_file_and_a_truncated_jpeg_are_400(server, tmp_path):
    _, url = server
    frame = cv2.resize(cv2.imread(str(SAMPLE_VIDEO.parent / "images" / "0000_cat.png")), (256, 256))
    jpeg = cv2.imencode(".jpg", frame)[1].tobytes()
    for body in (b"this is not an image\n" * 10, jpeg[: len(jpeg) // 2]):
        answer = request(url, "POST", "/classify", body=body, headers=AUTH)
        assert "not an image" in assert_json_error(*answer, 400)


def test_unknown_paths_and_methods_are_json_errors(server):
    _, url = server
    assert_json_error(*request(url, path="/../../etc/passwd", headers=AUTH), 404)
    assert_json_error(*request(url, path="/nothing-here", headers=AUTH), 404)
    assert_json_error(*request(url, "GET", "/classify", headers=AUTH), 405)


def test_metrics_count_frames_stages_errors_and_clients(server):
    _, url = server
    request(url, path="/nothing-here", headers=AUTH)
    status, headers, body = request(url, path="/metrics", headers=AUTH)
    assert status == 200 and headers["content-type"].startswith("text/plain")
    text = body.decode()
    values = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert values["edge_cifar_frames_total"] >= 1
    assert values['edge_cifar_stage_seconds_count{stage="invoke"}'] >= 1
    assert values['edge_cifar_errors_total{status="404"}'] >= 1
    assert 'edge_cifar_clients{stream="mjpeg"}' in values
    assert 'edge_cifar_dropped_frames_total{stream="mjpeg"}' in values


def test_a_second_server_on_a_taken_port_is_one_error_line(server, cli_process):
    _, url = server
    port = urllib.parse.urlsplit(url).port
    result = cli_process("serve", "-d", SAMPLE_VIDEO, "--port", port)
    result.assert_one_error_line(2, f"cannot listen on 127.0.0.1:{port}")


def test_serving_beyond_loopback_warns(model_path, slow_video):
    process = edge_cifar_process("serve", "-d", slow_video, "--host", "0.0.0.0", "--port", 0)
    try:
        url = wait_for_url(process)
        assert request(url.replace("0.0.0.0", "127.0.0.1"), path="/healthz")[0] == 200
    finally:
        stop(process)
    [warning] = process.startup_stderr.splitlines()[:-1]
    assert warning.startswith("warning: listening on 0.0.0.0, not loopback")
    assert "no --token" in warning


def test_the_page_shows_live_frames_and_the_label_follows_the_video(model_path, tmp_path):
    from playwright.sync_api import sync_playwright

    process = edge_cifar_process("serve", "-d", SAMPLE_VIDEO, "--port", 0, "--json")
    url = wait_for_url(process)
    labels_seen, frames_differ = [], False
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox", "--disable-background-networking", "--no-first-run"],
            )
            page = browser.new_page()
            page.goto(url)
            page.wait_for_function(
                "document.getElementById('stream').naturalWidth === 640", timeout=20_000
            )
            # The <img>'s pixels, twice: a stream of frames, not one picture.
            checksum = """() => { const img = document.getElementById('stream');
                const canvas = document.createElement('canvas');
                canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
                const context = canvas.getContext('2d'); context.drawImage(img, 0, 0);
                const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
                let sum = 0;
                for (let i = 0; i < data.length; i += 7) sum = (sum * 31 + data[i]) % 1e9;
                return sum; }"""
            deadline = time.monotonic() + 12
            first = page.evaluate(checksum)
            while time.monotonic() < deadline and (len(set(labels_seen)) < 3 or not frames_differ):
                page.wait_for_timeout(300)
                label = page.inner_text("#label")
                if label and label != "…":
                    labels_seen.append(label)
                frames_differ = frames_differ or page.evaluate(checksum) != first
            assert page.inner_text("#fps") not in ("", "0.0")
            assert model_path.name in page.inner_text("#model")
            page.screenshot(path=str(tmp_path / "page.png"))
            browser.close()
    finally:
        stdout, stderr = stop(process)
    assert frames_differ, "the stream's picture never changed"
    # The sample video moves through CIFAR classes; the page's label follows it.
    assert len(set(labels_seen)) >= 3, labels_seen
    printed = {json.loads(line)["label"] for line in stdout.splitlines()}
    assert set(labels_seen) <= printed | {"uncertain"}
    assert (tmp_path / "page.png").stat().st_size > 10_000
    assert process.returncode == 0, stderr
    assert "stopped by SIGTERM" in stderr.strip().splitlines()[-1]


def test_a_lost_camera_shows_on_healthz_and_the_page_s_events(model_path):
    from edge_cifar.classifier import Classifier
    from edge_cifar.interpreter import Model
    from edge_cifar.serve.app import ServeConfig, UploadClassifier, build_app
    from edge_cifar.serve.feed import LiveFeed, Metrics, ServeSink
    from edge_cifar.serve.server import WebServer

    feed = LiveFeed(Metrics())
    sink = ServeSink(feed)
    uploads = UploadClassifier(Classifier(Model(model_path)), 1_000_000)
    server = WebServer(build_app(feed, uploads, ServeConfig({})), "127.0.0.1", 0)
    server.start()
    try:
        sink.source_state(False)  # what ReopeningSource reports when the camera goes away
        status, _, body = request(server.url, path="/healthz")
        assert status == 503 and json.loads(body)["status"] == "camera lost"
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        connection.request("GET", "/events")
        first_event = connection.getresponse().readline()
        connection.close()
        assert json.loads(first_event.removeprefix(b"data: "))["status"] == "camera lost"
        _, _, body = request(server.url, path="/metrics")
        assert b"edge_cifar_source_lost 1.0" in body
        sink.source_state(True)
        assert request(server.url, path="/healthz")[0] == 200
    finally:
        sink.close()
        server.stop()


def test_a_viewer_gets_the_newest_frames_at_most_30_a_second_however_fast_the_loop(model_path):
    import threading

    from edge_cifar.camera import FrameResult
    from edge_cifar.classifier import Classifier, decide
    from edge_cifar.interpreter import Model
    from edge_cifar.serve.app import ServeConfig, UploadClassifier, build_app
    from edge_cifar.serve.feed import MJPEG_MAX_FPS, LiveFeed, Metrics, ServeSink
    from edge_cifar.serve.server import WebServer

    feed = LiveFeed(Metrics())
    sink = ServeSink(feed)
    uploads = UploadClassifier(Classifier(Model(model_path)), 1_000_000)
    server = WebServer(build_app(feed, uploads, ServeConfig({})), "127.0.0.1", 0)
    server.start()
    done = threading.Event()

    def fast_loop():  # 500 frames a second, as an unpaced file source might go
        index = 0
        while not done.wait(0.002):
            frame = np.full((48, 64, 3), index % 256, np.uint8)
            decision = decide(np.array([0.9, 0.1], np.float32), ("cat", "dog"), 1, 0.0, {})
            sink.write(frame, FrameResult(index, decision), 500.0)
            index += 1

    producer = threading.Thread(target=fast_loop)
    producer.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        connection.request("GET", "/stream.mjpg")
        response = connection.getresponse()
        received, start = 0, time.monotonic()
        while time.monotonic() - start < 2.0:
            line = response.readline()
            if line.startswith(b"Content-Length:"):
                response.readline()
                assert cv2.imdecode(np.frombuffer(response.read(int(line[15:])), np.uint8), 1).shape
                received += 1
        connection.close()
        _, _, body = request(server.url, path="/metrics")
    finally:
        done.set()
        producer.join()
        sink.close()
        server.stop()
    assert 10 <= received <= 2.0 * MJPEG_MAX_FPS + 3, received
    dropped = [line for line in body.decode().splitlines() if line.startswith("edge_cifar_dropped")]
    assert float(dropped[0].split()[-1]) > 300, dropped  # the frames it skipped were counted
