"""The Colab and student editions (``colab/``, ``colab/student/``): complete, plain Markdown, and in sync.

``scripts/colab_edition.py`` writes them from the executed chapters. The sync check converts each chapter
again with the glued values masked (``<span title="name">…</span>`` becomes ``name``), so values that
change from run to run, such as timings, never make it fail, and it needs no executed notebook.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import nbformat
import pytest
from helpers import gated_solution_cells

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
EDITIONS = {"colab": ROOT / "colab", "student": ROOT / "colab" / "student"}
MYST = re.compile(r"\{[\w:-]+\}`|:::\{|```\{")
REGENERATE = "regenerate with `make notebooks` and `.venv/bin/python scripts/colab_edition.py`"

spec = importlib.util.spec_from_file_location("colab_edition", ROOT / "scripts" / "colab_edition.py")
colab = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = colab  # dataclasses look their module up there
spec.loader.exec_module(colab)


def _masked(nb: nbformat.NotebookNode) -> list[tuple[str, str, str]]:
    return [(c.cell_type, c.get("id", ""), colab.mask(c.source)) for c in nb.cells]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_both_editions_are_plain_notebooks_with_the_chapters_code(chapter: Path) -> None:
    original = nbformat.read(chapter, as_version=4)
    gated = gated_solution_cells(original.cells)
    for edition, folder in EDITIONS.items():
        path = folder / chapter.name
        assert path.exists(), f"{path.relative_to(ROOT)} is missing: {REGENERATE}"
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                left = MYST.findall(cell.source)
                assert not left, f"{path.relative_to(ROOT)}: MyST left in a Markdown cell: {left}"
            else:
                assert cell.outputs == [] and cell.execution_count is None, f"{path.relative_to(ROOT)} has outputs"
        expected = [c.source for i, c in enumerate(original.cells)
                    if c.cell_type == "code" and (edition == "colab" or i not in gated)]
        starters = [c for c in nb.cells if "starter" in c.metadata.get("tags", [])]
        code = [c.source for c in nb.cells if c.cell_type == "code" and not any(c is s for s in starters)]
        assert code == expected, f"{path.relative_to(ROOT)}: the code cells differ from the chapter's"
        solutions = sum(c.source.startswith("::::{solution-start}") for c in original.cells)
        assert len(starters) == (solutions if edition == "student" else 0)
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        assert f"blob/{colab.RELEASE}/colab/{'student/' if edition == 'student' else ''}{chapter.name})" in text
        assert ("Solution to Exercise" in text) == (edition == "colab")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_editions_are_in_sync_with_the_chapter(chapter: Path) -> None:
    original = nbformat.read(chapter, as_version=4)
    for student, folder in ((False, EDITIONS["colab"]), (True, EDITIONS["student"])):
        path = folder / chapter.name
        assert path.exists(), f"{path.relative_to(ROOT)} is missing: {REGENERATE}"
        fresh = colab.convert(original, chapter.name, None, student=student)
        committed, expected = _masked(nbformat.read(path, as_version=4)), _masked(fresh)
        first = next((i for i, pair in enumerate(zip(committed, expected, strict=False)) if pair[0] != pair[1]),
                     min(len(committed), len(expected)))
        assert committed == expected, (f"{path.relative_to(ROOT)} is stale from cell {first} on "
                                       f"({len(committed)} cells, {len(expected)} expected): {REGENERATE}")


# The conversion rules, one by one, on small inline examples.

def _chapter(values: dict[str, str] | None = None) -> colab.Chapter:
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("$$\na = b\n$$ (eq-a)\n\n$$\nc\n$$\n\n$$\nd = e\n$$ (eq-d)"),
        nbformat.v4.new_markdown_cell(":::{exercise} Add\n:label: ex-add\n\nWhat is 6 * 7?\n:::"),
    ])
    return colab.Chapter.scan(nb, "02_core_concepts.ipynb", 2, values)


def test_glue_is_formatted_as_myst_nb_does_and_masked_by_name() -> None:
    chapter = _chapter({"acc": "0.8766", "n": "12345", "word": "'colour'", "t": "1.5"})
    text = colab.convert_roles("{glue:text}`acc:.1%` of {glue:text}`n:,` and {glue:text}`word` in "
                               "{glue:text}`t:.2f` s", chapter)
    assert text == ('<span title="acc">87.7%</span> of <span title="n">12,345</span> and '
                    '<span title="word">colour</span> in <span title="t">1.50</span> s')
    assert colab.mask(text) == "acc of n and word in t s"
    assert colab.convert_roles("{glue:text}`acc:.1%`", _chapter(None)) == '<span title="acc">…</span>'
    with pytest.raises(ValueError, match="make notebooks"):
        colab.convert_roles("{glue:text}`absent`", chapter)


def test_glue_values_are_read_from_both_kinds_of_glue_output(tmp_path) -> None:
    cell = nbformat.v4.new_code_cell("glue(...)")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={colab.GLUE_PREFIX + "text/plain": "0.5"},
                               metadata={"scrapbook": {"name": "hidden", "mime_prefix": colab.GLUE_PREFIX}}),
        nbformat.v4.new_output("display_data", data={"text/plain": "'shown'"},
                               metadata={"scrapbook": {"name": "shown", "mime_prefix": ""}}),
        nbformat.v4.new_output("stream", text="not glued\n"),
    ]
    path = tmp_path / "executed.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    assert colab.glue_values(path) == {"hidden": "0.5", "shown": "'shown'"}


def test_labelled_equations_are_tagged_with_the_books_numbers() -> None:
    chapter = _chapter()
    assert chapter.equations == {"eq-a": "2.1", "eq-d": "2.2"}
    text = colab.convert_markdown("$$\na = b\n$$ (eq-a)\n\nso {eq}`eq-d` follows from {eq}`eq-a`.", chapter)
    assert text == "$$\na = b\n\\tag{2.1}\n$$\n\nso Eq. (2.2) follows from Eq. (2.1)."
    assert colab.convert_markdown("$$\nc\n$$", chapter) == "$$\nc\n$$"
    with pytest.raises(ValueError, match="labels no equation"):
        colab.convert_roles("{eq}`eq-none`", chapter)


def test_citations_read_author_year_and_the_chapter_lists_its_references() -> None:
    chapter = _chapter()
    text = colab.convert_roles("CLIP {footcite:p}`radford2021learning,vaswani2017attention`; "
                               "{footcite:t}`abid2019gradio` built Gradio.", chapter)
    assert text == "CLIP (Radford et al., 2021; Vaswani et al., 2017); Abid et al. (2019) built Gradio."
    references = colab.convert_directives("## References\n\n```{footbibliography}\n```", chapter)
    entries = references.split("\n")[2:]
    assert len(entries) == 3 and all(entry.startswith("- ") for entry in entries)
    assert "Attention is all you need" in entries[1] and "(https://arxiv.org/abs/1706.03762)" in entries[1]
    with pytest.raises(ValueError, match="not in references.bib"):
        colab.convert_roles("{footcite:p}`nobody1900nothing`", chapter)


def test_doc_and_ref_roles_link_to_the_published_book() -> None:
    chapter = _chapter()
    errata = colab.convert_roles("{doc}`../book/errata`", chapter)
    assert errata == f"[Errata of the source articles]({colab.BASE_URL}book/errata.html)"
    assert colab.convert_roles("{doc}`the errata <../book/errata>`", chapter).startswith("[the errata](")
    assert colab.convert_roles("{ref}`errata-003`", chapter).endswith("book/errata.html#errata-003)")
    assert colab.convert_roles("{ref}`ex-add`", chapter) == "Exercise 2.1"
    assert colab.convert_roles("{math}`x^2`", chapter) == "$x^2$"
    for role in ("{doc}`../book/nowhere`", "{ref}`nowhere`"):
        with pytest.raises(ValueError, match="no page of the book"):
            colab.convert_roles(role, chapter)
    assert colab.BASE_URL == "https://{}.github.io/{}/".format(*colab.REPOSITORY.split("/"))


def test_exercises_become_headings_and_solutions_fold() -> None:
    chapter = _chapter()
    text = colab.convert_markdown(
        "## Exercises\n\n:::{exercise} Add\n:label: ex-add\n\nWhat is 6 * 7?\n:::\n\n"
        ":::{solution} ex-add\n:class: dropdown\n\nIt is **42**.\n:::", chapter)
    assert text == ("## Exercises\n\n#### Exercise 2.1 (Add)\n\nWhat is 6 * 7?\n\n<details>\n"
                    "<summary>Solution to Exercise 2.1</summary>\n\nIt is **42**.\n\n</details>")


def test_gated_solutions_are_announced_before_their_code() -> None:
    chapter = _chapter()
    start = colab.convert_markdown("::::{solution-start} ex-add\n:class: dropdown\n::::\n\nMultiply:", chapter)
    assert start == "**Solution to Exercise 2.1** (the code below runs it)\n\nMultiply:"
    assert colab.convert_markdown("It is 42.\n\n::::{solution-end}\n::::", chapter) == "It is 42."
    assert colab.convert_markdown("::::{solution-end}\n::::", chapter) == ""


def test_admonitions_become_quotes_and_unknown_syntax_is_refused() -> None:
    chapter = _chapter()
    assert colab.convert_markdown(":::{note}\nRead *this*.\n\nTwice.\n:::", chapter) == (
        "> **Note**\n>\n> Read *this*.\n>\n> Twice.")
    assert colab.convert_markdown(":::{admonition} On Colab\nA GPU.\n:::", chapter) == "> **On Colab**\n>\n> A GPU."
    assert colab.convert_markdown("```python\n:::{note}\n```", chapter) == "```python\n:::{note}\n```"
    with pytest.raises(ValueError, match="directive"):
        colab.convert_markdown(":::{figure} a.png\n:::", chapter)
    with pytest.raises(ValueError, match="role"):
        colab.convert_markdown("{numref}`fig-a`", chapter)


def test_student_edition_drops_both_kinds_of_solution_and_the_gated_code() -> None:
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell(":::{exercise} Add\n:label: ex-add\n\nWhat is 6 * 7?\n:::"),
        nbformat.v4.new_markdown_cell("::::{solution-start} ex-add\n:class: dropdown\n::::\n\nMultiply:"),
        nbformat.v4.new_code_cell("print(6 * 7)"),
        nbformat.v4.new_markdown_cell("It is 42.\n\n::::{solution-end}\n::::"),
        nbformat.v4.new_markdown_cell(":::{exercise} Again\n:label: ex-again\n\nAnd 7 * 6?\n:::\n\n"
                                      ":::{solution} ex-again\nThe same.\n:::"),
        nbformat.v4.new_code_cell("after = True"),
    ])
    full = colab.convert(nb, "02_core_concepts.ipynb", None)
    student = colab.convert(nb, "02_core_concepts.ipynb", None, student=True)
    assert [c.source for c in full.cells if c.cell_type == "code"] == ["print(6 * 7)", "after = True"]
    assert [c.source for c in student.cells[1:]] == [
        "#### Exercise 2.1 (Add)\n\nWhat is 6 * 7?", "# Exercise 2.1: your code here.",
        "#### Exercise 2.2 (Again)\n\nAnd 7 * 6?", "after = True"]
    assert student.cells[2].metadata["tags"] == ["starter"]
    assert "colab/student/02_core_concepts.ipynb" in student.cells[0].source


def test_the_script_asks_for_executed_notebooks(tmp_path) -> None:
    with pytest.raises(SystemExit, match="run `make notebooks` first"):
        colab.main(["--executed", str(tmp_path / "none"), "--out", str(tmp_path / "out")])
    chapter = ROOT / "chapters" / "09_gradio.ipynb"
    colab.main(["--masked", "--out", str(tmp_path / "out"), str(chapter)], report=lambda line: None)
    written = json.loads((tmp_path / "out" / "student" / chapter.name).read_text(encoding="utf-8"))
    assert written["cells"][0]["cell_type"] == "markdown" and (tmp_path / "out" / chapter.name).exists()
