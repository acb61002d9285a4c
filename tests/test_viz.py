"""mmbook.viz: the Chapter 2 figure and table helpers."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from mmbook.viz import Table, box_diagram, plot_audio, table, upscale_nearest


def test_table_renders_markdown_and_html() -> None:
    t = table(["name", "value"], [["pi", 3.14159], ["count", 12345], ["a|b", "<x>"]], digits=3)
    assert isinstance(t, Table)
    lines = t.markdown.splitlines()
    assert lines[0] == "| name | value |" and lines[1] == "|---|---|"
    assert "| pi | 3.142 |" in lines and "| count | 12,345 |" in lines
    assert "a\\|b" in t.markdown  # a pipe in a cell cannot end the cell
    assert "<td>&lt;x&gt;</td>" in t.html and t.html.count("<tr>") == 4
    assert t._repr_html_() == t.html and str(t) == t.markdown
    with pytest.raises(ValueError, match="one cell per header"):
        table(["a", "b"], [[1]])


def test_upscale_nearest_keeps_colour_images_exact() -> None:
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    big = upscale_nearest(image, 256)
    assert big.shape == (256, 256, 3) and big.dtype == np.uint8
    assert (big[::8, ::8] == image).all() and (big[7::8, 7::8] == image).all()


def test_plot_audio_draws_wave_and_spectrogram() -> None:
    rate = 8000
    tone = np.sin(2 * np.pi * 500 * np.arange(rate // 2) / rate)
    wave_ax, spec_ax = plot_audio(tone, rate, max_hz=1000, title="tone")
    assert wave_ax.get_title() == "tone" and spec_ax.get_ylim() == (0, 1000)
    assert len(wave_ax.lines) == 1 and spec_ax.images
    with pytest.raises(ValueError, match="1-D"):
        plot_audio(np.zeros((2, 10)), rate)
    plt.close("all")


def test_box_diagram_draws_every_box_and_arrow() -> None:
    fig, ax = plt.subplots()
    boxes = {"a": (0.2, 0.5, "input"), "b": (0.5, 0.5, "model"), "c": (0.8, 0.5, "output")}
    box_diagram(ax, boxes, [("a", "b"), ("b", "c", "predict")], colors={"b": "#ffeeee"})
    assert len(ax.patches) == 3 + 2
    assert {t.get_text() for t in ax.texts} == {"input", "model", "output", "predict"}
    assert not ax.axison
    plt.close(fig)
