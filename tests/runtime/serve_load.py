"""`make serve-load`: `edge-cifar serve` under load on loopback, once, for its figures.

Two sources: a 30 FPS 640x480 video played in real time (a camera's pace), and the same frame as
image files read as fast as the loop goes (its ceiling). For each, the same run twice: no clients,
then 20 MJPEG viewers plus 50 `POST /classify` per second, for 30 s. Reported: requests answered,
the loop's FPS (frames counted by /metrics between the 5th and the 30th second), and the server's
resident memory at the 10th and the 30th second. Bounded: fixed viewers, a fixed request rate,
a 10 s timeout per request; it ends after each run whatever happens.

    python tests/runtime/serve_load.py [--seconds 30] [--rounds 1]

With --rounds N each pair runs N times, alternating, so the drift of a shared machine's load falls
on both alike.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[2]
VIEWERS = 20
UPLOADS_PER_SECOND = 50
TIMEOUT_S = 10.0


def make_sources(folder: Path, seconds: float) -> dict[str, list[str]]:
    capture = cv2.VideoCapture(str(REPO / "samples" / "cifar_test.avi"))
    frames = []
    while (read := capture.read())[0]:
        frames.append(read[1])
    capture.release()
    video = folder / "camera30.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 30.0, (640, 480))
    count = int((seconds + 15) * 30)
    for index in range(count):
        writer.write(frames[(index // 15) % len(frames)])  # a new picture every half second
    writer.release()
    image = folder / "frame.png"
    cv2.imwrite(str(image), frames[0])
    images = folder / "images"  # one frame, linked under many names: a folder source
    images.mkdir()
    for index in range(30_000):
        os.link(image, images / f"{index:05d}.png")
    return {
        "30 FPS video, --realtime": ["-d", str(video)],
        "image files, unpaced": ["-d", str(images)],
    }


def start_serve(device_args: list[str]) -> tuple[subprocess.Popen[str], str, int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "edge_cifar", "serve", *device_args, "--port", "0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
    )
    assert process.stderr is not None
    for line in process.stderr:
        if line.startswith("serving on "):
            url = line.split()[-1]
            return process, url, int(url.rsplit(":", 1)[1].strip("/"))
    raise SystemExit("serve did not start")


def metric(port: int, name: str) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else float("nan")


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]


class Load:
    """20 viewers reading the MJPEG stream, and POST /classify at a fixed rate."""

    def __init__(self, port: int, upload: bytes) -> None:
        self.port, self.upload = port, upload
        self.stop = threading.Event()
        self.viewer_frames = [0] * VIEWERS
        self.sent = self.answered_ok = 0
        self.failures: dict[str, int] = {}
        self.latencies: list[float] = []
        self._lock = threading.Lock()

    def viewer(self, slot: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT_S)
        connection.request("GET", "/stream.mjpg")
        response = connection.getresponse()
        while not self.stop.is_set():
            line = response.readline()
            if not line:
                break
            if line.startswith(b"Content-Length:"):
                response.readline()
                response.read(int(line.split(b":")[1]))
                self.viewer_frames[slot] += 1
        connection.close()

    def classify(self) -> None:
        start = time.perf_counter()
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT_S)
            connection.request("POST", "/classify", body=self.upload)
            response = connection.getresponse()
            body = response.read()
            connection.close()
            outcome = (
                "ok" if response.status == 200 and b'"label"' in body else str(response.status)
            )
        except OSError as error:
            outcome = type(error).__name__
        with self._lock:
            if outcome == "ok":
                self.answered_ok += 1
                self.latencies.append(time.perf_counter() - start)
            else:
                self.failures[outcome] = self.failures.get(outcome, 0) + 1

    def run_uploads(self, pool: ThreadPoolExecutor) -> None:
        start = time.perf_counter()
        while not self.stop.is_set():
            pool.submit(self.classify)
            self.sent += 1
            due = start + self.sent / UPLOADS_PER_SECOND
            self.stop.wait(max(0.0, due - time.perf_counter()))


def measure(
    device_args: list[str], seconds: float, loaded: bool, upload: bytes
) -> dict[str, object]:
    process, _, port = start_serve(device_args)
    load = Load(port, upload)
    threads: list[threading.Thread] = []
    pool = ThreadPoolExecutor(max_workers=16)
    try:
        time.sleep(2)  # the loop's first frames; the model warmed up
        if loaded:
            threads = [threading.Thread(target=load.viewer, args=(i,)) for i in range(VIEWERS)]
            threads.append(threading.Thread(target=load.run_uploads, args=(pool,)))
            for thread in threads:
                thread.start()
        start = time.monotonic()
        samples: dict[str, float] = {}
        for mark in (5, 10, seconds):
            time.sleep(max(0.0, start + mark - time.monotonic()))
            samples[f"frames_{mark:g}s"] = metric(port, "edge_cifar_frames_total")
            samples[f"rss_{mark:g}s"] = rss_mib(process.pid)
        dropped = metric(port, 'edge_cifar_dropped_frames_total{stream="mjpeg"}')
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(timeout=TIMEOUT_S + 2)
        pool.shutdown(wait=True)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    fps = (samples[f"frames_{seconds:g}s"] - samples["frames_5s"]) / (seconds - 5)
    result: dict[str, object] = {
        "loop_fps": round(fps, 1),
        "rss_10s_mib": round(samples["rss_10s"], 1),
        f"rss_{seconds:g}s_mib": round(samples[f"rss_{seconds:g}s"], 1),
        "exit": process.returncode,
    }
    if loaded:
        latencies = sorted(load.latencies) or [float("nan")]
        result.update(
            uploads_sent=load.sent,
            uploads_answered_200=load.answered_ok,
            upload_failures=load.failures,
            upload_p50_ms=round(1e3 * latencies[len(latencies) // 2], 1) if latencies else None,
            upload_p99_ms=round(1e3 * latencies[int(len(latencies) * 0.99)], 1)
            if latencies
            else None,
            mjpeg_frames_per_viewer=[min(load.viewer_frames), max(load.viewer_frames)],
            mjpeg_dropped_for_viewers=dropped,
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=1)
    arguments = parser.parse_args()
    seconds = arguments.seconds
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    with tempfile.TemporaryDirectory() as folder:
        sources = make_sources(Path(folder), seconds)
        upload = cv2.imencode(".jpg", cv2.imread(str(Path(folder) / "frame.png")))[1].tobytes()
        report = {}
        for name, device_args in sources.items():
            for round_ in range(1, arguments.rounds + 1):
                for loaded in (False, True):
                    clients = "20 viewers + 50 uploads/s" if loaded else "no clients"
                    key = f"{name}: {clients}, round {round_}"
                    report[key] = measure(device_args, seconds, loaded, upload)
                    print(key, json.dumps(report[key]), flush=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
