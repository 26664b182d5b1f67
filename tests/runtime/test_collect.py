"""Collecting what the model is unsure of (`camera --collect DIR`): which frames are saved, where,
how often, up to what size; a background class is uncertain; photos are read upright; `classify`
takes a folder of class folders."""

import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from edge_cifar.camera import FrameResult
from edge_cifar.classifier import BACKGROUND_LABEL, UNCERTAIN, Category, Decision, decide
from edge_cifar.collect import CollectOptions, CollectSink, label_folder
from edge_cifar.orientation import exif_orientation, upright
from edge_cifar.sources import decode_image, expand_image_paths

from .support import REPO

LABELS = ("bolt", "nut", BACKGROUND_LABEL)


def result(index: int, label: str, score: float) -> FrameResult:
    decision = Decision(label, score, False, (Category(label, score),), {}, 0, np.array([score]))
    return FrameResult(index, decision)


def noisy_frame(seed: int) -> np.ndarray:
    # Noise: a JPEG of it is large, so a few frames reach a small cap.
    return np.random.default_rng(seed).integers(0, 256, (120, 160, 3), dtype=np.uint8)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def saved(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_frames_under_the_threshold_are_saved_under_their_predicted_label(tmp_path):
    sink = CollectSink(CollectOptions(tmp_path / "dir", below=0.6, min_interval_s=0.0))
    for index, (label, score) in enumerate([("bolt", 0.9), ("nut", 0.5), ("bolt", 0.59)]):
        sink.write(noisy_frame(index), result(index, label, score), 30.0)
    sink.close()
    files = saved(tmp_path / "dir")
    assert [f.split("/")[0] for f in files] == ["bolt", "nut"]
    assert all(f.endswith(("-0000001.jpg", "-0000002.jpg")) for f in files)
    image = cv2.imread(str(tmp_path / "dir" / files[0]))
    assert image.shape == (120, 160, 3)


def test_every_nth_frame_is_saved_too_and_background_frames_always(tmp_path):
    options = CollectOptions(tmp_path / "dir", below=0.1, every=3, min_interval_s=0.0)
    sink = CollectSink(options)
    for index in range(7):
        sink.write(noisy_frame(index), result(index, "bolt", 0.99), 30.0)
    sink.write(noisy_frame(9), result(7, BACKGROUND_LABEL, 0.99), 30.0)
    assert sorted(f[-11:] for f in saved(tmp_path / "dir")) == [
        "0000000.jpg",
        "0000003.jpg",
        "0000006.jpg",
        "0000007.jpg",
    ]
    assert (tmp_path / "dir" / BACKGROUND_LABEL).is_dir()


def test_saving_is_rate_limited_by_the_clock(tmp_path):
    clock = Clock()
    sink = CollectSink(CollectOptions(tmp_path / "dir", below=1.0, min_interval_s=1.0), clock)
    for index in range(10):
        clock.now = index * 0.3  # 0.0, 0.3, ... 2.7 s: saves at 0.0, 1.2, 2.4
        sink.write(noisy_frame(index), result(index, "nut", 0.2), 30.0)
    assert len(saved(tmp_path / "dir")) == 3


def test_the_size_cap_holds_across_runs_and_is_said_once(tmp_path):
    folder = tmp_path / "dir"
    (folder / "nut").mkdir(parents=True)
    (folder / "nut" / "earlier.jpg").write_bytes(b"x" * 40_000)  # a previous run's frames count
    cap = 120_000
    lines: list[str] = []
    sink = CollectSink(
        CollectOptions(folder, below=1.0, min_interval_s=0.0, max_bytes=cap), say=lines.append
    )
    for index in range(30):
        sink.write(noisy_frame(index), result(index, "bolt", 0.1), 30.0)
    sink.close()
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert 40_000 < total <= cap
    assert len([line for line in lines if "no more frames saved" in line]) == 1
    assert sink.saved >= 1 and f"saved {sink.saved} frame(s)" in lines[-1]
    # No temporary file is left beside the JPEGs.
    assert all(p.suffix == ".jpg" and not p.name.startswith(".") for p in folder.rglob("*.*"))


def test_sixteen_bit_gray_and_alpha_frames_are_saved_as_8_bit_jpegs(tmp_path):
    sink = CollectSink(CollectOptions(tmp_path / "dir", below=1.0, min_interval_s=0.0))
    frames = [
        noisy_frame(0).astype(np.uint16) * 257,
        noisy_frame(1)[..., 0],
        np.dstack([noisy_frame(2), np.full((120, 160), 9, np.uint8)]),
    ]
    for index, frame in enumerate(frames):
        sink.write(frame, result(index, "bolt", 0.1), 30.0)
    files = sorted((tmp_path / "dir" / "bolt").iterdir())
    assert len(files) == 3
    assert all(cv2.imread(str(f), cv2.IMREAD_UNCHANGED).dtype == np.uint8 for f in files)


def test_a_label_never_leaves_the_collect_folder():
    assert label_folder("../../etc") == ".._.._etc"
    assert label_folder("..") == "_" and label_folder("a/b") == "a_b"


def test_the_background_class_is_uncertain_however_sure():
    scores = np.array([0.02, 0.03, 0.95], np.float32)
    decision = decide(scores, LABELS, top_k=3, min_score=0.0, timings_ms={})
    assert decision.label == UNCERTAIN and decision.uncertain
    assert decision.top_k[0].label == BACKGROUND_LABEL


def jpeg_with_orientation(image: np.ndarray, orientation: int) -> bytes:
    picture = Image.fromarray(image)
    exif = picture.getexif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=95, exif=exif)
    return buffer.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_turns_pixels_as_pillow_does(orientation):
    pixels = np.random.default_rng(orientation).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    encoded = jpeg_with_orientation(pixels, orientation)
    assert exif_orientation(encoded) == orientation
    stored = np.asarray(Image.open(io.BytesIO(encoded)))
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(encoded))))
    np.testing.assert_array_equal(upright(stored, orientation), expected)


def test_a_portrait_phone_photo_is_decoded_upright():
    # A landscape sensor image whose EXIF says "turn 90° clockwise to show": a portrait photo.
    sensor = np.zeros((60, 100, 3), np.uint8)
    sensor[:, :50] = 255  # the left half white: after the turn, the top half
    image = decode_image(jpeg_with_orientation(sensor, 6), "portrait.jpg")
    assert image.shape[:2] == (100, 60)
    assert image[:40].mean() > 200 and image[60:].mean() < 50


def test_classify_takes_a_folder_of_class_folders(tmp_path):
    for name in ("bolt", "nut"):
        (tmp_path / "parts" / name).mkdir(parents=True)
        for index in range(2):
            cv2.imwrite(str(tmp_path / "parts" / name / f"{index}.png"), noisy_frame(index))
    (tmp_path / "parts" / "loose.jpg").write_bytes(jpeg_with_orientation(noisy_frame(5), 1))
    paths = expand_image_paths([str(tmp_path / "parts")])
    assert [p.relative_to(tmp_path / "parts").as_posix() for p in paths] == [
        "loose.jpg",
        "bolt/0.png",
        "bolt/1.png",
        "nut/0.png",
        "nut/1.png",
    ]


def test_camera_collect_on_a_video_saves_the_frames_under_the_threshold_up_to_the_cap(
    cli, model_path, tmp_path
):
    video = REPO / "samples" / "cifar_test.avi"
    common = ["camera", "--device", video, "--headless", "--model", model_path, "--max-frames", 40]
    collect = ["--collect", tmp_path / "all", "--min-score", 0.9, "--collect-interval", 0]
    result = cli(*common, *collect)
    assert result.exit_code == 0, result.stderr
    unsure = [line for line in result.json_lines() if line["score"] < 0.9]
    files = sorted((tmp_path / "all").rglob("*.jpg"))
    assert 0 < len(files) == len(unsure) < 40
    assert [
        f"{p.parent.name}:{int(p.stem[-7:])}" for p in sorted(files, key=lambda p: p.stem[-7:])
    ] == [f"{line['top_k'][0]['label']}:{line['frame']}" for line in unsure]
    # A cap of about three frames: it holds, and is said once.
    cap = 3.5 * max(p.stat().st_size for p in files)
    capped = ["--collect", tmp_path / "capped", "--min-score", 1.0, "--collect-interval", 0]
    result = cli(*common, *capped, "--collect-max-mb", cap / 1e6)
    total = sum(p.stat().st_size for p in (tmp_path / "capped").rglob("*") if p.is_file())
    assert 0 < total <= cap
    assert result.stderr.count("no more frames saved") == 1
