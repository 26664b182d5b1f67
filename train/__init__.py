"""edge-cifar training module: CIFAR-10 → float model → QAT → full-INT8 TFLite → evaluation → ship.

Each step runs alone (`python -m train <step>`) and leaves a file the next one reads.
"""

import os

# tensorflow-model-optimization needs Keras 2 (tf_keras) behind `tf.keras`; this must be set before
# TensorFlow is first imported, which is why it lives in the package's __init__.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow turns its oneDNN kernels on only for CPUs with AVX-512 VNNI/BF16 or AMX; on an AVX2
# CPU they still train 1.35-1.9x faster than the default kernels (train/NOTES.md).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
