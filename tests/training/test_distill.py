"""Distillation targets: the mix of labels and teacher scores, and the teacher's score cache."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from train import data, distill
from train.artifacts import write_npz
from train.card import ModelCard, card_markdown
from train.data import Split
from train.distill import (
    TeacherError,
    mix_targets,
    recorded_teacher_sha256,
    teacher_path,
    teacher_scores,
)
from train.labels import NUM_CLASSES
from train.records import from_json

TEACHER = teacher_path("seed")


@pytest.fixture(scope="module")
def test_split(cifar10_dir: Path) -> Split:
    return data.load(cifar10_dir).test


def random_scores(count: int, seed: int = 0) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(size=(count, NUM_CLASSES))
    exp = np.exp(logits)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def test_without_a_teacher_the_targets_are_the_labels() -> None:
    labels = np.array([3, 0, 9])
    targets = mix_targets(labels, 10, None, 0.7)
    assert targets.shape == (3, NUM_CLASSES)
    assert targets.argmax(axis=1).tolist() == [3, 0, 9]
    assert targets.sum() == 3


def test_mixed_targets_are_distributions_that_favour_the_label() -> None:
    labels = np.arange(20) % NUM_CLASSES
    scores = random_scores(20)
    targets = mix_targets(labels, 10, scores, 0.5)
    assert targets.dtype == np.float32
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, rtol=1e-6)
    # Half the weight on the label: it stays the most likely class whatever the teacher says.
    assert (targets.argmax(axis=1) == labels).all()
    np.testing.assert_allclose(targets - 0.5 * np.eye(NUM_CLASSES)[labels], 0.5 * scores, atol=1e-6)


def test_teacher_scores_come_from_the_model_and_are_cached(
    tmp_path: Path, test_split: Split, monkeypatch: pytest.MonkeyPatch
) -> None:
    split = Split(test_split.images[:16], test_split.labels[:16])
    cache = tmp_path / "teacher.npz"
    scores = teacher_scores(TEACHER, split, cache)
    assert scores.shape == (16, NUM_CLASSES)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    # The shipped seed model gets most of these test images right.
    assert (scores.argmax(axis=1) == split.labels).mean() >= 0.6

    def no_scoring(*args: object) -> np.ndarray:
        raise AssertionError("scored again although the cache matches")

    assert recorded_teacher_sha256(cache) == hashlib.sha256(TEACHER.read_bytes()).hexdigest()
    monkeypatch.setattr("train.distill.tflite_scores", no_scoring)
    np.testing.assert_array_equal(teacher_scores(TEACHER, split, cache), scores)
    # Other images: the cache no longer matches, so the teacher runs again.
    other = Split(test_split.images[16:32], test_split.labels[16:32])
    with pytest.raises(AssertionError, match="scored again"):
        teacher_scores(TEACHER, other, cache)


def test_a_missing_teacher_is_a_one_line_error(tmp_path: Path, test_split: Split) -> None:
    with pytest.raises(TeacherError, match="make quantize MODEL=nothing"):
        teacher_scores(tmp_path / "nothing_float.tflite", test_split, tmp_path / "cache.npz")
    assert not (tmp_path / "cache.npz").exists()
    assert distill.teacher_path("default").name == "default_float.tflite"


def test_a_cache_that_does_not_name_its_teacher_is_scored_again(
    tmp_path: Path, test_split: Split
) -> None:
    split = Split(test_split.images[:8], test_split.labels[:8])
    cache = tmp_path / "teacher.npz"
    scores = teacher_scores(TEACHER, split, cache)
    with np.load(cache) as stored:
        write_npz(cache, scores=np.zeros_like(scores), fingerprint=stored["fingerprint"])
    assert recorded_teacher_sha256(cache) is None
    np.testing.assert_array_equal(teacher_scores(TEACHER, split, cache), scores)
    assert recorded_teacher_sha256(cache) is not None


def test_the_card_names_the_teacher_file_it_learned_from() -> None:
    shipped = Path(__file__).resolve().parents[2] / "firmware_models" / "tiny.card.json"
    card = json.loads(shipped.read_text())
    # The shipped `tiny` learns without a teacher: give its card one.
    card["training"]["recipe"].update(teacher="default", distillation_weight=0.5)
    card["training"]["teacher_sha256"] = "ab" * 32
    distilled = [
        line
        for line in card_markdown(from_json(ModelCard, card, "card")).splitlines()
        if line.startswith("- distilled")
    ]
    assert len(distilled) == 1
    assert "`default_float.tflite`" in distilled[0] and "SHA-256 `" + "ab" * 32 in distilled[0]
