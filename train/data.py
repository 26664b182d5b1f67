"""CIFAR-10 on disk: find it, download it if absent, verify it, read it into uint8 arrays.

Reads the official binary layout (`cifar-10-batches-bin`) and the python layout
(`cifar-10-batches-py`); pickles are read with an unpickler that admits only plain types and NumPy
arrays, never arbitrary objects. Images come out as N x 32 x 32 x 3 uint8 RGB, labels as uint8.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from train.labels import CLASS_NAMES, NUM_CLASSES

ARCHIVE_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
# The MD5 the CIFAR-10 home page publishes for the binary archive.
ARCHIVE_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
ARCHIVE_FOLDER = "cifar-10-batches-bin"

IMAGE_SHAPE = (32, 32, 3)
RECORD_BYTES = 1 + 32 * 32 * 3
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILE = "test_batch"
VALIDATION_SIZE = 5000


class DataError(RuntimeError):
    """The data set is missing, incomplete or corrupt; the message is one line for the user."""


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # N x H x W x 3, uint8, RGB (32 x 32 for CIFAR-10)
    labels: np.ndarray  # N, indices into class_names (uint8 for CIFAR-10)
    class_names: tuple[str, ...] = CLASS_NAMES

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def classes(self) -> int:
        return len(self.class_names)

    def take(self, indices: np.ndarray) -> Split:
        return Split(self.images[indices], self.labels[indices], self.class_names)


@dataclass(frozen=True)
class Cifar10:
    train: Split
    test: Split
    source: Path
    sha256: (
        str  # one digest over the data files, in name order: identifies the data in a model card
    )


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "edge-cifar"


def resolve_data_dir(data_dir: Path | None) -> Path:
    """--data-dir, else $CIFAR10_DIR, else the cache folder (downloaded there when absent)."""
    if data_dir is not None:
        return data_dir
    if os.environ.get("CIFAR10_DIR"):
        return Path(os.environ["CIFAR10_DIR"])
    return default_cache_dir() / ARCHIVE_FOLDER


def load(data_dir: Path | None = None, *, download: bool = True) -> Cifar10:
    """Find, verify and read CIFAR-10. Raises DataError with a one-line reason."""
    explicit = data_dir is not None or bool(os.environ.get("CIFAR10_DIR"))
    directory = resolve_data_dir(data_dir)
    if not directory.is_dir():
        if explicit or not download:
            raise DataError(f"CIFAR-10 not found: {directory} is not a directory")
        directory = fetch_archive(ARCHIVE_URL, ARCHIVE_MD5, directory.parent)
    if (directory / "data_batch_1.bin").exists() or (directory / "test_batch.bin").exists():
        reader, suffix = _read_binary_batch, ".bin"
    elif (directory / "data_batch_1").exists() or (directory / "test_batch").exists():
        reader, suffix = _read_python_batch, ""
    else:
        raise DataError(f"{directory}: no CIFAR-10 batch files (binary *.bin or python layout)")
    names = [*TRAIN_FILES, TEST_FILE]
    paths = [directory / f"{name}{suffix}" for name in names]
    for path in paths:
        if not path.is_file():
            raise DataError(f"{path}: missing CIFAR-10 batch file")
    verify_checksums(directory)
    parts = [reader(path) for path in paths]
    train = Split(
        np.concatenate([p.images for p in parts[:-1]]),
        np.concatenate([p.labels for p in parts[:-1]]),
    )
    return Cifar10(train=train, test=parts[-1], source=directory, sha256=_digest(paths))


def _digest(paths: list[Path]) -> str:
    combined = hashlib.sha256()
    for path in paths:
        combined.update(_file_sha256(path).encode())
    return combined.hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checksums(directory: Path) -> None:
    """Check every file a SHA256SUMS file lists (when the folder has one)."""
    sums = directory / "SHA256SUMS"
    if not sums.exists():
        return
    for line in sums.read_text().splitlines():
        if not line.strip():
            continue
        expected, name = line.split(maxsplit=1)
        path = directory / name.lstrip("*")
        if not path.is_file():
            raise DataError(f"{path}: listed in SHA256SUMS but missing")
        if _file_sha256(path) != expected.lower():
            raise DataError(f"{path}: checksum mismatch (the file is corrupt or was changed)")


def _checked(images: np.ndarray, labels: np.ndarray, path: Path) -> Split:
    if labels.size and int(labels.max()) >= NUM_CLASSES:
        bad = int(np.argmax(labels >= NUM_CLASSES))
        raise DataError(f"{path}: record {bad} has label {int(labels[bad])} (expected 0..9)")
    return Split(np.ascontiguousarray(images), labels.astype(np.uint8))


def _planes_to_rgb(flat: np.ndarray) -> np.ndarray:
    # A record stores the red, green and blue planes one after another, each row-major.
    return flat.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def _read_binary_batch(path: Path) -> Split:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD_BYTES:
        raise DataError(
            f"{path}: {raw.size} bytes is not a whole number of {RECORD_BYTES}-byte records "
            "(truncated or not a CIFAR-10 binary batch)"
        )
    records = raw.reshape(-1, RECORD_BYTES)
    return _checked(_planes_to_rgb(records[:, 1:]), records[:, 0], path)


class _SafeUnpickler(pickle.Unpickler):
    """Admits only what a CIFAR-10 python batch holds: builtins' plain types and NumPy arrays."""

    ALLOWED: frozenset[tuple[str, str]] = frozenset(
        {
            # Protocol-2 pickles written by Python 3 spell bytes as _codecs.encode(str, "latin1").
            ("_codecs", "encode"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _read_python_batch(path: Path) -> Split:
    try:
        with path.open("rb") as handle:
            batch = _SafeUnpickler(io.BufferedReader(handle), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise DataError(f"{path}: not a readable CIFAR-10 python batch ({error})") from None
    if not isinstance(batch, dict):
        raise DataError(f"{path}: not a CIFAR-10 python batch (expected a dict)")
    data, labels = batch.get(b"data"), batch.get(b"labels")
    if not isinstance(data, np.ndarray) or not isinstance(labels, list):
        raise DataError(f"{path}: no 'data' array or 'labels' list in the batch")
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != RECORD_BYTES - 1:
        raise DataError(f"{path}: 'data' has shape {data.shape}, expected N x {RECORD_BYTES - 1}")
    if len(labels) != len(data):
        raise DataError(f"{path}: {len(data)} images but {len(labels)} labels")
    label_array = np.asarray(labels, dtype=np.int64)
    if label_array.size and (label_array.min() < 0 or label_array.max() >= NUM_CLASSES):
        bad = int(np.argmax((label_array < 0) | (label_array >= NUM_CLASSES)))
        raise DataError(f"{path}: record {bad} has label {labels[bad]} (expected 0..9)")
    return _checked(_planes_to_rgb(data), label_array.astype(np.uint8), path)


def fetch_archive(url: str, md5: str, cache_dir: Path) -> Path:
    """Download the CIFAR-10 binary archive, verify its MD5, and extract it atomically."""
    target = cache_dir / ARCHIVE_FOLDER
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".download-") as scratch:
            archive = Path(scratch) / "cifar-10-binary.tar.gz"
            _download(url, archive)
            actual = hashlib.md5(archive.read_bytes()).hexdigest()
            if actual != md5:
                raise DataError(f"{url}: MD5 {actual} does not match the published {md5}")
            with tarfile.open(archive) as tar:
                tar.extractall(scratch, filter="data")
            extracted = Path(scratch) / ARCHIVE_FOLDER
            if not extracted.is_dir():
                raise DataError(f"{url}: the archive has no {ARCHIVE_FOLDER}/ folder")
            if target.exists():
                shutil.rmtree(target)
            extracted.rename(target)
    except OSError as error:
        raise DataError(f"cannot download CIFAR-10 into {cache_dir}: {error}") from None
    except tarfile.TarError as error:
        raise DataError(f"{url}: not a readable tar.gz archive ({error})") from None
    return target


def _download(url: str, destination: Path) -> None:
    print(f"downloading {url}", file=sys.stderr)
    try:
        with urllib.request.urlopen(url, timeout=60) as response, destination.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done, shown = 0, -1
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
                done += len(block)
                percent = done * 100 // total if total else -1
                if percent // 10 != shown // 10:
                    shown = percent
                    print(
                        f"  {done >> 20} MiB" + (f" ({percent}%)" if total else ""), file=sys.stderr
                    )
    except OSError as error:
        raise DataError(f"cannot download {url}: {getattr(error, 'reason', error)}") from None


def _balanced_indices(labels: np.ndarray, count: int, seed: int, classes: int) -> np.ndarray:
    """`count` indices, the same number from each class, in ascending order."""
    rng = np.random.default_rng(seed)
    per_class = count // classes
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in range(classes)]
    return np.sort(np.concatenate(chosen))


def stratified_split(
    split: Split, validation_size: int = VALIDATION_SIZE, seed: int = 0
) -> tuple[Split, Split]:
    """Hold out `validation_size` training images, the same number from each class."""
    held_out = _balanced_indices(split.labels, validation_size, seed, split.classes)
    kept = np.setdiff1d(np.arange(len(split)), held_out, assume_unique=True)
    return split.take(kept), split.take(held_out)


def with_validation_joined(train: Split, validation: Split) -> tuple[Split, Split]:
    """The final run's splits: the validation images join the training images, and nothing is
    held out (every recipe choice was made on validation runs before)."""
    joined = Split(
        np.concatenate([train.images, validation.images]),
        np.concatenate([train.labels, validation.labels]),
        train.class_names,
    )
    return joined, validation.take(np.arange(0))


def subset(split: Split, size: int, seed: int = 0) -> Split:
    """A class-balanced random subset (for QUICK runs)."""
    if size >= len(split):
        return split
    return split.take(_balanced_indices(split.labels, size, seed, split.classes))
