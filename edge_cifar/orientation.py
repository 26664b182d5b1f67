"""A photo's EXIF orientation applied to its decoded pixels: a phone's portrait photo is upright.

Phones store the sensor's pixels as they came and say in the EXIF `Orientation` tag how to turn
them. OpenCV applies the tag only when it converts what it decodes (IMREAD_COLOR, IMREAD_GRAYSCALE);
the kit decodes with IMREAD_UNCHANGED to keep 16-bit depth and alpha, which ignores it. Pillow
reads the tag from the header alone; the turn is a NumPy view, no copy.
"""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
from PIL import Image

ORIENTATION_TAG = 0x0112  # EXIF 2.32, section 4.6.4 A


def exif_orientation(encoded: bytes) -> int:
    """The EXIF Orientation (1..8) of an encoded image; 1 (as stored) without a readable one."""
    try:
        with Image.open(io.BytesIO(encoded)) as image:
            value = image.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # Pillow raises many kinds on what it cannot parse: then there is no tag
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def upright(image: npt.NDArray[np.generic], orientation: int) -> npt.NDArray[np.generic]:
    """The decoded pixels (H x W or H x W x C) turned as EXIF `orientation` says they are to be
    shown: 2 mirrored, 3 turned 180°, 4 flipped, 5 transposed, 6 turned 90° clockwise, 7
    transversed, 8 turned 90° anticlockwise."""
    turns = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
        8: lambda a: np.rot90(a),
    }
    turn = turns.get(orientation)
    return image if turn is None else np.ascontiguousarray(turn(image))
