"""Compare two runs' JSON lines: the emulated Pi must predict the x86 run's label on every input.

    python pi/compare.py classify x86.jsonl pi.jsonl   # records keyed by "path"
    python pi/compare.py camera x86.jsonl pi.jsonl     # records keyed by "frame"
    python pi/compare.py serve serve.log IMAGE x86.jsonl
        # the emulated `serve` (its stderr in serve.log names its URL): GET /healthz, then
        # POST /classify IMAGE, whose label must be the x86 run's for IMAGE

Prints one summary line; exits 1 with the differing inputs listed, x86 beside emulated.
Scores are reported, not required equal: another CPU's kernels may round one step apart.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

KEYS = {"classify": "path", "camera": "frame"}
SHOWN = 20  # differences listed; the rest are counted


def records(path: Path, key: str) -> dict[str, dict[str, Any]]:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    return {str(record[key]): record for record in map(json.loads, lines)}


def outcome(record: dict[str, Any]) -> str:
    if "label" in record:
        return f"{record['label']} {record['score']:.4f}"
    return f"error: {record.get('error')}"


def compare(kind: str, x86_path: Path, pi_path: Path) -> list[str]:
    """The differences, one line each; empty when every input got the same label."""
    key = KEYS[kind]
    x86, pi = records(x86_path, key), records(pi_path, key)
    if not x86:
        return [f"{x86_path}: no predictions to compare"]
    problems = [f"only in the x86 run: {key} {k}" for k in x86 if k not in pi]
    problems += [f"only in the emulated run: {key} {k}" for k in pi if k not in x86]
    shared = [k for k in x86 if k in pi]
    problems += [
        f"{key} {k}: x86 {outcome(x86[k])}  emulated {outcome(pi[k])}"
        for k in shared
        if x86[k].get("label") != pi[k].get("label")
    ]
    score_gaps = [
        abs(x86[k]["score"] - pi[k]["score"])
        for k in shared
        if "score" in x86[k] and "score" in pi[k]
    ]
    same = len(shared) - sum(x86[k].get("label") != pi[k].get("label") for k in shared)
    print(
        f"{kind}: {same} of {len(x86)} labels equal to x86; "
        f"largest score difference {max(score_gaps, default=0.0):.4f}"
    )
    return problems


SERVE_START_TIMEOUT_S = 300  # LiteRT and uvicorn start slowly under emulation


def serve_url(log: Path) -> str:
    deadline = time.monotonic() + SERVE_START_TIMEOUT_S
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines() if log.exists() else []:
            if line.startswith("serving on "):
                return line.split()[-1]
            if line.startswith("error:"):
                raise SystemExit(f"serve did not start: {line}")
        time.sleep(0.5)
    raise SystemExit(f"serve did not start within {SERVE_START_TIMEOUT_S} s: {log.read_text()}")


def compare_serve(log: Path, image: Path, x86_path: Path) -> list[str]:
    """The emulated server's /healthz and /classify; the label must be x86's `classify` one."""
    url = serve_url(log)
    with urllib.request.urlopen(url + "healthz", timeout=60) as response:
        health = json.load(response)
    upload = urllib.request.Request(url + "classify", data=image.read_bytes(), method="POST")
    with urllib.request.urlopen(upload, timeout=120) as response:
        answer = json.load(response)
    expected = records(x86_path, "path")[str(image)]
    print(f"serve: /healthz {health}; POST /classify {image.name}: {outcome(answer)}")
    if answer.get("label") != expected.get("label"):
        return [f"{image}: x86 {outcome(expected)}  emulated serve {outcome(answer)}"]
    return []


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "serve":
        problems = compare_serve(Path(argv[1]), Path(argv[2]), Path(argv[3]))
    elif len(argv) != 3 or argv[0] not in KEYS:
        print(__doc__, file=sys.stderr)
        return 2
    else:
        problems = compare(argv[0], Path(argv[1]), Path(argv[2]))
    for problem in problems[:SHOWN]:
        print(f"  {problem}", file=sys.stderr)
    if len(problems) > SHOWN:
        print(f"  ... and {len(problems) - SHOWN} more", file=sys.stderr)
    if problems:
        print(f"error: the emulated Pi's {argv[0]} predictions differ from x86's", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
