"""CIFAR-10-C-style corruptions (Hendrycks & Dietterich, ICLR 2019), generated deterministically.

Each corruption takes a batch of RGB images as float32 in 0..1, shape (N, H, W, 3), one of its five
severities and a NumPy generator, and returns the corrupted batch in 0..1. The severity parameters
are the published CIFAR-10-C ones (`make_cifar_c.py` of the paper's repository); the code is NumPy
and OpenCV, so the images are not bit-identical to the published .npy files (other random streams,
OpenCV's JPEG and resampling instead of PIL's and ImageMagick's) but follow the same recipes.
Corruptions that need the paper's photographs (frost) or per-pixel Python loops (glass blur) are
left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

Images = np.ndarray  # float32 (N, H, W, 3) in 0..1
Apply = Callable[[Images, Any, np.random.Generator], Images]


@dataclass(frozen=True)
class Corruption:
    name: str
    family: str  # noise, blur, weather or digital, as the paper groups them
    severities: tuple[Any, ...]  # the published parameter of severity 1..5
    apply: Apply


def _per_image(images: Images, corrupt: Callable[[np.ndarray], np.ndarray]) -> Images:
    return np.stack([corrupt(image) for image in images])


def gaussian_noise(images: Images, sigma: float, rng: np.random.Generator) -> Images:
    return images + rng.normal(scale=sigma, size=images.shape).astype(np.float32)


def shot_noise(images: Images, photons: float, rng: np.random.Generator) -> Images:
    return (rng.poisson(images * photons) / photons).astype(np.float32)


def impulse_noise(images: Images, amount: float, rng: np.random.Generator) -> Images:
    """Salt and pepper on a fraction `amount` of the values, half each (skimage's 's&p')."""
    hit = rng.random(images.shape) < amount
    salt = rng.random(images.shape) < 0.5
    return np.where(hit, salt.astype(np.float32), images)


def speckle_noise(images: Images, sigma: float, rng: np.random.Generator) -> Images:
    return images * (1 + rng.normal(scale=sigma, size=images.shape).astype(np.float32))


def gaussian_blur(images: Images, sigma: float, rng: np.random.Generator) -> Images:
    # skimage.filters.gaussian's kernel: truncated at 4 sigma, edges repeated.
    side = 2 * int(4 * sigma + 0.5) + 1
    return _per_image(
        images,
        lambda image: cv2.GaussianBlur(image, (side, side), sigma, borderType=cv2.BORDER_REPLICATE),
    )


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """An anti-aliased disk: the aperture of an out-of-focus lens."""
    span = np.arange(-8, 9) if radius <= 8 else np.arange(-radius, radius + 1)
    x, y = np.meshgrid(span, span)
    disk = ((x**2 + y**2) <= radius**2).astype(np.float32)
    disk /= disk.sum()
    side = 3 if radius <= 8 else 5
    return np.asarray(cv2.GaussianBlur(disk, (side, side), alias_blur))


def defocus_blur(images: Images, params: tuple[float, float], rng: np.random.Generator) -> Images:
    kernel = disk_kernel(*params)
    return _per_image(images, lambda image: cv2.filter2D(image, -1, kernel))


def motion_kernel(radius: int, sigma: float, angle_degrees: float) -> np.ndarray:
    """ImageMagick's motion blur: a one-sided Gaussian along a line at `angle_degrees`, over the
    2 * radius + 1 pixels of its kernel width."""
    steps = np.arange(2 * radius + 1, dtype=np.float32)
    weights = np.exp(-(steps**2) / (2 * sigma**2))
    angle = np.deg2rad(angle_degrees)
    reach = len(steps) - 1
    kernel = np.zeros((2 * reach + 1, 2 * reach + 1), np.float32)
    rows = np.rint(reach + steps * np.sin(angle)).astype(int)
    cols = np.rint(reach + steps * np.cos(angle)).astype(int)
    np.add.at(kernel, (rows, cols), weights)
    normalised: np.ndarray = kernel / kernel.sum()
    return normalised


def motion_blur(images: Images, params: tuple[int, float], rng: np.random.Generator) -> Images:
    radius, sigma = params
    angles = rng.uniform(-45, 45, size=len(images))
    return np.stack(
        [
            cv2.filter2D(image, -1, motion_kernel(radius, sigma, angle))
            for image, angle in zip(images, angles, strict=True)
        ]
    )


def _zoomed(image: np.ndarray, factor: float) -> np.ndarray:
    """The image magnified by `factor` about its centre, cropped to its own size."""
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), 0, factor)
    return cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)


def zoom_blur(images: Images, top_factor: float, rng: np.random.Generator) -> Images:
    factors = np.arange(1, top_factor + 1e-9, 0.01)

    def blur(image: np.ndarray) -> np.ndarray:
        return (image + sum(_zoomed(image, f) for f in factors)) / (len(factors) + 1)

    return _per_image(images, blur)


def _plasma_fractals(count: int, size: int, decay: float, rng: np.random.Generator) -> Images:
    """`count` diamond-square height maps in 0..1 (the paper's fog): one batch, no Python loop
    over images."""
    maps = np.zeros((count, size, size), np.float64)
    step, wibble = size, 100.0

    def wibbled_mean(total: np.ndarray) -> np.ndarray:
        return total / 4 + wibble * rng.uniform(-wibble, wibble, total.shape)

    while step >= 2:
        half = step // 2
        corners = maps[:, ::step, ::step]
        square = corners + np.roll(corners, -1, axis=1)
        square = square + np.roll(square, -1, axis=2)
        maps[:, half::step, half::step] = wibbled_mean(square)
        centres = maps[:, half::step, half::step]
        corners = maps[:, ::step, ::step]
        across = (centres + np.roll(centres, 1, axis=1)) + (corners + np.roll(corners, -1, axis=2))
        maps[:, ::step, half::step] = wibbled_mean(across)
        down = (centres + np.roll(centres, 1, axis=2)) + (corners + np.roll(corners, -1, axis=1))
        maps[:, half::step, ::step] = wibbled_mean(down)
        step, wibble = half, wibble / decay
    maps -= maps.min(axis=(1, 2), keepdims=True)
    maps /= maps.max(axis=(1, 2), keepdims=True)
    return maps.astype(np.float32)


def fog(images: Images, params: tuple[float, float], rng: np.random.Generator) -> Images:
    strength, decay = params
    count, height, width = images.shape[:3]
    size = 1 << int(np.ceil(np.log2(max(height, width))))
    haze = _plasma_fractals(count, size, decay, rng)[:, :height, :width, None]
    brightest = images.max(axis=(1, 2, 3), keepdims=True)
    fogged: Images = (images + strength * haze) * brightest / (brightest + strength)
    return fogged


def _hsv_shift(images: Images, channel: int, scale: float, offset: float) -> Images:
    # cvtColor works pixel by pixel: the batch goes through as one tall image.
    shape = images.shape
    hsv = cv2.cvtColor(images.reshape(-1, shape[2], 3), cv2.COLOR_RGB2HSV)
    hsv[..., channel] = np.clip(hsv[..., channel] * scale + offset, 0, 1)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).reshape(shape)


def brightness(images: Images, offset: float, rng: np.random.Generator) -> Images:
    return _hsv_shift(images, 2, 1.0, offset)


def saturate(images: Images, params: tuple[float, float], rng: np.random.Generator) -> Images:
    return _hsv_shift(images, 1, *params)


def contrast(images: Images, factor: float, rng: np.random.Generator) -> Images:
    means = images.mean(axis=(1, 2), keepdims=True)
    flattened: Images = (images - means) * factor + means
    return flattened


def jpeg_compression(images: Images, quality: int, rng: np.random.Generator) -> Images:
    def recompress(image: np.ndarray) -> np.ndarray:
        bgr = np.round(image[..., ::-1] * 255).astype(np.uint8)
        ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("OpenCV could not encode a JPEG")
        decoded = np.asarray(cv2.imdecode(encoded, cv2.IMREAD_COLOR))
        return decoded[..., ::-1].astype(np.float32) / 255

    return _per_image(images, recompress)


def pixelate(images: Images, fraction: float, rng: np.random.Generator) -> Images:
    def blocky(image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        small_size = (int(width * fraction), int(height * fraction))
        # Box filtering both ways, as the paper's PIL.Image.BOX: nearest-neighbour upsampling
        # would shift whole pixel columns, a different corruption.
        small = cv2.resize(image, small_size, interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_AREA)

    return _per_image(images, blocky)


CORRUPTIONS: tuple[Corruption, ...] = (
    Corruption("gaussian_noise", "noise", (0.04, 0.06, 0.08, 0.09, 0.10), gaussian_noise),
    Corruption("shot_noise", "noise", (500, 250, 100, 75, 50), shot_noise),
    Corruption("impulse_noise", "noise", (0.01, 0.02, 0.03, 0.05, 0.07), impulse_noise),
    Corruption("speckle_noise", "noise", (0.06, 0.1, 0.12, 0.16, 0.2), speckle_noise),
    Corruption(
        "defocus_blur",
        "blur",
        ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
        defocus_blur,
    ),
    Corruption("gaussian_blur", "blur", (0.4, 0.6, 0.7, 0.8, 1.0), gaussian_blur),
    Corruption("motion_blur", "blur", ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)), motion_blur),
    Corruption("zoom_blur", "blur", (1.05, 1.10, 1.15, 1.20, 1.25), zoom_blur),
    Corruption("fog", "weather", ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)), fog),
    Corruption("brightness", "weather", (0.05, 0.1, 0.15, 0.2, 0.3), brightness),
    Corruption("contrast", "digital", (0.75, 0.5, 0.4, 0.3, 0.15), contrast),
    Corruption(
        "saturate", "digital", ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)), saturate
    ),
    Corruption("jpeg_compression", "digital", (80, 65, 58, 50, 40), jpeg_compression),
    Corruption("pixelate", "digital", (0.95, 0.9, 0.85, 0.75, 0.65), pixelate),
)
SEVERITIES = (1, 2, 3, 4, 5)


def by_name(names: Sequence[str] | None = None) -> tuple[Corruption, ...]:
    """The named corruptions, in the table's order (all of them for None)."""
    if names is None:
        return CORRUPTIONS
    known = {c.name: c for c in CORRUPTIONS}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise KeyError(f"unknown corruption {unknown[0]!r}; choose from {', '.join(known)}")
    return tuple(known[name] for name in names)


def corrupt(images: np.ndarray, corruption: Corruption, severity: int, seed: int = 0) -> np.ndarray:
    """uint8 RGB images (N, H, W, 3) under `corruption` at `severity` (1..5), as uint8.

    The generator is keyed by the corruption alone: each cell is the same images on every run, any
    cell can be run alone, and the severities of a corruption share their random draws (the same
    noise, scaled; the same blur direction), so severity is the only thing that changes along a
    curve."""
    rng = np.random.default_rng([seed, CORRUPTIONS.index(corruption)])
    pixels = images.astype(np.float32) / 255
    corrupted = corruption.apply(pixels, corruption.severities[severity - 1], rng)
    return np.round(np.clip(corrupted, 0, 1) * 255).astype(np.uint8)
