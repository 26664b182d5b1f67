"""A user's images, one subfolder per class, into the same `Split`s CIFAR-10 gives the pipeline.

The layout is the one `image_dataset_from_directory` reads (`<root>/<class>/<image>`), class names
are the subfolder names in sorted order, and any file OpenCV decodes is an image: PNG, JPEG, BMP,
TIFF, WebP, ..., 8 or 16-bit, gray, colour or with alpha, any size. Each image goes through the
runtime's own `frame_to_rgb` (centre crop, resize, colour order), so training and evaluation see
the pixels the camera loop gives the model.

Without a separate test folder the images are split once, stratified, into train / validation /
test, and the split is recorded (every file with its SHA-256) in the run folder; a rerun reuses it
and refuses a folder that changed since. Split assignment goes by content digest, so exact
duplicates always land in the same split. Every problem is a `DataError` with one line, raised
before TensorFlow is imported.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_cifar.orientation import exif_orientation, upright
from edge_cifar.preprocess import FrameError, frame_to_rgb
from train.artifacts import read_json, write_atomic
from train.data import DataError, Split

# What OpenCV's imread decodes (its documented formats); other files in a class folder are ignored.
IMAGE_SUFFIXES = frozenset(
    {".bmp", ".dib", ".jpeg", ".jpg", ".jpe", ".jp2", ".png", ".webp", ".avif", ".pbm", ".pgm"}
    | {".ppm", ".pxm", ".pnm", ".pfm", ".sr", ".ras", ".tiff", ".tif", ".exr", ".hdr", ".pic"}
)
# Shares of each class's distinct images held out for validation and for test.
VALIDATION_SHARE = TEST_SHARE = 0.15
# Below this many distinct images a class's 15% shares round to one image or none: its validation
# and test accuracy would be a coin flip of a single image.
MIN_IMAGES_PER_CLASS = 10
SPLIT_NAMES = ("train", "validation", "test")


@dataclass(frozen=True)
class ImageFile:
    path: Path
    label: int
    sha256: str
    rgb: np.ndarray  # size x size x 3 uint8, as the runtime would feed the model


@dataclass(frozen=True)
class FolderData:
    """A folder data set, split: what `train.cli` needs of a data set, like `data.Cifar10`."""

    train: Split
    validation: Split
    test: Split
    source: Path
    sha256: str  # the split record's digest: which files, which content, which split
    skipped: tuple[str, ...]  # unreadable files left out with --skip-bad

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.train.class_names


def class_folders(root: Path) -> list[Path]:
    """The class subfolders of `root`, sorted by name; DataError when there are fewer than two."""
    if not root.is_dir():
        raise DataError(f"{root}: no such folder (expected one subfolder of images per class)")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(
            f"{root}: no class subfolders (expected one subfolder of images per class, "
            f"e.g. {root / 'cat' / '0001.jpg'})"
        )
    if len(folders) == 1:
        raise DataError(
            f"{root}: only one class ({folders[0].name}); a classifier needs two or more class "
            "subfolders"
        )
    return folders


def image_paths(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith(".")
    )


def read_image(path: Path, size: int) -> tuple[str, np.ndarray | None]:
    """The file's SHA-256 and its model-sized RGB image (None when OpenCV cannot decode it)."""
    content = path.read_bytes()
    digest = hashlib.sha256(content).hexdigest()
    # IMREAD_UNCHANGED keeps 16-bit depth and alpha: the runtime's frame_to_rgb handles both.
    frame = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED)
    if frame is None:
        return digest, None
    try:
        # Turned as its EXIF orientation says, which IMREAD_UNCHANGED does not do.
        return digest, frame_to_rgb(upright(frame, exif_orientation(content)), size, size)
    except FrameError:
        return digest, None


def read_folder(
    root: Path, size: int, *, skip_bad: bool, class_names: tuple[str, ...] | None = None
) -> tuple[tuple[str, ...], list[ImageFile], list[Path]]:
    """Every image under `root`'s class folders, decoded; and the unreadable files skipped.

    `class_names` (a test folder's) restricts the folders to the training folder's classes."""
    folders = class_folders(root)
    names = tuple(folder.name for folder in folders)
    if class_names is not None:
        unknown = sorted(set(names) - set(class_names))
        if unknown:
            raise DataError(
                f"{root}: class folder(s) {', '.join(unknown)} are not training classes "
                f"({', '.join(class_names)})"
            )
        names = class_names
    images: list[ImageFile] = []
    skipped: list[Path] = []
    for label, name in enumerate(names):
        for path in image_paths(root / name):
            digest, rgb = read_image(path, size)
            if rgb is None:
                if not skip_bad:
                    raise DataError(
                        f"{path}: not a readable image (OpenCV cannot decode it); fix or remove "
                        "it, or pass --skip-bad to leave unreadable files out"
                    )
                skipped.append(path)
                continue
            images.append(ImageFile(path, label, digest, rgb))
    return names, images, skipped


def check_class_sizes(root: Path, names: tuple[str, ...], images: list[ImageFile]) -> None:
    distinct: dict[int, set[str]] = defaultdict(set)
    for image in images:
        distinct[image.label].add(image.sha256)
    for label, name in enumerate(names):
        count = len(distinct[label])
        if count < MIN_IMAGES_PER_CLASS:
            raise DataError(
                f"{root / name}: {count} distinct readable image(s); a class needs at least "
                f"{MIN_IMAGES_PER_CLASS} to be split into train, validation and test"
            )


def assign_splits(images: list[ImageFile], shares: dict[str, float]) -> dict[str, str]:
    """Split name per SHA-256: stratified by class, exact duplicates together.

    A digest's class is its first file's; within a class the digests are ordered by
    SHA-256(digest), a fixed shuffle that needs no seed and does not depend on file names."""
    first_label: dict[str, int] = {}
    for image in images:
        first_label.setdefault(image.sha256, image.label)
    by_class: dict[int, list[str]] = defaultdict(list)
    for digest, label in first_label.items():
        by_class[label].append(digest)
    assignment: dict[str, str] = {}
    for digests in by_class.values():
        order = sorted(digests, key=lambda d: hashlib.sha256(d.encode()).hexdigest())
        start = 0
        for name, share in shares.items():
            count = max(1, round(share * len(order)))
            assignment.update(dict.fromkeys(order[start : start + count], name))
            start += count
        assignment.update(dict.fromkeys(order[start:], "train"))
    return assignment


def relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def split_record(
    root: Path,
    test_root: Path | None,
    names: tuple[str, ...],
    members: dict[str, list[ImageFile]],
    skipped: list[Path],
) -> dict[str, Any]:
    """What split.json holds: the sources, the classes, and each split's files with SHA-256."""
    roots = {"train": root, "validation": root, "test": test_root or root}
    return {
        "source": str(root),
        "test_source": str(test_root) if test_root else None,
        "class_names": list(names),
        "splits": {
            split: [[relative(i.path, roots[split]), i.sha256] for i in members[split]]
            for split in SPLIT_NAMES
        },
        "skipped": [str(path) for path in skipped],
    }


def check_recorded(record: dict[str, Any], recorded: dict[str, Any], split_file: Path) -> None:
    """Refuse a folder whose files, content or classes differ from the recorded split's."""

    def files(content: dict[str, Any]) -> dict[str, tuple[str, str]]:
        """(split, SHA-256) by file; a separate test folder's files are keyed apart."""
        separate = content["test_source"] is not None
        return {
            f"{'test:' if separate and s == 'test' else ''}{p}": (s, d)
            for s in SPLIT_NAMES
            for p, d in content["splits"][s]
        }

    now = files(record)
    try:
        then = files(recorded)
        same_classes = recorded["class_names"] == record["class_names"]
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{split_file}: not a split record; move it away to split afresh") from None
    # Same files, same content: the deterministic assignment then gives the same splits too.
    if not same_classes or now != then:
        changed = sum(now[k] != then[k] for k in now.keys() & then.keys())
        raise DataError(
            f"{record['source']} changed since its split was recorded in {split_file} "
            f"({len(now.keys() - then.keys())} new, {len(then.keys() - now.keys())} gone, "
            f"{changed} changed); move that run folder away to start afresh"
        )


def load(
    root: Path,
    size: int,
    split_file: Path,
    *,
    test_root: Path | None = None,
    skip_bad: bool = False,
) -> FolderData:
    """Read, check and split a folder data set; record the split in `split_file` (or check the
    folder against the split recorded there)."""
    names, images, skipped = read_folder(root, size, skip_bad=skip_bad)
    check_class_sizes(root, names, images)
    if test_root is None:
        assignment = assign_splits(images, {"test": TEST_SHARE, "validation": VALIDATION_SHARE})
        members = {
            name: [i for i in images if assignment[i.sha256] == name] for name in SPLIT_NAMES
        }
    else:
        _, test_images, test_skipped = read_folder(
            test_root, size, skip_bad=skip_bad, class_names=names
        )
        skipped += test_skipped
        # A training image that is also a test image would be a test on seen data.
        test_digests = {i.sha256 for i in test_images}
        kept = [i for i in images if i.sha256 not in test_digests]
        if len(kept) < len(images):
            print(
                f"left {len(images) - len(kept)} training image(s) out: copies of test images",
                file=sys.stderr,
            )
        check_class_sizes(root, names, kept)
        assignment = assign_splits(kept, {"validation": VALIDATION_SHARE})
        members = {
            "train": [i for i in kept if assignment[i.sha256] == "train"],
            "validation": [i for i in kept if assignment[i.sha256] == "validation"],
            "test": test_images,
        }
    if not members["test"]:
        raise DataError(f"{test_root}: no readable test images in its class folders")
    if skipped:
        print(
            f"skipped {len(skipped)} unreadable file(s), the first: {skipped[0]}", file=sys.stderr
        )
    record = split_record(root, test_root, names, members, skipped)
    if split_file.is_file():

        def unreadable(reason: str) -> DataError:
            return DataError(f"{split_file}: not a readable split record ({reason})")

        check_recorded(record, read_json(split_file, unreadable), split_file)
    else:
        write_atomic(split_file, json.dumps(record, indent=1).encode())
    splits = {
        name: Split(
            np.stack([i.rgb for i in members[name]]).astype(np.uint8),
            np.array([i.label for i in members[name]], dtype=np.int64),
            names,
        )
        for name in SPLIT_NAMES
    }
    return FolderData(
        train=splits["train"],
        validation=splits["validation"],
        test=splits["test"],
        source=root,
        # Of the classes and the split's files: the same data moved elsewhere keeps its digest.
        sha256=hashlib.sha256(
            json.dumps([record["class_names"], record["splits"]]).encode()
        ).hexdigest(),
        skipped=tuple(str(path) for path in skipped),
    )
