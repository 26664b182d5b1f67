"""Which devices training runs on: the default one, or several under MirroredStrategy."""

from __future__ import annotations

import tensorflow as tf


def split_cpu(devices: int) -> None:
    """Expose `devices` logical CPU devices; TensorFlow accepts this only before it first runs,
    so a second call (`quantize` trains twice) leaves the split as it is."""
    if devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        if tf.config.get_logical_device_configuration(cpu) is not None:
            return
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(devices)]
        )


def training_strategy() -> tf.distribute.Strategy:
    """MirroredStrategy over the GPUs when there are several, else over the logical CPUs when
    `split_cpu` made several; otherwise TensorFlow's default, one-device strategy.

    Mirrored replicas each take an equal share of the global batch and average their gradients,
    so a recipe's batch size and learning rate mean the same on any number of devices."""
    gpus = tf.config.list_logical_devices("GPU")
    devices = gpus or tf.config.list_logical_devices("CPU")
    if len(devices) > 1:
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    return tf.distribute.get_strategy()
