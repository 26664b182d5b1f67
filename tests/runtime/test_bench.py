"""`bench` and `info`: latency statistics, the stage breakdown, model facts, and comparisons."""

import json
import shutil

import pytest

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


def test_bench_text_shows_a_side_by_side_table(cli, carded_models):
    result = cli("bench", "--runs", 3, "--warmup", 0, *carded_models)
    assert result.exit_code == 0, result.stderr
    table = result.stdout.strip().splitlines()[-3:]
    assert table[0].split()[:2] == ["model", "size"]
    assert "(x1.00)" in table[1] and carded_models[1].name in table[2]


def test_a_corrupt_model_card_is_ignored(cli, carded_models):
    int8_path, _ = carded_models
    int8_path.with_name("seed.card.json").write_text("{not json")
    assert bench_json(cli, int8_path)["models"][0]["accuracy"] is None


def test_info_lists_tensors_quantization_ops_and_size(cli, model_path):
    result = cli("info", "--json", model_path)
    assert result.exit_code == 0, result.stderr
    facts = json.loads(result.stdout)
    assert facts["input"]["shape"] == [1, 32, 32, 3] and facts["output"]["shape"] == [1, 10]
    assert facts["input"]["scale"] > 0 and facts["size_bytes"] == model_path.stat().st_size
    assert len(facts["tensors"]) > 10 and sum(facts["op_counts"].values()) > 5
    text = cli("info", model_path).stdout
    assert "zero point" in text and "CONV_2D" in text
