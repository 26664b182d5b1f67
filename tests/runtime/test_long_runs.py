"""A camera loop that runs for days: its memory stays flat, and its summary's percentiles stay
those of the whole run."""

import random
import tracemalloc

import numpy as np
import pytest

from edge_cifar.camera import STAGE_SAMPLES, Reservoir, run

from .test_camera_loop import CAT, FrameList, ScriptedClassifier, scores_for


class MemoryProbe:
    """A sink that notes the Python heap the loop holds at two frame counts."""

    def __init__(self, *at_frames):
        self.at_frames, self.frames, self.traced = set(at_frames), 0, {}

    def write(self, frame, result, fps):
        self.frames += 1
        if self.frames in self.at_frames:
            self.traced[self.frames] = tracemalloc.get_traced_memory()[0]

    def close(self):
        pass


def test_the_loop_s_memory_stays_flat_over_20000_frames():
    probe = MemoryProbe(STAGE_SAMPLES + 2_000, 20_000)
    tracemalloc.start()
    try:
        summary = run(FrameList(20_000), ScriptedClassifier([scores_for(CAT, 0.9)]), [probe])
    finally:
        tracemalloc.stop()
    assert summary.frames == 20_000
    grown = probe.traced[20_000] - probe.traced[STAGE_SAMPLES + 2_000]
    # Three stage timings a frame kept for ever grew ~200 KB over these 8,000 frames.
    assert grown < 20_000, grown
    assert all(len(sample.values) == STAGE_SAMPLES for sample in summary.stage_ms.values())


def test_a_reservoir_s_percentiles_are_the_whole_run_s():
    rng = random.Random(1)
    values = [rng.expovariate(1.0) for _ in range(200_000)]
    sample = Reservoir(size=10_000)
    for value in values:
        sample.add(value)
    assert len(sample.values) == 10_000 and sample.seen == 200_000
    # A uniform sample of the whole run, not its last 10,000 values: p50 and p99 within 3%.
    for percentile in (50, 99):
        expected = np.percentile(values, percentile)
        assert np.percentile(sample.values, percentile) == pytest.approx(expected, rel=0.03)
