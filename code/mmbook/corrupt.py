"""Corruptions of pictures, written from scratch, for measuring robustness (Chapter 14).

Each function takes uint8 pictures ``(N, H, W, 3)`` (or one ``(H, W, 3)``) and a strength, and returns
uint8 pictures of the same shape; strength 0 returns the pictures unchanged. In the spirit of ImageNet-C
(Hendrycks and Dietterich, 2019), each corruption has a ladder of strengths, :data:`CORRUPTIONS`.

- :func:`gaussian_noise`: adds independent normal noise of standard deviation ``std`` (in 0–255 units).
- :func:`gaussian_blur`: a separable Gaussian filter with half-sample symmetric edges, the same filter as
  ``scipy.ndimage.gaussian_filter(..., mode="reflect", truncate=4.0)`` on the two picture axes.
- :func:`hue_shift`: rotates every pixel's hue by ``degrees`` in HSV, keeping saturation and value.
- :func:`occlude`: paints one grey square of ``round(sqrt(fraction) * side)`` pixels a side at a random
  place in each picture.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: The grey of the occluding square.
OCCLUDER = 128


def _as_batch(images: np.ndarray) -> tuple[np.ndarray, bool]:
    array = np.asarray(images)
    if array.dtype != np.uint8 or array.ndim not in (3, 4) or array.shape[-1] != 3:
        raise ValueError(f"expected uint8 RGB pictures (H, W, 3) or (N, H, W, 3), got {array.dtype} "
                         f"{array.shape}")
    return (array[None], True) if array.ndim == 3 else (array, False)


def _to_uint8(values: np.ndarray, single: bool) -> np.ndarray:
    out = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return out[0] if single else out


def gaussian_noise(images: np.ndarray, std: float, seed: int = 0) -> np.ndarray:
    """``images`` plus normal noise of standard deviation ``std`` (0–255 units), rounded and clipped."""
    batch, single = _as_batch(images)
    if std < 0:
        raise ValueError(f"std must be 0 or more, got {std}")
    noise = np.random.default_rng(seed).normal(0.0, std, batch.shape)
    return _to_uint8(batch + noise, single)


def gaussian_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """The normalised 1-D Gaussian of standard deviation ``sigma`` pixels, cut at ``truncate`` sigmas
    (radius ``int(truncate * sigma + 0.5)``, as SciPy cuts it)."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def blur_float(images: np.ndarray, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """Gaussian blur of float pictures ``(N, H, W, C)`` along H and W: one 1-D convolution per axis,
    edges mirrored half a sample out (``d c b a | a b c d``)."""
    kernel = gaussian_kernel(sigma, truncate)
    radius = len(kernel) // 2
    out = np.asarray(images, dtype=np.float64)
    for axis in (1, 2):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="symmetric")
        length = out.shape[axis]
        out = sum(w * np.take(padded, np.arange(i, i + length), axis=axis) for i, w in enumerate(kernel))
    return out


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """``images`` blurred by a Gaussian of standard deviation ``sigma`` pixels (0: unchanged)."""
    batch, single = _as_batch(images)
    if sigma < 0:
        raise ValueError(f"sigma must be 0 or more, got {sigma}")
    if sigma == 0:
        return batch[0].copy() if single else batch.copy()
    return _to_uint8(blur_float(batch, sigma), single)


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] → HSV in [0, 1] (hue as a fraction of a turn), element-wise on the last axis."""
    r, g, b = np.moveaxis(rgb, -1, 0)
    top, low = rgb.max(-1), rgb.min(-1)
    span = top - low
    safe = np.where(span > 0, span, 1.0)
    hue = np.where(top == r, (g - b) / safe, np.where(top == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    hue = np.where(span > 0, (hue / 6.0) % 1.0, 0.0)
    saturation = np.where(top > 0, span / np.where(top > 0, top, 1.0), 0.0)
    return np.stack([hue, saturation, top], -1)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """HSV in [0, 1] → RGB in [0, 1]: the inverse of :func:`rgb_to_hsv`."""
    h, s, v = np.moveaxis(hsv, -1, 0)
    sector = np.floor(h * 6.0)
    f = h * 6.0 - sector
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    sector = sector.astype(int) % 6
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    channels = [np.select([sector == k for k in range(6)], [c[i] for c in choices]) for i in range(3)]
    return np.stack(channels, -1)


def hue_shift(images: np.ndarray, degrees: float) -> np.ndarray:
    """``images`` with every pixel's hue turned by ``degrees`` (saturation and value kept)."""
    batch, single = _as_batch(images)
    hsv = rgb_to_hsv(batch / 255.0)
    hsv[..., 0] = (hsv[..., 0] + degrees / 360.0) % 1.0
    return _to_uint8(hsv_to_rgb(hsv) * 255.0, single)


def occluder_side(fraction: float, side: int) -> int:
    """The side in pixels of the square that covers ``fraction`` of a ``side`` × ``side`` picture."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
    return round(math.sqrt(fraction) * side)


def occlude(images: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """``images`` with a grey (:data:`OCCLUDER`) square of :func:`occluder_side` pixels a side, at a
    uniformly random place inside each picture."""
    batch, single = _as_batch(images)
    n, height, width, _ = batch.shape
    if height != width:
        raise ValueError(f"occlude expects square pictures, got {height}×{width}")
    size = occluder_side(fraction, height)
    out = batch.copy()
    corners = np.random.default_rng(seed).integers(0, height - size + 1, (n, 2))
    for picture, (y, x) in zip(out, corners, strict=True):
        picture[y : y + size, x : x + size] = OCCLUDER
    return out[0] if single else out


@dataclass(frozen=True)
class Corruption:
    """A corruption, its ladder of strengths (the first is 0: clean) and the strength's unit (Chapter 14)."""

    name: str
    apply: Callable[..., np.ndarray]
    strengths: tuple[float, ...]
    unit: str
    random: bool


#: The four corruptions of Chapter 14, seven strengths each.
CORRUPTIONS: dict[str, Corruption] = {c.name: c for c in (
    Corruption("noise", gaussian_noise, (0, 8, 16, 32, 48, 64, 96), "noise std (0-255)", True),
    Corruption("blur", gaussian_blur, (0, 0.5, 1, 1.5, 2, 3, 4), "blur sigma (pixels)", False),
    Corruption("hue", hue_shift, (0, 15, 30, 45, 60, 90, 180), "hue rotation (degrees)", False),
    Corruption("occlusion", occlude, (0, 0.05, 0.1, 0.2, 0.3, 0.45, 0.6), "occluded fraction", True),
)}  # fmt: skip


def corrupt(images: np.ndarray, name: str, strength: float, seed: int = 0) -> np.ndarray:
    """``images`` under the corruption ``name`` at ``strength`` (random ones drawn with ``seed``)."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; use one of {list(CORRUPTIONS)}")
    c = CORRUPTIONS[name]
    return c.apply(images, strength, seed) if c.random else c.apply(images, strength)
