"""mmbook.tasks: input checks and documented conversions (Chapter 8)."""

from __future__ import annotations

import numpy as np
import pytest
from mmbook import tasks
from PIL import Image


def test_modes_become_rgb_as_documented() -> None:
    grey = Image.fromarray(np.full((20, 20), 100, np.uint8))
    assert np.asarray(tasks.to_rgb(grey))[0, 0].tolist() == [100, 100, 100]
    deep = Image.fromarray(np.full((20, 20), 65535, np.uint16))
    assert deep.mode.startswith("I;16") and np.asarray(tasks.to_rgb(deep))[0, 0].tolist() == [255, 255, 255]
    half = Image.fromarray(np.full((20, 20), 257 * 100, np.uint16))
    assert np.asarray(tasks.to_rgb(half))[0, 0].tolist() == [100, 100, 100]
    clear = Image.new("RGBA", (20, 20), (255, 0, 0, 0))
    assert np.asarray(tasks.to_rgb(clear))[0, 0].tolist() == [255, 255, 255]  # transparent → white
    opaque = Image.new("RGBA", (20, 20), (255, 0, 0, 255))
    assert np.asarray(tasks.to_rgb(opaque))[0, 0].tolist() == [255, 0, 0]
    wide = Image.fromarray(np.linspace(-5, 5, 400, dtype=np.float32).reshape(20, 20))
    stretched = np.asarray(tasks.to_rgb(wide))
    assert stretched.min() == 0 and stretched.max() == 255
    for mode in ("1", "P", "CMYK", "LA", "YCbCr"):
        assert tasks.to_rgb(Image.new(mode, (20, 20))).mode == "RGB"


def test_arrays_are_accepted() -> None:
    assert tasks.to_rgb(np.zeros((20, 30, 3), np.uint8)).size == (30, 20)
    assert tasks.to_rgb(np.ones((20, 20), np.float32)).getpixel((0, 0)) == (255, 255, 255)
    with pytest.raises(tasks.InputError, match="NaN"):
        tasks.to_rgb(np.full((20, 20), np.nan, np.float32))
    with pytest.raises(tasks.InputError, match="shape"):
        tasks.to_rgb(np.zeros((20, 20, 2), np.uint8))


def test_sizes_are_checked_and_large_pictures_shrunk(tmp_path) -> None:
    with pytest.raises(tasks.InputError, match="1×1 pixels"):
        tasks.to_rgb(Image.new("RGB", (1, 1)))
    big = tasks.to_rgb(Image.new("RGB", (3000, 1500)))
    assert max(big.size) == tasks.SHRINK_TO and big.size == (1024, 512)
    path = tmp_path / "huge.png"
    Image.new("1", (10_000, 10_000)).save(path)
    with pytest.raises(tasks.InputError, match="100 megapixels"):
        tasks.open_image(path)
    (tmp_path / "bad.png").write_bytes(b"not a picture")
    with pytest.raises(tasks.InputError, match="not a picture"):
        tasks.open_image(tmp_path / "bad.png")


def test_audio_is_made_mono_16k_float() -> None:
    stereo = (np.sin(np.arange(8000) / 5)[:, None] * [10_000, 20_000]).astype(np.int16)
    out = tasks.prepare_audio(stereo, 8000)
    assert out.dtype == np.float32 and out.ndim == 1 and len(out) == 16_000
    assert np.abs(out).max() == pytest.approx(15_000 / 32768, rel=0.05)
    same = tasks.prepare_audio(np.sin(np.arange(16_000) / 5).astype(np.float32) * 0.5, 16_000)
    assert len(same) == 16_000
    unsigned = tasks.prepare_audio((np.sin(np.arange(8000) / 5) * 100 + 128).astype(np.uint8), 8000)
    assert abs(float(unsigned.mean())) < 0.01


@pytest.mark.parametrize(
    ("samples", "rate", "message"),
    [
        (np.zeros(0, np.int16), 8000, "empty"),
        (np.zeros(8000, np.int16), 8000, "silent"),
        (np.ones(100, np.int16) * 1000, 8000, "at least 100 ms"),
        (np.ones(8000 * 31, np.int16) * 1000, 8000, "lasts 31.0 s"),
        (np.ones(8000, np.int16), 10, "sample rate"),
        (np.full(8000, np.inf, np.float32), 8000, "NaN or infinite"),
    ],
)
def test_bad_audio_is_refused(samples, rate, message) -> None:
    with pytest.raises(tasks.InputError, match=message):
        tasks.prepare_audio(samples, rate)


def test_text_checks() -> None:
    assert tasks.check_text("  a   red circle ") == "a red circle"
    with pytest.raises(tasks.InputError, match="Please type the question"):
        tasks.check_text("", "question")
    with pytest.raises(tasks.InputError, match="'unicorn'"):
        tasks.check_text("a red unicorn", vocabulary={"a", "red"})
    with pytest.raises(tasks.InputError, match="the limit is 500"):
        tasks.check_text("x" * 501)
