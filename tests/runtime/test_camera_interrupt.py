"""Ctrl-C on a running `edge-cifar camera` ends it cleanly: a summary, exit 0, no traceback."""

import os
import signal
import subprocess
import sys

import numpy as np

from .support import REPO, write_png


def test_ctrl_c_stops_the_camera_with_a_summary(model_path, tmp_path):
    image = write_png(tmp_path / "frame.png", np.full((32, 32, 3), 128, np.uint8))
    # Thousands of frames: far more than the process gets through before the signal arrives.
    devices = [arg for _ in range(20000) for arg in ("--device", str(image))]
    process = subprocess.Popen(
        [sys.executable, "-m", "edge_cifar", "camera", "--headless", *devices],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
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
    # The signal may land between counting a frame and printing its line.
    assert printed <= counted <= printed + 1 and counted < 20000
