"""Figure and table helpers shared by the chapters (Chapter 2 on).

- :func:`upscale_nearest`: enlarge a small picture without blurring its pixels.
- :func:`plot_audio`: a waveform and its spectrogram, side by side or stacked.
- :func:`box_diagram`: boxes and arrows, for pipeline and architecture figures.
- :func:`table`: a table built by code, displayed without pandas.

Matplotlib and IPython are imported inside the functions, so apps that only need
:func:`upscale_nearest` do not pay for them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

import numpy as np


def upscale_nearest(image: np.ndarray, size: int = 256) -> np.ndarray:
    """Enlarge a square ``H×W[×C]`` image to ``size×size`` by repeating pixels (Chapter 2).

    ``size`` must be a multiple of the image side, so every original pixel becomes an exact block and
    ``out[::k, ::k]`` gives the original back.
    """
    image = np.asarray(image)
    side = image.shape[0]
    if image.ndim not in (2, 3) or image.shape[1] != side:
        raise ValueError(f"expected a square H×W or H×W×C image, got shape {image.shape}")
    if size % side:
        raise ValueError(f"size {size} is not a multiple of the image side {side}")
    k = size // side
    return np.repeat(np.repeat(image, k, axis=0), k, axis=1)


def plot_audio(
    audio: np.ndarray,
    sample_rate: int,
    *,
    axes: Sequence[Any] | None = None,
    title: str | None = None,
    max_hz: float | None = None,
) -> Sequence[Any]:
    """Plot a mono clip's waveform and its spectrogram on two axes and return them (Chapter 2).

    The spectrogram is matplotlib's ``specgram`` (short-time Fourier transform, 256-sample Hann windows
    with 75 % overlap), in decibels; ``max_hz`` crops the frequency axis.
    """
    import matplotlib.pyplot as plt

    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim != 1:
        raise ValueError(f"expected a 1-D clip, got shape {audio.shape}")
    if axes is None:
        _, axes = plt.subplots(2, 1, figsize=(6, 4), sharex=True)
    wave_ax, spec_ax = axes
    t = np.arange(len(audio)) / sample_rate
    wave_ax.plot(t, audio, linewidth=0.5, color="C0")
    wave_ax.set_ylabel("amplitude")
    wave_ax.set_xlim(0, t[-1])
    if title:
        wave_ax.set_title(title)
    spec_ax.specgram(audio, NFFT=256, Fs=sample_rate, noverlap=192, window=np.hanning(256), cmap="magma")
    spec_ax.set_ylabel("frequency (Hz)")
    spec_ax.set_xlabel("time (s)")
    spec_ax.set_ylim(0, max_hz or sample_rate / 2)
    return axes


def box_diagram(
    ax: Any,
    boxes: Mapping[str, tuple[float, float, str]],
    arrows: Sequence[tuple[str, str] | tuple[str, str, str]],
    *,
    width: float = 0.16,
    height: float = 0.1,
    colors: Mapping[str, str] | None = None,
    fontsize: float = 8.5,
) -> None:
    """Draw labelled boxes and the arrows between them on ``ax`` (Chapter 2).

    ``boxes`` maps a name to ``(x, y, text)``, the box centre in axes coordinates (0 to 1) and its text;
    ``arrows`` lists ``(start, end)`` or ``(start, end, label)`` pairs of box names; ``colors`` optionally
    maps box names to fill colours. The axes are switched off.
    """
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    colors = colors or {}
    for name, (x, y, text) in boxes.items():
        ax.add_patch(
            FancyBboxPatch(
                (x - width / 2, y - height / 2), width, height, boxstyle="round,pad=0.008",
                facecolor=colors.get(name, "#eef3fb"), edgecolor="#34495e", linewidth=1.0,
            )
        )
        ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, wrap=True)

    def edge(name: str, toward: tuple[float, float]) -> tuple[float, float]:
        """The point where the segment from the centre of ``name`` toward ``toward`` leaves its box."""
        x, y, _ = boxes[name]
        dx, dy = toward[0] - x, toward[1] - y
        scale = min(
            (width / 2) / abs(dx) if dx else np.inf,
            (height / 2) / abs(dy) if dy else np.inf,
        )
        return x + dx * scale, y + dy * scale

    for arrow in arrows:
        start, end = arrow[0], arrow[1]
        (x0, y0, _), (x1, y1, _) = boxes[start], boxes[end]
        p0, p1 = edge(start, (x1, y1)), edge(end, (x0, y0))
        ax.add_patch(FancyArrowPatch(p0, p1, arrowstyle="-|>", mutation_scale=11, color="#34495e", linewidth=1.0))
        if len(arrow) == 3:
            ax.text((p0[0] + p1[0]) / 2, (p0[1] + p1[1]) / 2 + 0.02, arrow[2], ha="center", va="bottom",
                    fontsize=fontsize - 1, style="italic", color="#34495e")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, float | np.floating):
        return f"{value:,.{digits}f}"
    if isinstance(value, int | np.integer):
        return f"{value:,}"
    return str(value).replace("\n", " ")


@dataclass(frozen=True)
class Table:
    """A small table computed by code, shown as HTML in notebooks and the book, as Markdown in text (Chapter 2).

    Build it with :func:`table`; ``markdown`` and ``html`` hold the two renderings.
    """

    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    @property
    def markdown(self) -> str:
        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

        return "\n".join([line(self.headers), "|" + "---|" * len(self.headers), *map(line, self.rows)])

    @property
    def html(self) -> str:
        def line(cells: Sequence[str], tag: str) -> str:
            return "<tr>" + "".join(f"<{tag}>{escape(c)}</{tag}>" for c in cells) + "</tr>"

        body = "".join(line(row, "td") for row in self.rows)
        return f'<table class="mmbook-table"><thead>{line(self.headers, "th")}</thead><tbody>{body}</tbody></table>'

    def _repr_markdown_(self) -> str:
        return self.markdown

    def _repr_html_(self) -> str:
        return self.html

    def __str__(self) -> str:
        return self.markdown


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, digits: int = 2) -> Table:
    """A table of computed values for display without pandas (Chapter 2).

    Floats are shown with ``digits`` decimals and integers with thousands separators. Jupyter and the book
    render it as HTML; ``print`` gives Markdown.
    """
    if any(len(row) != len(headers) for row in rows):
        raise ValueError("every row needs one cell per header")
    return Table(tuple(map(str, headers)), tuple(tuple(_cell(v, digits) for v in row) for row in rows))


def heat_overlay(image: np.ndarray, heat: np.ndarray, scale: int = 8, floor: float = 0.3) -> np.ndarray:
    """The picture upscaled ``scale`` times, dimmed to ``floor`` where ``heat`` is low, lit where high (Chapter 4)."""
    from PIL import Image

    height, width = image.shape[:2]
    size = (width * scale, height * scale)
    big = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.NEAREST), dtype=np.float64)
    level = heat / heat.max() if heat.max() > 0 else heat
    level = np.asarray(Image.fromarray(level.astype(np.float32)).resize(size, Image.Resampling.BILINEAR))
    level = np.clip(level, 0, 1)[..., None]
    lit = big * (floor + (1 - floor) * level) + 70 * level  # the glow shows attention on the background too
    return np.clip(lit, 0, 255).round().astype(np.uint8)
