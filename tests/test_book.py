"""mmbook.book: glue outside a build, claims, source display, student editions."""

from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
import pytest
from helpers import gated_solution_cells
from mmbook import book

ROOT = Path(__file__).resolve().parent.parent


def test_glue_returns_the_value() -> None:
    assert book.glue("answer", 42) == 42


def test_glue_turns_numpy_scalars_into_python_numbers() -> None:
    value = book.glue("mean", np.float64(1.5))
    assert type(value) is float and repr(value) == "1.5"
    assert type(book.glue("count", np.int64(3))) is int


def test_claim_raises_in_the_book_runs(monkeypatch) -> None:
    monkeypatch.setenv("MMBOOK_STRICT", "1")
    book.claim(np.float64(0.9) > 0.5, "unused")
    with pytest.raises(book.ClaimError, match="A beats B") as caught:
        book.claim(np.bool_(False), "A beats B")
    assert isinstance(caught.value, AssertionError)


def test_claim_warns_a_reader_visibly_and_goes_on(monkeypatch, capsys) -> None:
    monkeypatch.delenv("MMBOOK_STRICT", raising=False)
    assert book.claim(True, "unused") is None
    assert capsys.readouterr().out == ""
    assert book.claim(0.4 > 0.5, "A beats B.") is None
    out = capsys.readouterr().out
    assert out.startswith("Note: this run differs from the book's: A beats B. The text")
    monkeypatch.setenv("MMBOOK_STRICT", "0")
    book.claim(False, "A beats B")
    assert capsys.readouterr().out.startswith("Note: ")


def test_the_makefile_makes_claims_strict() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "\nexport MMBOOK_STRICT := 1\n" in makefile


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
        markdown = [c.source for c in original.cells if c.cell_type == "markdown"]
        gated = sum(s.count("::::{solution-start}") for s in markdown)
        assert gated == sum(s.count("::::{solution-end}") for s in markdown)
        solutions = sum(s.count(":::{solution}") for s in markdown) + gated
        exercises = sum(s.count(":::{exercise}") for s in markdown)
        target = tmp_path / chapter.name
        assert book.student_edition(chapter, target) == solutions > 0
        student = nbformat.read(target, as_version=4)
        text = "\n".join(c.source for c in student.cells if c.cell_type == "markdown")
        assert "{solution" not in text
        assert text.count(":::{exercise}") == exercises
        dropped = gated_solution_cells(original.cells)
        assert len(student.cells) == len(original.cells) - len(dropped)
        code = [c.source for i, c in enumerate(original.cells) if c.cell_type == "code" and i not in dropped]
        assert [c.source for c in student.cells if c.cell_type == "code"] == code


def test_student_edition_cuts_a_gated_solution_with_its_code(tmp_path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(":::{exercise} Add\n:label: ex-add\n\nWhat is 6 * 7?\n:::"),
        nbformat.v4.new_markdown_cell("::::{solution-start} ex-add\n:class: dropdown\n::::\n\nMultiply:"),
        nbformat.v4.new_code_cell("print(6 * 7)"),
        nbformat.v4.new_markdown_cell("It is 42.\n\n::::{solution-end}\n::::"),
        nbformat.v4.new_code_cell("after = True"),
    ]
    source, target = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, source)
    assert book.student_edition(source, target) == 1
    assert [c.source for c in nbformat.read(target, as_version=4).cells] == [nb.cells[0].source, "after = True"]
    nb.cells = nb.cells[:3]
    nbformat.write(nb, source)
    with pytest.raises(ValueError, match="no solution-end"):
        book.student_edition(source, target)


def test_teachers_plan_has_a_session_for_every_chapter() -> None:
    plan = (ROOT / "book" / "teachers.md").read_text(encoding="utf-8")
    for chapter in sorted((ROOT / "chapters").glob("*.ipynb")):
        assert f"{{doc}}`../chapters/{chapter.stem}`" in plan, f"{chapter.name} has no session in the teachers' plan"
