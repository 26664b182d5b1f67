"""edge-cifar: CIFAR-10 classification on edge devices with full-INT8 TFLite models.

The runtime needs only NumPy, OpenCV and a TFLite interpreter; it never imports TensorFlow.
"""

import os

__version__ = "0.1.0"

# The most pixels an image may declare: a 40 MP photo decodes to 120 MB of BGR. A PNG of
# 20,000 x 20,000 pixels fits in 1 MB and would decode to 1.2 GB, more than many a Pi has.
MAX_IMAGE_PIXELS = 40_000_000
# OpenCV checks the size every decoder reads from a header against this before decoding (its own
# default is a gigapixel): the guard for the formats Pillow cannot parse (Radiance .hdr, EXR, PFM).
# OpenCV reads the variable when cv2 is loaded, so it is set here, before any module of the
# package imports cv2; a value already set is kept.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_IMAGE_PIXELS))
