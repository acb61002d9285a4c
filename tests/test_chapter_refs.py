"""Every "Chapter N" the book names is a chapter of its table of contents (issue 22).

References are read from the chapters' Markdown cells, the pages in ``book/`` and ``README.md``, and the
docstrings and ``#:`` comments of ``code/mmbook``. The chapters a reference may name are read from
``_toc.yml`` at run time: a reference to a chapter that is not there yet fails, and passes once the
chapter is listed. ``_toc.yml`` numbers its chapters (``numbered: true``), so the HTML book labels a
chapter by its position: that position must equal the number in its file name.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent

#: "Chapter 6", "Chapters 4–6", "Chapters 3, 6 and 10", "Chapters 1-11" (a range names every chapter in it).
REFERENCE = re.compile(r"\bChapters?\s+(\d+)((?:\s*(?:[-–,]|and|or|to)\s*\d+)*)")
_FOLLOWER = re.compile(r"\s*([-–,]|and|or|to)\s*(\d+)")
_CHAPTER_FILE = re.compile(r"^chapters/(\d+)_")


@dataclass(frozen=True)
class Reference:
    """One chapter named at one place: ``where`` is ``file:line`` (a notebook's cell index for notebooks)."""

    chapter: int
    where: str
    text: str


def numbers(match: re.Match) -> list[int]:
    """The chapter numbers one match names, ranges expanded."""
    found = [int(match.group(1))]
    for separator, number in _FOLLOWER.findall(match.group(2) or ""):
        number = int(number)
        found += list(range(found[-1] + 1, number + 1)) if separator in {"-", "–", "to"} else [number]
    return found


def toc_chapters(root: Path) -> list[int]:
    """The numbers, in file names, of the chapters ``_toc.yml`` lists, in its order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    files = [entry["file"] for part in toc.get("parts", []) for entry in part.get("chapters", [])]
    return [int(m.group(1)) for m in map(_CHAPTER_FILE.match, files) if m]


def _texts(root: Path) -> list[tuple[str, int, str]]:
    """``(file, first line, text)`` of every piece of prose whose chapter references are checked."""
    pieces = []
    for notebook in sorted((root / "chapters").glob("*.ipynb")):
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        for index, cell in enumerate(cells):
            if cell["cell_type"] == "markdown":
                pieces.append((f"{notebook.relative_to(root)} cell {index}", 1, "".join(cell["source"])))
    for page in [*sorted((root / "book").glob("*.md")), root / "README.md"]:
        if page.exists():
            pieces.append((str(page.relative_to(root)), 1, page.read_text(encoding="utf-8")))
    for module in sorted((root / "code" / "mmbook").rglob("*.py")):
        source = module.read_text(encoding="utf-8")
        name = str(module.relative_to(root))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                body = node.body
                if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                        and isinstance(body[0].value.value, str):
                    pieces.append((name, body[0].lineno, body[0].value.value))
        for line_number, line in enumerate(source.splitlines(), start=1):
            if line.lstrip().startswith("#:"):
                pieces.append((name, line_number, line))
    return pieces


def references(root: Path) -> list[Reference]:
    """Every chapter reference in the book's prose, docstrings and ``#:`` comments."""
    found = []
    for name, first_line, text in _texts(root):
        for match in REFERENCE.finditer(text):
            line = first_line + text.count("\n", 0, match.start())
            where = name if " cell " in name else f"{name}:{line}"
            found += [Reference(n, where, match.group(0)) for n in numbers(match)]
    return found


def dangling(root: Path) -> dict[int, list[Reference]]:
    """The references to chapters that ``_toc.yml`` does not list, by chapter."""
    listed = set(toc_chapters(root))
    missing: dict[int, list[Reference]] = defaultdict(list)
    for reference in references(root):
        if reference.chapter not in listed:
            missing[reference.chapter].append(reference)
    return dict(missing)


def _report(missing: dict[int, list[Reference]], listed: list[int]) -> str:
    lines = [f"references to chapters not in _toc.yml (it lists {listed}):"]
    for chapter, refs in sorted(missing.items()):
        places = sorted({r.where for r in refs})
        lines.append(f"  Chapter {chapter}: {len(refs)} reference(s) in {len(places)} place(s): "
                     + ", ".join(places[:12]) + (" ..." if len(places) > 12 else ""))
    return "\n".join(lines)


def test_the_book_names_its_chapters() -> None:
    assert len(references(ROOT)) > 100, "the reference scan found almost nothing: the pattern or the paths broke"


def test_every_chapter_reference_is_in_the_toc() -> None:
    missing = dangling(ROOT)
    if missing:
        pytest.fail(_report(missing, toc_chapters(ROOT)), pytrace=False)


def test_toc_numbers_match_file_numbers() -> None:
    # With `numbered: true` the HTML book labels the k-th listed chapter "k": a gap (a chapter not written
    # yet) shifts every later label away from the number the text calls it by.
    listed = toc_chapters(ROOT)
    assert listed == list(range(1, len(listed) + 1)), (
        f"_toc.yml lists chapters {listed}: the HTML labels them 1..{len(listed)}, not by their file numbers")


def test_the_check_catches_a_bad_reference(tmp_path: Path) -> None:
    for name in ["_toc.yml", "README.md"]:
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "chapters").mkdir()
    (tmp_path / "book").mkdir()
    module = tmp_path / "code" / "mmbook"
    module.mkdir(parents=True)
    first = toc_chapters(ROOT)[0]
    notebook = next((ROOT / "chapters").glob(f"{first:02d}_*.ipynb"))
    planted = json.loads(notebook.read_text(encoding="utf-8"))
    planted["cells"].append({"cell_type": "markdown", "metadata": {}, "source": ["As Chapter 99 shows."]})
    (tmp_path / "chapters" / notebook.name).write_text(json.dumps(planted), encoding="utf-8")
    (tmp_path / "book" / "page.md").write_text("See Chapters 2 and 98.\n", encoding="utf-8")
    (module / "planted.py").write_text('"""Planted."""\n\n\ndef f() -> None:\n    """Used in Chapters 1–97."""\n',
                                       encoding="utf-8")
    missing = dangling(tmp_path)
    planted_chapters = {99, 98, *range(1, 98)} - set(toc_chapters(ROOT))
    assert planted_chapters <= set(missing), _report(missing, toc_chapters(ROOT))
    assert missing[99][0].where == f"chapters/{notebook.name} cell {len(planted['cells']) - 1}"
    assert missing[98][0].where == "book/page.md:1"
    assert {r.where for r in missing[97]} == {"code/mmbook/planted.py:5"}
    # anything else found comes from the copied README and notebook, which the real check covers too
    assert set(missing) - planted_chapters <= set(dangling(ROOT))
