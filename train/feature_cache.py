"""Features of a frozen backbone, computed once per image and kept on disk.

A frozen backbone maps the same pixels to the same features, so a rerun (another head, the same
folder with a few collected photos added) computes only the images it has not seen. Entries are
keyed by the SHA-256 of the image's model-sized pixels and the augmented view's number, in one
.npz per backbone and input size; the backbone's key names its weights' SHA-256 and the view
recipe, so a changed one starts a new file instead of mixing features.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from train.artifacts import write_npz

PROGRESS_SECONDS = 20.0  # a line this often on a long extraction: images done, rate, ETA
BATCH = 32

Extract = Callable[[npt.NDArray[np.uint8], int], npt.NDArray[np.float32]]


def pixel_digest(image: npt.NDArray[np.uint8]) -> str:
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


def progress_line(what: str, done: int, total: int, started: float) -> str:
    elapsed = time.monotonic() - started
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = (total - done) / rate if rate > 0 else float("nan")
    return f"{what}: {done}/{total}, {rate:.1f} images/s, ETA {eta / 60:.1f} min"


class FeatureCache:
    """Features by (pixel digest, view) in `path`; `features` computes the missing ones."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, npt.NDArray[np.float32]] = {}
        if path.is_file():
            with np.load(path, allow_pickle=False) as stored:
                self._entries = {key: stored[key] for key in stored.files}

    def __len__(self) -> int:
        return len(self._entries)

    def features(
        self, images: npt.NDArray[np.uint8], view: int, extract: Extract
    ) -> npt.NDArray[np.float32]:
        """One feature row per image for augmented view `view` (0: the image as it is);
        `extract(images, view)` computes rows for a batch of images not yet cached."""
        keys = [f"{pixel_digest(image)}_{view}" for image in images]
        missing = [i for i, key in enumerate(keys) if key not in self._entries]
        started, last = time.monotonic(), time.monotonic()
        for start in range(0, len(missing), BATCH):
            chunk = missing[start : start + BATCH]
            for index, row in zip(chunk, extract(images[chunk], view), strict=True):
                self._entries[keys[index]] = row
            if time.monotonic() - last >= PROGRESS_SECONDS:
                last = time.monotonic()
                done = start + len(chunk)
                print(
                    progress_line(f"features, view {view}", done, len(missing), started),
                    file=sys.stderr,
                    flush=True,
                )
        if missing:
            write_npz(self.path, **self._entries)
        return np.stack([self._entries[key] for key in keys]).astype(np.float32)
