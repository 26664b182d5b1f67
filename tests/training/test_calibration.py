"""The uncertain threshold: chosen between correct in-class answers and out-of-class photos."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from train.calibration import (
    CHOOSE,
    MAX_LOST_SHARE,
    REPORT,
    choose_threshold,
    open_set_check,
    out_of_class_photos,
)

PHOTOS = Path(__file__).resolve().parents[3] / "shared" / "photos"


def scores(top: list[float], classes: int = 3, label: int = 0) -> np.ndarray:
    """Score rows whose class `label` gets `top` and the rest share what is left."""
    rows = np.array([[(1 - t) / (classes - 1)] * classes for t in top], np.float32)
    rows[:, label] = top
    return rows


def test_the_threshold_falls_between_confident_answers_and_unsure_photos() -> None:
    in_scores = scores([0.95, 0.9, 0.97, 0.92])
    out_scores = scores([0.5, 0.6, 0.55, 0.4])
    threshold = choose_threshold(in_scores, np.zeros(4, int), out_scores)
    assert 0.6 < threshold <= 0.9
    check = open_set_check(in_scores, np.zeros(4, int), out_scores, threshold)
    assert check.auroc == 1.0
    assert check.in_class_named_right == 1.0 and check.out_of_class_uncertain == 1.0


def test_wrong_answers_do_not_pull_the_threshold_down() -> None:
    # A wrong in-class answer, scored like the photos, is not an answer to keep.
    in_scores = np.concatenate([scores([0.9, 0.92]), scores([0.6], label=1)])
    labels = np.zeros(3, int)
    out_scores = scores([0.35, 0.5])
    threshold = choose_threshold(in_scores, labels, out_scores)
    check = open_set_check(in_scores, labels, out_scores, threshold)
    assert check.in_class_accuracy == pytest.approx(2 / 3, abs=1e-4)
    assert check.out_of_class_uncertain == 1.0
    assert check.in_class_named_right == pytest.approx(2 / 3, abs=1e-4)


def test_the_threshold_calls_at_most_its_share_of_correct_answers_uncertain() -> None:
    # J alone would take 0.95: no photo let through, but a fifth of the right answers lost.
    in_scores = scores([0.95] * 80 + [0.6] * 20)
    out_scores = scores(list(np.linspace(0.55, 0.75, 100)))
    threshold = choose_threshold(in_scores, np.zeros(100, int), out_scores)
    check = open_set_check(in_scores, np.zeros(100, int), out_scores, threshold)
    assert check.in_class_named_right >= 1 - MAX_LOST_SHARE
    assert 0.2 < check.out_of_class_uncertain < 0.3  # still the photos below every right answer


def test_out_of_class_photos_split_in_two_halves_by_content(tmp_path: Path) -> None:
    if not PHOTOS.is_dir():
        pytest.skip(f"no real photos at {PHOTOS}")
    folder = tmp_path / "other"
    for path in sorted((PHOTOS / "fruit").glob("*.jpg"))[:40]:
        folder.mkdir(exist_ok=True)
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    halves = out_of_class_photos(tmp_path, 32)
    assert len(halves[CHOOSE]) + len(halves[REPORT]) == 40
    assert min(len(halves[CHOOSE]), len(halves[REPORT])) >= 10
    assert halves[CHOOSE].shape[1:] == (32, 32, 3)
    # Renaming a photo moves it to no other half.
    first = sorted(folder.glob("fruit_*.jpg"))[0]
    before = {h: {a.tobytes() for a in halves[h]} for h in halves}
    first.rename(folder / "renamed.jpg")
    after = out_of_class_photos(tmp_path, 32)
    assert {h: {a.tobytes() for a in after[h]} for h in after} == before
    assert cv2.imread(str(folder / "renamed.jpg")) is not None
