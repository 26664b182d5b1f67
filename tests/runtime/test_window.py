"""The camera window, for real: OpenCV's GUI under Xvfb, screenshotted; a note where OpenCV has no
GUI; and a file shown to a person plays at its own frame rate (`--realtime`)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time

import cv2
import numpy as np
import pytest

from edge_cifar.camera import FrameResult, LoopOptions, StopRequest, annotate, run
from edge_cifar.classifier import Classifier, decide
from edge_cifar.interpreter import Model
from edge_cifar.sources import VideoCapture

from .support import SAMPLE_VIDEO, edge_cifar_process, write_png

GUI_EXPECTED = os.environ.get("EDGE_CIFAR_EXPECT_GUI") == "1"  # the Makefile's GUI OpenCV venv


@pytest.fixture
def xvfb():
    """A virtual X display (Debian's xvfb); its name, e.g. ":99"."""
    if shutil.which("Xvfb") is None:
        pytest.fail("no Xvfb: `make test` installs it (tests/runtime/system-packages.sh)")
    read_end, write_end = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
        pass_fds=[write_end],
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    with os.fdopen(read_end) as displayfd:
        display = f":{displayfd.readline().strip()}"
    yield display
    server.terminate()
    server.wait(timeout=10)


def overlay_line(frame, label, score):
    """The overlay's first line (label and score) as the loop draws it, cut from its corner."""
    scores = np.array([score, 1.0 - score], np.float32)
    drawn = annotate(frame, FrameResult(0, decide(scores, (label, "other"), 1, 0.0, {})), 0.0)
    scale = max(0.5, frame.shape[0] / 640)
    (width, _), _ = cv2.getTextSize(f"{label} {score:.2f}", cv2.FONT_HERSHEY_SIMPLEX, scale, 4)
    return cv2.cvtColor(drawn[0 : int(30 * scale) + 8, 0 : 10 + width + 4], cv2.COLOR_BGR2GRAY)


def best_match(screen, template):
    return float(cv2.matchTemplate(screen, template, cv2.TM_CCOEFF_NORMED).max())


def test_the_window_shows_the_overlay_label(model_path, tmp_path, xvfb):
    from PIL import ImageGrab

    frame = cv2.resize(
        cv2.imread(str(SAMPLE_VIDEO.parent / "images" / "0000_cat.png")),
        (640, 480),
        interpolation=cv2.INTER_NEAREST,
    )
    # One frame 20,000 times (hard links in a folder), unpaced: the loop calls waitKey, which
    # paints the window, many times a second, and runs far longer than any wait below.
    image = write_png(tmp_path / "frame.png", frame)
    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(20_000):
        os.link(image, folder / f"{index:05d}.png")
    process = edge_cifar_process("camera", "-d", folder, env={"DISPLAY": xvfb})
    # stdout is read as it comes: a full pipe would block the loop in its JSON sink, and a loop
    # that no longer reaches waitKey never paints its window (a blank screenshot).
    lines: queue.Queue[str] = queue.Queue()

    def read_stdout():
        for line in process.stdout:
            lines.put(line)
        lines.put("")  # the end: the process exited

    reader = threading.Thread(target=read_stdout)
    reader.start()
    try:
        first = lines.get(timeout=120)  # a frame is on its way to the window, or "" (exited)
        last = json.loads(first) if first else None  # None: it exited (no GUI)
        template = overlay_line(frame, last["label"], last["score"]) if last else None
        # The frame never changes, so neither does the overlay: look until it is on the screen.
        deadline = time.monotonic() + 120.0
        while True:
            shot = ImageGrab.grab(xdisplay=xvfb)
            screen = cv2.cvtColor(np.asarray(shot.convert("RGB")), cv2.COLOR_RGB2GRAY)
            shown = best_match(screen, template) if template is not None else 0.0
            ended = process.poll() is not None
            if template is None or shown > 0.8 or ended or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        shot.save(tmp_path / "window.png")
        process.send_signal(signal.SIGTERM)
        stderr = process.stderr.read()
        process.wait(timeout=60)
    finally:
        process.kill()
        reader.join(timeout=60)
    if not GUI_EXPECTED and "no GUI" in stderr:
        pytest.skip("no GUI in this OpenCV: test_a_headless_opencv_says_how_to_get_a_window")
    assert process.returncode == 0, stderr
    other = "dog" if last["label"] != "dog" else "cat"
    # The loop's label is drawn in the window: 0.9999 with OpenCV 5's GUI build, 0.90 with 4.11's
    # (NumPy 1 venv), whose window resamples the frame a little; a wrong label scores about 0.2.
    assert shown > 0.8, (shown, last["label"], lines.qsize(), stderr[-2000:])
    assert best_match(screen, overlay_line(frame, other, last["score"])) < 0.6  # not any text


def test_a_headless_opencv_says_how_to_get_a_window(model_path, xvfb):
    process = edge_cifar_process(
        "camera", "-d", SAMPLE_VIDEO, "--max-frames", 3, env={"DISPLAY": xvfb}
    )
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    if GUI_EXPECTED or "no GUI" not in stderr:
        assert GUI_EXPECTED or "note:" not in stderr
        pytest.skip("this venv's OpenCV has a GUI (test_the_window_shows_the_overlay_label)")
    [note] = [line for line in stderr.splitlines() if line.startswith("note:")]
    version = importlib.metadata.version("opencv-python-headless")
    assert note == (
        f"note: no window: this OpenCV (opencv-python-headless {version}) has no GUI; for a window "
        "swap it for the GUI build: `pip uninstall -y opencv-python-headless && pip install "
        f"opencv-python=={version}`"
    )


class CountingSink:
    def __init__(self):
        self.frames = 0

    def write(self, frame, result, fps):
        self.frames += 1

    def close(self):
        pass


class PacingStop(StopRequest):
    """The loop's stop request, noting each pause the loop takes to pace a file (then taking it):
    whether a run was paced is then a fact, not a duration a loaded machine stretches."""

    def __init__(self):
        super().__init__()
        self.pauses = []
        wait = self.event.wait

        def noted(timeout=None):
            self.pauses.append(timeout)
            return wait(timeout)

        self.event.wait = noted


@pytest.mark.parametrize("realtime", [True, False])
def test_realtime_plays_a_file_at_its_frame_rate(model_path, tmp_path, realtime):
    frames, rate = 24, 12.0  # two seconds of video
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), rate, (64, 48))
    for index in range(frames):
        writer.write(np.full((48, 64, 3), index * 10, np.uint8))
    writer.release()
    sink, stop, classifier = CountingSink(), PacingStop(), Classifier(Model(model_path))
    start = time.perf_counter()
    summary = run(VideoCapture(str(path)), classifier, [sink], LoopOptions(realtime=realtime), stop)
    seconds = time.perf_counter() - start
    assert sink.frames == summary.frames == frames
    if realtime:
        # Frame i is due i / fps after the first: the last at 23/12 s, however fast the machine.
        assert stop.pauses and seconds >= (frames - 1) / rate, (seconds, stop.pauses)
    else:
        assert stop.pauses == []  # as fast as it decodes


def test_a_live_source_is_never_paced(model_path):
    source = VideoCapture(str(SAMPLE_VIDEO))
    source.live = True  # as a camera: it sets its own pace, however slow
    stop, classifier = PacingStop(), Classifier(Model(model_path))
    run(source, classifier, [], LoopOptions(max_frames=30, realtime=True), stop)
    assert stop.pauses == []


def test_serve_and_a_window_play_files_in_real_time_headless_runs_do_not(tmp_path):
    from edge_cifar.wiring import prepare_loop

    def realtime_of(**kwargs):
        loop = prepare_loop(
            VideoCapture(str(SAMPLE_VIDEO)),
            None,  # the classifier: only --mqtt's sink asks it for the model's name
            print,
            json_lines=False,
            mqtt=None,
            save=None,
            headless=True,
            options=LoopOptions(),
            stop=StopRequest(),
            **kwargs,
        )
        loop.source.close()
        return loop.options.realtime

    assert realtime_of(realtime=None, page=True) is True
    assert realtime_of(realtime=None, page=False) is False
    assert realtime_of(realtime=True, page=False) is True
    assert realtime_of(realtime=False, page=True) is False
