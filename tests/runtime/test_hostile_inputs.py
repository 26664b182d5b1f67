"""Inputs a hostile or unlucky user hands the runtime: a decompression bomb in a format Pillow
cannot parse, a header OpenCV refuses, a FIFO, /dev/zero, a folder where every file is bad. Each
is that file's own `error:` line; a batch goes on past it; nothing is decoded that should not be."""

from __future__ import annotations

import os

import numpy as np
import pytest

from edge_cifar.sources import ImageTooLargeError, SourceError, decode_image, read_image

from .support import hdr_bomb, peak_mib, write_png


def test_a_radiance_hdr_bomb_is_refused_from_its_header(tmp_path):
    bomb = hdr_bomb(tmp_path / "bomb.hdr")  # 6.4 MB declaring 10,000 x 10,000: 1.2 GB decoded
    with pytest.raises(ImageTooLargeError, match="40 MP limit, or a side over 1,048,576; not"):
        decode_image(bomb.read_bytes(), "bomb.hdr")


def test_classify_refuses_the_hdr_bomb_in_one_line_and_stays_small(model_path, tmp_path):
    bomb = hdr_bomb(tmp_path / "bomb.hdr")
    image = write_png(tmp_path / "small.png", np.full((32, 32, 3), 90, np.uint8))
    stderr, code, bomb_peak = peak_mib("classify", bomb)
    _, _, plain_peak = peak_mib("classify", image)
    [line] = stderr.strip().splitlines()
    assert code == 2 and line.startswith(f"error: {bomb}: declares more pixels than"), stderr
    # Decoded it would take 1.2 GB (and seconds); refused from its header it costs what a small
    # image costs.
    assert bomb_peak - plain_peak < 200, (bomb_peak, plain_peak)


def wide_hdr(path):
    """The issue's 53-byte .hdr declaring a width of 2,000,000: OpenCV asserts on its header."""
    path.write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 1 +X 2000000\n")
    return path


def test_a_header_opencv_refuses_is_that_file_s_error_and_the_batch_goes_on(
    cli, model_path, tmp_path
):
    folder = tmp_path / "batch"
    folder.mkdir()
    for index in range(3):
        write_png(folder / f"{index}.png", np.full((32, 32, 3), 60 * index, np.uint8))
    wide = wide_hdr(folder / "1_wide.hdr")
    result = cli("classify", "--json", folder)
    assert result.exit_code == 1, result.stderr
    records = result.json_lines()
    assert [r["path"].rsplit("/", 1)[-1] for r in records] == [
        "0.png", "1.png", "1_wide.hdr", "2.png",
    ]  # fmt: skip
    [failed] = [r for r in records if "error" in r]
    assert failed["path"] == str(wide) and "side over 1,048,576" in failed["error"]
    assert result.stderr.strip().splitlines() == [f"error: {failed['error']}"]


def test_a_fifo_and_dev_zero_are_refused_without_reading(cli, model_path, tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)  # nothing ever writes to it: reading it would wait for ever
    image = write_png(tmp_path / "fine.png", np.full((32, 32, 3), 90, np.uint8))
    result = cli("classify", "--json", fifo, "/dev/zero", image)
    assert result.exit_code == 1, result.stderr
    errors = result.stderr.strip().splitlines()
    assert errors == [
        f"error: {fifo}: not a regular file (a pipe or a device)",
        "error: /dev/zero: not a regular file (a pipe or a device)",
    ]
    assert "label" in result.json_lines()[-1]


def test_an_image_file_over_the_size_limit_is_refused_unread(tmp_path):
    big = tmp_path / "big.png"
    with big.open("wb") as file:
        file.truncate(2**20 + 1)  # sparse: no data is written, nor read
    with pytest.raises(SourceError, match=r"big.png: 1 MiB, larger than the 1 MiB an image file"):
        read_image(big, max_bytes=2**20)


def test_classify_exits_2_when_every_file_failed(cli, model_path, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    result = cli("classify", broken, tmp_path / "missing.png")
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 2
