"""Where the shipped models are, and what their model cards say.

The wheel carries `firmware_models/` inside the package (hatch force-include), so an installed
`edge-cifar` finds its model from any directory; a source checkout finds it at the top level.
"""

from __future__ import annotations

import json
from pathlib import Path

from edge_cifar.interpreter import ModelError

# The model config the runtime ships with; its INT8 file is `<DEFAULT_MODEL>_int8.tflite`.
DEFAULT_MODEL = "default"
# The notebook's CNN: `bench` states other models' size and latency as ratios to its INT8 file.
REFERENCE_MODEL = "seed"
PACKAGE_MODELS_DIR = Path(__file__).resolve().parent / "firmware_models"
CHECKOUT_MODELS_DIR = Path(__file__).resolve().parent.parent / "firmware_models"
# A model file's name is `<model>_<variant>.tflite`; its card is `<model>.card.json`.
VARIANT_SUFFIXES = ("_int8", "_float")


def int8_filename(model: str = DEFAULT_MODEL) -> str:
    return f"{model}_int8.tflite"


def default_model_path() -> Path:
    """The shipped INT8 model: inside the installed package first, else in the checkout."""
    name = int8_filename()
    for folder in (PACKAGE_MODELS_DIR, CHECKOUT_MODELS_DIR):
        if (folder / name).is_file():
            return folder / name
    raise ModelError(
        f"no shipped model {name} (looked in {PACKAGE_MODELS_DIR} and {CHECKOUT_MODELS_DIR}); "
        "pass --model PATH or build one with `make quantize`"
    )


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
    try:
        content = json.loads(card.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    value = (
        content.get("int8_accuracy" if quantized else "float_tflite_accuracy")
        if isinstance(content, dict)
        else None
    )
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
