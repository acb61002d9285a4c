"""The corruptions of Chapter 14 against measurements and reference implementations."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
from mmbook.corrupt import (
    CORRUPTIONS,
    OCCLUDER,
    blur_float,
    corrupt,
    gaussian_blur,
    gaussian_noise,
    hsv_to_rgb,
    hue_shift,
    occlude,
    occluder_side,
    rgb_to_hsv,
)
from scipy import ndimage


def pictures(n: int = 4, side: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, side, side, 3), dtype=np.uint8)


@pytest.mark.parametrize("std", [5.0, 20.0])
def test_noise_has_the_asked_standard_deviation(std: float) -> None:
    grey = np.full((8, 64, 64, 3), 128, np.uint8)  # far from 0 and 255: no clipping at these std
    added = gaussian_noise(grey, std, seed=1).astype(np.float64) - 128
    assert abs(added.mean()) < 0.1 * std
    # rounding to integers adds variance 1/12
    assert np.sqrt(added.var() - 1 / 12) == pytest.approx(std, rel=0.02)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.5])
def test_blur_matches_scipy(sigma: float) -> None:
    images = pictures().astype(np.float64)
    ours = blur_float(images, sigma)
    scipy_blur = ndimage.gaussian_filter(images, sigma=(0, sigma, sigma, 0), mode="reflect", truncate=4.0)
    np.testing.assert_allclose(ours, scipy_blur, atol=1e-9)
    rounded = gaussian_blur(pictures(), sigma)
    assert np.abs(rounded.astype(float) - scipy_blur).max() <= 0.5 + 1e-9


def test_hsv_round_trip_matches_colorsys() -> None:
    rgb = np.random.default_rng(2).random((500, 3))
    rgb[:10] = rgb[:10, :1]  # greys: no hue
    hsv = rgb_to_hsv(rgb)
    expected = np.array([colorsys.rgb_to_hsv(*p) for p in rgb])
    np.testing.assert_allclose(hsv, expected, atol=1e-12)
    np.testing.assert_allclose(hsv_to_rgb(hsv), rgb, atol=1e-12)


def test_hue_shift_turns_the_palette_and_keeps_greys() -> None:
    red = np.zeros((1, 2, 2, 3), np.uint8)
    red[..., 0] = 255
    assert hue_shift(red, 120)[0, 0, 0].tolist() == [0, 255, 0]
    assert hue_shift(red, 240)[0, 0, 0].tolist() == [0, 0, 255]
    grey = np.full((1, 4, 4, 3), 77, np.uint8)
    assert np.array_equal(hue_shift(grey, 90), grey)
    images = pictures()
    assert np.abs(hue_shift(images, 360).astype(int) - images).max() <= 1


@pytest.mark.parametrize("fraction", [0.05, 0.2, 0.6, 1.0])
def test_occlusion_covers_exactly_the_square(fraction: float) -> None:
    images = np.zeros((6, 32, 32, 3), np.uint8)
    side = occluder_side(fraction, 32)
    assert side == round(np.sqrt(fraction) * 32)
    covered = (occlude(images, fraction, seed=3) == OCCLUDER).all(-1)
    assert covered.sum((1, 2)).tolist() == [side * side] * 6
    rows, cols = covered.any(2), covered.any(1)
    assert (rows.sum(1) == side).all() and (cols.sum(1) == side).all()  # one square, not scattered pixels


def test_strength_zero_is_the_identity_and_shapes_are_kept() -> None:
    images = pictures()
    for name, c in CORRUPTIONS.items():
        assert c.strengths[0] == 0 and len(c.strengths) >= 6 and list(c.strengths) == sorted(c.strengths)
        assert np.array_equal(corrupt(images, name, 0), images), name
        one = corrupt(images[0], name, c.strengths[-1])
        assert one.shape == images[0].shape and one.dtype == np.uint8
        assert not np.array_equal(one, images[0]), name


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="uint8 RGB"):
        gaussian_noise(np.zeros((4, 4)), 1.0)
    with pytest.raises(ValueError, match="0 or more"):
        gaussian_blur(pictures(), -1)
    with pytest.raises(ValueError, match="between 0 and 1"):
        occlude(pictures(), 1.5)
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(pictures(), "fog", 1)
