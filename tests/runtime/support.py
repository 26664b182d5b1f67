"""Helpers the runtime's tests share (fixtures are in conftest.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
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
