"""How a running CLI process ends when its user stops it: Ctrl-C, or a reader that closes stdout
(`edge-cifar ... | head`). Either way: exit 0, no traceback."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from .support import REPO, write_png

FRAMES = 20000  # far more than the process gets through before it is stopped


def start(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "edge_cifar", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_ctrl_c_stops_the_camera_with_a_summary(model_path, tmp_path):
    image = write_png(tmp_path / "frame.png", np.full((32, 32, 3), 128, np.uint8))
    process = start("camera", "--headless", *[a for _ in range(FRAMES) for a in ("-d", image)])
    try:
        first_line = process.stdout.readline()  # the loop is running
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert first_line.startswith('{"frame": 0')
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    summary = stderr.strip().splitlines()[-1]
    assert "stopped by Ctrl-C" in summary and "FPS" in summary
    counted = int(summary.split(": ", 1)[1].split(" frames")[0])
    printed = 1 + len(stdout.splitlines())
    # The signal may land between counting a frame and printing its line, so the summary may count
    # a frame or two more than the lines that came out; it never counts fewer.
    assert printed <= counted < FRAMES


@pytest.mark.parametrize("command", ["camera", "classify"])
def test_a_reader_closing_stdout_ends_the_command_quietly(model_path, tmp_path, command):
    image = write_png(tmp_path / "frame.png", np.full((32, 32, 3), 128, np.uint8))
    if command == "camera":
        process = start("camera", "--headless", *[a for _ in range(FRAMES) for a in ("-d", image)])
    else:
        process = start("classify", *[image] * FRAMES)
    try:
        assert process.stdout.readline()  # it is running
        process.stdout.close()  # what `| head -1` does next
        stderr = process.stderr.read()
        process.wait(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and "error" not in stderr
    if command == "camera":
        assert "stopped by output closed" in stderr
