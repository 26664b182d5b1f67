"""Where the shipped models are, and what their model cards say.

The wheel carries `firmware_models/` inside the package (hatch force-include), so an installed
`edge-cifar` finds its model from any directory; a source checkout finds it at the top level.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from edge_cifar.errors import ModelError

# The model the runtime runs without --model: the most accurate one a Pi 4 runs at camera rate
# (README, "Which model"); its INT8 file is `<DEFAULT_MODEL>_int8.tflite`.
DEFAULT_MODEL = "pi"
# The notebook's CNN: `bench` states other models' size and latency as ratios to its INT8 file.
REFERENCE_MODEL = "seed"
PACKAGE_MODELS_DIR = Path(__file__).resolve().parent / "firmware_models"
CHECKOUT_MODELS_DIR = Path(__file__).resolve().parent.parent / "firmware_models"
# A model file's name is `<model>_<variant>.tflite`; its card is `<model>.card.json`.
VARIANT_SUFFIXES = ("_int8", "_uint8", "_float")


def int8_filename(model: str = DEFAULT_MODEL) -> str:
    return f"{model}_int8.tflite"


def default_model_path() -> Path:
    """The shipped INT8 model: inside the installed package first, else in the checkout."""
    return shipped_model_path(DEFAULT_MODEL)


def shipped_model_path(model: str) -> Path:
    """A shipped model's INT8 file, by the model's name (`default`, `pi`, `tiny`)."""
    name = int8_filename(model)
    for folder in (PACKAGE_MODELS_DIR, CHECKOUT_MODELS_DIR):
        if (folder / name).is_file():
            return folder / name
    raise ModelError(
        f"no shipped model {name} (looked in {PACKAGE_MODELS_DIR} and {CHECKOUT_MODELS_DIR}); "
        "pass --model PATH or build one with `make quantize`"
    )


def model_path(model: Path | None) -> Path:
    """What `--model` names: a file, else a shipped model's name; none: the default model. A
    folder never shadows a name (the checkout's `pi/` scripts and the `pi` model)."""
    if model is None:
        return default_model_path()
    is_name = model.suffix != ".tflite" and model.name == str(model) and not model.is_file()
    return shipped_model_path(str(model)) if is_name else model


def card_path(model_path: Path) -> Path | None:
    """The `<model>.card.json` beside a model file, if there is one."""
    stem = model_path.stem
    candidates = [stem, *(stem.removesuffix(s) for s in VARIANT_SUFFIXES if stem.endswith(s))]
    for name in reversed(candidates):
        card = model_path.with_name(f"{name}.card.json")
        if card.is_file():
            return card
    return None


def read_card(model_path: Path) -> dict[str, Any]:
    """The model card beside a model file; empty without a readable one."""
    card = card_path(model_path)
    content = None if card is None else _read_card(card)
    return content or {}


def card_accuracy(model_path: Path, quantized: bool) -> float | None:
    """The test accuracy the model card records for this variant; None without a readable card."""
    value = read_card(model_path).get("int8_accuracy" if quantized else "float_tflite_accuracy")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _read_card(card: Path) -> dict[str, Any] | None:
    try:
        content = json.loads(card.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return content if isinstance(content, dict) else None


def card_file_entry(card: dict[str, Any], file_name: str) -> dict[str, Any] | None:
    """The card's record of one model file (`int8_model`, `float_model`, ...), by file name."""
    return next(
        (v for v in card.values() if isinstance(v, dict) and v.get("file") == file_name), None
    )


def check_against_card(model_path: Path, content: bytes, claimed_model: str | None) -> None:
    """Refuse a model file whose SHA-256 differs from the one its card beside it records: a
    corrupt copy still loads and runs, and gives wrong scores without any error. Once per load
    (about a millisecond per MiB), nothing per frame.

    The card is found by the file's name and by the model its metadata says it is
    (`claimed_model`), so a changed copy under another name is checked too: a file claiming a
    card's model must be one of the files that card records. A file no card beside it lists or
    claims (a user's own model) is not checked."""
    by_name = card_path(model_path)
    by_content = model_path.with_name(f"{claimed_model}.card.json") if claimed_model else None
    digest = hashlib.sha256(content).hexdigest()
    for card in dict.fromkeys(c for c in (by_name, by_content) if c and c.is_file()):
        recorded = _read_card(card)
        if recorded is None:
            raise ModelError(f"{model_path}: its model card {card} is unreadable; cannot check it")
        entry = card_file_entry(recorded, model_path.name)
        if entry is not None and digest != entry.get("sha256"):
            raise ModelError(
                f"{model_path}: SHA-256 differs from the one in {card.name}: the file is corrupt "
                "or was changed after shipping"
            )
        shipped = {
            v.get("sha256") for v in recorded.values() if isinstance(v, dict) and "file" in v
        }
        if entry is None and recorded.get("model") == claimed_model and digest not in shipped:
            raise ModelError(
                f"{model_path}: its metadata says it is model {claimed_model!r}, but its SHA-256 "
                f"is none of the files {card.name} records: a changed copy under another name"
            )
