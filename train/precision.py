"""Which floating-point precision float training runs in, chosen by the CPU it runs on.

Mixed bfloat16 (bfloat16 compute, float32 weights) trains 2.0-2.3x faster where the CPU has
bfloat16 dot-product instructions (AMX on Sapphire Rapids Xeons, AVX512_BF16 on Zen 4/5 EPYCs) and
is emulated, so slower, elsewhere (train/NOTES.md). QAT and conversion always run in float32: the
INT8 model's ranges come from float32 fake quantization.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import tf_keras as keras

from train.data import DataError

FLOAT32, MIXED_BFLOAT16 = "float32", "mixed_bfloat16"
BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
# Set to float32 or mixed_bfloat16 to override the choice (for a comparison, or a CPU it misjudges).
PRECISION_ENV = "EDGE_CIFAR_PRECISION"


class PrecisionError(DataError):
    """An override that names no precision: bad input, reported in one line."""


def _cpuinfo_field(name: str) -> str:
    """The first value of `name` in /proc/cpuinfo (Linux); empty elsewhere."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return ""


def cpu_model() -> str:
    """The CPU's marketing name, e.g. 'AMD EPYC 9B45', as the card records it."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_bf16_flags() -> list[str]:
    return sorted(BF16_CPU_FLAGS & set(_cpuinfo_field("flags").split()))


def cpu_has_bf16() -> bool:
    return bool(cpu_bf16_flags())


def cpu_description() -> str:
    """What a card records of the CPU that trained: name, architecture, cores, bfloat16 support."""
    bf16 = ", ".join(cpu_bf16_flags()) or "no bfloat16 instructions"
    return f"{cpu_model()} ({platform.machine()}, {os.cpu_count()} cores, {bf16})"


def float_training_precision() -> str:
    """The precision the float phase trains in: the override, else by the CPU's instructions."""
    chosen = os.environ.get(PRECISION_ENV)
    if chosen:
        if chosen not in (FLOAT32, MIXED_BFLOAT16):
            raise PrecisionError(
                f"{PRECISION_ENV} must be {FLOAT32} or {MIXED_BFLOAT16}, not {chosen}"
            )
        return chosen
    return MIXED_BFLOAT16 if cpu_has_bf16() else FLOAT32


def use_precision(precision: str) -> None:
    """Build every model from here on in `precision` (a Keras mixed-precision policy name)."""
    keras.mixed_precision.set_global_policy(precision)
