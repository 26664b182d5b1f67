"""Issue 3's acceptance check: the camera loop on a real video of CIFAR test images classifies
frames as `classify` does the images themselves, and about as accurately."""

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edge_cifar.classifier import UNCERTAIN
from edge_cifar.cli import app
from train.labels import CLASS_NAMES

from .support import CliResult, write_png

IMAGES = 120  # at least 100, as issue 3 asks
HOLD = 3  # frames each image stays on screen
QUALITY = 95


@pytest.fixture(scope="module")
def cifar_video(cifar_test, tmp_path_factory):
    """A 640x480 MJPG video of the first test images (each upscaled, held HOLD frames), and the
    same images as 32x32 PNG files, in the same order."""
    from train.samples import EXACT, write_video

    folder = tmp_path_factory.mktemp("video")
    images, labels = cifar_test.images[:IMAGES], cifar_test.labels[:IMAGES]
    video = folder / "cifar.avi"
    # Near-lossless JPEG: the test is about the runtime's pipeline, not the codec's artefacts.
    written = write_video(images, video, hold=HOLD, interpolation=EXACT, quality=QUALITY)
    assert written == IMAGES * HOLD
    png_folder = folder / "images"
    png_folder.mkdir()
    for index, rgb in enumerate(images):
        write_png(png_folder / f"{index:04d}.png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return video, png_folder, labels


@pytest.fixture(scope="module")
def camera_frames(model_path, cifar_video):
    """`camera --device video.avi --headless`, run once for the module."""
    result = CliRunner().invoke(app, ["camera", "--device", str(cifar_video[0]), "--headless"])
    assert result.exit_code == 0, result.stderr
    return CliResult(result.exit_code, result.stdout, result.stderr)


def test_video_has_every_frame_at_640x480(cifar_video):
    capture = cv2.VideoCapture(str(cifar_video[0]))
    frames = []
    while (read := capture.read())[0]:
        frames.append(read[1].shape)
    capture.release()
    assert len(frames) == IMAGES * HOLD and set(frames) == {(480, 640, 3)}


def test_camera_on_the_video_agrees_with_classify_and_is_as_accurate(
    cli, camera_frames, cifar_video
):
    _, png_folder, labels = cifar_video
    frames = camera_frames.json_lines()
    assert [f["frame"] for f in frames] == list(range(IMAGES * HOLD))

    classified = cli("classify", "--json", png_folder)
    assert classified.exit_code == 0, classified.stderr
    image_labels = [r["label"] for r in classified.json_lines()]
    assert len(image_labels) == IMAGES

    frame_labels = [f["label"] for f in frames]
    shown = [f["frame"] // HOLD for f in frames]  # which image each frame shows
    agreement = np.mean(
        [label == image_labels[i] for label, i in zip(frame_labels, shown, strict=True)]
    )
    truth = [CLASS_NAMES[label] for label in labels]
    image_accuracy = np.mean([label == t for label, t in zip(image_labels, truth, strict=True)])
    frame_accuracy = np.mean(
        [label == truth[i] for label, i in zip(frame_labels, shown, strict=True)]
    )
    print(
        f"agreement {agreement:.3f}, frame accuracy {frame_accuracy:.3f}, "
        f"image accuracy {image_accuracy:.3f}"
    )
    assert agreement >= 0.95, f"camera agrees with classify on {agreement:.1%} of frames"
    assert abs(frame_accuracy - image_accuracy) <= 0.05, (frame_accuracy, image_accuracy)


def test_camera_summary_reports_frames_fps_and_stage_percentiles(camera_frames):
    summary = camera_frames.stderr.strip().splitlines()[-1]
    assert f"{IMAGES * HOLD} frames" in summary and "stopped by end of stream" in summary
    for stage in ("preprocess", "invoke", "postprocess"):
        assert f"{stage} p50" in summary
    assert "FPS" in summary


def test_each_json_line_has_label_score_top_k_and_stage_timings(camera_frames):
    first = camera_frames.json_lines()[0]
    # The decision's shape, as `classify --json` and `POST /classify` write it, and its frame.
    assert set(first) == {"frame", "label", "score", "uncertain", "top_k", "ms"}
    assert len(first["top_k"]) == 3 and first["top_k"][0]["label"] == first["label"]
    assert set(first["ms"]) == {"preprocess", "invoke", "postprocess"}
    assert all(ms >= 0 for ms in first["ms"].values())


def test_min_score_turns_low_scores_into_uncertain(cli, camera_frames, cifar_video):
    raw = camera_frames.json_lines()[:30]
    # Halfway between two neighbouring scores of the frames, equal to none of them: the JSON
    # rounds scores to 4 decimals, so a threshold equal to a rounded score can sit above the
    # frame's exact score (an int8 model's saturated 0.99609375 is written 0.9961).
    scores = sorted({f["score"] for f in raw})
    middle = len(scores) // 2
    threshold = (scores[middle - 1] + scores[middle]) / 2
    result = cli(
        "camera",
        "--device",
        cifar_video[0],
        "--headless",
        "--max-frames",
        30,
        "--min-score",
        threshold,
    )
    assert result.exit_code == 0, result.stderr
    for before, after in zip(raw, result.json_lines(), strict=True):
        expected = before["label"] if before["score"] >= threshold else UNCERTAIN
        assert after["label"] == expected
        assert after["top_k"] == before["top_k"]  # the classes are still listed
    assert any(f["label"] == UNCERTAIN for f in result.json_lines())


def test_smooth_is_an_exponential_moving_average_of_the_frame_scores(cli, model_path, cifar_video):
    frames = 2 * HOLD  # one image change inside the run
    common = ("camera", "--device", cifar_video[0], "--headless", "--top-k", 10)
    raw = cli(*common, "--max-frames", frames).json_lines()
    smoothed = cli(*common, "--max-frames", frames, "--smooth", 0.25).json_lines()

    def vector(line):
        scores = {c["label"]: c["score"] for c in line["top_k"]}
        return np.array([scores[name] for name in CLASS_NAMES])

    average = vector(raw[0])
    np.testing.assert_allclose(vector(smoothed[0]), average, atol=1e-4)
    for raw_line, smoothed_line in zip(raw[1:], smoothed[1:], strict=True):
        average = 0.25 * vector(raw_line) + 0.75 * average
        np.testing.assert_allclose(vector(smoothed_line), average, atol=1e-3)
    assert smoothed[0]["label"] == raw[0]["label"]


def test_save_writes_the_annotated_frames_to_a_video(cli, model_path, cifar_video, tmp_path):
    out = tmp_path / "annotated.avi"
    result = cli(
        "camera",
        "--device",
        cifar_video[0],
        "--headless",
        "--no-json",
        "--max-frames",
        12,
        "--save",
        out,
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert "12 frames" in result.stderr and "stopped by max frames" in result.stderr
    capture = cv2.VideoCapture(str(out))
    count, first = 0, None
    while (read := capture.read())[0]:
        first = read[1] if first is None else first
        count += 1
    capture.release()
    assert count == 12 and first.shape == (480, 640, 3)
    original = cv2.VideoCapture(str(cifar_video[0])).read()[1]
    # The overlay is drawn in the top-left corner; the rest of the frame is the source.
    corner = np.abs(first[:70, :250].astype(int) - original[:70, :250]).mean()
    assert corner > 5
