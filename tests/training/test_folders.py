"""Image folders as a data set: reading any OpenCV format, the recorded split, and bad data.

The bad-data cases run the real command line (`python -m train --images ... quantize`): one line,
exit 2, before any training, and nothing written to the firmware folder or the run folder.
"""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from train_command import run_train

from train import folders
from train.data import DataError

REPO_ROOT = Path(__file__).resolve().parents[2]


def write_class(folder: Path, count: int, seed: int, suffix: str = ".png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        path = folder / f"{index:03d}{suffix}"
        assert cv2.imwrite(str(path), rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))
        paths.append(path)
    return paths


@pytest.fixture
def image_folder(tmp_path):
    root = tmp_path / "images"
    for seed, name in enumerate(("bolt", "nut", "washer")):
        write_class(root / name, 20, seed)
    return root


def test_any_opencv_image_is_read_through_the_runtimes_preprocessing(tmp_path):
    from edge_cifar.preprocess import frame_to_rgb

    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    frames = {
        "colour.jpg": colour,
        "gray.png": colour[..., 0],
        "deep.png": colour.astype(np.uint16) * 257,  # 16-bit
        "alpha.png": np.dstack([colour, np.full(colour.shape[:2], 7, np.uint8)]),
        "colour.bmp": colour,
        "colour.tiff": colour,
    }
    for name, frame in frames.items():
        assert cv2.imwrite(str(tmp_path / name), frame)
    for name, frame in frames.items():
        _, rgb = folders.read_image(tmp_path / name, 32)
        assert rgb is not None and rgb.shape == (32, 32, 3) and rgb.dtype == np.uint8
        if not name.endswith(".jpg"):  # lossless: exactly what the camera path gives the frame
            np.testing.assert_array_equal(rgb, frame_to_rgb(frame, 32, 32))


def test_split_is_stratified_recorded_and_reused(image_folder, tmp_path):
    split_file = tmp_path / "run" / "split.json"
    first = folders.load(image_folder, 32, split_file)
    assert first.class_names == ("bolt", "nut", "washer")
    for split in (first.train, first.validation, first.test):
        # Every class in every split: 15% of 20 images is 3.
        assert np.bincount(split.labels, minlength=3).min() >= 1
    assert np.bincount(first.test.labels).tolist() == [3, 3, 3]
    record = json.loads(split_file.read_text())
    listed = [p for s in folders.SPLIT_NAMES for p, _ in record["splits"][s]]
    assert sorted(listed) == sorted(
        p.relative_to(image_folder).as_posix() for p in image_folder.rglob("*.png")
    )
    again = folders.load(image_folder, 32, split_file)
    assert again.sha256 == first.sha256
    np.testing.assert_array_equal(again.test.images, first.test.images)


def test_a_folder_changed_since_its_split_is_refused(image_folder, tmp_path):
    split_file = tmp_path / "split.json"
    folders.load(image_folder, 32, split_file)
    write_class(image_folder / "nut", 1, seed=99, suffix=".new.png")
    with pytest.raises(DataError, match=r"changed since its split was recorded.*\(1 new, 0 gone"):
        folders.load(image_folder, 32, split_file)


def test_exact_duplicates_never_straddle_two_splits(image_folder, tmp_path):
    for source in sorted((image_folder / "bolt").iterdir())[:10]:
        for copy in range(3):
            shutil.copy(source, source.with_name(f"copy{copy}_{source.name}"))
    folders.load(image_folder, 32, tmp_path / "split.json")
    record = json.loads((tmp_path / "split.json").read_text())
    split_of: dict[str, set[str]] = {}
    for split in folders.SPLIT_NAMES:
        for _, digest in record["splits"][split]:
            split_of.setdefault(digest, set()).add(split)
    assert all(len(splits) == 1 for splits in split_of.values())
    assert (
        max(
            sum(d == digest for s in record["splits"].values() for _, d in s) for digest in split_of
        )
        == 4
    )


def test_a_separate_test_folder_is_the_test_split(image_folder, tmp_path):
    test_root = tmp_path / "test"
    write_class(test_root / "bolt", 4, seed=50)
    write_class(test_root / "washer", 4, seed=51)
    shutil.copy(image_folder / "nut" / "000.png", test_root / "bolt" / "dup.png")
    data = folders.load(image_folder, 32, tmp_path / "split.json", test_root=test_root)
    assert len(data.test) == 9 and data.test.class_names == data.train.class_names
    # The training copy of a test image is left out of training and validation.
    assert len(data.train) + len(data.validation) == 59


def test_skip_bad_leaves_unreadable_files_out_and_counts_them(image_folder, tmp_path, capsys):
    (image_folder / "nut" / "broken.jpg").write_bytes(b"not a jpeg")
    data = folders.load(image_folder, 32, tmp_path / "split.json", skip_bad=True)
    assert len(data.train) + len(data.validation) + len(data.test) == 60
    assert data.skipped == (str(image_folder / "nut" / "broken.jpg"),)
    assert "skipped 1 unreadable file(s)" in capsys.readouterr().err


def make_case(root: Path, case: str) -> Path:
    if case == "missing":
        return root / "nowhere"
    if case == "empty":
        root.mkdir()
        return root
    if case == "single-class":
        write_class(root / "bolt", 20, 0)
        return root
    write_class(root / "bolt", 20, 0)
    write_class(root / "nut", 20 if case == "unreadable" else folders.MIN_IMAGES_PER_CLASS - 1, 1)
    if case == "unreadable":
        (root / "nut" / "broken.png").write_bytes(b"\x89PNG truncated")
    return root


MIN = folders.MIN_IMAGES_PER_CLASS
BAD_CASES = {
    "missing": "no such folder",
    "empty": "no class subfolders",
    "single-class": "only one class (bolt)",
    "too-small": f"9 distinct readable image(s); a class needs at least {MIN}",
    "unreadable": "broken.png: not a readable image",
}


@pytest.mark.parametrize("case", BAD_CASES, ids=list(BAD_CASES))
def test_bad_folder_is_one_line_exit_2_and_writes_nothing(tmp_path, case):
    root = make_case(tmp_path / "images", case)
    firmware, runs = tmp_path / "firmware", tmp_path / "runs"
    shipped_before = sorted(
        (p.name, p.stat().st_mtime_ns) for p in (REPO_ROOT / "firmware_models").iterdir()
    )
    command = ["--images", str(root), "--name", "parts", "quantize", "--quick"]
    outputs = ["--firmware-dir", str(firmware), "--runs-dir", str(runs)]
    result = run_train(*command, *outputs)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: ") and BAD_CASES[case] in lines[0]
    assert not firmware.exists() and not runs.exists()
    shipped_after = sorted(
        (p.name, p.stat().st_mtime_ns) for p in (REPO_ROOT / "firmware_models").iterdir()
    )
    assert shipped_after == shipped_before
