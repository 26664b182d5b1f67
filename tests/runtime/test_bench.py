"""`bench` and `info`: latency statistics, the stage breakdown, model facts, and comparisons."""

import itertools
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from edge_cifar.bench import Latency, bench_models, on_frontier, pick_baseline, turns
from edge_cifar.interpreter import Model
from edge_cifar.model_files import REFERENCE_MODEL

from .support import TEST_MODEL

PERCENTILES = ("min", "p50", "p90", "p99", "max")


@pytest.fixture
def carded_models(tmp_path, model_path, float_model_path):
    """Copies of the INT8 and float models with a model card beside them."""
    for source in (model_path, float_model_path):
        shutil.copy(source, tmp_path / source.name)
    card = {"int8_accuracy": 0.80, "float_tflite_accuracy": 0.82}
    (tmp_path / f"{model_path.stem.removesuffix('_int8')}.card.json").write_text(json.dumps(card))
    return tmp_path / model_path.name, tmp_path / float_model_path.name


def bench_json(cli, *args):
    result = cli("bench", "--runs", 5, "--warmup", 1, "--threads", 1, "--json", *args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_bench_json_has_latency_stages_and_model_facts(cli, model_path, tmp_path):
    lone_model = shutil.copy(model_path, tmp_path / model_path.name)  # no model card beside it
    report = bench_json(cli, lone_model)
    assert report["frame_shape"] == [480, 640, 3]
    (model,) = report["models"]
    assert model["quantized"] is True and model["input"]["dtype"] == "int8"
    assert model["size_bytes"] == model_path.stat().st_size
    assert model["op_counts"].get("CONV_2D", 0) >= 1 and "DELEGATE" not in model["op_counts"]
    for figures in (model["invoke_ms"], *model["stages_ms"].values(), model["frame_ms"]):
        values = [figures[p] for p in PERCENTILES]
        assert values == sorted(values) and figures["runs"] == 5
        assert figures["per_second"] == pytest.approx(1000 / figures["mean"])
    assert set(model["stages_ms"]) == {"preprocess", "invoke", "postprocess"}
    assert (
        model["accuracy"] is None
    )  # no card beside the shipped model in a bare checkout? see below
    assert model["ratios"]["size"] == 1.0 and model["ratios"]["invoke_p50"] == 1.0


def test_bench_takes_a_shipped_model_by_name_as_every_command_does(cli, model_path):
    (model,) = bench_json(cli, TEST_MODEL)["models"]
    assert model["path"] == str(model_path)
    result = cli("bench", "--runs", 1, "no-such-model")
    assert result.exit_code == 2 and "no shipped model no-such-model_int8.tflite" in result.stderr


def test_bench_compares_models_with_ratios_to_the_first(cli, carded_models):
    int8_path, float_path = carded_models
    report = bench_json(cli, int8_path, float_path)
    first, second = report["models"]
    assert report["baseline"] == str(int8_path)
    assert first["accuracy"] == 0.80 and second["accuracy"] == 0.82  # the card, by variant
    assert second["quantized"] is False and second["input"]["dtype"] == "float32"
    ratios = second["ratios"]
    assert ratios["size"] == pytest.approx(second["size_bytes"] / first["size_bytes"])
    assert ratios["invoke_p50"] == pytest.approx(
        second["invoke_ms"]["p50"] / first["invoke_ms"]["p50"]
    )
    assert ratios["accuracy"] == pytest.approx(0.82 / 0.80)
    assert ratios["size"] > 2  # float32 weights take about four times the bytes of int8 ones


def test_bench_text_ends_with_the_frontier_table(cli, carded_models):
    int8_path, float_path = carded_models
    result = cli("bench", "--runs", 3, "--warmup", 0, int8_path, float_path)
    assert result.exit_code == 0, result.stderr
    header, *rows, legend = result.stdout.strip().splitlines()[-4:]
    assert header.split() == [
        "model",
        "accuracy",
        "size",
        "KiB",
        *["mult-adds", "M"],
        *["invoke", "p50", "ms"],
        *["frame", "p50", "ms"],
        "frontier",
    ]
    by_name = {row.split()[0]: row for row in rows}
    assert set(by_name) == {int8_path.name, float_path.name}
    assert by_name[int8_path.name].split()[1:3] == ["0.8000", "(x1.000)"]
    assert by_name[float_path.name].split()[1] == "0.8200"
    # float and INT8 files of one model cost the same multiply-adds (column 6, after the size)
    assert by_name[int8_path.name].split()[5] == by_name[float_path.name].split()[5]
    assert float(by_name[int8_path.name].split()[5]) > 1.0
    assert legend.startswith(f"ratios (x) are to {int8_path.name}")


def test_models_take_turns_until_each_has_its_runs():
    assert turns(25, 2, turn=10) == [(0, 10), (1, 10), (0, 10), (1, 10), (0, 5), (1, 5)]
    assert turns(3, 1, turn=10) == [(0, 3)]
    assert sum(timed for index, timed in turns(200, 3) if index == 2) == 200


def test_bench_interleaves_the_models_so_drift_falls_on_all_alike(monkeypatch, carded_models):
    invoked: list[Path] = []
    real_invoke = Model.invoke

    def recording_invoke(self):
        invoked.append(self.path)
        real_invoke(self)

    monkeypatch.setattr(Model, "invoke", recording_invoke)
    int8_path, float_path = carded_models
    benches = bench_models([int8_path, float_path], runs=20, warmup=0, threads=1)
    assert [b.invoke.runs for b in benches] == [20, 20]
    assert [b.frame.runs for b in benches] == [20, 20]
    # one frame each to set the input, then turns of 10 invokes, then turns of 10 frames
    order = [path for path, _ in itertools.groupby(invoked)]
    assert order == [int8_path, float_path] * 5
    assert len(invoked) == 2 + 2 * 20 + 2 * 20


@pytest.fixture(scope="module")
def one_bench(model_path):
    (bench,) = bench_models([model_path], runs=1, warmup=0, threads=1)
    return bench


def variant(bench, name, accuracy, p50, size):
    return replace(
        bench,
        path=Path(name),
        accuracy=accuracy,
        invoke=Latency.of([p50]),
        size_bytes=size,
    )


def test_the_frontier_holds_the_models_no_other_beats_on_all_three(one_bench):
    accurate = variant(one_bench, "accurate", 0.90, 1.0, 100)
    small_fast = variant(one_bench, "small_fast", 0.85, 0.5, 50)
    beaten = variant(one_bench, "beaten", 0.80, 1.5, 200)  # worse than `accurate` on all three
    twin = variant(one_bench, "twin", 0.90, 1.0, 100)  # ties do not push a model off
    uncarded = variant(one_bench, "uncarded", None, 0.1, 10)
    slightly_bigger = variant(one_bench, "slightly_bigger", 0.90, 1.0, 101)
    benches = [accurate, small_fast, beaten, twin, uncarded, slightly_bigger]
    marked = {b.path.name for b in benches if on_frontier(b, benches)}
    assert marked == {"accurate", "small_fast", "twin"}


def test_ratios_are_to_the_reference_int8_model_wherever_it_is_listed(one_bench):
    other = variant(one_bench, "default_int8.tflite", 0.9, 1.0, 100)
    reference = variant(one_bench, f"{REFERENCE_MODEL}_int8.tflite", 0.87, 1.0, 100)
    assert pick_baseline([other, reference]) is reference
    assert pick_baseline([other, replace(reference, path=Path("x.tflite"))]) is other


def test_a_corrupt_model_card_is_refused_since_the_file_cannot_be_checked(cli, carded_models):
    int8_path, _ = carded_models
    int8_path.with_name(f"{int8_path.stem.removesuffix('_int8')}.card.json").write_text("{not")
    result = cli("bench", "--runs", 1, int8_path)
    result.assert_one_error_line(2, "default.card.json is unreadable; cannot check it")


def test_info_lists_tensors_quantization_ops_and_size(cli, model_path):
    assert "tensors" not in json.loads(cli("info", "--json", model_path).stdout)
    result = cli("info", "--json", "--tensors", model_path)
    assert result.exit_code == 0, result.stderr
    facts = json.loads(result.stdout)
    assert facts["input"]["shape"] == [1, 32, 32, 3] and facts["output"]["shape"] == [1, 10]
    assert facts["input"]["scale"] > 0 and facts["size_bytes"] == model_path.stat().st_size
    assert len(facts["tensors"]) > 10 and sum(facts["op_counts"].values()) > 5
    text = cli("info", model_path).stdout
    assert "zero point" in text and "CONV_2D" in text and "(--tensors lists them)" in text
