"""`classify` on files, folders and globs: a broken file is reported alone, the rest classified."""

import cv2
import numpy as np
import pytest

from .support import write_png


@pytest.fixture
def cifar_folder(cifar_test, tmp_path):
    """Five CIFAR test images as 64x64 PNG, their 16-bit twins, and one corrupt PNG."""
    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(5):
        bgr = cv2.resize(
            cv2.cvtColor(cifar_test.images[index], cv2.COLOR_RGB2BGR),
            (64, 64),
            interpolation=cv2.INTER_NEAREST,
        )
        write_png(folder / f"{index}.png", bgr)
        write_png(folder / f"{index}_16bit.png", bgr.astype(np.uint16) * 257)
    good = (folder / "0.png").read_bytes()
    (folder / "3_broken.png").write_bytes(good[: len(good) // 3])  # truncated mid-stream
    (folder / "README.txt").write_text("not an image: a folder scan skips it")
    return folder


def test_a_folder_with_one_corrupt_file_reports_it_and_classifies_the_rest(
    cli, model_path, cifar_folder
):
    result = cli("classify", "--json", cifar_folder)
    assert result.exit_code == 1
    records = result.json_lines()
    assert len(records) == 11
    failed = [r for r in records if "error" in r]
    assert [r["path"] for r in failed] == [str(cifar_folder / "3_broken.png")]
    assert result.stderr.strip().splitlines() == [f"error: {failed[0]['error']}"]
    assert all(r["label"] and 0 <= r["score"] <= 1 for r in records if "error" not in r)


def test_a_16bit_image_gets_the_same_label_and_score_as_its_8bit_original(
    cli, model_path, cifar_folder
):
    records = {r["path"]: r for r in cli("classify", "--json", cifar_folder).json_lines()}
    for index in range(5):
        eight, sixteen = (
            records[str(cifar_folder / f"{index}.png")],
            records[str(cifar_folder / f"{index}_16bit.png")],
        )
        assert (eight["label"], eight["score"]) == (sixteen["label"], sixteen["score"])


def test_gray_and_rgba_images_are_classified(cli, model_path, cifar_test, tmp_path):
    bgr = cv2.cvtColor(cifar_test.images[0], cv2.COLOR_RGB2BGR)
    write_png(tmp_path / "gray.png", cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    write_png(tmp_path / "rgba.png", cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA))
    write_png(tmp_path / "bgr.png", bgr)
    result = cli("classify", "--json", tmp_path / "*.png")
    assert result.exit_code == 0, result.stderr
    records = {r["path"].rsplit("/", 1)[-1]: r for r in result.json_lines()}
    assert set(records) == {"gray.png", "rgba.png", "bgr.png"}
    assert records["rgba.png"]["top_k"] == records["bgr.png"]["top_k"]


def test_the_table_has_one_row_per_image_with_label_and_score(cli, model_path, cifar_folder):
    result = cli("classify", "--top-k", 2, cifar_folder / "0.png", cifar_folder / "1.png")
    assert result.exit_code == 0
    rows = result.stdout.strip().splitlines()
    assert len(rows) == 2 and rows[0].startswith(str(cifar_folder / "0.png"))
    _, label, score, other_label, other_score = rows[0].split()
    assert label != other_label and 0 <= float(other_score) <= float(score) <= 1


def test_several_arguments_keep_their_order_and_a_missing_one_fails_alone(
    cli, model_path, cifar_folder
):
    result = cli(
        "classify",
        "--json",
        cifar_folder / "1.png",
        cifar_folder / "gone.png",
        cifar_folder / "0.png",
    )
    assert result.exit_code == 1
    paths = [r["path"].rsplit("/", 1)[-1] for r in result.json_lines()]
    assert paths == ["1.png", "gone.png", "0.png"]


def test_shipped_sample_images_classify_without_errors(cli, model_path):
    from .support import REPO

    samples = REPO / "samples" / "images"
    if not samples.is_dir():
        pytest.skip("samples/images not generated (python -m train.samples)")
    result = cli("classify", "--json", samples)
    assert result.exit_code == 0, result.stderr
    assert len(result.json_lines()) >= 10
