"""How a running CLI process ends when its user stops it: Ctrl-C, SIGTERM (`systemctl stop`),
SIGHUP (an ssh session dropped), or a reader that closes stdout (`edge-cifar ... | head`). Every
way: exit 0, a summary, no traceback, and a video being saved is finalized and readable."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from .support import (
    REPO,
    SAMPLE_VIDEO,
    edge_cifar_process,
    readable_frames,
    wait_for_url,
    write_png,
)

FRAMES = 20000  # far more than the process gets through before it is stopped


def ignore_sigint() -> None:
    """What bash does for a job started with `&` when job control is off (a script, CI)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def start(*args, sigint_ignored=False):
    return subprocess.Popen(
        [sys.executable, "-m", "edge_cifar", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        preexec_fn=ignore_sigint if sigint_ignored else None,
    )


@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["sigint-default", "sigint-ignored"])
def test_ctrl_c_stops_the_camera_with_a_summary(model_path, tmp_path, sigint_ignored):
    image = write_png(tmp_path / "frame.png", np.full((32, 32, 3), 128, np.uint8))
    process = start(
        "camera",
        "--headless",
        *[a for _ in range(FRAMES) for a in ("-d", image)],
        sigint_ignored=sigint_ignored,
    )
    try:
        first_line = process.stdout.readline()  # the loop is running
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert first_line.startswith('{"frame": 0')
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    summary = stderr.strip().splitlines()[-1]
    assert "stopped by Ctrl-C" in summary and "FPS" in summary
    counted = int(summary.split(": ", 1)[1].split(" frames")[0])
    printed = 1 + len(stdout.splitlines())
    # The signal may land between counting a frame and printing its line, so the summary may count
    # a frame or two more than the lines that came out; it never counts fewer.
    assert printed <= counted < FRAMES


@pytest.mark.parametrize("command", ["camera", "classify"])
def test_a_reader_closing_stdout_ends_the_command_quietly(model_path, tmp_path, command):
    image = write_png(tmp_path / "frame.png", np.full((32, 32, 3), 128, np.uint8))
    if command == "camera":
        process = start("camera", "--headless", *[a for _ in range(FRAMES) for a in ("-d", image)])
    else:
        process = start("classify", *[image] * FRAMES)
    try:
        assert process.stdout.readline()  # it is running
        process.stdout.close()  # what `| head -1` does next
        stderr = process.stderr.read()
        process.wait(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and "error" not in stderr
    if command == "camera":
        assert "stopped by output closed" in stderr


def default_sighup() -> None:
    """What an ssh session or a terminal gives its commands, even when the tests themselves run
    under `nohup` (which the child would inherit, and rightly obey)."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
@pytest.mark.parametrize("command", ["camera", "serve"])
def test_sigterm_or_sighup_ends_the_loop_and_finalizes_the_saved_video(
    model_path, tmp_path, command, signum
):
    saved = tmp_path / "out.mp4"
    # --realtime: the 20 s sample plays at its 6 FPS, so SIGTERM lands mid-video.
    args = [command, "-d", SAMPLE_VIDEO, "--headless", "--realtime", "--json", "--save", saved]
    port = ["--port", 0] if command == "serve" else []
    process = edge_cifar_process(*args, *port, preexec_fn=default_sighup)
    try:
        if command == "serve":
            wait_for_url(process)
        for _ in range(6):
            assert process.stdout.readline().startswith('{"frame"')
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    summary = stderr.strip().splitlines()[-1]
    assert f"stopped by {signal.Signals(signum).name}" in summary, summary
    counted = int(summary.split(": ", 1)[1].split(" frames")[0])
    assert 6 <= counted < 120
    # Every frame the loop counted was written, and the container was finalized to read them.
    assert readable_frames(saved) == counted


@pytest.mark.parametrize("command", ["camera", "serve"])
def test_a_sigterm_before_the_loop_starts_still_ends_it_cleanly(
    model_path, cli, monkeypatch, command
):
    """The handlers are installed first thing: a SIGTERM while the camera opens (or between
    `serve` printing its URL and the loop's first frame) stops the run, never kills it."""
    import edge_cifar.cli

    opened = edge_cifar.cli.open_source

    def open_during_a_sigterm(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return opened(*args, **kwargs)

    monkeypatch.setattr(edge_cifar.cli, "open_source", open_during_a_sigterm)
    # Without the command's own handler, this one would take the signal and the run go on.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        extra = ["--port", 0] if command == "serve" else []
        result = cli(command, "-d", SAMPLE_VIDEO, "--headless", "--no-json", *extra)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert result.exit_code == 0, result.stderr
    summary = result.stderr.strip().splitlines()[-1]
    assert summary.split(": ", 1)[1].startswith("0 frames in "), summary
    assert "stopped by SIGTERM" in summary, summary


def ignore_sighup() -> None:
    """What `nohup` does before it runs the command."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def test_under_nohup_a_sighup_is_ignored_as_asked(model_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "edge_cifar", "camera", "-d", str(SAMPLE_VIDEO), "--realtime"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        preexec_fn=ignore_sighup,
    )
    try:
        assert process.stdout.readline().startswith('{"frame": 0')
        process.send_signal(signal.SIGHUP)
        # It goes on: frames keep coming (the video plays at 6 FPS) until SIGTERM stops it.
        for _ in range(3):
            assert process.stdout.readline().startswith('{"frame"')
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0 and "stopped by SIGTERM" in stderr, stderr
