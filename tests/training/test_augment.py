"""Training augmentation: crop + mirror always, camera effects and cutout when the recipe asks."""

import json
from pathlib import Path

import numpy as np
import pytest

from train.camera_augment import blur_kernels
from train.card import ModelCard, card_markdown
from train.data import Split
from train.inputs import one_hot, training_dataset
from train.records import from_json

LIGHT, DARK = 200, 0


def two_tone_split() -> Split:
    # Uniform images: a crop or mirror of one leaves it unchanged, so only cutout changes pixels.
    images = np.concatenate(
        [np.full((32, 32, 32, 3), LIGHT, np.uint8), np.full((32, 32, 32, 3), DARK, np.uint8)]
    )
    return Split(images, np.arange(64) % 10)


def augmented(split: Split, cutout: int, seed: int = 0) -> np.ndarray:
    batches = training_dataset(split, one_hot(split.labels, split.classes), 64, seed, cutout)
    images, _ = next(iter(batches))
    return np.round(images.numpy() * 255).astype(np.int64)


def test_without_cutout_crop_and_mirror_keep_uniform_images_unchanged() -> None:
    values = {int(image.min()) for image in augmented(two_tone_split(), cutout=0)}
    values |= {int(image.max()) for image in augmented(two_tone_split(), cutout=0)}
    assert values == {LIGHT, DARK}


@pytest.mark.parametrize("size", [8, 16])
def test_cutout_paints_one_square_of_the_mean_colour_clipped_at_the_edges(size: int) -> None:
    mean = (LIGHT + DARK) // 2
    areas = []
    for image in augmented(two_tone_split(), cutout=size):
        painted = np.all(image == mean, axis=-1)
        rows, cols = np.nonzero(painted)
        assert len(rows) > 0
        # One axis-aligned rectangle: every pixel of its bounding box is painted, nothing else.
        box = painted[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert box.all()
        assert box.shape[0] <= size and box.shape[1] <= size
        # Its centre lies in the image, so at least half of each side does.
        assert box.shape[0] >= size // 2 and box.shape[1] >= size // 2
        areas.append(painted.sum())
    assert max(areas) == size * size  # squares away from the edges are whole
    assert min(areas) < size * size  # and some overhang an edge


def test_cutout_is_the_same_for_the_same_seed_and_differs_for_another() -> None:
    split = two_tone_split()
    first = augmented(split, cutout=8, seed=3)
    assert np.array_equal(first, augmented(split, cutout=8, seed=3))
    assert not np.array_equal(first, augmented(split, cutout=8, seed=4))


def camera_augmented(split: Split, probability: float, seed: int = 0) -> np.ndarray:
    batches = training_dataset(
        split, one_hot(split.labels, split.classes), 64, seed, camera_augment=probability
    )
    images, _ = next(iter(batches))
    return np.round(images.numpy() * 255).astype(np.int64)


def test_blur_kernels_keep_brightness_and_never_go_negative() -> None:
    kernels = blur_kernels()
    np.testing.assert_allclose(kernels.sum(axis=(1, 2)), 1.0, atol=1e-5)
    assert kernels.min() >= 0
    # Motion kernels are one-sided lines: not symmetric about the centre, unlike focus blur.
    asymmetric = [not np.allclose(k, k[::-1, ::-1]) for k in kernels]
    assert 0 < sum(asymmetric) < len(kernels)


def test_camera_effects_at_probability_one_move_exposure_and_add_noise() -> None:
    # Crop and mirror leave a mid-grey image as it is: exposure moves its level, noise adds spread.
    split = Split(np.full((64, 32, 32, 3), 128, np.uint8), np.arange(64) % 10)
    struck = camera_augmented(split, 1.0).reshape(64, -1)
    assert np.mean(np.abs(struck.mean(axis=1) - 128) > 1) > 0.9
    # (JPEG at low quality smooths away the faintest noise again.)
    assert np.mean(struck.std(axis=1) > 1) > 0.75
    # Edges are mirrored before blurring, so no image darkens towards its border.
    border = struck.reshape(64, 32, 32, 3)[:, [0, -1]].mean(axis=(1, 2, 3))
    centre = struck.reshape(64, 32, 32, 3)[:, 8:24, 8:24].mean(axis=(1, 2, 3))
    assert np.all(np.abs(border - centre) < 8)


def test_camera_effects_strike_about_as_often_as_asked() -> None:
    # On a mid-grey image only noise adds spread inside it (blur and exposure keep it flat, JPEG
    # of a flat image stays flat): the share of noisy images estimates the probability.
    split = Split(np.full((64, 32, 32, 3), 128, np.uint8), np.arange(64) % 10)
    noisy = [image.std() > 1.0 for image in camera_augmented(split, 0.5, seed=1)]
    assert 0.25 < np.mean(noisy) < 0.75


def test_camera_effects_are_the_same_for_the_same_seed_and_off_at_zero() -> None:
    split = two_tone_split()
    assert np.array_equal(camera_augmented(split, 0.5, seed=2), camera_augmented(split, 0.5, 2))
    assert not np.array_equal(camera_augmented(split, 0.5, 2), camera_augmented(split, 0.5, 3))
    assert np.array_equal(camera_augmented(split, 0.0), augmented(split, cutout=0))


def test_camera_effects_and_cutout_go_together() -> None:
    split = two_tone_split()
    targets = one_hot(split.labels, split.classes)
    batches = training_dataset(split, targets, 64, 0, cutout=8, camera_augment=0.5)
    images, _ = next(iter(batches))
    assert images.shape == (64, 32, 32, 3)


@pytest.mark.parametrize("camera", [0.0, 0.1])
def test_the_card_names_every_augmentation_its_recipe_used(camera: float) -> None:
    shipped = Path(__file__).resolve().parents[2] / "firmware_models" / "default.card.json"
    card = json.loads(shipped.read_text())
    card["training"]["recipe"] |= {"cutout": 12, "camera_augment": camera}
    (line,) = [
        line
        for line in card_markdown(from_json(ModelCard, card, "card")).splitlines()
        if line.startswith("- augmentation")
    ]
    assert "cutout 12 x 12 px" in line
    assert ("camera effects" in line) == bool(camera)
    assert ("probability 0.1" in line) == bool(camera)
