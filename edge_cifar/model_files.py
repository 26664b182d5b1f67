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

# The model config the runtime ships with; its INT8 file is `<DEFAULT_MODEL>_int8.tflite`.
DEFAULT_MODEL = "default"
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
    """What `--model` names: a file, else a shipped model's name; none: the default model."""
    if model is None:
        return default_model_path()
    is_name = model.suffix != ".tflite" and model.name == str(model) and not model.exists()
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


def card_accuracy(model_path: Path, quantized: bool) -> float | None:
    """The test accuracy the model card records for this variant; None without a readable card."""
    card = card_path(model_path)
    if card is None:
        return None
    content = _read_card(card)
    value = (
        None
        if content is None
        else content.get("int8_accuracy" if quantized else "float_tflite_accuracy")
    )
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


def check_against_card(model_path: Path, content: bytes) -> None:
    """Refuse a model file whose SHA-256 differs from the one its card beside it records: a
    corrupt copy still loads and runs, and gives wrong scores without any error. Once per load
    (about a millisecond per MiB), nothing per frame. A file its card does not list is not
    checked."""
    card = card_path(model_path)
    if card is None:
        return
    recorded = _read_card(card)
    if recorded is None:
        raise ModelError(f"{model_path}: its model card {card} is unreadable; cannot check it")
    entry = card_file_entry(recorded, model_path.name)
    if entry is None:
        return
    if hashlib.sha256(content).hexdigest() != entry.get("sha256"):
        raise ModelError(
            f"{model_path}: SHA-256 differs from the one in {card.name}: the file is corrupt "
            "or was changed after shipping"
        )
