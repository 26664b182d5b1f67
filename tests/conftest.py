"""Shared fixtures: where the CIFAR-10 test data lives."""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def cifar10_dir() -> Path:
    directory = Path(os.environ.get("CIFAR10_DIR") or REPO_ROOT.parent / "shared" / "cifar10")
    if not (directory / "test_batch.bin").exists() and not (directory / "test_batch").exists():
        pytest.skip(f"CIFAR-10 not found at {directory} (set CIFAR10_DIR)")
    return directory.resolve()
