"""Transfer: start an image-folder model from a shipped CIFAR-10 float model's conv weights.

Only the .tflite files ship, so the weights come from `firmware_models/<model>_float.tflite`. The
converter folded each BatchNorm into its conv (kernel W' and bias b'), so the file holds the
function z -> W' * z + b' and not the BatchNorm statistics. The Keras conv gets W'; its BatchNorm
gets the statistics of W' * z over the user's training images (mean m, variance v) and
gamma = sqrt(v + eps), beta = b' + m, which computes exactly W' * z + b' at inference and nearly so
on a training batch: the imported net starts as the shipped one.

The head is new. Fitting it alone on the frozen features first (linear probing, then
fine-tuning: Kumar et al., 2022) was measured and did not help at this budget (train/NOTES.md):
it stays an arm of the measurement, not a step of the pipeline.

`python -m train.transfer` is the measurement in train/NOTES.md: a net pretrained on five CIFAR-10
classes, fine-tuned on the other five from 100 images per class, against the same net from scratch.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edge_cifar.interpreter import ModelError
from edge_cifar.model_files import CHECKOUT_MODELS_DIR
from edge_cifar.preprocess import PIXEL_SCALE
from train.data import DataError, Split

# `--init auto` fine-tunes when the smallest class has fewer training images than this. Measured
# at 100 per class (train/NOTES.md); 1,000 is a judgement: a few hundred per class is where
# MediaPipe Model Maker and Edge Impulse also default to transfer.
AUTO_PRETRAINED_BELOW = 1000
STATISTICS_IMAGES = 512  # training images whose conv outputs set the imported BatchNorms
# The head's fit on frozen features: Adam on a few thousand feature vectors, seconds on a CPU.
HEAD_EPOCHS, HEAD_LR = 100, 1e-2


def pretrained_path(model: str) -> Path:
    return CHECKOUT_MODELS_DIR / f"{model}_float.tflite"


def pretrained_source(init: str, model: str, train: Split) -> str | None:
    """The shipped model whose conv weights a folder model starts from, or None: from scratch."""
    if init == "scratch":
        return None
    available = pretrained_path(model).is_file()
    if init == "pretrained" and not available:
        raise DataError(
            f"--init pretrained: no shipped {pretrained_path(model)} to start from "
            "(use --init scratch, or another --model)"
        )
    smallest = int(np.bincount(train.labels, minlength=train.classes).min())
    return (
        model if available and (init == "pretrained" or smallest < AUTO_PRETRAINED_BELOW) else None
    )


def float_tflite_convs(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(kernel HWIO, bias) of every conv of a float TFLite model, by Keras layer name: a conv
    followed by a BatchNorm holds it folded in, a conv with a bias of its own (a
    squeeze-and-excitation gate) holds its own."""
    from edge_cifar.interpreter import load_backend

    try:
        interpreter = load_backend().interpreter_class(model_path=str(path))
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:
        raise ModelError(f"{path}: not a loadable TFLite model ({error})") from None
    names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    convs = {}
    for op in interpreter._get_ops_details():
        if op["op_name"] != "CONV_2D" or len(op["inputs"]) < 3 or op["inputs"][2] < 0:
            continue
        _, kernel, bias = op["inputs"][:3]
        # The converter keeps the Keras path in a kernel's name: "<model>/<layer>/Conv2D".
        parts = names[kernel].split("/")
        if len(parts) != 3 or parts[2] != "Conv2D":
            continue
        # TFLite stores conv kernels OHWI; Keras wants HWIO.
        weights = np.transpose(interpreter.get_tensor(kernel), (1, 2, 3, 0))
        convs[parts[1]] = (weights, np.asarray(interpreter.get_tensor(bias)))
    return convs


def import_convs(model: Any, path: Path, images: np.ndarray) -> int:
    """Load the conv weights of the float TFLite `path` into `model` (see the module
    docstring); returns how many convs were imported. `images`: uint8 RGB training images."""
    import tf_keras as keras

    convs = float_tflite_convs(path)
    pairs, imported = [], 0
    for layer in model.layers:
        if not (isinstance(layer, keras.layers.Conv2D) and layer.name in convs):
            continue
        kernel, bias = convs[layer.name]
        if tuple(layer.kernel.shape) != kernel.shape:
            raise ModelError(
                f"{path}: {layer.name} has a {kernel.shape} kernel, "
                f"the model a {tuple(layer.kernel.shape)} one"
            )
        layer.kernel.assign(kernel)
        imported += 1
        if layer.use_bias:
            layer.bias.assign(bias)
            continue
        norm = model.get_layer(layer.name.removesuffix("_conv") + "_bn")
        # First the folded function itself (mean 0, variance 1, scale 1, offset b').
        ones = np.ones_like(bias)
        norm.set_weights([np.sqrt(ones + norm.epsilon), bias, 0 * ones, ones])
        pairs.append((layer, norm, bias))
    if not imported:
        raise ModelError(f"{path}: no conv weights named like {model.name}'s layers")
    # The net now computes exactly what the file does: one pass gives every conv's output
    # statistics, which the re-parametrised BatchNorms below leave unchanged at inference.
    probe = keras.Model(model.input, [conv.output for conv, _, _ in pairs])
    sample = images[:STATISTICS_IMAGES].astype(np.float32) * PIXEL_SCALE
    outputs = probe.predict(sample, batch_size=64, verbose=0)
    for (_, norm, bias), raw in zip(pairs, outputs, strict=True):
        output = np.asarray(raw, dtype=np.float32)  # bfloat16 under mixed precision
        mean = output.mean(axis=(0, 1, 2))
        variance = output.var(axis=(0, 1, 2))
        norm.set_weights([np.sqrt(variance + norm.epsilon), bias + mean, mean, variance])
    return imported


def fit_head(model: Any, train: Split) -> float:
    """Fit the final Dense layer (`logits`) alone on the frozen features of `train`'s images,
    unaugmented; returns its training accuracy. (An arm of the measurement.)"""
    import tf_keras as keras

    head = model.get_layer("logits")
    features = keras.Model(model.input, head.input).predict(
        train.images.astype(np.float32) * PIXEL_SCALE, batch_size=64, verbose=0
    )
    probe = keras.Sequential(
        [keras.Input(features.shape[1:]), keras.layers.Dense(train.classes, activation="softmax")]
    )
    probe.compile(
        optimizer=keras.optimizers.Adam(HEAD_LR),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    fitted = probe.fit(features, train.labels, batch_size=64, epochs=HEAD_EPOCHS, verbose=0)
    head.set_weights(probe.layers[-1].get_weights())
    return float(fitted.history["accuracy"][-1])


def pretrained_model(build: Any, model_name: str, train: Split) -> Any:
    """`build()`, its convs started from the shipped `<model_name>_float.tflite`, a new head."""
    model = build()
    path = pretrained_path(model_name)
    count = import_convs(model, path, train.images)
    print(f"transfer: {count} conv layers from {path}, a new head", file=sys.stderr)
    return model


# --- the measurement ----------------------------------------------------------------------------

# The vehicles and the frog pretrain; the other animals are the "user's" small data set.
SOURCE_CLASSES = (0, 1, 6, 8, 9)  # airplane, automobile, frog, ship, truck
TARGET_CLASSES = (2, 3, 4, 5, 7)  # bird, cat, deer, dog, horse
TARGET_PER_CLASS, TARGET_VALIDATION_PER_CLASS = 100, 50
PRETRAIN_EPOCHS = 4


def classes_of(split: Split, classes: tuple[int, ...]) -> Split:
    from train.labels import CLASS_NAMES

    keep = np.flatnonzero(np.isin(split.labels, classes))
    relabel = np.zeros(max(classes) + 1, dtype=np.int64)
    relabel[list(classes)] = np.arange(len(classes))
    names = tuple(CLASS_NAMES[c] for c in classes)
    return Split(split.images[keep], relabel[split.labels[keep]], names)


def first_per_class(split: Split, count: int, seed: int) -> tuple[Split, Split]:
    """`count` random images per class, and the rest."""
    rng = np.random.default_rng(seed)
    chosen = np.concatenate(
        [rng.permutation(np.flatnonzero(split.labels == c))[:count] for c in range(split.classes)]
    )
    rest = np.setdiff1d(np.arange(len(split)), chosen)
    return split.take(np.sort(chosen)), split.take(rest)


def measure(runs_dir: Path, data_dir: Path | None = None) -> dict[str, Any]:
    from train import data
    from train.artifacts import RunFiles
    from train.convert import to_float_tflite
    from train.fit import Phase, train_phase
    from train.models import FINE_TUNE_PEAK_LR, folder_config, get_config
    from train.pipeline import evaluation_dataset

    cifar = data.load(data_dir)
    base = get_config("default")
    source_train, source_validation = data.stratified_split(
        classes_of(cifar.train, SOURCE_CLASSES), validation_size=2500
    )
    pretrain = replace(
        folder_config(base, "transfer_source", source_train.class_names, 32, None),
        recipe=replace(base.recipe, epochs=PRETRAIN_EPOCHS, warmup_epochs=1),
    )
    files = RunFiles(runs_dir / "source", "transfer_source")
    started = time.monotonic()
    weights = train_phase(
        Phase("float", PRETRAIN_EPOCHS, base.recipe.peak_lr, 1, files.float_weights),
        pretrain.build,
        recipe=pretrain.recipe,
        train=source_train,
        validation=source_validation,
        files=files,
    )
    source_model = pretrain.build()
    source_model.load_weights(str(weights))
    source_tflite = to_float_tflite(source_model, runs_dir / "transfer_source_float.tflite")
    pretrain_seconds = time.monotonic() - started

    target = classes_of(cifar.train, TARGET_CLASSES)
    target_train, rest = first_per_class(target, TARGET_PER_CLASS, seed=0)
    target_validation, _ = first_per_class(rest, TARGET_VALIDATION_PER_CLASS, seed=1)
    target_test = classes_of(cifar.test, TARGET_CLASSES)
    arms = {
        "scratch, peak lr 0.1": (None, base.recipe.peak_lr, False),
        "pretrained, peak lr 0.02": (source_tflite, 0.02, False),
        "pretrained, head fitted first, peak lr 0.02": (source_tflite, 0.02, True),
        f"pretrained, head fitted first, peak lr {FINE_TUNE_PEAK_LR:g}": (
            source_tflite,
            FINE_TUNE_PEAK_LR,
            True,
        ),
    }
    results: dict[str, Any] = {"pretrain_seconds": round(pretrain_seconds, 1), "arms": {}}
    for arm, (tflite, peak_lr, probe) in arms.items():
        config = folder_config(base, "transfer_target", target_train.class_names, 32, None)
        recipe = replace(config.recipe, peak_lr=peak_lr)
        arm_files = RunFiles(runs_dir / arm.replace(", ", "_").replace(" ", "-"), "target")

        def build(config: Any = config, tflite: Path | None = tflite, probe: bool = probe) -> Any:
            model = config.build()
            if tflite is not None:
                import_convs(model, tflite, target_train.images)
            if probe:
                fit_head(model, target_train)
            return model

        started = time.monotonic()
        weights = train_phase(
            Phase("float", recipe.epochs, peak_lr, recipe.warmup_epochs, arm_files.float_weights),
            build,
            recipe=recipe,
            train=target_train,
            validation=target_validation,
            files=arm_files,
        )
        model = config.build()
        model.load_weights(str(weights))
        model.compile(metrics=["accuracy"], loss="categorical_crossentropy")
        _, accuracy = model.evaluate(evaluation_dataset(target_test), verbose=0)
        history = json.loads(arm_files.history("float").read_text())
        results["arms"][arm] = {
            "test_accuracy": round(float(accuracy), 4),
            "best_val_accuracy": round(max(e["val_accuracy"] for e in history), 4),
            "seconds": round(time.monotonic() - started, 1),
        }
        print(f"{arm}: {results['arms'][arm]}", file=sys.stderr)
    results["budget"] = {
        "pretrain": f"{PRETRAIN_EPOCHS} epochs on {len(source_train)} images of "
        f"{', '.join(source_train.class_names)}, 32 x 32",
        "fine-tune": f"{recipe.epochs} epochs, batch {recipe.batch_size}, on {len(target_train)} "
        f"images ({TARGET_PER_CLASS} per class) of {', '.join(target_train.class_names)}; "
        f"validation {len(target_validation)}, test {len(target_test)} (CIFAR-10 test set)",
    }
    (runs_dir / "result.json").write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    print(
        json.dumps(
            measure(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs/transfer")), indent=1
        )
    )
