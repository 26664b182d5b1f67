"""edge-cifar: CIFAR-10 classification on edge devices with full-INT8 TFLite models.

The runtime needs only NumPy, OpenCV and a TFLite interpreter; it never imports TensorFlow.
"""

__version__ = "0.1.0"
