"""mmbook.book: glue outside a build, source display, student editions."""

from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
from mmbook import book

ROOT = Path(__file__).resolve().parent.parent


def test_glue_returns_the_value() -> None:
    assert book.glue("answer", 42) == 42


def test_glue_turns_numpy_scalars_into_python_numbers() -> None:
    value = book.glue("mean", np.float64(1.5))
    assert type(value) is float and repr(value) == "1.5"
    assert type(book.glue("count", np.int64(3))) is int


def test_show_source_displays_the_package_code(monkeypatch) -> None:
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    book.show_source(book.glue)
    (markdown,) = shown
    assert markdown.data.startswith("```python\n# from mmbook.book\ndef glue(")
    assert markdown.data.rstrip().endswith("```")


def test_student_edition_removes_every_solution(tmp_path) -> None:
    for chapter in sorted((ROOT / "chapters").glob("*.ipynb")):
        original = nbformat.read(chapter, as_version=4)
        solutions = sum(c.source.count(":::{solution}") for c in original.cells if c.cell_type == "markdown")
        exercises = sum(c.source.count(":::{exercise}") for c in original.cells if c.cell_type == "markdown")
        target = tmp_path / chapter.name
        assert book.student_edition(chapter, target) == solutions > 0
        student = nbformat.read(target, as_version=4)
        text = "\n".join(c.source for c in student.cells if c.cell_type == "markdown")
        assert "{solution}" not in text
        assert text.count(":::{exercise}") == exercises
        assert len(student.cells) == len(original.cells)
        code = [c.source for c in original.cells if c.cell_type == "code"]
        assert [c.source for c in student.cells if c.cell_type == "code"] == code


def test_teachers_plan_has_a_session_for_every_chapter() -> None:
    plan = (ROOT / "book" / "teachers.md").read_text(encoding="utf-8")
    for chapter in sorted((ROOT / "chapters").glob("*.ipynb")):
        assert f"{{doc}}`../chapters/{chapter.stem}`" in plan, f"{chapter.name} has no session in the teachers' plan"
