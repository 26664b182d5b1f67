"""Frame sources: what `--device` opens, how reads fail, and how image paths are expanded."""

import importlib.util
import itertools

import cv2
import numpy as np
import pytest

from edge_cifar import sources
from edge_cifar.sources import (
    ImageFiles,
    SourceError,
    VideoCapture,
    expand_image_paths,
    open_source,
    to_bgr,
)

from .support import write_png

IMAGE = np.full((40, 60, 3), 120, dtype=np.uint8)


@pytest.fixture
def image_folder(tmp_path):
    for name in ("b.png", "a.jpg"):
        write_png(tmp_path / name, IMAGE)
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_a_folder_yields_its_image_files_sorted_and_skips_other_files(image_folder):
    assert [p.name for p in expand_image_paths([str(image_folder)])] == ["a.jpg", "b.png"]


def test_a_glob_yields_the_matching_files(image_folder):
    assert [p.name for p in expand_image_paths([str(image_folder / "*.png")])] == ["b.png"]


def test_missing_files_and_empty_globs_are_kept_so_reading_reports_them(image_folder):
    paths = expand_image_paths([str(image_folder / "gone.png"), str(image_folder / "*.gif")])
    assert [p.name for p in paths] == ["gone.png", "*.gif"]
    with pytest.raises(SourceError, match="no such file"):
        sources.read_image(paths[0])


def test_an_empty_folder_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="no image files"):
        expand_image_paths([str(tmp_path)])


def test_device_dispatch(image_folder, tmp_path):
    assert isinstance(open_source([str(image_folder)]), ImageFiles)
    assert isinstance(open_source([str(image_folder / "b.png")]), ImageFiles)
    assert isinstance(open_source([str(image_folder / "*.jpg")]), ImageFiles)
    several = open_source([str(image_folder / "a.jpg"), str(image_folder / "b.png")])
    assert isinstance(several, ImageFiles) and len(several.paths) == 2
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 5, (64, 48))
    for _ in range(4):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    opened = open_source([str(video)])
    assert isinstance(opened, VideoCapture) and not opened.live
    assert len(list(opened.frames())) == 4
    opened.close()


def test_image_files_come_out_as_bgr_uint8_whatever_their_format(tmp_path):
    write_png(tmp_path / "gray.png", IMAGE[..., 0])
    write_png(tmp_path / "deep.png", IMAGE.astype(np.uint16) * 257)
    write_png(tmp_path / "alpha.png", cv2.cvtColor(IMAGE, cv2.COLOR_BGR2BGRA))
    for frame in ImageFiles(sorted(tmp_path.iterdir())).frames():
        assert frame.dtype == np.uint8 and frame.shape == (40, 60, 3)
        assert (frame == 120).all()


def test_a_missing_path_is_a_one_line_source_error():
    with pytest.raises(SourceError, match="no such camera index, file, folder or stream"):
        open_source(["/nonexistent/clip.mp4"])


def test_a_camera_that_does_not_open_is_a_source_error():
    with pytest.raises(SourceError, match="camera 97: cannot open camera"):
        open_source(["97"])


@pytest.mark.skipif(importlib.util.find_spec("picamera2") is not None, reason="picamera2 present")
def test_picamera2_missing_says_how_to_install_it():
    with pytest.raises(SourceError, match="sudo apt install python3-picamera2"):
        open_source(["picamera2"])


class FlakyCapture:
    """cv2.VideoCapture stand-in: reads succeed or fail as scripted (True = a frame)."""

    def __init__(self, script):
        self.script = list(script)
        self.released = False

    def read(self):
        ok = self.script.pop(0) if self.script else False
        return ok, (np.zeros((48, 64, 3), np.uint8) if ok else None)

    def release(self):
        self.released = True


def scripted_source(script, live):
    source = VideoCapture.__new__(VideoCapture)
    source.live, source.name, source.fps = live, "scripted", None
    source._capture = FlakyCapture(script)
    return source


def test_a_live_camera_retries_failed_reads_and_goes_on(monkeypatch):
    monkeypatch.setattr(sources, "LIVE_RETRY_PAUSE_S", 0.0)
    script = [True, False, False, True, True]  # two dropped frames in a row, then frames again
    assert len(list(scripted_source(script, live=True).frames())) == 3


def test_a_live_camera_ends_after_too_many_failed_reads(monkeypatch):
    monkeypatch.setattr(sources, "LIVE_RETRY_PAUSE_S", 0.0)
    script = [True] + [False] * sources.LIVE_READ_RETRIES + [True]
    assert len(list(scripted_source(script, live=True).frames())) == 1


def test_a_file_ends_at_its_first_failed_read():
    assert len(list(scripted_source([True, True, False, True], live=False).frames())) == 2


def test_a_source_that_yields_no_frame_at_all_is_a_source_error():
    with pytest.raises(SourceError, match="no frame could be read"):
        list(scripted_source([False], live=False).frames())


def test_to_bgr_refuses_two_channel_images():
    with pytest.raises(ValueError, match="gray, BGR or BGRA"):
        to_bgr(np.zeros((4, 4, 2), np.uint8))


class ScriptedSource:
    """A live source that yields `count` frames, then ends as an unplugged camera's reads do."""

    live, fps = True, 30.0

    def __init__(self, count, fail=False):
        self.name, self.count, self.fail, self.closed = "camera 9", count, fail, False

    def frames(self):
        for _ in range(self.count):
            yield IMAGE
        if self.fail:
            raise SourceError("camera 9: no frame could be read")

    def close(self):
        self.closed = True


def test_a_lost_live_source_is_reopened_with_backoff_and_resumes():
    import threading
    import time

    first, later = ScriptedSource(3), ScriptedSource(2, fail=True)
    attempts = []

    def reopen():
        attempts.append(time.monotonic())
        if len(attempts) < 3:  # still unplugged twice
            raise SourceError("camera 9: cannot open camera")
        return later

    stop, states = threading.Event(), []
    source = sources.ReopeningSource(first, reopen, stop, states.append, first_pause_s=0.05)
    seen = 0
    for _ in source.frames():
        seen += 1
        if seen == 5:
            stop.set()
    assert seen == 5 and source.reopened == 1
    assert states == [False, True]  # lost, then back (the stop ends it quietly)
    assert first.closed and later.closed
    pauses = [b - a for a, b in itertools.pairwise(attempts)]
    assert pauses[1] > pauses[0] * 1.5  # the wait doubles


def test_a_stop_ends_the_wait_for_a_lost_source_at_once():
    import threading
    import time

    stop = threading.Event()

    def never():
        raise SourceError("gone")

    source = sources.ReopeningSource(ScriptedSource(1), never, stop, first_pause_s=5.0)
    frames = source.frames()
    next(frames)
    threading.Timer(0.2, stop.set).start()
    start = time.monotonic()
    assert list(frames) == []
    assert time.monotonic() - start < 2
