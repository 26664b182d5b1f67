"""The ten CIFAR-10 class names, in label order (label byte 0 is `airplane`): the labels our
models carry in their metadata (train/metadata.py). The runtime reads them from the model file."""

CLASS_NAMES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
NUM_CLASSES = len(CLASS_NAMES)
