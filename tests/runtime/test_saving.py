"""`--save` loses nothing: a full disk stops the saving with the video so far finalized and one
`error:` line; a video is never saved onto its own input; the file is written under a temporary
name and appears under its own only when finished."""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from .support import REPO, SAMPLE_VIDEO, edge_cifar_process, readable_frames


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    """3,000 frames of moving noise at 320x240 (MJPG, ~30 MB): far more than a 2 MiB disk holds."""
    path = tmp_path_factory.mktemp("long") / "long.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 30.0, (320, 240))
    noise = np.random.default_rng(0).integers(0, 256, (240, 640, 3), np.uint8)
    for index in range(3000):
        writer.write(np.ascontiguousarray(noise[:, index % 320 : index % 320 + 320]))
    writer.release()
    return path


@pytest.fixture
def small_disk(tmp_path) -> Path:
    """A 2 MiB tmpfs: a disk that fills (needs root, as CI and the Pi's setup run)."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    yield folder
    subprocess.run(["umount", "--lazy", str(folder)], check=True)


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_a_full_disk_stops_saving_with_the_video_so_far_finalized(
    model_path, cli_process, long_video, small_disk, suffix
):
    saved = small_disk / f"out{suffix}"
    result = cli_process(
        "camera", "--headless", "--no-json", "--device", long_video, "--save", saved, timeout=300
    )
    line = result.assert_one_error_line(2, str(saved), "the disk is full", "frames before are in")
    kept = int(line.split("the ")[-1].split(" frames")[0])
    assert 10 < kept < 3000, line
    # Finalized: every frame it says it kept plays, and nothing is left under a temporary name.
    assert readable_frames(saved) == kept
    assert [p.name for p in small_disk.iterdir()] == [saved.name]


def limit_file_size() -> None:
    """Writes past 200 KiB fail (EFBIG) while the disk has room: a write error the free-space
    check cannot foresee."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200 * 1024, 200 * 1024))


def test_a_failed_write_is_an_error_and_what_was_written_is_kept(model_path, tmp_path):
    saved = tmp_path / "out.mp4"
    args = ["camera", "--headless", "--no-json", "-d", str(SAMPLE_VIDEO), "--save", str(saved)]
    completed = subprocess.run(
        [sys.executable, "-m", "edge_cifar", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        preexec_fn=limit_file_size,
        timeout=300,
        check=False,
    )
    lines = completed.stderr.strip().splitlines()
    assert completed.returncode == 2, completed.stderr
    assert len(lines) == 1 and lines[0].startswith(f"error: {saved}: the video could not be")
    assert not saved.exists()
    [partial] = tmp_path.iterdir()
    assert partial.name.startswith(".out.") and str(partial) in lines[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("how", ["same path", "relative path", "hard link", "symbolic link"])
def test_saving_onto_the_input_is_refused_and_the_input_kept(
    model_path, cli_process, tmp_path, how
):
    video = tmp_path / "same.avi"
    shutil.copy(SAMPLE_VIDEO, video)
    before = sha256(video)
    target = {
        "same path": video,
        "relative path": Path("..") / tmp_path.name / "same.avi",  # cli_process runs in tmp_path
        "hard link": tmp_path / "linked.avi",
        "symbolic link": tmp_path / "symlinked.avi",
    }[how]
    if how == "hard link":
        os.link(video, target)
    elif how == "symbolic link":
        target.symlink_to(video)
    result = cli_process("camera", "--headless", "--device", video, "--save", target)
    result.assert_one_error_line(2, "is also the input")
    assert sha256(video) == before


def test_the_video_appears_under_its_name_only_when_finished(model_path, tmp_path):
    saved = tmp_path / "out.mp4"
    # --realtime: the 20 s sample plays at its 6 FPS, so the run is caught mid-video.
    process = edge_cifar_process(
        "camera", "-d", SAMPLE_VIDEO, "--headless", "--realtime", "--save", saved
    )
    try:
        for _ in range(3):
            assert process.stdout.readline().startswith('{"frame"')
        # Mid-run: a hidden temporary file beside the target, nothing under the final name.
        assert not saved.exists()
        [partial] = tmp_path.iterdir()
        assert partial.name == f".out.{process.pid}.mp4"
        process.kill()  # the stop nothing can catch
        process.wait(timeout=60)
    finally:
        process.kill()
    assert not saved.exists()
