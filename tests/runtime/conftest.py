"""Fixtures for the runtime's tests: they run where the device's packages are, not TensorFlow.

The model is the shipped `default` (`firmware_models/`), named in $EDGE_CIFAR_MODEL as a device's
service names its model, so every command a test runs without --model uses it: 0.2 ms an invoke
here, where the packaged default `pi` takes 3 ms, and about 470 ms under `make pi-check`'s qemu.
The packaged default itself is tested by name (test_packaged_default.py). Without the model the
tests that need one skip and say why. CIFAR-10 test images come from $CIFAR10_DIR, else the
shared copy beside the checkout (`cifar10_dir` in tests/conftest.py), read by `train.data`, which
needs only NumPy.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_cifar.cli import app
from edge_cifar.interpreter import ModelError
from edge_cifar.model_files import shipped_model_path
from edge_cifar.options import MODEL_VARIABLE

from .support import REPO, SAMPLE_VIDEO, TEST_MODEL, CliResult


@pytest.fixture(scope="session", autouse=True)
def test_model_by_environment():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(MODEL_VARIABLE, TEST_MODEL)
        yield


@pytest.fixture(scope="session")
def model_path() -> Path:
    try:
        return shipped_model_path(TEST_MODEL)
    except ModelError as error:
        pytest.skip(f"no shipped INT8 model to test with: {error}")


@pytest.fixture(scope="session")
def float_model_path(model_path: Path) -> Path:
    path = model_path.with_name(model_path.name.replace("_int8", "_float"))
    if not path.is_file():
        pytest.skip(f"no float model beside the INT8 one: {path}")
    return path


@pytest.fixture(scope="session")
def cifar_test(cifar10_dir: Path):  # -> train.data.Split (cifar10_dir: tests/conftest.py)
    from train import data

    return data.load(cifar10_dir, download=False).test


@pytest.fixture
def cli():
    """Run `edge-cifar ARGS...` in this process (fast; Python-level output only)."""
    runner = CliRunner()

    def invoke(*args: object) -> CliResult:
        result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return invoke


@pytest.fixture
def cli_process(tmp_path: Path):
    """Run `python -m edge_cifar ARGS...` as its own process: sees what C libraries print to fd 2,
    and a crash is an exit code rather than the end of the test run."""

    # The timeout only stops a hung command; on a machine loaded to 8 runnable tasks a core,
    # starting Python, OpenCV and the interpreter alone has taken 20 s.
    def run(*args: object, timeout: float = 600, pythonpath: Path = REPO) -> CliResult:
        env = {**os.environ, "PYTHONPATH": str(pythonpath)}
        env.pop("DISPLAY", None)
        completed = subprocess.run(
            [sys.executable, "-m", "edge_cifar", *(str(a) for a in args)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=timeout,
            check=False,
        )
        return CliResult(completed.returncode, completed.stdout, completed.stderr)

    return run


@pytest.fixture(scope="session")
def bomb_png(tmp_path_factory) -> Path:
    """The issue's decompression bomb: a ~1 MB PNG declaring 20,000 x 20,000 RGB pixels."""
    from .support import png_bomb

    return png_bomb(tmp_path_factory.mktemp("bomb") / "bomb.png")


@pytest.fixture(scope="session")
def slow_video(tmp_path_factory):
    """Ten minutes of 2 FPS video (the sample's CIFAR frames ten times over, small): a `serve`
    that outlasts any test module, however loaded the machine (a minute did not)."""
    # Imported here, not at the top: OpenCV reads OPENCV_IO_MAX_IMAGE_PIXELS when cv2 loads, and
    # `edge_cifar` (imported above) sets it; a cv2 loaded first keeps OpenCV's gigapixel default.
    import cv2

    capture = cv2.VideoCapture(str(SAMPLE_VIDEO))
    frames = []
    while (read := capture.read())[0]:
        frames.append(cv2.resize(read[1], (160, 120), interpolation=cv2.INTER_AREA))
    capture.release()
    path = tmp_path_factory.mktemp("video") / "slow.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 2.0, (160, 120))
    for _ in range(10):
        for frame in frames:
            writer.write(frame)
    writer.release()
    return path
