"""mmbook.inputs: picture and text checks and their documented conversions (Chapter 8)."""

from __future__ import annotations

import numpy as np
import pytest
from mmbook import inputs
from mmbook.errors import InputError
from PIL import Image


def test_modes_become_rgb_as_documented() -> None:
    grey = Image.fromarray(np.full((20, 20), 100, np.uint8))
    assert np.asarray(inputs.to_rgb(grey))[0, 0].tolist() == [100, 100, 100]
    deep = Image.fromarray(np.full((20, 20), 65535, np.uint16))
    assert deep.mode.startswith("I;16") and np.asarray(inputs.to_rgb(deep))[0, 0].tolist() == [255, 255, 255]
    half = Image.fromarray(np.full((20, 20), 257 * 100, np.uint16))
    assert np.asarray(inputs.to_rgb(half))[0, 0].tolist() == [100, 100, 100]
    clear = Image.new("RGBA", (20, 20), (255, 0, 0, 0))
    assert np.asarray(inputs.to_rgb(clear))[0, 0].tolist() == [255, 255, 255]  # transparent → white
    opaque = Image.new("RGBA", (20, 20), (255, 0, 0, 255))
    assert np.asarray(inputs.to_rgb(opaque))[0, 0].tolist() == [255, 0, 0]
    wide = Image.fromarray(np.linspace(-5, 5, 400, dtype=np.float32).reshape(20, 20))
    stretched = np.asarray(inputs.to_rgb(wide))
    assert stretched.min() == 0 and stretched.max() == 255
    for mode in ("1", "P", "CMYK", "LA", "YCbCr"):
        assert inputs.to_rgb(Image.new(mode, (20, 20))).mode == "RGB"


def test_arrays_are_accepted() -> None:
    assert inputs.to_rgb(np.zeros((20, 30, 3), np.uint8)).size == (30, 20)
    assert inputs.to_rgb(np.ones((20, 20), np.float32)).getpixel((0, 0)) == (255, 255, 255)
    with pytest.raises(InputError, match="NaN"):
        inputs.to_rgb(np.full((20, 20), np.nan, np.float32))
    with pytest.raises(InputError, match="shape"):
        inputs.to_rgb(np.zeros((20, 20, 2), np.uint8))


def test_sizes_are_checked_and_large_pictures_shrunk(tmp_path) -> None:
    with pytest.raises(InputError, match="1×1 pixels"):
        inputs.to_rgb(Image.new("RGB", (1, 1)))
    big = inputs.to_rgb(Image.new("RGB", (3000, 1500)))
    assert max(big.size) == inputs.SHRINK_TO and big.size == (1024, 512)
    path = tmp_path / "huge.png"
    Image.new("1", (10_000, 10_000)).save(path)
    with pytest.raises(InputError, match="100 megapixels"):
        inputs.open_image(path)
    (tmp_path / "bad.png").write_bytes(b"not a picture")
    with pytest.raises(InputError, match="not a picture"):
        inputs.open_image(tmp_path / "bad.png")


def test_text_checks() -> None:
    assert inputs.check_text("  a   red circle ") == "a red circle"
    with pytest.raises(InputError, match="Please type the question"):
        inputs.check_text("", "question")
    with pytest.raises(InputError, match="'unicorn'"):
        inputs.check_text("a red unicorn", vocabulary={"a", "red"})
    with pytest.raises(InputError, match="the limit is 500"):
        inputs.check_text("x" * 501)
