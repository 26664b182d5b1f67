"""`edge-cifar`: classify images, run a camera, benchmark and inspect models. Thin: parse and print.

A bad input (model, runtime, camera, video, image) is one line on stderr starting with "error:" and
exit code 2; `classify` exits 1 when some of its images failed and the rest were classified.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
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
    StopRequest,
    VideoFileSink,
    WindowSink,
    discard_closed_stream,
    run,
    window_problem,
)
from edge_cifar.classifier import Classifier
from edge_cifar.collect import (
    DEFAULT_BELOW,
    DEFAULT_INTERVAL_S,
    DEFAULT_MAX_MB,
    CollectOptions,
    CollectSink,
)
from edge_cifar.interpreter import BackendError, Model, ModelError
from edge_cifar.model_files import model_path
from edge_cifar.preprocess import DEFAULT_INPUT_RANGE, FrameError
from edge_cifar.sources import (
    FrameSource,
    SourceError,
    expand_image_paths,
    open_source,
    quiet_opencv_logs,
)

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
    typer.Option(
        "--model",
        "-m",
        help="A .tflite file, or a shipped model's name (pi, default, tiny, seed) "
        "[default: the shipped INT8 model].",
    ),
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
        model_path(model),
        threads=threads,
        runtime=runtime.value if runtime else None,
    )


def make_classifier(
    model: Model, top_k: int, input_range: InputRange | None, labels: Path | None
) -> Classifier:
    return Classifier(
        model,
        top_k=top_k,
        input_range=input_range.value if input_range else None,
        labels_file=labels,
    )


def load_classifier(
    model: Path | None,
    runtime: Runtime | None,
    threads: int | None,
    top_k: int,
    input_range: InputRange | None,
    labels: Path | None,
) -> Classifier:
    classifier = make_classifier(load_model(model, runtime, threads), top_k, input_range, labels)
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


DeviceOption = Annotated[
    list[str],
    typer.Option(
        "--device",
        "-d",
        help="Camera index, video file, stream URL, 'picamera2', or image files/folder/glob "
        "(repeat for several images).",
    ),
]
WidthOption = Annotated[int | None, typer.Option(min=1, help="Requested capture width.")]
HeightOption = Annotated[int | None, typer.Option(min=1, help="Requested capture height.")]
MaxFramesOption = Annotated[int | None, typer.Option(min=1, help="Stop after this many.")]
SaveOption = Annotated[
    Path | None, typer.Option(help="Write the annotated frames to a video (.mp4 or .avi).")
]
SmoothOption = Annotated[
    float,
    typer.Option(
        callback=newest_frame_weight,
        help="Weight of the newest frame in a moving average of the scores; 1 = no smoothing.",
    ),
]
MinScoreOption = Annotated[
    float, typer.Option(min=0.0, max=1.0, help="Below this score the label is 'uncertain'.")
]
CollectOption = Annotated[
    Path | None,
    typer.Option(
        help="Save the frames the model is unsure of (top score under --min-score, else the "
        "model's recommended threshold, else 0.5) as JPEGs under DIR/<predicted label>/, for "
        "sorting and retraining with `make quantize DATA=DIR`.",
        metavar="DIR",
    ),
]
CollectEveryOption = Annotated[
    int | None, typer.Option(min=1, help="With --collect, also save every Nth frame.")
]
CollectMaxMbOption = Annotated[
    float, typer.Option(min=0.0, help="With --collect, stop saving when DIR holds this many MB.")
]
CollectIntervalOption = Annotated[
    float, typer.Option(min=0.0, help="With --collect, at most one frame per this many seconds.")
]
HeadlessOption = Annotated[bool, typer.Option(help="No window, even where a display exists.")]
RealtimeOption = Annotated[
    bool | None,
    typer.Option(
        help="Play a video file at its own frame rate [default: on with a window or a page, "
        "off headless]."
    ),
]


@dataclass
class Loop:
    """A camera loop ready to run: its source, sinks and options, and the signals that stop it."""

    source: FrameSource
    sinks: list[Sink]
    options: LoopOptions
    stop: StopRequest

    def run(self, classifier: Classifier) -> None:
        summary = run(self.source, classifier, self.sinks, self.options, self.stop)
        typer.echo(f"{self.source.name}: {summary.describe()}", err=True)


def prepare_loop(
    source: FrameSource,
    *,
    json_lines: bool,
    save: Path | None,
    headless: bool,
    realtime: bool | None,
    page: bool,
    options: LoopOptions,
    collect: CollectOptions | None = None,
) -> Loop:
    """The sinks for `camera` and `serve`; a file plays in real time where a person watches."""
    try:
        sinks: list[Sink] = [JsonLinesSink()] if json_lines else []
        if collect is not None:
            sinks.append(CollectSink(collect))
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
    watched = page or any(isinstance(sink, WindowSink) for sink in sinks)
    options = replace(options, realtime=watched if realtime is None else realtime)
    return Loop(source, sinks, options, StopRequest())


def collect_options(
    folder: Path | None,
    classifier: Classifier,
    min_score: float,
    every: int | None,
    max_mb: float,
    interval_s: float,
) -> CollectOptions | None:
    """--collect's options; "unsure" is under --min-score, else the model's own threshold."""
    if folder is None:
        return None
    metadata = classifier.model.metadata
    recommended = metadata.uncertain_threshold if metadata else None
    below = min_score or recommended or DEFAULT_BELOW
    return CollectOptions(folder, below, every, interval_s, int(max_mb * 1e6))


@app.command()
def camera(
    device: DeviceOption = ["0"],  # noqa: B006 (typer reads it, never mutates it)
    model: ModelOption = None,
    runtime: RuntimeOption = None,
    threads: ThreadsOption = None,
    top_k: TopKOption = 3,
    input_range: InputRangeOption = None,
    labels: LabelsOption = None,
    width: WidthOption = None,
    height: HeightOption = None,
    max_frames: MaxFramesOption = None,
    save: SaveOption = None,
    smooth: SmoothOption = 1.0,
    min_score: MinScoreOption = 0.0,
    collect: CollectOption = None,
    collect_every: CollectEveryOption = None,
    collect_max_mb: CollectMaxMbOption = DEFAULT_MAX_MB,
    collect_interval: CollectIntervalOption = DEFAULT_INTERVAL_S,
    headless: HeadlessOption = False,
    realtime: RealtimeOption = None,
    json_lines: Annotated[
        bool, typer.Option("--json/--no-json", help="One JSON line per frame on stdout.")
    ] = True,
) -> None:
    """Classify a live camera, a video or a stream; a summary goes to stderr at the end."""
    with one_line_errors():
        classifier = load_classifier(model, runtime, threads, top_k, input_range, labels)
        loop = prepare_loop(
            open_source(device, width=width, height=height),
            json_lines=json_lines,
            save=save,
            headless=headless,
            realtime=realtime,
            page=False,
            options=LoopOptions(max_frames, smooth, min_score, top_k),
            collect=collect_options(
                collect, classifier, min_score, collect_every, collect_max_mb, collect_interval
            ),
        )
        loop.run(classifier)


SERVE_HINT = "serve needs the serve extra: pip install 'edge-cifar[serve]' (or '.[serve]')"


@app.command()
def serve(
    device: DeviceOption = ["0"],  # noqa: B006 (typer reads it, never mutates it)
    model: ModelOption = None,
    runtime: RuntimeOption = None,
    threads: ThreadsOption = None,
    top_k: TopKOption = 3,
    input_range: InputRangeOption = None,
    labels: LabelsOption = None,
    width: WidthOption = None,
    height: HeightOption = None,
    max_frames: MaxFramesOption = None,
    save: SaveOption = None,
    smooth: SmoothOption = 1.0,
    min_score: MinScoreOption = 0.0,
    collect: CollectOption = None,
    collect_every: CollectEveryOption = None,
    collect_max_mb: CollectMaxMbOption = DEFAULT_MAX_MB,
    collect_interval: CollectIntervalOption = DEFAULT_INTERVAL_S,
    headless: Annotated[
        bool, typer.Option(help="No window beside the page, even where a display exists.")
    ] = True,
    realtime: RealtimeOption = None,
    json_lines: Annotated[
        bool, typer.Option("--json/--no-json", help="One JSON line per frame on stdout.")
    ] = False,
    host: Annotated[
        str, typer.Option(help="Address to listen on; anything but loopback is public.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free one).")] = 8080,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="EDGE_CIFAR_TOKEN",
            help="Require `Authorization: Bearer TOKEN` (or ?token=TOKEN) on every request.",
        ),
    ] = None,
) -> None:
    """The camera loop plus a web server: a live page (/), POST /classify, /healthz, /metrics.

    A live camera that goes away is reopened with backoff; SIGTERM or Ctrl-C end it cleanly."""
    with one_line_errors():
        try:
            from edge_cifar.serve.service import WebService
        except ImportError:
            raise SourceError(SERVE_HINT) from None
        classifier = load_classifier(model, runtime, threads, top_k, input_range, labels)
        # POST /classify has its own interpreter (one thread): the loop's never changes thread.
        uploads = make_classifier(
            load_model(classifier.model.path, runtime, 1), top_k, input_range, labels
        )
        # Built first: it binds the port, so a taken one is an error before the camera opens.
        service = WebService(classifier.model, uploads, host, port, token)
        loop = prepare_loop(
            open_source(device, width=width, height=height),
            json_lines=json_lines,
            save=save,
            headless=headless,
            realtime=realtime,
            page=True,
            options=LoopOptions(max_frames, smooth, min_score, top_k),
            collect=collect_options(
                collect, classifier, min_score, collect_every, collect_max_mb, collect_interval
            ),
        )
        loop.sinks.append(service.sink)
        loop.source = service.watch(
            loop.source, lambda: open_source(device, width=width, height=height), loop.stop.event
        )
        if service.warning:
            typer.echo(service.warning, err=True)
        with service.running() as url:
            typer.echo(f"serving on {url}", err=True)
            loop.run(classifier)


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
