"""The float phase's precision: mixed bfloat16 where the CPU has bfloat16 instructions."""

import pytest

from train import precision


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("fpu sse2 avx2 fma", precision.FLOAT32),
        ("avx2 avx512f avx512_bf16 avx512_vnni", precision.MIXED_BFLOAT16),
        ("avx512f amx_bf16 amx_tile", precision.MIXED_BFLOAT16),
    ],
)
def test_the_cpu_flags_choose_the_precision(monkeypatch, flags, expected):
    monkeypatch.delenv(precision.PRECISION_ENV, raising=False)
    monkeypatch.setattr(precision, "_cpuinfo_field", lambda name: flags if name == "flags" else "X")
    assert precision.float_training_precision() == expected
    described = precision.cpu_description()
    assert described.startswith("X (") and ("bf16" in described) == (expected != "float32")


def test_the_environment_overrides_the_cpu_and_a_typo_is_refused(monkeypatch):
    monkeypatch.setattr(precision, "_cpuinfo_field", lambda name: "avx512_bf16")
    monkeypatch.setenv(precision.PRECISION_ENV, "float32")
    assert precision.float_training_precision() == precision.FLOAT32
    monkeypatch.setenv(precision.PRECISION_ENV, "bfloat16")
    with pytest.raises(precision.PrecisionError, match="must be float32 or mixed_bfloat16"):
        precision.float_training_precision()
