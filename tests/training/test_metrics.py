"""The NumPy metrics equal scikit-learn's, the oracle the report's numbers are checked against."""

import numpy as np
import pytest
from sklearn.metrics import classification_report as sklearn_report
from sklearn.metrics import confusion_matrix as sklearn_confusion

from train import metrics
from train.labels import CLASS_NAMES


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_report_matches_scikit_learn_including_a_never_predicted_class(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, 3000)
    predictions = np.where(rng.random(3000) < 0.7, labels, rng.integers(0, 10, 3000))
    predictions[predictions == 4] = 5  # class 4 is never predicted: precision 0 by convention
    ours = metrics.classification_report(labels, predictions)
    oracle = sklearn_report(
        labels,
        predictions,
        labels=range(10),
        target_names=CLASS_NAMES,
        output_dict=True,
        zero_division=0,
    )
    assert ours["accuracy"] == pytest.approx(oracle["accuracy"], abs=1e-12)
    for name in CLASS_NAMES:
        for key, oracle_key in (
            ("precision", "precision"),
            ("recall", "recall"),
            ("f1", "f1-score"),
        ):
            assert ours["per_class"][name][key] == pytest.approx(
                oracle[name][oracle_key], abs=1e-12
            )
        assert ours["per_class"][name]["support"] == oracle[name]["support"]
    for ours_key, oracle_key in (("macro_avg", "macro avg"), ("weighted_avg", "weighted avg")):
        for key, oracle_name in (
            ("precision", "precision"),
            ("recall", "recall"),
            ("f1", "f1-score"),
        ):
            assert ours[ours_key][key] == pytest.approx(oracle[oracle_key][oracle_name], abs=1e-12)
    expected_matrix = sklearn_confusion(labels, predictions, labels=range(10))
    np.testing.assert_array_equal(ours["confusion_matrix"], expected_matrix)


def test_most_confused_pairs_are_off_diagonal_and_sorted():
    matrix = np.diag([50] * 10)
    matrix[3, 5], matrix[5, 3], matrix[1, 9] = 40, 30, 12
    pairs = metrics.most_confused_pairs(matrix, count=3)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [
        ("cat", "dog", 40),
        ("dog", "cat", 30),
        ("automobile", "truck", 12),
    ]
