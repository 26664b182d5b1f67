"""The camera loop with stand-ins for the source and the classifier: smoothing, min-score, FPS,
and every way the loop can end; the one ranking (`decide`) every command's result comes from."""

import io
import json

import numpy as np
import pytest

from edge_cifar.camera import (
    NO_DISPLAY,
    FpsMeter,
    JsonLinesSink,
    LoopOptions,
    ScoreSmoother,
    run,
    window_problem,
)
from edge_cifar.classifier import UNCERTAIN, Classifier, decide
from edge_cifar.interpreter import Model
from train.labels import CLASS_NAMES

CAT, DOG = CLASS_NAMES.index("cat"), CLASS_NAMES.index("dog")


def scores_for(index: int, score: float) -> np.ndarray:
    """`score` on one class, the rest spread evenly over the other nine."""
    scores = np.full(len(CLASS_NAMES), (1.0 - score) / (len(CLASS_NAMES) - 1), dtype=np.float32)
    scores[index] = score
    return scores


TIMINGS = {"preprocess": 1.0, "invoke": 2.0, "postprocess": 0.5}


class ScriptedClassifier:
    """Gives the given score vectors in turn, whatever the frame, ranked as Classifier ranks."""

    def __init__(self, sequence, top_k=3, min_score=0.0):
        self.sequence, self.top_k, self.min_score = list(sequence), top_k, min_score
        self.calls = 0

    def classify(self, frame, smoothing=None):
        assert frame.shape == (48, 64, 3)
        self.calls += 1
        scores = self.sequence[(self.calls - 1) % len(self.sequence)]
        if smoothing is not None:
            scores = smoothing(scores)
        return decide(scores, CLASS_NAMES, self.top_k, self.min_score, dict(TIMINGS))


class FrameList:
    name, fps = "frames", None

    def __init__(self, count, interrupt_after=None):
        self.count, self.interrupt_after, self.closed = count, interrupt_after, False

    def frames(self):
        for index in range(self.count):
            if self.interrupt_after is not None and index == self.interrupt_after:
                raise KeyboardInterrupt
            yield np.zeros((48, 64, 3), dtype=np.uint8)

    def close(self):
        self.closed = True


class RecordingSink:
    def __init__(self, stop_after=None):
        self.results, self.stop_after, self.closed = [], stop_after, False

    def write(self, frame, result, fps):
        self.results.append(result)
        stop = self.stop_after is not None and len(self.results) >= self.stop_after
        return "quit key" if stop else None

    def close(self):
        self.closed = True


def test_smoothing_with_alpha_1_passes_scores_through():
    smoother = ScoreSmoother(1.0)
    smoother.update(scores_for(CAT, 0.9))
    np.testing.assert_array_equal(smoother.update(scores_for(DOG, 0.8)), scores_for(DOG, 0.8))


def test_smoothing_is_an_exponential_moving_average():
    smoother = ScoreSmoother(0.25)
    first, second = scores_for(CAT, 1.0), scores_for(DOG, 1.0)
    np.testing.assert_allclose(smoother.update(first), first)
    np.testing.assert_allclose(smoother.update(second), 0.25 * second + 0.75 * first, rtol=1e-6)


def test_smoothing_keeps_the_label_through_a_one_frame_glitch():
    sequence = [scores_for(CAT, 0.7)] * 3 + [scores_for(DOG, 0.7)] + [scores_for(CAT, 0.7)]
    raw = run(FrameList(5), ScriptedClassifier(sequence), [sink := RecordingSink()])
    assert raw.frames == 5 and [r.decision.label for r in sink.results][3] == "dog"
    run(
        FrameList(5),
        ScriptedClassifier(sequence),
        [smoothed := RecordingSink()],
        LoopOptions(smooth_alpha=0.3),
    )
    assert [r.decision.label for r in smoothed.results] == ["cat"] * 5


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.5])
def test_smoothing_alpha_outside_0_to_1_is_refused(alpha):
    with pytest.raises(ValueError, match="alpha"):
        ScoreSmoother(alpha)


def test_below_min_score_the_label_is_uncertain_but_top_k_is_kept():
    result = decide(scores_for(CAT, 0.49), CLASS_NAMES, 3, 0.5, {})
    assert result.label == UNCERTAIN and result.uncertain and result.top_k[0].label == "cat"
    assert result.score == pytest.approx(0.49) and result.index == CAT


def test_at_min_score_the_label_is_the_class():
    result = decide(scores_for(CAT, 0.5), CLASS_NAMES, 3, 0.5, {})
    assert result.label == "cat" and not result.uncertain


def test_min_score_applies_to_the_smoothed_score():
    classifier = ScriptedClassifier([scores_for(DOG, 0.9), scores_for(CAT, 0.9)], min_score=0.6)
    run(FrameList(2), classifier, [sink := RecordingSink()], LoopOptions(smooth_alpha=0.5))
    # The raw cat score 0.9 clears 0.6, but averaged with the dog frame it is 0.46.
    assert [r.decision.label for r in sink.results] == ["dog", UNCERTAIN]


def test_the_classifier_ranks_the_smoothed_scores_it_is_given_once(model_path):
    """Classifier.classify ranks what the loop's smoothing returns, not the frame's own scores."""
    classifier = Classifier(Model(model_path), top_k=2)
    frame = np.zeros((48, 64, 3), np.uint8)
    own = classifier.classify(frame)
    other = (own.index + 1) % len(CLASS_NAMES)
    decision = classifier.classify(frame, lambda scores: scores_for(other, 0.55))
    assert decision.label == CLASS_NAMES[other] and decision.score == pytest.approx(0.55)
    assert decision.top_k[0].label == CLASS_NAMES[other]
    assert len(decision.top_k) == 2 and set(decision.timings_ms) == set(TIMINGS)


def test_fps_is_averaged_over_the_last_window_of_frames():
    meter = FpsMeter(window=30)
    now = 0.0
    for _ in range(40):  # 10 frames per second at first
        now += 0.1
        meter.tick(now)
    for _ in range(29):  # then 50 per second: after 29 intervals the window holds only those
        now += 0.02
        fps = meter.tick(now)
    assert fps == pytest.approx(50.0)
    assert FpsMeter().tick(1.0) == 0.0  # one frame: no rate yet


def test_loop_ends_at_the_end_of_the_stream_and_closes_everything():
    source, sink = FrameList(7), RecordingSink()
    summary = run(source, ScriptedClassifier([scores_for(CAT, 0.9)]), [sink])
    assert summary.frames == 7 and summary.stopped_by == "end of stream"
    assert source.closed and sink.closed
    assert [r.index for r in sink.results] == list(range(7))


def test_loop_stops_after_max_frames_without_classifying_more():
    classifier = ScriptedClassifier([scores_for(CAT, 0.9)])
    summary = run(FrameList(100), classifier, [RecordingSink()], LoopOptions(max_frames=5))
    assert summary.frames == 5 and classifier.calls == 5 and summary.stopped_by == "max frames"


def test_ctrl_c_ends_the_loop_cleanly_with_a_summary():
    source, sink = FrameList(100, interrupt_after=4), RecordingSink()
    summary = run(source, ScriptedClassifier([scores_for(CAT, 0.9)]), [sink])
    assert summary.frames == 4 and summary.stopped_by == "Ctrl-C"
    assert source.closed and sink.closed
    assert "4 frames" in summary.describe() and "Ctrl-C" in summary.describe()


def test_a_sink_asking_to_stop_ends_the_loop_like_the_quit_key():
    summary = run(
        FrameList(100), ScriptedClassifier([scores_for(CAT, 0.9)]), [RecordingSink(stop_after=3)]
    )
    assert summary.frames == 3 and summary.stopped_by == "quit key"


def test_summary_has_p50_and_p99_per_stage():
    summary = run(FrameList(10), ScriptedClassifier([scores_for(CAT, 0.9)]), [])
    assert summary.percentiles() == {
        "preprocess": (1.0, 1.0),
        "invoke": (2.0, 2.0),
        "postprocess": (0.5, 0.5),
    }
    assert "invoke p50 2.00 / p99 2.00 ms" in summary.describe()


def test_json_lines_sink_writes_one_parsable_line_per_frame():
    stream = io.StringIO()
    run(
        FrameList(3),
        ScriptedClassifier([scores_for(DOG, 0.8)], top_k=2),
        [JsonLinesSink(stream)],
    )
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["frame"] for line in lines] == [0, 1, 2]
    assert lines[0]["label"] == "dog" and lines[0]["score"] == pytest.approx(0.8)
    assert len(lines[0]["top_k"]) == 2
    assert lines[0]["ms"] == {"preprocess": 1.0, "invoke": 2.0, "postprocess": 0.5}


def test_no_window_without_a_display(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    assert window_problem() == NO_DISPLAY


def test_a_display_with_headless_opencv_says_which_package_has_a_gui(monkeypatch):
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(
        "cv2.getBuildInformation", lambda: "  Video I/O:\n  GUI:                           NONE\n"
    )
    monkeypatch.setattr(
        "edge_cifar.camera.headless_wheel", lambda: ("opencv-python-headless", "5.0.0.93")
    )
    assert window_problem().startswith("this OpenCV (opencv-python-headless 5.0.0.93) has no GUI; ")
    assert "pip uninstall -y opencv-python-headless && pip install opencv-python==5.0.0.93" in (
        window_problem()
    )
    monkeypatch.setattr("edge_cifar.camera.headless_wheel", lambda: None)  # a system OpenCV
    assert window_problem().startswith("this OpenCV build has no GUI; ")
    assert "uninstall" not in window_problem()
    monkeypatch.setattr(
        "cv2.getBuildInformation", lambda: "  GUI:                           GTK3\n"
    )
    assert window_problem() is None


class ClosedPipe(io.StringIO):
    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_stdout_ends_the_loop_quietly_like_end_of_stream():
    summary = run(
        FrameList(10), ScriptedClassifier([scores_for(CAT, 0.9)]), [JsonLinesSink(ClosedPipe())]
    )
    assert summary.frames == 1 and summary.stopped_by == "output closed"
