"""Latency statistics for one or more models: invoke alone, and a camera frame's stages.

Any .tflite model runs: its inputs get deterministic random data of their shapes and types. For an
image classifier a camera frame, a synthetic 640x480 BGR image, also goes through the classifier, so
the stage figures include what the device really pays around the interpreter: crop, resize,
colour order, quantization, dequantization, top-k.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edge_cifar.classifier import STAGES, Classifier
from edge_cifar.info import describe_quantization, tensor_json
from edge_cifar.interpreter import Model, TensorInfo
from edge_cifar.model_files import REFERENCE_MODEL, card_accuracy, int8_filename

FRAME_SHAPE = (480, 640, 3)  # a VGA camera frame, height x width x BGR
DEFAULT_RUNS = 200
DEFAULT_WARMUP = 20  # the first invokes pay for allocation and cache misses; keep them out
TURN = 10  # timed runs a model takes before the next model's turn


@dataclass(frozen=True)
class Latency:
    """Milliseconds over the timed runs, and the throughput their mean implies."""

    runs: int
    min: float
    p50: float
    p90: float
    p99: float
    max: float
    mean: float

    @property
    def per_second(self) -> float:
        return 1000.0 / self.mean if self.mean > 0 else 0.0

    @classmethod
    def of(cls, samples_ms: list[float]) -> Latency:
        values = np.asarray(samples_ms, dtype=np.float64)
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        return cls(
            runs=len(values),
            min=float(values.min()),
            p50=float(p50),
            p90=float(p90),
            p99=float(p99),
            max=float(values.max()),
            mean=float(values.mean()),
        )

    def as_json(self) -> dict[str, float]:
        return {**asdict(self), "per_second": self.per_second}


@dataclass(frozen=True)
class ModelBench:
    path: Path
    backend: str
    threads: int | None
    size_bytes: int
    quantized: bool
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    op_counts: dict[str, int]
    multiply_adds: int  # per inference, from the conv and dense ops' shapes (edge_cifar/macs.py)
    invoke: Latency  # the interpreter alone, input already set
    # One 640x480 frame through Classifier (preprocess, invoke, ...) and their sum; None for a
    # model that is no image classifier.
    stages: dict[str, Latency] | None
    frame: Latency | None
    accuracy: float | None  # from the model card beside the file, when there is one

    @property
    def input(self) -> TensorInfo:
        return self.inputs[0]

    @property
    def output(self) -> TensorInfo:
        return self.outputs[0]

    def as_json(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "backend": self.backend,
            "threads": self.threads,
            "size_bytes": self.size_bytes,
            "quantized": self.quantized,
            "input": tensor_json(self.input),
            "output": tensor_json(self.output),
            "inputs": [tensor_json(t) for t in self.inputs],
            "outputs": [tensor_json(t) for t in self.outputs],
            "op_counts": self.op_counts,
            "multiply_adds": self.multiply_adds,
            "invoke_ms": self.invoke.as_json(),
            "stages_ms": None
            if self.stages is None
            else {stage: latency.as_json() for stage, latency in self.stages.items()},
            "frame_ms": None if self.frame is None else self.frame.as_json(),
            "accuracy": self.accuracy,
        }


def turns(runs: int, models: int, turn: int = TURN) -> list[tuple[int, int]]:
    """(model index, timed runs) in the order they are taken: each model in turn times up to
    `turn` runs until every model has `runs`."""
    return [
        (index, min(turn, runs - done)) for done in range(0, runs, turn) for index in range(models)
    ]


class _Timing:
    """One model under test and the milliseconds gathered for it so far."""

    def __init__(self, model: Model, frame: npt.NDArray[np.uint8], seed: int) -> None:
        self.model = model
        self.classifier = Classifier(model) if model.classifier_problem() is None else None
        self.frame = frame
        if self.classifier is not None:
            self.classifier.classify(frame)  # sets a realistic input for the invoke-only timing
        else:
            for position, tensor in enumerate(model.random_inputs(seed)):
                model.set_input(tensor, position)
        self.invoke_ms: list[float] = []
        self.stage_ms: dict[str, list[float]] = {stage: [] for stage in STAGES}

    def time_invokes(self, untimed: int, timed: int) -> None:
        for i in range(untimed + timed):
            start = time.perf_counter()
            self.model.invoke()
            if i >= untimed:
                self.invoke_ms.append((time.perf_counter() - start) * 1e3)

    def time_frames(self, untimed: int, timed: int) -> None:
        if self.classifier is None:
            return
        for i in range(untimed + timed):
            timings = self.classifier.classify(self.frame).timings_ms
            if i >= untimed:
                for stage in STAGES:
                    self.stage_ms[stage].append(timings[stage])

    def result(self, threads: int | None) -> ModelBench:
        frame_ms = [sum(parts) for parts in zip(*self.stage_ms.values(), strict=True)]
        model = self.model
        classifier = self.classifier is not None
        return ModelBench(
            path=model.path,
            backend=model.backend.name,
            threads=threads,
            size_bytes=model.size_bytes,
            quantized=model.quantized,
            inputs=model.inputs,
            outputs=model.outputs,
            op_counts=model.op_counts(),
            multiply_adds=model.multiply_adds(),
            invoke=Latency.of(self.invoke_ms),
            stages={stage: Latency.of(values) for stage, values in self.stage_ms.items()}
            if classifier
            else None,
            frame=Latency.of(frame_ms) if classifier else None,
            accuracy=card_accuracy(model.path, model.quantized),
        )


def bench_models(
    model_paths: list[Path],
    *,
    runs: int = DEFAULT_RUNS,
    warmup: int = DEFAULT_WARMUP,
    threads: int | None = None,
    runtime: str | None = None,
    seed: int = 0,
) -> list[ModelBench]:
    """Time `runs` invokes, then `runs` full frames, of every model, each after `warmup` untimed
    ones. The models take turns of `TURN` timed runs, so a change in the CPU's pace during the
    benchmark (another process, a clock or thermal step) falls on all of them alike and their
    ratios hold within one run. A turn starts with one untimed run when there is a warmup, since
    the model before it has pushed this one's weights out of the cache."""
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be >= 1 and warmup >= 0 (got {runs}, {warmup})")
    frame = np.random.default_rng(seed).integers(0, 256, FRAME_SHAPE, dtype=np.uint8)
    timings = [
        _Timing(Model(path, threads=threads, runtime=runtime), frame, seed) for path in model_paths
    ]
    rewarm = min(warmup, 1)
    for phase in (_Timing.time_invokes, _Timing.time_frames):
        for timing in timings:
            phase(timing, warmup, 0)
        for index, timed in turns(runs, len(timings)):
            phase(timings[index], rewarm, timed)
    return [timing.result(threads) for timing in timings]


def _ratio(value: float | None, baseline: float | None) -> float | None:
    if value is None or baseline is None or baseline == 0:
        return None
    return value / baseline


def ratios(bench: ModelBench, baseline: ModelBench) -> dict[str, float | None]:
    """This model's figures divided by the baseline's."""
    return {
        "size": _ratio(bench.size_bytes, baseline.size_bytes),
        "invoke_p50": _ratio(bench.invoke.p50, baseline.invoke.p50),
        "frame_p50": _ratio(
            bench.frame.p50 if bench.frame else None, baseline.frame.p50 if baseline.frame else None
        ),
        "accuracy": _ratio(bench.accuracy, baseline.accuracy),
    }


def pick_baseline(benches: list[ModelBench]) -> ModelBench:
    """The reference model's INT8 file when it is among them, else the first model given."""
    reference = int8_filename(REFERENCE_MODEL)
    return next((b for b in benches if b.path.name == reference), benches[0])


def on_frontier(bench: ModelBench, benches: list[ModelBench]) -> bool:
    """True when no other model is at least as accurate, as fast and as small, and better in one
    of the three: the accuracy-per-millisecond-and-kilobyte frontier. Without an accuracy (no
    model card) a model is not on it."""
    if bench.accuracy is None:
        return False
    mine = (-bench.accuracy, bench.invoke.p50, bench.size_bytes)
    for other in benches:
        if other is bench or other.accuracy is None:
            continue
        theirs = (-other.accuracy, other.invoke.p50, other.size_bytes)
        if theirs != mine and all(t <= m for t, m in zip(theirs, mine, strict=True)):
            return False
    return True


def report_json(benches: list[ModelBench]) -> dict[str, object]:
    baseline = pick_baseline(benches)
    return {
        "frame_shape": list(FRAME_SHAPE),
        "baseline": str(baseline.path),
        "models": [
            {
                **b.as_json(),
                "ratios": ratios(b, baseline),
                "frontier": on_frontier(b, benches),
            }
            for b in benches
        ],
    }


def _ms(latency: Latency) -> str:
    return (
        f"min {latency.min:.3f}  p50 {latency.p50:.3f}  p90 {latency.p90:.3f}  "
        f"p99 {latency.p99:.3f}  max {latency.max:.3f}  mean {latency.mean:.3f} ms "
        f"({latency.per_second:.0f}/s)"
    )


def describe(bench: ModelBench) -> str:
    """A readable block for one model."""
    ops = ", ".join(f"{name} x{count}" for name, count in sorted(bench.op_counts.items()))
    accuracy = f"{bench.accuracy:.4f}" if bench.accuracy is not None else "n/a (no model card)"
    lines = [
        f"{bench.path}  ({bench.backend}, threads {bench.threads or 'default'})",
        f"  size        {bench.size_bytes / 1024:.1f} KiB",
        *(f"  input       {list(t.shape)} {describe_quantization(t)}" for t in bench.inputs),
        *(f"  output      {list(t.shape)} {describe_quantization(t)}" for t in bench.outputs),
        f"  ops         {sum(bench.op_counts.values())}: {ops}",
        f"  mult-adds   {bench.multiply_adds / 1e6:.1f} M per inference",
        f"  accuracy    {accuracy}",
        f"  invoke      {_ms(bench.invoke)}",
    ]
    if bench.frame is None or bench.stages is None:
        lines.append("  frame       n/a (not an image classifier: invoke on random inputs only)")
    else:
        lines += [
            f"  frame       {_ms(bench.frame)}  (one 640x480 BGR frame, all stages)",
            "  stages p50  "
            + "  ".join(f"{stage} {latency.p50:.3f}" for stage, latency in bench.stages.items())
            + " ms",
        ]
    return "\n".join(lines)


def _format(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def frontier_table(benches: list[ModelBench]) -> str:
    """The models from fastest to slowest, each figure with its ratio to the baseline, and a mark
    on the ones no other model beats on accuracy, latency and size at once."""
    baseline = pick_baseline(benches)
    header = (
        "model",
        "accuracy",
        "size KiB",
        "mult-adds M",
        "invoke p50 ms",
        "frame p50 ms",
        "frontier",
    )
    rows = [header]
    for bench in sorted(benches, key=lambda b: b.invoke.p50):
        r = ratios(bench, baseline)
        rows.append(
            (
                bench.path.name,
                f"{_format(bench.accuracy, '.4f')} (x{_format(r['accuracy'], '.3f')})",
                f"{bench.size_bytes / 1024:.1f} (x{_format(r['size'], '.2f')})",
                f"{bench.multiply_adds / 1e6:.1f}",
                f"{bench.invoke.p50:.3f} (x{_format(r['invoke_p50'], '.2f')})",
                f"{_format(bench.frame.p50 if bench.frame else None, '.3f')} "
                f"(x{_format(r['frame_p50'], '.2f')})",
                "*" if on_frontier(bench, benches) else "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return "\n".join([*lines, f"ratios (x) are to {baseline.path.name}; * = on the frontier"])
