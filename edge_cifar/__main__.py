"""`python -m edge_cifar` and the `edge-cifar` command: the CLI, or one line saying that OpenCV is
missing (an environment where it was removed, e.g. halfway through swapping its builds)."""

from __future__ import annotations

import importlib.util
import sys

NO_OPENCV = (
    "error: edge-cifar needs OpenCV: pip install opencv-python-headless (no window) "
    "or opencv-python (camera window), never both"
)


def main() -> None:
    if importlib.util.find_spec("cv2") is None:
        print(NO_OPENCV, file=sys.stderr)
        raise SystemExit(2)
    from edge_cifar.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
