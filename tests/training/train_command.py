"""`python -m train ...` in a subprocess from the checkout, as the Makefile runs it."""

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_train(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "train", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        **kwargs,
    )
