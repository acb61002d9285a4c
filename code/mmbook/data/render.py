"""Pictures and sounds of the shapes world: anti-aliased shape masks composited over a background, and one
tone per shape from a wavetable (Chapter 2). :func:`mmbook.data.shapes.make_shapes` calls
:func:`render_images` and :func:`render_audio` on whole batches.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from mmbook.data.world import CLIP_SECONDS, IMAGE_SIZES, RADIUS, SAMPLE_RATE, SHAPE_KINDS, SIZES, WAVEFORMS


def _inside(kind: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Which points (u, v), in units of the radius around the centre (v points down), lie in the shape."""
    au, av = np.abs(u), np.abs(v)
    if kind == "circle":
        return u**2 + v**2 <= 1.0
    if kind == "square":
        return np.maximum(au, av) <= 0.85
    if kind == "triangle":  # apex up, base at v = 0.9
        return (v >= -1.0) & (v <= 0.9) & (au <= 1.1 * (v + 1.0) / 1.9)
    if kind == "diamond":
        return au + av <= 1.05
    return ((au <= 0.35) & (av <= 1.0)) | ((av <= 0.35) & (au <= 1.0))  # cross


def centre(index: int, image_size: int) -> int:
    """Pixel coordinate of the centre of grid row or column ``index``, on a pixel corner for crisp shapes."""
    return round((index + 0.5) * image_size / 3)


@lru_cache(maxsize=len(IMAGE_SIZES))
def masks(image_size: int, supersample: int = 4) -> np.ndarray:
    """Anti-aliased alpha masks, flattened, indexed by (kind * 2 + size) * 9 + cell; the last one is empty."""
    cell = image_size / 3
    sub = (np.arange(image_size * supersample) + 0.5) / supersample
    stack = np.zeros((len(SHAPE_KINDS) * len(SIZES) * 9 + 1, image_size, image_size), np.float32)
    for k, kind in enumerate(SHAPE_KINDS):
        for z, size in enumerate(SIZES):
            radius = RADIUS[size] * cell
            for c in range(9):
                cy, cx = centre(c // 3, image_size), centre(c % 3, image_size)
                inside = _inside(kind, (sub[None, :] - cx) / radius, (sub[:, None] - cy) / radius)
                shape = (image_size, supersample, image_size, supersample)
                stack[(k * len(SIZES) + z) * 9 + c] = inside.reshape(shape).mean(axis=(1, 3))
    return stack.reshape(len(stack), -1)


def _wave(waveform: str, phase: np.ndarray) -> np.ndarray:
    """One period of ``waveform`` evaluated at ``phase`` in [0, 1), zero mean, peak 1."""
    if waveform == "sine":
        return np.sin(2 * np.pi * phase)
    if waveform == "square":
        return np.where(phase < 0.5, 1.0, -1.0)
    if waveform == "triangle":
        return 1 - 4 * np.abs(phase - 0.5)
    if waveform == "sawtooth":
        return 2 * phase - 1
    return np.where(phase < 0.25, 1.0, -1 / 3)  # pulse, 25 % duty


_TABLE_SIZE = 1024  # samples per period in the wavetable, a power of two
#: One period of each kind's waveform, then a silent row for empty slots.
_WAVETABLE = np.concatenate(
    [_wave(WAVEFORMS[kind], np.arange(_TABLE_SIZE) / _TABLE_SIZE) for kind in SHAPE_KINDS]
    + [np.zeros(_TABLE_SIZE)]
).astype(np.float32)


def render_images(
    rng: np.random.Generator, mask_index: np.ndarray, rgb: np.ndarray, background: np.ndarray, image_size: int
) -> np.ndarray:
    """Composite the masks (shapes never overlap) over a plain background and add slight uniform noise."""
    alpha = masks(image_size)
    # pixel = background + sum over slots of alpha * (colour - background): one small matrix product
    images = np.matmul(alpha[mask_index].transpose(0, 2, 1), rgb - background[:, None, None])
    images += background[:, None, None]
    images += 12 * rng.random(images.shape, np.float32) - 5.5  # noise in [-6, 6), +0.5 to round below
    np.clip(images, 0, 255, out=images)
    return images.astype(np.uint8).reshape(-1, image_size, image_size, 3)


def render_audio(
    rng: np.random.Generator, wave_index: np.ndarray, hz: np.ndarray, phase: np.ndarray, loudness: np.ndarray
) -> np.ndarray:
    """One tone per slot in order, looked up in the wavetable, with fades, silence and slight noise."""
    n, slots = wave_index.shape
    total = int(SAMPLE_RATE * CLIP_SECONDS)
    length = total // slots
    t = np.arange(length, dtype=np.float32) / SAMPLE_RATE
    steps = np.multiply((hz * _TABLE_SIZE)[:, :, None], t, dtype=np.float32)
    steps += (phase * _TABLE_SIZE)[:, :, None]
    index = steps.astype(np.int32)
    index &= _TABLE_SIZE - 1
    index += (wave_index * _TABLE_SIZE)[:, :, None]
    wave = _WAVETABLE[index]
    ramp, tone = 0.01, 0.85 * length / SAMPLE_RATE  # 10 ms fade in and out, then silence
    wave *= np.clip(np.minimum(t, tone - t) / ramp, 0, 1).astype(np.float32)
    wave *= loudness[:, :, None]
    audio = 0.04 * rng.random((n, total), np.float32) - 0.02  # noise in [-0.02, 0.02)
    audio[:, : slots * length] += wave.reshape(n, -1)
    return audio
