"""From a command's options to running parts: its classifier, and for `camera` and `serve` the
loop's sinks. No Typer here: what the user should hear goes through `say` (one stderr line each
in the CLI), so the CLI stays a parser and printer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from edge_cifar.camera import (
    NO_DISPLAY,
    JsonLinesSink,
    LoopOptions,
    Sink,
    StopRequest,
    WindowSink,
    run,
    window_problem,
)
from edge_cifar.classifier import FROM_METADATA, UNCERTAIN, Classifier
from edge_cifar.collect import DEFAULT_BELOW, CollectOptions, CollectSink
from edge_cifar.interpreter import Model
from edge_cifar.model_files import model_path
from edge_cifar.sources import FrameSource, SourceError
from edge_cifar.video_file import VideoFileSink

Say = Callable[[str], None]
MQTT_HINT = "--mqtt needs the mqtt extra: pip install 'edge-cifar[mqtt]' (or '.[mqtt]')"


def load_model(model: Path | None, runtime: str | None, threads: int | None) -> Model:
    """`model` (a file, or a shipped model's name), else the shipped INT8 model, on `runtime`
    (else the first that loads)."""
    return Model(model_path(model), threads=threads, runtime=runtime)


@dataclass(frozen=True)
class ClassifierOptions:
    """The options every classifying command shares, as given on the command line."""

    model: Path | None
    runtime: str | None
    threads: int | None
    top_k: int
    input_range: str | None
    labels: Path | None
    min_score: float | None

    def classifier(self, threads: int | None = None, model: Path | None = None) -> Classifier:
        """A classifier on an interpreter of its own (`threads`, `model` override the options')."""
        return Classifier(
            load_model(model or self.model, self.runtime, threads or self.threads),
            top_k=self.top_k,
            input_range=self.input_range,
            labels_file=self.labels,
            min_score=self.min_score,
        )


def model_notes(classifier: Classifier) -> list[str]:
    """What the model's metadata overrode or set, for the user once. Said when the work starts
    (the inputs open, a first image classified), not at loading: a bad input stays one line."""
    meaning = classifier.meaning
    notes = [f"note: {note}" for note in meaning.notes]
    if meaning.min_score > 0 and meaning.min_score_from == FROM_METADATA:
        notes.append(
            f"note: a best score below {meaning.min_score:g} is {UNCERTAIN!r} "
            f"({meaning.min_score_from}; --min-score overrides)"
        )
    return notes


def mqtt_sink(url: str, classifier: Classifier, say: Say) -> Sink:
    """The `--mqtt` sink, connected (or retrying in the background, said once)."""
    try:
        from edge_cifar.mqtt import MqttSink, parse_mqtt_url  # the optional paho-mqtt
    except ImportError:
        raise SourceError(MQTT_HINT) from None
    metadata = classifier.model.metadata
    model_name = metadata.name if metadata and metadata.name else classifier.model.path.stem
    return MqttSink(parse_mqtt_url(url), model_name, classifier.labels, say)


@dataclass
class Loop:
    """A camera loop ready to run: its source, sinks and options, and the signals that stop it."""

    source: FrameSource
    sinks: list[Sink]
    options: LoopOptions
    stop: StopRequest
    say: Say

    def run(self, classifier: Classifier) -> None:
        for note in model_notes(classifier):  # the source and sinks opened: bad ones were one line
            self.say(note)
        summary = run(self.source, classifier, self.sinks, self.options, self.stop)
        self.say(f"{self.source.name}: {summary.describe()}")


def prepare_loop(
    source: FrameSource,
    classifier: Classifier,
    say: Say,
    *,
    json_lines: bool,
    save: Path | None,
    headless: bool,
    realtime: bool | None,
    page: bool,
    options: LoopOptions,
    stop: StopRequest,
    mqtt: str | None,
    devices: Sequence[str] = (),
    collect: CollectOptions | None = None,
) -> Loop:
    """The sinks for `camera` and `serve`; a file plays in real time where a person watches.
    `stop` is the command's, its handlers installed first thing; `devices` are the --device
    values: a video is never saved onto one of them."""
    try:
        sinks: list[Sink] = [JsonLinesSink()] if json_lines else []
        if collect is not None:
            # Unsure: under the classifier's min score (--min-score, else the model's threshold).
            below = classifier.min_score or DEFAULT_BELOW
            sinks.append(CollectSink(replace(collect, below=below), say=say))
        if save is not None:
            sinks.append(VideoFileSink(save, source.fps, [Path(d) for d in devices]))
        problem = None if headless else window_problem()
        if not headless and problem is None:
            sinks.append(WindowSink())
        elif problem not in (None, NO_DISPLAY):  # a display, but no way to draw on it
            say(f"note: no window: {problem}")
        if mqtt is not None:  # last: nothing after it can fail and leave it connected
            sinks.append(mqtt_sink(mqtt, classifier, say))
    except BaseException:
        source.close()
        raise
    watched = page or any(isinstance(sink, WindowSink) for sink in sinks)
    options = replace(options, realtime=watched if realtime is None else realtime)
    return Loop(source, sinks, options, stop, say)
