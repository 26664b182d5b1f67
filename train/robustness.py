"""The robustness benchmark: CIFAR-10 test images under camera-style corruptions, each model run
through `edge_cifar` as the camera runs it, side by side in one table.

Its figures: accuracy per corruption and severity, the mean corrupted accuracy (mCA) over every
cell, and the mCA over the corruptions no training augmentation imitates (`HELD_OUT`), which says
how far robustness carries beyond what the recipe saw.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from train.artifacts import write_atomic
from train.corruptions import CORRUPTIONS, SEVERITIES, Corruption, corrupt
from train.data import Split
from train.plots import png_bytes
from train.scoring import Scorer

# Kinds of corruption the camera augmentations of train/inputs.py do not produce: their mCA
# measures robustness that was not trained for.
HELD_OUT = frozenset({"impulse_noise", "speckle_noise", "zoom_blur", "fog", "saturate", "pixelate"})


@dataclass(frozen=True)
class ModelUnderTest:
    name: str
    scores: Scorer


def _accuracy(scorer: Scorer, images: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(scorer(images).argmax(axis=1) == labels))


def mean_corrupted_accuracy(cells: dict[str, dict[str, float]], names: Sequence[str]) -> float:
    return float(np.mean([cells[name][str(s)] for name in names for s in SEVERITIES]))


def benchmark(
    models: Sequence[ModelUnderTest],
    test: Split,
    corruptions: Sequence[Corruption] = CORRUPTIONS,
    seed: int = 0,
) -> dict[str, Any]:
    """Every model on the clean images and on each corruption at each severity: the same
    corrupted images for every model, generated once per cell."""
    cells: dict[str, dict[str, dict[str, float]]] = {m.name: {} for m in models}
    clean = {m.name: _accuracy(m.scores, test.images, test.labels) for m in models}
    started = time.monotonic()
    total = len(corruptions) * len(SEVERITIES)
    for done, (corruption, severity) in enumerate(
        ((c, s) for c in corruptions for s in SEVERITIES), start=1
    ):
        images = corrupt(test.images, corruption, severity, seed)
        for model in models:
            accuracy = _accuracy(model.scores, images, test.labels)
            cells[model.name].setdefault(corruption.name, {})[str(severity)] = accuracy
        elapsed = time.monotonic() - started
        print(
            f"robustness: {done}/{total} {corruption.name} severity {severity} "
            f"({elapsed:.0f} s, about {elapsed / done * (total - done):.0f} s left)",
            file=sys.stderr,
        )
    names = [c.name for c in corruptions]
    held_out = [name for name in names if name in HELD_OUT]
    return {
        "test_images": len(test),
        "seed": seed,
        "corruptions": {
            c.name: {"family": c.family, "held_out": c.name in HELD_OUT} for c in corruptions
        },
        "models": {
            model.name: {
                "clean_accuracy": clean[model.name],
                "mca": mean_corrupted_accuracy(cells[model.name], names),
                "mca_held_out": mean_corrupted_accuracy(cells[model.name], held_out)
                if held_out
                else None,
                "accuracy": cells[model.name],
            }
            for model in models
        },
    }


def family_curves(result: dict[str, Any], model: str) -> dict[str, list[float]]:
    """Accuracy at each severity averaged over each family's corruptions (the report's plot)."""
    families: dict[str, list[str]] = {}
    for name, facts in result["corruptions"].items():
        families.setdefault(facts["family"], []).append(name)
    cells = result["models"][model]["accuracy"]
    return {
        family: [float(np.mean([cells[n][str(s)] for n in names])) for s in SEVERITIES]
        for family, names in families.items()
    }


def markdown_table(result: dict[str, Any]) -> str:
    """Models as columns: clean accuracy, mCA, held-out mCA, then each corruption's mean over its
    five severities."""
    models = list(result["models"])
    lines = [
        "| | " + " | ".join(f"`{m}`" for m in models) + " |",
        "| --- |" + " ---: |" * len(models),
    ]

    def row(label: str, values: Sequence[float | None]) -> None:
        cells = [f"{100 * v:.2f}%" if v is not None else "-" for v in values]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    row("clean", [result["models"][m]["clean_accuracy"] for m in models])
    row("**mCA, all corruptions**", [result["models"][m]["mca"] for m in models])
    row("mCA, held-out corruptions", [result["models"][m]["mca_held_out"] for m in models])
    for name, facts in result["corruptions"].items():
        label = f"{name} ({facts['family']}{', held out' if facts['held_out'] else ''})"
        row(
            label,
            [float(np.mean(list(result["models"][m]["accuracy"][name].values()))) for m in models],
        )
    return "\n".join(lines) + "\n"


def family_curves_png(result: dict[str, Any]) -> bytes:
    """One panel per corruption family: accuracy against severity, a line per model, the clean
    accuracy at severity 0."""
    families = sorted({facts["family"] for facts in result["corruptions"].values()})
    figure = Figure(figsize=(3.2 * len(families), 3.6), layout="constrained")
    figure.suptitle(
        f"Accuracy under corruption ({result['test_images']} CIFAR-10 test images)", fontsize=12
    )
    axes_row = figure.subplots(1, len(families), sharey=True, squeeze=False)[0]
    for model, facts in result["models"].items():
        curves = family_curves(result, model)
        for axes, family in zip(axes_row, families, strict=True):
            axes.plot(
                [0, *SEVERITIES],
                [100 * facts["clean_accuracy"], *(100 * a for a in curves[family])],
                marker="o",
                label=model,
            )
    for axes, family in zip(axes_row, families, strict=True):
        axes.set_title(family)
        axes.set_xlabel("severity (0: clean)")
        axes.grid(alpha=0.3)
    axes_row[0].set_ylabel("accuracy (%)")
    figure.legend(*axes_row[0].get_legend_handles_labels(), loc="outside lower center", ncols=4)
    return png_bytes(figure)


def write_result(result: dict[str, Any], out_dir: Path) -> list[Path]:
    """robustness.json, robustness.md and the per-family plot, into `out_dir`."""
    json_path, md_path, png_path = (
        out_dir / "robustness.json",
        out_dir / "robustness.md",
        out_dir / "robustness.png",
    )
    write_atomic(json_path, json.dumps(result, indent=1).encode())
    intro = (
        f"Accuracy on {result['test_images']} CIFAR-10 test images under "
        f"{len(result['corruptions'])} CIFAR-10-C-style corruptions at severities 1-5 "
        "(`python -m train robustness`; train/corruptions.py has the parameters). Each row below "
        "a corruption's name is its mean over the five severities.\n\n"
    )
    write_atomic(md_path, (intro + markdown_table(result) + "\n![](robustness.png)\n").encode())
    write_atomic(png_path, family_curves_png(result))
    return [json_path, md_path, png_path]
