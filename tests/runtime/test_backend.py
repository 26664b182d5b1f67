"""The runtime runs on a device's packages: the expected interpreter, and no TensorFlow anywhere."""

import importlib
import os
import subprocess
import sys

import pytest

from edge_cifar.interpreter import BackendError, load_backend

from .support import REPO

EXPECTED = os.environ.get("EDGE_CIFAR_EXPECT_RUNTIME")


@pytest.mark.skipif(not EXPECTED, reason="EDGE_CIFAR_EXPECT_RUNTIME is not set")
def test_the_expected_interpreter_is_picked_first():
    assert load_backend().name == EXPECTED


@pytest.mark.skipif(not EXPECTED, reason="EDGE_CIFAR_EXPECT_RUNTIME is not set")
def test_tensorflow_is_not_installed_in_the_runtime_venv():
    with pytest.raises(ImportError):
        importlib.import_module("tensorflow")


def test_the_runtime_and_its_cli_never_import_tensorflow():
    code = (
        "import sys, edge_cifar.cli, edge_cifar.camera, edge_cifar.bench, edge_cifar.sources;"
        "from edge_cifar.interpreter import load_backend; load_backend();"
        "sys.exit('tensorflow' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    assert subprocess.run([sys.executable, "-c", code], env=env, check=False).returncode == 0


def test_an_unknown_runtime_name_is_a_backend_error_listing_the_choices():
    with pytest.raises(BackendError, match="litert, tflite-runtime, tensorflow"):
        load_backend("onnx")
