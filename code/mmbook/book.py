"""Helpers for the book's pages: glued values and the package's own source on the page (Chapter 1).

``glue`` stores a value computed by a cell so that the prose can cite it ({glue:text}`name`) instead of
a number typed by hand; outside a book build (Colab, plain Jupyter) it simply returns the value.
``show_source`` displays the code of an ``mmbook`` function or class, so the code a reader reads is the
code the package runs.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import numpy as np

SOLUTION_BLOCK = re.compile(r"\n*^:::\{solution\}.*?^:::[ \t]*$", flags=re.DOTALL | re.MULTILINE)


def glue(name: str, value: Any, display: bool = False) -> Any:
    """Glue ``value`` under ``name`` for the prose when myst-nb is present; return it (Chapter 1).

    NumPy scalars (what pandas and NumPy reductions return) become Python numbers first: a format such as
    ``:.1f`` in the prose is applied to the glued ``repr``, and ``np.float64(1.5)`` does not parse.
    """
    if isinstance(value, np.generic):
        value = value.item()
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return value
    myst_glue(name, value, display=display)
    return value


def show_source(obj: Any) -> None:
    """Display the source code of ``obj`` with syntax highlighting (Chapter 1)."""
    from IPython.display import Markdown, display

    module = inspect.getmodule(obj)
    origin = f"# from {module.__name__}\n" if module else ""
    display(Markdown(f"```python\n{origin}{inspect.getsource(obj).rstrip()}\n```"))


def student_edition(source: str | Path, target: str | Path) -> int:
    """Write a copy of the notebook ``source`` without its solution blocks; return how many were cut.

    Used by teachers (see "For teachers"); solutions are ``:::{solution}`` ... ``:::`` blocks.
    """
    import nbformat

    nb = nbformat.read(source, as_version=4)
    removed = 0
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source, count = SOLUTION_BLOCK.subn("", cell.source)
            removed += count
    nbformat.write(nb, target)
    return removed
