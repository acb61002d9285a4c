"""Checks and conversions of the pictures and text a user gives a model (Chapter 8; every app uses them).

Each function returns the clean value or raises :class:`mmbook.errors.InputError` (a ``ValueError``) with a
sentence for the person who gave the input; the apps turn it into ``gr.Error``.

- :func:`open_image` / :func:`to_rgb`: any picture → an RGB ``PIL.Image``. Grey (``L``, ``1``) is copied to
  three channels; 16-bit grey (``I;16``) is mapped from 0–65535 to 0–255; 32-bit (``I``, ``F``) is
  stretched from its minimum to its maximum; transparency (``RGBA``, ``LA``, palettes) is laid over white;
  other colour spaces (``CMYK``, ``YCbCr``, ...) go through PIL's conversion. Pictures smaller than
  :data:`MIN_SIDE` pixels a side or larger than :data:`~mmbook.limits.MAX_PIXELS` are refused (the large
  ones before they are decoded); pictures larger than :data:`SHRINK_TO` pixels a side are shrunk first
  (every processor shrinks them further anyway, to 224–384 pixels).
- :func:`check_text`: empty text and text beyond :data:`~mmbook.limits.MAX_TEXT_CHARS` or the model's
  context are refused; with ``vocabulary``, words the model never saw are refused too (a word-level
  stand-in would map them to ``[UNK]``).

Sound has its own module, :mod:`mmbook.sound`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from mmbook.errors import InputError
from mmbook.limits import MAX_PIXELS, MAX_TEXT_CHARS

#: Pictures with a side shorter than this many pixels are refused.
MIN_SIDE = 16
#: Pictures with a side longer than this many pixels are shrunk to it before any model sees them.
SHRINK_TO = 1024


# ----------------------------------------------------------------------------------------------------
# pictures


def check_size(width: int, height: int) -> None:
    """Refuse pictures that are too small to show anything or too large to decode safely (Chapter 8)."""
    if min(width, height) < MIN_SIDE:
        raise InputError(f"The picture is {width}×{height} pixels, too small to show anything; "
                         f"please use one at least {MIN_SIDE}×{MIN_SIDE} pixels.")
    if width * height > MAX_PIXELS:
        side = math.isqrt(MAX_PIXELS)
        raise InputError(f"The picture is {width:,}×{height:,} pixels ({width * height / 1e6:,.0f} megapixels); "
                         f"the limit is {MAX_PIXELS:,} pixels ({side:,}×{side:,}). Please scale it down first "
                         f"(the models see at most 384×384 pixels anyway).")


def open_image(path: str | Path) -> Any:
    """Open a picture file, checking its size *before* decoding it, and return it as RGB (Chapter 8)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise InputError(f"The picture is far too large to open ({exc}).") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"This file is not a picture that can be read ({type(exc).__name__}).") from None
    check_size(*image.size)
    try:
        if max(image.size) > SHRINK_TO:
            image.draft("RGB", (SHRINK_TO, SHRINK_TO))  # JPEG: decode at a reduced scale
        image.load()
    except (OSError, ValueError) as exc:
        raise InputError(f"The picture file is damaged and cannot be decoded ({exc}).") from None
    return to_rgb(image)


def _from_array(array: np.ndarray) -> Any:
    from PIL import Image

    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise InputError(f"A picture must be H×W, H×W×3 or H×W×4; got an array of shape {array.shape}.")
    if array.dtype == np.uint8:
        return Image.fromarray(array)
    if array.dtype == np.uint16:
        return Image.fromarray((array / 257).round().astype(np.uint8))
    if array.dtype == bool:
        return Image.fromarray(array.astype(np.uint8) * 255)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise InputError("The picture contains NaN or infinite values.")
        scale = 255 if array.max() <= 1.0 else 1  # floats in [0, 1], or already 0-255
        return Image.fromarray(np.clip(array * scale, 0, 255).round().astype(np.uint8))
    raise InputError(f"Pictures of type {array.dtype} are not supported; use uint8, uint16 or float.")


def to_rgb(image: Any) -> Any:
    """``image`` (a ``PIL.Image`` in any mode, or an array) as an RGB ``PIL.Image``, checked and converted as
    the module documents (Chapter 8)."""
    from PIL import Image

    if isinstance(image, (str, Path)):
        return open_image(image)
    if isinstance(image, np.ndarray):
        check_size(image.shape[1] if image.ndim > 1 else 1, image.shape[0])
        image = _from_array(image)
    if not isinstance(image, Image.Image):
        raise InputError(f"Expected a picture, got {type(image).__name__}.")
    check_size(*image.size)
    if max(image.size) > SHRINK_TO:
        image = image.copy()
        image.thumbnail((SHRINK_TO, SHRINK_TO))
    mode = image.mode
    if mode.startswith("I;16"):
        grey = np.asarray(image, dtype=np.float64) / 257  # 0-65535 → 0-255
        image = Image.fromarray(grey.round().astype(np.uint8))
    elif mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        stretched = (values - low) / (high - low) * 255 if high > low else np.zeros_like(values)
        image = Image.fromarray(stretched.round().astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return image.convert("RGB")


def pixel_statistics(values: Any) -> dict[str, Any]:
    """Shape, dtype, minimum, maximum, mean and standard deviation of an image or tensor (Chapter 8)."""
    array = np.asarray(values.numpy() if hasattr(values, "numpy") else values)
    return {"shape": tuple(array.shape), "dtype": str(array.dtype), "min": float(array.min()),
            "max": float(array.max()), "mean": float(array.mean()), "std": float(array.std())}  # fmt: skip


# ----------------------------------------------------------------------------------------------------
# text


def check_text(text: Any, what: str = "text", *, tokenizer: Any = None, max_tokens: int | None = None,
               vocabulary: Iterable[str] | None = None) -> str:
    """``text`` stripped, or an :class:`InputError`: empty, too long (characters, or tokens of ``tokenizer``
    beyond ``max_tokens``), or with words outside ``vocabulary`` (Chapter 8)."""
    from mmbook.data import words

    if not isinstance(text, str) or not text.strip():
        raise InputError(f"Please type the {what}.")
    text = " ".join(text.split())
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(f"The {what} has {len(text):,} characters; the limit is {MAX_TEXT_CHARS}.")
    if vocabulary is not None:
        known = set(vocabulary)
        unknown = sorted({w for w in words(text) if w not in known})
        if unknown:
            raise InputError(f"The offline model never saw the word(s) {', '.join(map(repr, unknown))}; it knows "
                             "only the words of the shapes world (colours, shapes, positions, numbers).")
    if tokenizer is not None and max_tokens is not None:
        count = len(tokenizer(text)["input_ids"])
        if count > max_tokens:
            raise InputError(f"The {what} has {count} tokens; the model reads at most {max_tokens}.")
    return text



__all__ = ["MIN_SIDE", "SHRINK_TO", "check_size", "check_text", "open_image", "pixel_statistics", "to_rgb"]
