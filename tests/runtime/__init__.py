"""The runtime's tests. They import the working tree's `edge_cifar` (and `train.data`, NumPy only),
not a copy some venv installed, so the checkout's root goes first on the path before any test module
is imported."""

import sys
from pathlib import Path

_REPO = str(Path(__file__).resolve().parents[2])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)
