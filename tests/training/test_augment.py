"""Training augmentation: crop + mirror always, cutout when the recipe asks for it."""

import numpy as np
import pytest

from train.data import Split
from train.pipeline import one_hot, training_dataset

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
