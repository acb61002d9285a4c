"""The code a chapter teaches is shown in it: every public name of its lesson code is displayed with
``show_source`` in the chapter or listed as harness (``mmbook.book.CHAPTER_CODE``)."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager
from mmbook.book import CHAPTER_CODE

CHAPTERS = Path(__file__).resolve().parent.parent / "chapters"


def _dotted(name: str) -> str:
    """``"module:name"`` or ``"module"`` → a dotted path."""
    return name.replace(":", ".")


def public_names(entry: str) -> list[str]:
    """The dotted names a lesson entry stands for: one name, or every public function and class of a module."""
    module, _, name = entry.partition(":")
    loaded = importlib.import_module(module)
    if name:
        if not hasattr(loaded, name):
            raise AssertionError(f"{entry}: no such name")
        return [f"{module}.{name}"]
    return [f"{module}.{n}" for n, obj in vars(loaded).items()
            if not n.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
            and obj.__module__ == module]


def shown_names(path: Path) -> set[str]:
    """Dotted names of what the notebook's ``show_source(...)`` calls display, resolved through its imports."""
    imported: dict[str, str] = {}
    calls: list[str] = []
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(TransformerManager().transform_cell(cell.source))  # IPython syntax: %pip
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names})
            elif isinstance(node, ast.Import):
                imported.update({a.asname: a.name for a in node.names if a.asname})
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "show_source":
                calls.append(ast.unparse(node.args[0]))
    resolved = set()
    for call in calls:
        head, _, rest = call.partition(".")
        resolved.add(imported.get(head, head) + (f".{rest}" if rest else ""))
    return resolved


def is_shown(name: str, shown: set[str]) -> bool:
    """A class counts as shown when it or one of its methods is displayed."""
    return any(s == name or s.startswith(f"{name}.") for s in shown)


def test_the_table_names_real_chapters_and_modules() -> None:
    for chapter, code in CHAPTER_CODE.items():
        assert (CHAPTERS / f"{chapter}.ipynb").exists(), chapter
        for module in code.harness:
            importlib.import_module(module)
        for entry in code.lesson:
            assert public_names(entry), f"{chapter}: {entry} has no public functions or classes"


@pytest.mark.parametrize("chapter", list(CHAPTER_CODE))
def test_every_lesson_name_is_shown_or_listed_as_harness(chapter: str) -> None:
    code = CHAPTER_CODE[chapter]
    shown = shown_names(CHAPTERS / f"{chapter}.ipynb")
    harness = {_dotted(n) for n in code.harness_names}
    lesson = [name for entry in code.lesson for name in public_names(entry)]
    hidden = [name for name in lesson if not is_shown(name, shown) and name not in harness]
    assert not hidden, f"{chapter} introduces but neither shows nor lists as harness: {hidden}"
    stale = sorted(harness - set(lesson)) + sorted(n for n in harness if is_shown(n, shown))
    assert not stale, f"{chapter}: harness names that are not lesson names, or that the chapter shows: {stale}"


def test_the_check_catches_a_hidden_name(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("from mmbook.fusion import GatedFusion\n"
                                                "from mmbook import matching as m\n"
                                                "show_source(GatedFusion.forward)\nshow_source(m.make_pairs)")]
    nbformat.write(notebook, tmp_path / "x.ipynb")
    shown = shown_names(tmp_path / "x.ipynb")
    assert shown == {"mmbook.fusion.GatedFusion.forward", "mmbook.matching.make_pairs"}
    assert is_shown("mmbook.fusion.GatedFusion", shown) and not is_shown("mmbook.fusion.SumFusion", shown)
    assert not is_shown("mmbook.matching.make_pair", shown)


def test_the_package_readme_names_every_lesson_module() -> None:
    readme = (CHAPTERS.parent / "code" / "README.md").read_text()
    for chapter, code in CHAPTER_CODE.items():
        for entry in code.lesson:
            short = entry.partition(":")[0].removeprefix("mmbook.")
            assert f"`{short}" in readme, f"code/README.md does not name {short} ({chapter})"
