"""Gray, BGRA and 16-bit frames reach the model as the same tensor as their 8-bit BGR original."""

import cv2
import numpy as np
import pytest

from edge_cifar.preprocess import (
    INPUT_RANGES,
    FrameError,
    InputSpec,
    Normalization,
    frame_to_input,
    frame_to_rgb,
    rgb_to_input,
)
from edge_cifar.sources import read_image, to_bgr

from .support import write_png

# The shipped INT8 model's input: pixels / 255 quantized with scale 1/255, zero point -128.
INT8_SPEC = InputSpec(height=32, width=32, dtype=np.dtype(np.int8), scale=1 / 255, zero_point=-128)


@pytest.fixture
def bgr_frame() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)


def test_int8_input_maps_pixel_0_to_minus_128_and_255_to_127():
    assert INT8_SPEC.lut[0] == -128 and INT8_SPEC.lut[255] == 127


def test_bgra_frame_gives_the_same_input_as_its_bgr_pixels(bgr_frame):
    alpha = np.full((*bgr_frame.shape[:2], 1), 77, dtype=np.uint8)
    bgra = np.concatenate([bgr_frame, alpha], axis=2)
    np.testing.assert_array_equal(
        frame_to_input(bgra, INT8_SPEC), frame_to_input(bgr_frame, INT8_SPEC)
    )


def test_gray_frame_gives_the_same_input_as_the_gray_image_in_three_channels(bgr_frame):
    gray = cv2.cvtColor(bgr_frame, cv2.COLOR_BGR2GRAY)
    as_bgr = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    tensor = frame_to_input(gray, INT8_SPEC)
    np.testing.assert_array_equal(tensor, frame_to_input(as_bgr, INT8_SPEC))
    assert (tensor[..., 0] == tensor[..., 1]).all() and (tensor[..., 1] == tensor[..., 2]).all()


def test_16bit_frame_gives_the_same_input_as_its_8bit_original_at_model_size():
    rng = np.random.default_rng(1)
    bgr = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    deep = bgr.astype(np.uint16) * 257  # what a 16-bit export of an 8-bit image holds
    np.testing.assert_array_equal(frame_to_input(deep, INT8_SPEC), frame_to_input(bgr, INT8_SPEC))


def test_16bit_frame_resized_stays_within_one_level_of_its_8bit_original(bgr_frame):
    deep = bgr_frame.astype(np.uint16) * 257
    difference = frame_to_rgb(deep, 32, 32).astype(int) - frame_to_rgb(bgr_frame, 32, 32)
    assert np.abs(difference).max() <= 1


def test_png_files_in_gray_rgba_and_16bit_read_back_to_the_same_input(tmp_path, bgr_frame):
    gray = cv2.cvtColor(bgr_frame, cv2.COLOR_BGR2GRAY)
    variants = {
        "bgr.png": bgr_frame,
        "bgra.png": cv2.cvtColor(bgr_frame, cv2.COLOR_BGR2BGRA),
        "deep.png": bgr_frame.astype(np.uint16) * 257,
    }
    tensors = {
        name: frame_to_input(read_image(write_png(tmp_path / name, image)), INT8_SPEC)
        for name, image in variants.items()
    }
    assert read_image(tmp_path / "deep.png").dtype == np.uint16
    assert read_image(tmp_path / "bgra.png").shape[2] == 4
    np.testing.assert_array_equal(tensors["bgra.png"], tensors["bgr.png"])
    assert np.abs(tensors["deep.png"].astype(int) - tensors["bgr.png"]).max() <= 1
    gray_read = read_image(write_png(tmp_path / "gray.png", gray))
    assert gray_read.ndim == 2
    np.testing.assert_array_equal(
        frame_to_input(gray_read, INT8_SPEC), frame_to_input(to_bgr(gray_read), INT8_SPEC)
    )


def test_frame_is_centre_cropped_before_resizing():
    frame = np.zeros((100, 300, 3), dtype=np.uint8)
    frame[:, 100:200] = 255  # the centre square is white, the sides black
    assert frame_to_rgb(frame, 32, 32).min() == 255


@pytest.mark.parametrize(
    "frame",
    [np.zeros((4, 4, 2), np.uint8), np.zeros((4, 4, 3), np.int32), np.zeros((0, 4, 3), np.uint8)],
    ids=["two-channels", "int32-pixels", "empty"],
)
def test_unusable_frames_raise_frame_error(frame):
    with pytest.raises(FrameError):
        frame_to_input(frame, INT8_SPEC)


def test_input_ranges_map_pixels_0_255_onto_the_stated_float_spans():
    for name, (low, high) in {"0..1": (0, 1), "0..255": (0, 255), "-1..1": (-1, 1)}.items():
        spec = InputSpec(32, 32, np.dtype(np.float32), normalization=INPUT_RANGES[name])
        assert (spec.lut[0], spec.lut[255]) == pytest.approx((low, high)), name


def test_raw_pixel_int8_input_is_the_pixel_minus_128():
    """The MLPerf Tiny reference's input: scale 1.0, zero point -128, pixels 0..255."""
    spec = InputSpec(
        32, 32, np.dtype(np.int8), scale=1.0, zero_point=-128, normalization=INPUT_RANGES["0..255"]
    )
    np.testing.assert_array_equal(spec.lut.astype(int), np.arange(256) - 128)


def test_per_channel_normalization_applies_each_channels_mean_and_std():
    spec = InputSpec(
        2,
        2,
        np.dtype(np.float32),
        normalization=Normalization((0.0, 100.0, 200.0), (1.0, 2.0, 4.0)),
    )
    rgb = np.full((2, 2, 3), 200, dtype=np.uint8)
    np.testing.assert_allclose(rgb_to_input(rgb, spec)[0, 0, 0], [200.0, 50.0, 0.0])


def test_a_one_channel_model_gets_the_gray_frame(bgr_frame):
    spec = InputSpec(32, 32, np.dtype(np.uint8), scale=1 / 255, zero_point=0, channels=1)
    gray = cv2.cvtColor(bgr_frame, cv2.COLOR_BGR2GRAY)
    tensor = frame_to_input(bgr_frame, spec)
    assert tensor.shape == (1, 32, 32, 1)
    # The same as feeding the gray frame, up to rounding (resize and conversion in either order).
    difference = tensor.astype(int) - frame_to_input(gray, spec).astype(int)
    assert np.abs(difference).max() <= 1


def test_a_frame_smaller_than_the_input_is_enlarged_smoothly_not_in_blocks() -> None:
    # A 4 x 4 ramp enlarged to 32 x 32: pixel repetition would leave 4 distinct values a row.
    ramp = np.tile(np.array([0, 80, 160, 240], np.uint8), (4, 1))
    frame = np.repeat(ramp[:, :, np.newaxis], 3, axis=2)
    row = frame_to_rgb(frame, 32, 32)[16, :, 0]
    assert len(np.unique(row)) > 12
    # Still a ramp, left to right (a cubic kernel may ring by a level or two at the ends).
    assert np.all(np.diff(row.astype(int)) >= -2)
    assert row[-1] - row[0] > 200


def test_a_frame_larger_than_the_input_is_averaged_when_shrunk() -> None:
    # One bright pixel in each 8 x 8 cell: area averaging keeps its share, sampling would not.
    frame = np.zeros((64, 64, 3), np.uint8)
    frame[::8, ::8] = 255
    assert np.allclose(frame_to_rgb(frame, 8, 8).astype(float), 255 / 64, atol=1)
