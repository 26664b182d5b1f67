"""`edge-cifar`: classify images, run a camera, benchmark and inspect models. Thin: parse and print.

A bad input (model, runtime, camera, video, image) is one line on stderr starting with "error:" and
exit code 2; `classify` exits 1 when some of its images failed and the rest were classified.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated

import cv2
import typer

from edge_cifar import bench as benchmark
from edge_cifar.batch import classify_files
from edge_cifar.camera import (
    NO_DISPLAY,
    JsonLinesSink,
    LoopOptions,
    Sink,
    VideoFileSink,
    WindowSink,
    discard_closed_stream,
    run,
    window_problem,
)
from edge_cifar.classifier import Classifier
from edge_cifar.interpreter import BackendError, Model, ModelError
from edge_cifar.model_files import default_model_path
from edge_cifar.preprocess import DEFAULT_INPUT_RANGE, FrameError
from edge_cifar.sources import SourceError, expand_image_paths, open_source, quiet_opencv_logs

EXIT_SOME_FAILED = 1
EXIT_BAD_INPUT = 2

app = typer.Typer(
    name="edge-cifar",
    help="Image classification with TFLite models (CIFAR-10's full-INT8 model by default): "
    "images, cameras, benchmarks.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class Runtime(str, Enum):
    litert = "litert"
    tflite_runtime = "tflite-runtime"
    tensorflow = "tensorflow"


ModelOption = Annotated[
    Path | None,
    typer.Option("--model", "-m", help="A .tflite model [default: the shipped INT8 model]."),
]
RuntimeOption = Annotated[
    Runtime | None,
    typer.Option(help="Interpreter package [default: the first of them that imports]."),
]
ThreadsOption = Annotated[
    int | None, typer.Option(min=1, help="Interpreter threads [default: the runtime's choice].")
]
TopKOption = Annotated[
    int, typer.Option("--top-k", min=1, max=10, help="Classes listed per result.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="JSON instead of a table.")]


class InputRange(str, Enum):
    unit = "0..1"
    pixels = "0..255"
    symmetric = "-1..1"


InputRangeOption = Annotated[
    InputRange | None,
    typer.Option(
        "--input-range",
        help="What the model's float input values span, for a model whose metadata does not "
        f"say [default: {DEFAULT_INPUT_RANGE}, our models' convention].",
    ),
]
LabelsOption = Annotated[
    Path | None,
    typer.Option(
        "--labels",
        help="Class names, one a line, for a model whose metadata has none "
        "[default: labels.txt beside the model, else class indices].",
    ),
]


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Known failures become `error: <reason>` on stderr and exit code 2, never a traceback."""
    try:
        yield
    except (ModelError, BackendError, SourceError, FrameError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except BrokenPipeError:  # `edge-cifar classify ... | head`: the reader stopped, not an error
        discard_closed_stream(sys.stdout)
        raise typer.Exit(0) from None
    except cv2.error as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else "OpenCV error"
        typer.echo(f"error: OpenCV: {reason}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except OSError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None


def newest_frame_weight(alpha: float) -> float:
    if not 0.0 < alpha <= 1.0:
        raise typer.BadParameter(f"{alpha} is not in (0, 1]")
    return alpha


def load_model(model: Path | None, runtime: Runtime | None, threads: int | None) -> Model:
    return Model(
        model or default_model_path(),
        threads=threads,
        runtime=runtime.value if runtime else None,
    )


def load_classifier(
    model: Path | None,
    runtime: Runtime | None,
    threads: int | None,
    top_k: int,
    input_range: InputRange | None,
    labels: Path | None,
) -> Classifier:
    classifier = Classifier(
        load_model(model, runtime, threads),
        top_k=top_k,
        input_range=input_range.value if input_range else None,
        labels_file=labels,
    )
    for note in classifier.meaning.notes:
        typer.echo(f"note: {note}", err=True)
    return classifier


@app.command()
def classify(
    paths: Annotated[list[str], typer.Argument(help="Image files, folders or globs.")],
    model: ModelOption = None,
    runtime: RuntimeOption = None,
    threads: ThreadsOption = None,
    top_k: TopKOption = 3,
    input_range: InputRangeOption = None,
    labels: LabelsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Classify image files (any format OpenCV reads: gray, RGBA, 16-bit too) with any
    single-input image classifier."""
    failed = 0
    with one_line_errors():
        classifier = load_classifier(model, runtime, threads, top_k, input_range, labels)
        image_paths = expand_image_paths(paths)
        width = max(len(str(p)) for p in image_paths)
        for result in classify_files(classifier, image_paths):
            if result.error is not None:
                failed += 1
                typer.echo(f"error: {result.error}", err=True)
            if as_json:
                typer.echo(json.dumps(result.as_json()))
            elif result.prediction is not None:
                others = "  ".join(f"{c.label} {c.score:.2f}" for c in result.prediction.top_k[1:])
                typer.echo(
                    f"{str(result.path).ljust(width)}  {result.prediction.label:<10} "
                    f"{result.prediction.score:.3f}  {others}".rstrip()
                )
    if failed:
        raise typer.Exit(EXIT_SOME_FAILED)


@app.command()
def camera(
    device: Annotated[
        list[str],
        typer.Option(
            "--device",
            "-d",
            help="Camera index, video file, stream URL, 'picamera2', or image files/folder/glob "
            "(repeat for several images).",
        ),
    ] = ["0"],  # noqa: B006 (typer reads it, never mutates it)
    model: ModelOption = None,
    runtime: RuntimeOption = None,
    threads: ThreadsOption = None,
    top_k: TopKOption = 3,
    input_range: InputRangeOption = None,
    labels: LabelsOption = None,
    width: Annotated[int | None, typer.Option(min=1, help="Requested capture width.")] = None,
    height: Annotated[int | None, typer.Option(min=1, help="Requested capture height.")] = None,
    max_frames: Annotated[int | None, typer.Option(min=1, help="Stop after this many.")] = None,
    save: Annotated[
        Path | None, typer.Option(help="Write the annotated frames to a video (.mp4 or .avi).")
    ] = None,
    smooth: Annotated[
        float,
        typer.Option(
            callback=newest_frame_weight,
            help="Weight of the newest frame in a moving average of the scores; 1 = no smoothing.",
        ),
    ] = 1.0,
    min_score: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Below this score the label is 'uncertain'."),
    ] = 0.0,
    headless: Annotated[bool, typer.Option(help="No window, even where a display exists.")] = False,
    json_lines: Annotated[
        bool, typer.Option("--json/--no-json", help="One JSON line per frame on stdout.")
    ] = True,
) -> None:
    """Classify a live camera, a video or a stream; a summary goes to stderr at the end."""
    with one_line_errors():
        classifier = load_classifier(model, runtime, threads, top_k, input_range, labels)
        source = open_source(device, width=width, height=height)
        try:
            sinks: list[Sink] = [JsonLinesSink()] if json_lines else []
            if save is not None:
                sinks.append(VideoFileSink(save, source.fps))
            problem = None if headless else window_problem()
            if not headless and problem is None:
                sinks.append(WindowSink())
            elif problem not in (None, NO_DISPLAY):  # a display, but no way to draw on it
                typer.echo(f"note: no window: {problem}", err=True)
        except BaseException:
            source.close()
            raise
        options = LoopOptions(max_frames, smooth, min_score, top_k)
        summary = run(source, classifier, sinks, options)
        typer.echo(f"{source.name}: {summary.describe()}", err=True)


@app.command()
def bench(
    models: Annotated[list[Path], typer.Argument(help="One or more .tflite models.")],
    runs: Annotated[
        int, typer.Option(min=1, help="Timed runs per figure.")
    ] = benchmark.DEFAULT_RUNS,
    warmup: Annotated[
        int, typer.Option(min=0, help="Untimed runs first.")
    ] = benchmark.DEFAULT_WARMUP,
    runtime: RuntimeOption = None,
    threads: ThreadsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Latency of invoke (any .tflite: random inputs) and, for image classifiers, of a 640x480
    frame's stages; several models side by side in a frontier table (accuracy from each model's
    card, size, p50 latency, ratios to seed_int8)."""
    with one_line_errors():
        results = benchmark.bench_models(
            models,
            runs=runs,
            warmup=warmup,
            threads=threads,
            runtime=runtime.value if runtime else None,
        )
    if as_json:
        typer.echo(json.dumps(benchmark.report_json(results), indent=2))
        return
    typer.echo("\n\n".join(benchmark.describe(result) for result in results))
    if len(results) > 1:
        typer.echo("\n" + benchmark.frontier_table(results))


@app.command()
def info(
    model: Annotated[Path, typer.Argument(help="A .tflite model.")],
    runtime: RuntimeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Tensors, quantization, operators, size and TFLite metadata of any .tflite model."""
    with one_line_errors():
        loaded = load_model(model, runtime, None)
    if as_json:
        typer.echo(json.dumps(benchmark.model_facts_json(loaded), indent=2))
    else:
        typer.echo(benchmark.describe_model(loaded))


def main() -> None:
    quiet_opencv_logs()
    app()


if __name__ == "__main__":
    main()
