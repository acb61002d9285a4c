"""Helpers several test modules share: bad uploads, a module-wide app client, and gated-solution cells."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image


def bad_pictures(folder: Path) -> dict[str, str]:
    """Uploads every picture tool must refuse or survive: a 1-pixel picture, a 100-megapixel one, a PNG
    whose body is not a picture, and a text file."""
    paths = {name: str(folder / file) for name, file in
             (("tiny", "tiny.png"), ("huge", "huge.png"), ("corrupt", "corrupt.png"), ("notes", "notes.txt"))}
    Image.new("RGB", (1, 1), (200, 30, 30)).save(paths["tiny"])
    Image.new("1", (10_000, 10_000)).save(paths["huge"])
    Path(paths["corrupt"]).write_bytes(b"\x89PNG\r\n\x1a\n this is not a picture")
    Path(paths["notes"]).write_text("a red circle")
    return paths


def module_client(demo: Any) -> Iterator[Any]:
    """Serve ``demo`` on 127.0.0.1 with the book's limits and yield a ``gradio_client.Client``; for module
    fixtures (``yield from module_client(app)``), closed after the module."""
    from gradio_client import Client
    from mmbook.demos import serve

    with serve(demo) as url:
        connection = Client(url, verbose=False)
        try:
            yield connection
        finally:
            connection.close()


def gated_solution_cells(cells: list) -> set[int]:
    """Indices of the cells of gated solutions (solution-start through solution-end, code included), counted
    independently of :func:`mmbook.book.student_edition`."""
    inside, found = False, set()
    for i, cell in enumerate(cells):
        inside = inside or (cell.cell_type == "markdown" and cell.source.startswith("::::{solution-start}"))
        if inside:
            found.add(i)
        if cell.cell_type == "markdown" and cell.source.rstrip().endswith("::::{solution-end}\n::::"):
            inside = False
    return found
