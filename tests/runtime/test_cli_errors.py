"""Every bad input is one `error:` line on stderr, the right exit code, and no traceback.

Each case runs the CLI as its own process, so whatever the C++ interpreter, OpenCV or FFmpeg print
on file descriptor 2 is seen too, and a crash would show as an exit code instead of ending the run.
"""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from edge_cifar.model_files import int8_filename
from edge_cifar.sources import ImageTooLargeError, decode_image

from .support import DATA, REPO, TEST_MODEL, peak_mib, png_bomb, write_png

BAD_INPUT = 2


@pytest.fixture
def image(tmp_path):
    return write_png(tmp_path / "frog.png", np.full((32, 32, 3), 90, dtype=np.uint8))


def bad_models(tmp_path, model_path):
    content = model_path.read_bytes()
    (tmp_path / "truncated.tflite").write_bytes(content[: len(content) // 2])
    (tmp_path / "corrupt.tflite").write_bytes(content[:8] + os.urandom(4000))
    (tmp_path / "picture.tflite").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    (tmp_path / "empty.tflite").write_bytes(b"")
    (tmp_path / "folder.tflite").mkdir()


MODEL_CASES = {
    "missing": ("missing.tflite", "no such model file"),
    "folder": ("folder.tflite", "is a directory"),
    "empty": ("empty.tflite", "not a TFLite model"),
    "not-tflite": ("picture.tflite", "not a TFLite model"),
    "truncated": ("truncated.tflite", "truncated or corrupt"),
    "corrupt": ("corrupt.tflite", "not a loadable TFLite model"),
}


@pytest.mark.parametrize("case", MODEL_CASES, ids=list(MODEL_CASES))
@pytest.mark.parametrize("command", ["classify", "info"])
def test_bad_model_is_one_error_line(cli_process, tmp_path, model_path, image, case, command):
    bad_models(tmp_path, model_path)
    model, message = MODEL_CASES[case]
    if command == "classify":
        result = cli_process("classify", "--model", model, image)
    else:
        result = cli_process("info", model)
    result.assert_one_error_line(BAD_INPUT, message)
    assert result.stdout == ""


def test_a_model_that_is_no_image_classifier_is_one_line_for_classify_and_camera(
    cli_process, image
):
    model = DATA / "two_outputs.tflite"
    cli_process("classify", "--model", model, image).assert_one_error_line(
        BAD_INPUT, "two_outputs.tflite: not an image classifier: expected one input and one output"
    )
    cli_process("camera", "--model", model, "--device", image).assert_one_error_line(
        BAD_INPUT, "not an image classifier"
    )


def test_bad_model_in_camera_and_bench_is_one_error_line(cli_process, tmp_path, model_path):
    bad_models(tmp_path, model_path)
    cli_process("camera", "--model", "truncated.tflite", "--device", "0").assert_one_error_line(
        BAD_INPUT, "truncated or corrupt"
    )
    cli_process("bench", model_path, "picture.tflite").assert_one_error_line(
        BAD_INPUT, "picture.tflite: not a TFLite model"
    )


def test_missing_camera_is_one_error_line(cli_process, model_path):
    cli_process("camera", "--device", "97").assert_one_error_line(BAD_INPUT, "cannot open camera")


def test_missing_video_is_one_error_line(cli_process, model_path):
    cli_process("camera", "--device", "gone.mp4").assert_one_error_line(BAD_INPUT, "gone.mp4")


def test_bad_video_is_one_error_line(cli_process, model_path, tmp_path):
    (tmp_path / "noise.avi").write_bytes(np.random.default_rng(0).bytes(20000))
    cli_process("camera", "--device", "noise.avi").assert_one_error_line(BAD_INPUT, "noise.avi")


def test_unreachable_stream_is_one_error_line(cli_process, model_path):
    cli_process("camera", "--device", "rtsp://127.0.0.1:9/none").assert_one_error_line(
        BAD_INPUT, "cannot open stream"
    )


@pytest.mark.skipif(importlib.util.find_spec("picamera2") is not None, reason="picamera2 present")
def test_picamera2_missing_is_one_error_line(cli_process, model_path):
    cli_process("camera", "--device", "picamera2").assert_one_error_line(
        BAD_INPUT, "sudo apt install python3-picamera2"
    )


def test_unsupported_save_format_is_one_error_line(cli_process, model_path, image):
    cli_process("camera", "--device", image, "--save", "out.gif").assert_one_error_line(
        BAD_INPUT, "cannot save video as '.gif'"
    )


def test_unreadable_image_in_the_camera_loop_is_one_error_line(cli_process, model_path, tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(50))
    result = cli_process("camera", "--device", "broken.png", "--no-json")
    result.assert_one_error_line(BAD_INPUT, "broken.png: not an image OpenCV can decode")


def test_unreadable_image_to_classify_is_one_error_line_and_exit_2(cli_process, model_path):
    """Exit 1 means some files were classified: with none, it is a bad input like any other."""
    result = cli_process("classify", "nothing-here.png")
    result.assert_one_error_line(BAD_INPUT, "nothing-here.png: no such file")


def test_a_runtime_that_is_not_installed_is_one_error_line(cli_process, model_path, image):
    if importlib.util.find_spec("tensorflow") is not None:
        pytest.skip("TensorFlow is installed here")
    result = cli_process("classify", "--runtime", "tensorflow", image)
    result.assert_one_error_line(BAD_INPUT, "no TFLite interpreter could be loaded")


def test_no_shipped_model_is_one_error_line(cli_process, tmp_path, image):
    # A copy of the package with no firmware_models/ beside or inside it.
    import shutil

    from .support import REPO

    shutil.copytree(REPO / "edge_cifar", tmp_path / "pkg" / "edge_cifar")
    result = cli_process("classify", image, pythonpath=tmp_path / "pkg")
    expected = f"no shipped model {int8_filename(TEST_MODEL)}"
    result.assert_one_error_line(BAD_INPUT, expected, "--model PATH")


def test_a_decompression_bomb_to_classify_is_refused_undecoded(model_path, bomb_png, image):
    stderr, code, bomb_peak = peak_mib("classify", bomb_png)
    _, _, plain_peak = peak_mib("classify", image)
    [line] = stderr.strip().splitlines()
    # Nothing classified: a bad input.
    assert code == BAD_INPUT and line.startswith(f"error: {bomb_png}: declares ")
    assert "MP limit; not decoded" in line
    # Decoded it would take 1.2 GB; refused from its header it costs what a small image costs.
    assert bomb_peak - plain_peak < 200, (bomb_peak, plain_peak)


def test_an_image_declaring_more_than_the_pixel_limit_names_its_size(tmp_path):
    bomb = png_bomb(tmp_path / "big.png", 6000, 5000)
    with pytest.raises(ImageTooLargeError, match=r"declares 6000x5000 pixels \(30 MP\), more than"):
        decode_image(bomb.read_bytes(), "big.png", max_pixels=20_000_000)
    decoded = decode_image(bomb.read_bytes(), "big.png")
    assert decoded.shape == (5000, 6000, 3)  # the limit, not the file, refused it


def test_no_opencv_is_one_error_line_naming_both_extras():
    # -S: no site-packages, so no cv2 (nor anything else installed): the check comes first.
    launcher = (
        f"import sys; sys.path.insert(0, {str(REPO)!r}); "
        "from edge_cifar.__main__ import main; main()"
    )
    completed = subprocess.run(
        [sys.executable, "-S", "-c", launcher, "info", "model.tflite"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stderr == (
        "error: edge-cifar needs OpenCV: pip install opencv-python-headless (no window) "
        "or opencv-python (camera window), never both\n"
    )
