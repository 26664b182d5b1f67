"""The evaluation report, built from a small synthetic run: no training, no model is run.

The synthetic run's predictions cover the first few hundred images of the quick test subset of the
real CIFAR-10 test set, so the report has real images to draw.
"""

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import classification_report as sklearn_report
from typer.testing import CliRunner

from edge_cifar.model_files import CHECKOUT_MODELS_DIR
from train import data, metrics, plots, report
from train.artifacts import RunFiles
from train.card import card_json, read_card
from train.cli import app
from train.labels import CLASS_NAMES

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_IMAGES = 300  # a balanced subset: 30 images of each class
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PROMISED_FIGURES = (
    "training_curves.png",
    "confusion_float.png",
    "confusion_int8.png",
    "misclassified_int8.png",
    "disagreements.png",
    "predictions_int8.png",
    "probabilities.png",
    "data_overview.png",
)
KINDS = ("float_keras", "int8_tflite")


def softmax(logits: np.ndarray) -> np.ndarray:
    exponent = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (exponent / exponent.sum(axis=1, keepdims=True)).astype(np.float32)


def fake_history(phase: str, epochs: int) -> list[dict]:
    return [
        {
            "phase": phase,
            "epoch": epoch,
            "seconds": 12.5,
            "lr": 0.01,
            **{name: 0.5 + 0.05 * epoch for name in ("accuracy", "precision", "recall")},
            "loss": 1.5 - 0.1 * epoch,
            **{f"val_{name}": 0.45 + 0.04 * epoch for name in ("accuracy", "precision", "recall")},
            "val_loss": 1.6 - 0.08 * epoch,
        }
        for epoch in range(epochs)
    ]


def fake_evaluation(labels: np.ndarray, scores: dict[str, np.ndarray]) -> dict:
    """evaluation.json as train.evaluate writes it, computed with train.metrics."""
    predictions = {kind: s.argmax(axis=1) for kind, s in scores.items()}
    reports = {kind: metrics.classification_report(labels, p) for kind, p in predictions.items()}
    accuracy = {kind: r["accuracy"] for kind, r in reports.items()}
    return {
        "test_images": len(labels),
        "accuracy": accuracy,
        "int8_drop_pt": round(100 * (accuracy["float_keras"] - accuracy["int8_tflite"]), 4),
        "int8_agreement_with_float_keras": float(
            np.mean(predictions["int8_tflite"] == predictions["float_keras"])
        ),
        "int8_agreement_with_float_tflite": float(
            np.mean(predictions["int8_tflite"] == predictions["float_tflite"])
        ),
        "reports": reports,
    }


def write_fake_run(root: Path, labels: np.ndarray, seed: int = 0) -> dict:
    """A run folder with the four artefacts; INT8 scores are the float ones plus noise."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(labels), 10))
    logits[np.arange(len(labels)), labels] += 1.5
    float_scores = softmax(logits)
    scores = {
        "float_keras": float_scores,
        "float_tflite": float_scores.copy(),
        "int8_tflite": softmax(logits + rng.normal(scale=0.6, size=logits.shape)),
    }
    root.mkdir(parents=True)
    np.savez_compressed(
        root / "predictions.npz",
        labels=labels.astype(np.uint8),
        **{f"{kind}_scores": s for kind, s in scores.items()},
    )
    (root / "float_history.json").write_text(json.dumps(fake_history("float", 4)))
    (root / "qat_history.json").write_text(json.dumps(fake_history("qat", 2)))
    evaluation = fake_evaluation(labels, scores)
    (root / "evaluation.json").write_text(json.dumps(evaluation))
    return evaluation


def write_fake_card(path: Path, evaluation: dict) -> dict:
    """The shipped `seed` card with this evaluation's figures and made-up sizes."""
    seed = read_card(CHECKOUT_MODELS_DIR / "seed.card.json")
    assert seed.int8_model is not None
    card = dataclasses.replace(
        seed,
        test_images=evaluation["test_images"],
        int8_accuracy=evaluation["accuracy"]["int8_tflite"],
        float_accuracy=evaluation["accuracy"]["float_keras"],
        int8_model=dataclasses.replace(seed.int8_model, bytes=123_456),
        float_model=dataclasses.replace(seed.float_model, bytes=456_789),
        parameters=98_765,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(card_json(card))
    return json.loads(card_json(card))


@pytest.fixture(scope="module")
def test_labels(cifar10_dir) -> np.ndarray:
    return data.subset(data.load(cifar10_dir).test, TEST_IMAGES).labels.astype(np.int64)


@pytest.fixture(scope="module")
def built_report(tmp_path_factory, cifar10_dir, test_labels):
    """One report, made the way a user makes it: `python -m train report --quick`."""
    runs = tmp_path_factory.mktemp("runs")
    run_dir = runs / "seed-quick"
    evaluation = write_fake_run(run_dir, test_labels)
    card = write_fake_card(run_dir / "firmware_models" / "seed.card.json", evaluation)
    result = CliRunner().invoke(
        app,
        [
            "report",
            "--model",
            "seed",
            "--quick",
            "--runs-dir",
            str(runs),
            "--data-dir",
            str(cifar10_dir),
        ],
    )
    assert result.exit_code == 0, result.output
    return run_dir / "report", evaluation, card


def test_every_promised_file_is_written_and_each_figure_is_a_small_png(built_report):
    out_dir, _, _ = built_report
    for name in PROMISED_FIGURES:
        content = (out_dir / name).read_bytes()
        assert content.startswith(PNG_SIGNATURE), name
        assert len(content) > 5_000, f"{name} looks empty"
    assert (out_dir / "per_class.json").is_file()
    total = sum(path.stat().st_size for path in out_dir.iterdir())
    assert total < 2_000_000


def test_index_links_every_file_of_the_report(built_report):
    out_dir, _, _ = built_report
    index = (out_dir / "index.md").read_text()
    linked = set(re.findall(r"\]\(([^)]+)\)", index))
    assert linked == {*PROMISED_FIGURES, "per_class.json"}
    assert {path.name for path in out_dir.iterdir()} == linked | {"index.md"}


@pytest.mark.parametrize("kind", KINDS)
def test_per_class_json_equals_scikit_learn_on_the_saved_predictions(built_report, kind):
    out_dir, _, _ = built_report
    saved = np.load(out_dir.parent / "predictions.npz")
    labels, predictions = saved["labels"], saved[f"{kind}_scores"].argmax(axis=1)
    oracle = sklearn_report(
        labels,
        predictions,
        labels=list(range(10)),
        target_names=list(CLASS_NAMES),
        output_dict=True,
        zero_division=0,
    )
    ours = json.loads((out_dir / "per_class.json").read_text())[kind]
    measures = (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score"))
    rows = [(ours["per_class"][name], oracle[name]) for name in CLASS_NAMES]
    rows += [
        (ours["macro_avg"], oracle["macro avg"]),
        (ours["weighted_avg"], oracle["weighted avg"]),
    ]
    for row, oracle_row in rows:
        for key, oracle_key in measures:
            assert row[key] == pytest.approx(oracle_row[oracle_key], abs=1e-12)
        assert row["support"] == oracle_row["support"]
    assert ours["accuracy"] == pytest.approx(oracle["accuracy"], abs=1e-12)


def test_index_headline_numbers_equal_evaluation_json_and_the_card(built_report):
    out_dir, evaluation, card = built_report
    index = (out_dir / "index.md").read_text()
    shown = re.search(r"test accuracy \| ([\d.]+)% \| ([\d.]+)% \| \*\*([\d.]+)%\*\*", index)
    assert shown is not None
    for value, kind in zip(
        shown.groups(), ("float_keras", "float_tflite", "int8_tflite"), strict=True
    ):
        assert float(value) == pytest.approx(100 * evaluation["accuracy"][kind], abs=0.005)
    drop = re.search(r"INT8 drop: (-?[\d.]+) pt", index)
    agreement = re.search(r"agreement: ([\d.]+)%", index)
    count = re.search(r"test images: ([\d,]+)", index)
    assert drop and agreement and count
    assert float(drop[1]) == pytest.approx(evaluation["int8_drop_pt"], abs=0.005)
    assert float(agreement[1]) == pytest.approx(
        100 * evaluation["int8_agreement_with_float_keras"], abs=0.005
    )
    assert int(count[1].replace(",", "")) == evaluation["test_images"] == TEST_IMAGES
    assert f"INT8 {card['int8_model']['bytes']:,} bytes" in index
    assert f"{card['parameters']:,} parameters" in index


def test_disagreement_selection_picks_exactly_the_images_whose_argmax_differ():
    rng = np.random.default_rng(3)
    float_scores = rng.random((200, 10))
    int8_scores = float_scores + rng.normal(scale=1e-4, size=float_scores.shape)
    redrawn = rng.choice(200, 40, replace=False)
    int8_scores[redrawn] = rng.random((40, 10))
    differ = np.flatnonzero(float_scores.argmax(axis=1) != int8_scores.argmax(axis=1))
    assert 0 < len(differ) <= 40  # small score changes alone do not make a disagreement

    everything = plots.disagreement_indices(float_scores, int8_scores, count=1000)
    np.testing.assert_array_equal(everything, differ)
    first_five = plots.disagreement_indices(float_scores, int8_scores, count=5)
    np.testing.assert_array_equal(first_five, differ[:5])


def test_misclassified_selection_picks_only_mistakes_most_confident_first():
    labels = np.array([0, 1, 2, 3])
    scores = np.full((4, 10), 0.01)
    scores[0, 0] = 0.9  # right
    scores[1, 5] = 0.6  # wrong, less sure
    scores[2, 7] = 0.8  # wrong, surer
    scores[3, 3] = 0.7  # right
    np.testing.assert_array_equal(plots.misclassified_indices(labels, scores, 10), [2, 1])


def test_a_missing_artefact_is_one_error_line_and_exit_code_2(tmp_path):
    run_dir = tmp_path / "seed"
    run_dir.mkdir()
    (run_dir / "evaluation.json").write_text("{}")
    result = subprocess.run(
        [sys.executable, "-m", "train", "report", "--model", "seed", "--runs-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        env={**os.environ, "CIFAR10_DIR": str(tmp_path / "no-data-needed")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for name in ("float_history.json", "qat_history.json", "predictions.npz"):
        assert name in lines[0]
    assert not (tmp_path / "reports").exists()


def test_predictions_that_disagree_with_evaluation_json_are_refused(tmp_path, test_labels):
    run_dir = tmp_path / "seed"
    evaluation = write_fake_run(run_dir, test_labels)
    stale = write_fake_run(tmp_path / "other", test_labels, seed=1)
    evaluation["reports"]["int8_tflite"] = stale["reports"]["int8_tflite"]
    (run_dir / "evaluation.json").write_text(json.dumps(evaluation))
    with pytest.raises(report.ReportError, match="disagree on int8_tflite"):
        report.load_run(RunFiles(run_dir, "seed"), tmp_path / "no.card.json")


def test_a_truncated_evaluation_json_is_refused_in_one_line(tmp_path, test_labels):
    run_dir = tmp_path / "seed"
    write_fake_run(run_dir, test_labels)
    evaluation = run_dir / "evaluation.json"
    evaluation.write_bytes(evaluation.read_bytes()[:40])
    with pytest.raises(report.ReportError, match=r"evaluation\.json: not readable JSON") as error:
        report.load_run(RunFiles(run_dir, "seed"), tmp_path / "no.card.json")
    assert "\n" not in str(error.value)


def test_predictions_for_other_test_images_are_refused(tmp_path, test_labels):
    run_dir = tmp_path / "seed"
    write_fake_run(run_dir, test_labels)
    run = report.load_run(RunFiles(run_dir, "seed"), tmp_path / "no.card.json")
    test = data.Split(np.zeros((1000, 32, 32, 3), np.uint8), np.repeat(np.arange(10), 100))
    with pytest.raises(report.ReportError, match="do not match the test set"):
        report.evaluated_test_split(test, run.labels)


def test_a_card_from_another_evaluation_is_left_out(tmp_path, test_labels):
    run_dir = tmp_path / "seed"
    evaluation = write_fake_run(run_dir, test_labels)
    card_path = tmp_path / "seed.card.json"
    write_fake_card(
        card_path, {**evaluation, "accuracy": {**evaluation["accuracy"], "int8_tflite": 0.5}}
    )
    assert report.load_run(RunFiles(run_dir, "seed"), card_path).card is None
    write_fake_card(card_path, evaluation)
    assert report.load_run(RunFiles(run_dir, "seed"), card_path).card is not None


@pytest.mark.parametrize("final", [True, False], ids=["final run", "validation held out"])
def test_the_report_reads_a_final_run_from_the_run_folder(
    tmp_path, cifar10_dir, test_labels, monkeypatch, final
):
    from train.run import QUICK_TRAIN, QUICK_VALIDATION

    runs = tmp_path / "runs"
    run_dir = runs / "seed-quick"
    evaluation = write_fake_run(run_dir, test_labels)
    write_fake_card(run_dir / "firmware_models" / "seed.card.json", evaluation)
    # `seed`'s config never sets the flag: only the recorded recipe can say the run was final.
    (run_dir / "recipe.json").write_text(json.dumps({"all_train_images": final}))
    drawn: dict[str, int] = {}

    def drawing(run, test, train, validation, out_dir):
        drawn.update(train=len(train), validation=len(validation))
        return out_dir / "index.md"

    monkeypatch.setattr(report, "write_report", drawing)
    result = CliRunner().invoke(
        app,
        [
            *("report", "--model", "seed", "--quick"),
            *("--runs-dir", str(runs), "--data-dir", str(cifar10_dir)),
        ],
    )
    assert result.exit_code == 0, result.output
    joined = (QUICK_TRAIN + QUICK_VALIDATION, 0)
    assert (drawn["train"], drawn["validation"]) == (
        joined if final else (QUICK_TRAIN, QUICK_VALIDATION)
    )
