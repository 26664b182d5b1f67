"""Helpers the runtime's tests share (fixtures are in conftest.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
# The shipped model the runtime's tests run (conftest.py names it in $EDGE_CIFAR_MODEL).
TEST_MODEL = "default"
DATA = Path(__file__).resolve().parent / "data"


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    def json_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def assert_one_error_line(self, exit_code: int, *fragments: str) -> str:
        """The command failed with `exit_code` and said why in one `error:` line, no traceback."""
        lines = self.stderr.strip().splitlines()
        assert self.exit_code == exit_code, (self.exit_code, self.stderr)
        assert len(lines) == 1, self.stderr
        assert lines[0].startswith("error: "), lines[0]
        assert "Traceback" not in self.stderr
        for fragment in fragments:
            assert fragment in lines[0], (fragment, lines[0])
        return lines[0]


def write_png(path: Path, image: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), image), path
    return path


SAMPLE_VIDEO = REPO / "samples" / "cifar_test.avi"


def readable_frames(path: Path) -> int:
    """How many frames of a video file OpenCV reads back, one by one."""
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def edge_cifar_process(*args: object, env: dict | None = None, **popen: object):
    """`python -m edge_cifar ARGS...` as a child process with this checkout's code, text pipes."""
    import os
    import subprocess
    import sys

    return subprocess.Popen(
        [sys.executable, "-m", "edge_cifar", *(str(a) for a in args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        **popen,
    )


def wait_for_url(process, timeout: float = 60) -> str:
    """The URL from `serve`'s "serving on URL" line on stderr (it binds before it prints); the
    lines before it are kept in `process.startup_stderr`."""
    import select
    import time

    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stderr], [], [], 0.5)
        if ready:
            line = process.stderr.readline()
            if not line:
                break
            seen.append(line)
            if line.startswith("serving on "):
                process.startup_stderr = "".join(seen)
                return line.split()[-1]
    process.kill()
    raise AssertionError(f"serve did not start: {''.join(seen)}{process.stderr.read()}")


def peak_mib(*args: object) -> tuple[str, int, float]:
    """(stderr, exit code, peak resident MiB) of `python -m edge_cifar ARGS`."""
    import os
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "edge_cifar", *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return stderr, process.returncode, usage.ru_maxrss / 1024  # KiB on Linux


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """A process's resident memory (VmRSS) or its peak so far (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} for process {pid}")


def png_bomb(path: Path, width: int = 20_000, height: int = 20_000) -> Path:
    """A valid RGB PNG of zeros declaring width x height pixels: ~1 MB on disk, 1.2 GB decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    compressor = zlib.compressobj(9)
    row = bytes(1 + 3 * width)  # filter byte 0, then black pixels
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


def hdr_bomb(path: Path, width: int = 10_000, height: int = 10_000) -> Path:
    """A valid Radiance .hdr (run-length encoded, all one colour) declaring width x height:
    6.4 MB on disk at 10,000 x 10,000, 1.2 GB decoded as float32 RGB. Pillow cannot parse it."""
    import struct

    runs = [min(127, width - start) for start in range(0, width, 127)]
    channel = b"".join(bytes([128 + run, 100]) for run in runs)  # a run: count + 128, then value
    row = b"\x02\x02" + struct.pack(">H", width) + channel * 4  # R, G, B, shared exponent
    header = b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y %d +X %d\n" % (height, width)
    path.write_bytes(header + row * height)
    return path


def with_metadata_threshold(model: Path, out: Path, threshold: float) -> Path:
    """A copy of a shipped model whose TFLite metadata recommends `threshold` as the score below
    which a result is uncertain, as tflite-support's writer puts it: a ScoreThresholdingOptions
    process unit on the output tensor. The metadata is rebuilt with the FlatBuffers library
    (name, input normalization, label file and the threshold) and written over the old one in
    place, which is longer (it has a description), so no offset in the model moves."""
    import struct

    import flatbuffers

    from edge_cifar.flatbuffer import root
    from edge_cifar.metadata import METADATA_NAME, read_metadata

    content = bytearray(model.read_bytes())
    old = read_metadata(model, bytes(content))
    assert old is not None and old.normalization is not None and old.label_file is not None
    b = flatbuffers.Builder(1024)

    def table(*fields) -> int:  # (slot, kind, value) with kind "offset", "u8" or "f32"
        b.StartObject(max(slot for slot, _, _ in fields) + 1)
        for slot, kind, value in fields:
            if kind == "offset":
                b.PrependUOffsetTRelativeSlot(slot, value, 0)
            elif kind == "u8":
                b.PrependUint8Slot(slot, value, 0)
            else:
                b.PrependFloat32Slot(slot, value, -1.0)
        return b.EndObject()

    def vector(items, prepend, size=4) -> int:
        b.StartVector(size, len(items), size)
        for item in reversed(items):
            prepend(item)
        return b.EndVector()

    # metadata_schema.fbs: ProcessUnitOptions 1 NormalizationOptions, 3 ScoreThresholdingOptions;
    # AssociatedFileType 2 TENSOR_AXIS_LABELS.
    mean = vector(old.normalization.mean, b.PrependFloat32)
    std = vector(old.normalization.std, b.PrependFloat32)
    normalization = table((0, "offset", mean), (1, "offset", std))
    threshold_options = table((0, "f32", threshold))
    label_name = b.CreateString(old.label_file)
    label_file = table((0, "offset", label_name), (2, "u8", 2))
    input_unit = table((0, "u8", 1), (1, "offset", normalization))
    output_unit = table((0, "u8", 3), (1, "offset", threshold_options))
    input_tensor = table((4, "offset", vector([input_unit], b.PrependUOffsetTRelative)))
    output_tensor = table(
        (4, "offset", vector([output_unit], b.PrependUOffsetTRelative)),
        (6, "offset", vector([label_file], b.PrependUOffsetTRelative)),
    )
    subgraph = table(
        (2, "offset", vector([input_tensor], b.PrependUOffsetTRelative)),
        (3, "offset", vector([output_tensor], b.PrependUOffsetTRelative)),
    )
    name = b.CreateString(f"{old.name} with a threshold")
    b.Finish(
        table((0, "offset", name), (3, "offset", vector([subgraph], b.PrependUOffsetTRelative))),
        file_identifier=b"M001",
    )
    metadata = bytes(b.Output())

    model_table = root(bytes(content))
    entry = next(m for m in model_table.tables(6) if m.string(0) == METADATA_NAME)
    start, length = model_table.tables(4)[entry.u32(1)].vector(0, 1)
    assert len(metadata) <= length, (len(metadata), length)
    content[start : start + length] = metadata + bytes(length - len(metadata))
    struct.pack_into("<I", content, start - 4, len(metadata))
    out.write_bytes(bytes(content))
    return out
