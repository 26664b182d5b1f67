"""`edge-cifar`: classify images, run a camera, benchmark and inspect models. Thin: parse and print.

A bad input (model, runtime, camera, video, image) is one line on stderr starting with "error:" and
exit code 2; `classify` exits 1 when some of its images failed and the rest were classified, 2 when
every one failed.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import cv2
import typer

from edge_cifar import bench as benchmark
from edge_cifar import info as model_info
from edge_cifar.batch import classify_files
from edge_cifar.camera import LoopOptions, StopRequest, discard_closed_stream
from edge_cifar.collect import DEFAULT_INTERVAL_S, DEFAULT_MAX_MB, CollectOptions
from edge_cifar.interpreter import BackendError, ModelError
from edge_cifar.model_files import model_path
from edge_cifar.options import (
    CollectEveryOption,
    CollectIntervalOption,
    CollectMaxMbOption,
    CollectOption,
    DeviceOption,
    HeadlessOption,
    HeightOption,
    InputRange,
    InputRangeOption,
    JsonOption,
    LabelsOption,
    MaxFramesOption,
    MinScoreOption,
    ModelOption,
    MqttOption,
    RealtimeOption,
    Runtime,
    RuntimeOption,
    SaveOption,
    SmoothOption,
    ThreadsOption,
    TopKOption,
    WidthOption,
)
from edge_cifar.preprocess import FrameError
from edge_cifar.sources import (
    SourceError,
    expand_image_paths,
    open_source,
    opencv_reason,
    quiet_opencv_logs,
)
from edge_cifar.wiring import ClassifierOptions, load_model, model_notes, prepare_loop

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
        typer.echo(f"error: OpenCV: {opencv_reason(error)}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except OSError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None


def say(line: str) -> None:
    """One line for the user, on stderr (stdout carries the results)."""
    typer.echo(line, err=True)


def classifier_options(
    model: Path | None,
    runtime: Runtime | None,
    threads: int | None,
    top_k: int,
    input_range: InputRange | None,
    labels: Path | None,
    min_score: float | None,
) -> ClassifierOptions:
    return ClassifierOptions(
        model,
        runtime.value if runtime else None,
        threads,
        top_k,
        input_range.value if input_range else None,
        labels,
        min_score,
    )


@app.command()
def classify(
    paths: Annotated[list[str], typer.Argument(help="Image files, folders or globs.")],
    model: ModelOption = None,
    runtime: RuntimeOption = None,
    threads: ThreadsOption = None,
    top_k: TopKOption = 3,
    input_range: InputRangeOption = None,
    labels: LabelsOption = None,
    min_score: MinScoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Classify image files (any format OpenCV reads: gray, RGBA, 16-bit too) with any
    single-input image classifier."""
    failed = 0
    with one_line_errors():
        options = classifier_options(model, runtime, threads, top_k, input_range, labels, min_score)
        classifier = options.classifier()
        notes = model_notes(classifier)  # said before the first result: errors alone stay one line
        image_paths = expand_image_paths(paths)
        width = max(len(str(p)) for p in image_paths)
        for result in classify_files(classifier, image_paths):
            if result.error is not None:
                failed += 1
                typer.echo(f"error: {result.error}", err=True)
            elif notes:
                for note in notes:
                    say(note)
                notes = []
            if as_json:
                typer.echo(json.dumps(result.as_json()))
            elif (decision := result.decision) is not None:
                # An uncertain label names no class: every class of the top k follows it.
                others = decision.top_k if decision.uncertain else decision.top_k[1:]
                listed = "  ".join(f"{c.label} {c.score:.2f}" for c in others)
                typer.echo(
                    f"{str(result.path).ljust(width)}  {decision.label:<10} "
                    f"{decision.score:.3f}  {listed}".rstrip()
                )
    if failed:
        # Nothing classified is a bad input, as for the other commands.
        raise typer.Exit(EXIT_SOME_FAILED if failed < len(image_paths) else EXIT_BAD_INPUT)


def collect_options(
    folder: Path | None, every: int | None, max_mb: float, interval_s: float
) -> CollectOptions | None:
    """--collect's options; which score is unsure is the classifier's to say (wiring.py)."""
    if folder is None:
        return None
    return CollectOptions(
        folder, every=every, min_interval_s=interval_s, max_bytes=int(max_mb * 1e6)
    )


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
    min_score: MinScoreOption = None,
    headless: HeadlessOption = False,
    realtime: RealtimeOption = None,
    json_lines: Annotated[
        bool, typer.Option("--json/--no-json", help="One JSON line per frame on stdout.")
    ] = True,
    mqtt: MqttOption = None,
    collect: CollectOption = None,
    collect_every: CollectEveryOption = None,
    collect_max_mb: CollectMaxMbOption = DEFAULT_MAX_MB,
    collect_interval: CollectIntervalOption = DEFAULT_INTERVAL_S,
) -> None:
    """Classify a live camera, a video or a stream; a summary goes to stderr at the end."""
    stop = StopRequest()
    # The stop signals' handlers come first: a SIGTERM while the model loads or the camera opens
    # ends the run as cleanly as one in the loop (the loop then stops before its first frame).
    with stop.installed(), one_line_errors():
        options = classifier_options(model, runtime, threads, top_k, input_range, labels, min_score)
        classifier = options.classifier()
        loop = prepare_loop(
            open_source(device, width=width, height=height),
            classifier,
            say,
            json_lines=json_lines,
            save=save,
            headless=headless,
            realtime=realtime,
            page=False,
            options=LoopOptions(max_frames, smooth),
            stop=stop,
            mqtt=mqtt,
            collect=collect_options(collect, collect_every, collect_max_mb, collect_interval),
            devices=device,
        )
        loop.run(classifier)


TOKEN_VARIABLE = "EDGE_CIFAR_TOKEN"
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
    min_score: MinScoreOption = None,
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
            envvar=TOKEN_VARIABLE,
            help="Require `Authorization: Bearer TOKEN` (or ?token=TOKEN) on every request.",
        ),
    ] = None,
    allow_host: Annotated[
        list[str],
        typer.Option(
            help="A further Host name requests may carry (repeat for several), e.g. pi.local "
            "behind a proxy [default: the names of --host only; any for 0.0.0.0].",
        ),
    ] = [],  # noqa: B006 (typer reads it, never mutates it)
    mqtt: MqttOption = None,
    collect: CollectOption = None,
    collect_every: CollectEveryOption = None,
    collect_max_mb: CollectMaxMbOption = DEFAULT_MAX_MB,
    collect_interval: CollectIntervalOption = DEFAULT_INTERVAL_S,
) -> None:
    """The camera loop plus a web server: a live page (/), POST /classify, /healthz, /metrics.

    A live camera that goes away is reopened with backoff; SIGTERM or Ctrl-C end it cleanly."""
    stop = StopRequest()
    with stop.installed(), one_line_errors():  # the handlers first, as for `camera`
        try:
            from edge_cifar.serve.service import WebService
        except ImportError:
            raise SourceError(SERVE_HINT) from None
        # An empty token (Typer reads an empty EDGE_CIFAR_TOKEN as none) would silently mean no
        # authentication: refused, not guessed at.
        offered = token if token is not None else os.environ.get(TOKEN_VARIABLE)
        if offered is not None and not offered.strip():
            raise SourceError(f"--token or {TOKEN_VARIABLE} is empty; give a token or unset it")
        options = classifier_options(model, runtime, threads, top_k, input_range, labels, min_score)
        classifier = options.classifier()
        # POST /classify has its own interpreter (one thread): the loop's never changes thread.
        uploads = options.classifier(threads=1, model=classifier.model.path)
        # Built first: it binds the port, so a taken one is an error before the camera opens.
        service = WebService(classifier, uploads, host, port, token, allow_host)
        loop = prepare_loop(
            open_source(device, width=width, height=height),
            classifier,
            say,
            json_lines=json_lines,
            save=save,
            headless=headless,
            realtime=realtime,
            page=True,
            options=LoopOptions(max_frames, smooth),
            stop=stop,
            mqtt=mqtt,
            collect=collect_options(collect, collect_every, collect_max_mb, collect_interval),
            devices=device,
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
    models: Annotated[
        list[Path], typer.Argument(help="One or more .tflite models or shipped models' names.")
    ],
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
    card, size, p50 latency, each as a ratio to seed_int8.tflite when it is among them, else to
    the first model given: the table's last line names it)."""
    with one_line_errors():
        results = benchmark.bench_models(
            [model_path(model) for model in models],
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
    model: Annotated[Path, typer.Argument(help="A .tflite model or a shipped model's name.")],
    runtime: RuntimeOption = None,
    tensors: Annotated[bool, typer.Option("--tensors", help="List every tensor too.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Inputs, outputs, quantization, operators, size and TFLite metadata of any .tflite model."""
    with one_line_errors():
        loaded = load_model(model, runtime.value if runtime else None, None)
    if as_json:
        typer.echo(json.dumps(model_info.model_facts_json(loaded, tensors), indent=2))
    else:
        typer.echo(model_info.describe_model(loaded, tensors))


def main() -> None:
    quiet_opencv_logs()
    app()


if __name__ == "__main__":
    main()
