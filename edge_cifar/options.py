"""The command line's options, declared once for every command that takes them."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from edge_cifar.model_files import DEFAULT_MODEL
from edge_cifar.preprocess import DEFAULT_INPUT_RANGE


class Runtime(str, Enum):
    litert = "litert"
    tflite_runtime = "tflite-runtime"
    tensorflow = "tensorflow"


# A device's service names its model once, in its environment, as it gives the token.
MODEL_VARIABLE = "EDGE_CIFAR_MODEL"
ModelOption = Annotated[
    Path | None,
    typer.Option(
        "--model",
        "-m",
        envvar=MODEL_VARIABLE,
        help="A .tflite file, or a shipped model's name (pi, default, tiny, seed) "
        f"[default: {DEFAULT_MODEL}, the packaged INT8 model].",
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
MinScoreOption = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        max=1.0,
        help="Below this best score the label is 'uncertain' [default: the threshold the "
        "model's metadata recommends, else 0].",
    ),
]


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


def newest_frame_weight(alpha: float) -> float:
    if not 0.0 < alpha <= 1.0:
        raise typer.BadParameter(f"{alpha} is not in (0, 1]")
    return alpha


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
HeadlessOption = Annotated[bool, typer.Option(help="No window, even where a display exists.")]
RealtimeOption = Annotated[
    bool | None,
    typer.Option(
        help="Play a video file at its own frame rate [default: on with a window or a page, "
        "off headless]."
    ),
]


MqttOption = Annotated[
    str | None,
    typer.Option(
        "--mqtt",
        metavar="URL",
        help="Publish decisions to an MQTT broker (Home Assistant discovery included): "
        "mqtt://[user[:password]@]host[:port][/topic], mqtts:// for TLS; the password may come "
        "from $EDGE_CIFAR_MQTT_PASSWORD.",
    ),
]
CollectOption = Annotated[
    Path | None,
    typer.Option(
        help="Save the frames the model is unsure of (a top score under --min-score, else the "
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
