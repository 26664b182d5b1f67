"""Photo folders trained by ImageNet transfer (train/photo_transfer.py): photos read upright, the
feature cache, class weights, the recommended threshold with and without a `_background` class,
and the whole loop on real photos (train QUICK, collect from a video, retrain with what was
collected)."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from train_command import run_train

from train import folders
from train.feature_cache import FeatureCache

REPO_ROOT = Path(__file__).resolve().parents[2]
PHOTOS = Path(os.environ.get("PHOTOS_DIR") or REPO_ROOT.parent / "shared" / "photos")
CLASSES = ("flower", "fruit", "motorbike", "person")


def photos_or_skip() -> Path:
    if not all((PHOTOS / name).is_dir() for name in CLASSES):
        pytest.skip(f"the shared real photos are not at {PHOTOS} (set PHOTOS_DIR)")
    return PHOTOS


def test_a_photo_with_exif_orientation_is_read_upright(tmp_path):
    from skimage import data as samples

    upright = samples.chelsea()  # 300 x 451 RGB: a landscape photo
    # Stored as a phone stores a portrait shot: the pixels turned, EXIF 8 ("turn 90° back").
    stored = np.ascontiguousarray(np.rot90(upright, -1))
    picture = Image.fromarray(stored)
    exif = picture.getexif()
    exif[0x0112] = 8
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=95, exif=exif)
    (tmp_path / "phone.jpg").write_bytes(buffer.getvalue())
    Image.fromarray(upright).save(tmp_path / "plain.jpg", quality=95)
    _, from_phone = folders.read_image(tmp_path / "phone.jpg", 96)
    _, from_plain = folders.read_image(tmp_path / "plain.jpg", 96)
    assert from_phone is not None and from_plain is not None
    difference = np.abs(from_phone.astype(int) - from_plain.astype(int)).mean()
    turned = np.abs(np.rot90(from_phone).astype(int) - from_plain.astype(int)).mean()
    assert difference < 4 < turned


def test_the_feature_cache_computes_each_image_once_and_keeps_it_on_disk(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    computed = []

    def extract(batch, view):
        computed.append(len(batch))
        return batch.reshape(len(batch), -1)[:, :4].astype(np.float32) + view

    path = tmp_path / "features.npz"
    first = FeatureCache(path).features(images[:3], 1, extract)
    again = FeatureCache(path).features(images, 1, extract)
    assert computed == [3, 2]
    np.testing.assert_array_equal(again[:3], first)
    np.testing.assert_array_equal(again[:, 0], images[:, 0, 0, 0] + 1.0)
    assert len(FeatureCache(path)) == 5


def test_class_weights_balance_an_unbalanced_folder():
    from train.photo_transfer import class_weights

    labels = np.array([0] * 30 + [1] * 10 + [2] * 20)
    weights = class_weights(labels, 3)
    counts = np.bincount(labels)
    assert {c: round(weights[c] * counts[c]) for c in range(3)} == {0: 20, 1: 20, 2: 20}


def test_the_threshold_is_chosen_against_background_photos_when_the_folder_has_them():
    from train.photo_transfer import recommended_threshold

    names = ("_background", "bolt", "nut")
    # Correct bolt/nut answers score 0.7-0.95; background photos' best real class 0.3-0.55.
    rng = np.random.default_rng(0)
    rows, labels = [], []
    for label in (1, 2):
        for top in rng.uniform(0.7, 0.95, 40):
            row = np.full(3, (1 - top) / 2)
            row[label] = top
            rows.append(row)
            labels.append(label)
    for best in rng.uniform(0.3, 0.55, 40):
        rows.append(np.array([1 - best - 0.05, best, 0.05]))
        labels.append(0)
    scores, labels = np.array(rows, np.float32), np.array(labels)
    threshold = recommended_threshold(scores, labels, names)
    # Between the background photos' best real-class score and the least sure correct answer
    # (choose_threshold rounds to 4 decimals).
    least_sure = scores[labels != 0].max(axis=1).min()
    assert scores[labels == 0][:, 1:].max() < threshold <= least_sure + 5e-5
    # Without out-of-class photos: the score under which 5% of the correct answers fall.
    inside = labels != 0
    alone = recommended_threshold(scores[inside][:, 1:], labels[inside] - 1, names[1:])
    assert 0.7 <= alone <= 0.75


def write_video(path: Path, photos: list[Path]) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (120, 120))
    for photo in photos:
        writer.write(cv2.resize(cv2.imread(str(photo)), (120, 120)))
    writer.release()


def link_class_folders(root: Path, sources: dict[str, list[Path]]) -> Path:
    for name, paths in sources.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for path in paths:
            (root / name / path.name).symlink_to(path)
    return root


@pytest.mark.slow
def test_the_whole_loop_train_collect_from_a_video_retrain(tmp_path):
    photos = photos_or_skip()
    files = {name: sorted((photos / name).iterdir())[:60] for name in CLASSES}
    train = link_class_folders(tmp_path / "train", {n: p[:14] for n, p in files.items()})
    test = link_class_folders(tmp_path / "test", {n: p[14:24] for n, p in files.items()})
    runs, firmware = tmp_path / "runs", tmp_path / "firmware"
    outputs = ["--runs-dir", str(runs), "--firmware-dir", str(firmware)]

    def quantize(name: str, images: Path):
        options = ["--images", str(images), "--test-images", str(test), "--size", "96"]
        result = run_train(*options, "--name", name, "quantize", "--quick", *outputs)
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads((firmware / f"{name}.card.json").read_text())

    first = quantize("loop", train)
    assert first["labels"] == list(CLASSES)
    assert first["int8_accuracy"] > 0.5  # 14 photos a class, QUICK: far above a 25% guess
    assert "ImageNet" in first["start"] and first["int8_drop_pt"] <= 1.0
    # The card says how many head epochs ran (early stopping) and the command's wall time; a
    # head on cached features gets no 6-FLOPs-per-multiply-add cost line.
    epochs_run = len(json.loads((runs / "loop-quick" / "float_history.json").read_text()))
    card_text = (firmware / "loop.card.md").read_text()
    assert f", {epochs_run} float" in card_text and "min by the clock" in card_text
    assert first["training"]["wall_seconds"] > 0 and "training_cost" not in first
    # The threshold the head's validation chose is in the card as in the model's metadata.
    assert f"a top score below {first['uncertain_threshold']:g} (in the metadata)" in card_text

    # The camera on a video of photos it never saw, saving every frame it is given.
    unseen = {name: paths[24:30] for name, paths in files.items()}
    video = tmp_path / "unseen.avi"
    write_video(video, [path for paths in unseen.values() for path in paths])
    collected = tmp_path / "collected"
    camera = [
        *("camera", "--device", str(video), "--headless", "--no-json"),
        *("--model", str(firmware / "loop_int8.tflite"), "--collect", str(collected)),
        *("--collect-every", "1", "--collect-interval", "0"),
    ]
    result = subprocess.run(
        [sys.executable, "-m", "edge_cifar", *camera],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    frames = sorted(collected.rglob("*.jpg"))
    assert len(frames) == 24, result.stderr
    assert {p.parent.name for p in frames} <= set(CLASSES)

    # A person sorts them: frame i of the video shows the photo i, whose class is known.
    sorted_root = tmp_path / "train_plus"
    link_class_folders(sorted_root, {n: p[:14] for n, p in files.items()})
    truth = [name for name, paths in unseen.items() for _ in paths]
    for frame in frames:
        index = int(frame.stem.rsplit("-", 1)[1])
        (sorted_root / truth[index] / frame.name).write_bytes(frame.read_bytes())
    cache = next((runs / ".cache").glob("lite0-*-96px.npz"))
    rows_before = len(FeatureCache(cache))
    second = quantize("loop2", sorted_root)
    split = json.loads((runs / "loop2-quick" / "split.json").read_text())
    listed = {Path(p).name for part in ("train", "validation") for p, _ in split["splits"][part]}
    assert {frame.name for frame in frames} <= listed
    # Only the new photos were run through the backbone: the old ones came from the cache.
    new_rows = len(FeatureCache(cache)) - rows_before
    assert new_rows == 24  # QUICK: each new photo once, no augmented view
    training = second["training"]
    assert training["train_images"] + training["validation_images"] == 4 * 14 + 24
