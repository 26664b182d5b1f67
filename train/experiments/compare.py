"""Recipe comparisons on validation data: the same config trained under a few recipe variants on a
class-balanced subset of the training split, each scored on the validation images, clean and under
the robustness benchmark's corruptions. How a recipe choice is measured before the long run that
ships it; the test set is never touched.

Each variant trains in its own run folder (resumable like any run); the results of every variant
of a model accumulate in one JSON file and one Markdown table.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import tf_keras as keras

from edge_cifar.preprocess import PIXEL_SCALE
from train.artifacts import RunFiles, claim_run, write_atomic
from train.data import Split
from train.fit import Phase, train_phase
from train.models import build
from train.precision import float_training_precision
from train.recipe import ModelConfig, Recipe
from train.robustness import ModelUnderTest, benchmark


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """'name:field=value,field=value' -> (name, {field: value}), each value converted to the
    Recipe field's type; 'base' alone is the config's own recipe."""
    name, _, assignments = text.partition(":")
    # A variant is scored on the validation images, so it can never train on them.
    fields = {f.name: f for f in dataclasses.fields(Recipe) if f.name != "all_train_images"}
    changes: dict[str, Any] = {}
    for assignment in filter(None, assignments.split(",")):
        key, _, value = assignment.partition("=")
        if key not in fields:
            raise ValueError(f"{key!r} is not a recipe field; choose from {', '.join(fields)}")
        default = getattr(Recipe(), key)
        if value in ("", "none", "None"):
            changes[key] = None
        elif isinstance(default, bool):
            changes[key] = value.lower() in ("1", "true", "yes")
        elif isinstance(default, int):
            changes[key] = int(value)
        elif isinstance(default, float):
            changes[key] = float(value)
        else:
            changes[key] = value
    if not name:
        raise ValueError(f"variant {text!r} has no name (name:field=value,...)")
    return name, changes


def keras_scorer(model: keras.Model) -> Any:
    def scores(images: np.ndarray) -> np.ndarray:
        pixels = images.astype(np.float32) * PIXEL_SCALE
        return np.asarray(model.predict(pixels, batch_size=500, verbose=0))

    return scores


def run_variant(
    config: ModelConfig,
    name: str,
    changes: dict[str, Any],
    *,
    train: Split,
    validation: Split,
    runs_dir: Path,
) -> dict[str, Any]:
    """Train the variant's float model (or reuse its weights) and score it on `validation`."""
    recipe = dataclasses.replace(config.recipe, **changes, all_train_images=False)
    files = RunFiles(runs_dir / f"{config.name}-{name}", config.name)
    claim_run(files, recipe.as_dict(), Recipe().as_dict())
    started = time.monotonic()
    precision = float_training_precision()
    phase = Phase(
        "float", recipe.epochs, recipe.peak_lr, recipe.warmup_epochs, files.float_weights, precision
    )
    train_phase(
        phase, lambda: build(config), recipe=recipe, train=train, validation=validation, files=files
    )
    history = json.loads(files.history("float").read_text())
    model = build(config)
    model.load_weights(str(files.float_weights))
    scored = benchmark([ModelUnderTest(name, keras_scorer(model))], validation)
    facts = scored["models"][name]
    train_seconds = sum(entry["seconds"] for entry in history)
    print(
        f"compare: {name} trained in {train_seconds:.0f} s, validation clean "
        f"{100 * facts['clean_accuracy']:.2f}%, mCA {100 * facts['mca']:.2f}% "
        f"({time.monotonic() - started:.0f} s in all)",
        file=sys.stderr,
    )
    return {
        "changes": changes,
        "recipe": recipe.as_dict(),
        "train_images": len(train),
        "validation_images": len(validation),
        "epochs": len(history),
        "train_seconds": round(train_seconds, 1),
        "precision": precision,
        "clean_accuracy": facts["clean_accuracy"],
        "mca": facts["mca"],
        "mca_held_out": facts["mca_held_out"],
        "corrupted_accuracy": facts["accuracy"],
    }


def markdown(model: str, results: dict[str, dict[str, Any]]) -> str:
    lines = [
        f"# Recipe comparisons for `{model}` (validation images; `python -m train compare`)",
        "",
        "| variant | changes | train images | epochs | training s | precision | clean | mCA | "
        "held-out mCA |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for name, r in results.items():
        changes = ", ".join(f"{k}={v}" for k, v in r["changes"].items()) or "(the config's)"
        lines.append(
            f"| {name} | {changes} | {r['train_images']} | {r['epochs']} | "
            f"{r['train_seconds']:.0f} | {r['precision']} | {100 * r['clean_accuracy']:.2f}% | "
            f"{100 * r['mca']:.2f}% | {100 * r['mca_held_out']:.2f}% |"
        )
    return "\n".join(lines) + "\n"


def record(out_dir: Path, model: str, name: str, result: dict[str, Any]) -> Path:
    """Add one variant's result to <out_dir>/<model>.json and rewrite <model>.md."""
    json_path = out_dir / f"{model}.json"
    results = json.loads(json_path.read_text()) if json_path.is_file() else {}
    results[name] = result
    write_atomic(json_path, json.dumps(results, indent=1).encode())
    md_path = out_dir / f"{model}.md"
    write_atomic(md_path, markdown(model, results).encode())
    return md_path
