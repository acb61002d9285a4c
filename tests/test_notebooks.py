"""Notebook hygiene and the table of contents."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
REPO_URL = CONFIG["repository"]["url"]

_spec = importlib.util.spec_from_file_location("setup_cell", ROOT / "scripts" / "setup_cell.py")
setup_cell = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(setup_cell)
#: The first code cell of every chapter, written from _config.yml by scripts/setup_cell.py.
SETUP_CELL = setup_cell.SETUP_CELL


def toc_files() -> list[str]:
    files = [TOC["root"]]
    for part in TOC.get("parts", []):
        files += [entry["file"] for entry in part["chapters"]]
    return files


def test_there_are_chapters() -> None:
    assert CHAPTERS, "no chapter notebooks found"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"cell {index} has stored output"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_kernelspec_and_valid(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert nb.metadata["kernelspec"]["language"] == "python"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_title_then_setup_cell(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    first_code = next(cell for cell in nb.cells if cell.cell_type == "code")
    assert first_code.source == SETUP_CELL, (
        "the setup cell differs from the one _config.yml asks for: run `python scripts/setup_cell.py`"
    )


def test_setup_cell_installs_the_configured_release() -> None:
    """The repository and tag of _config.yml, with the failure check after %pip (which never raises)."""
    release = CONFIG["repository"]["release"]
    assert REPO_URL.startswith("https://github.com/") and f'REPO = "{REPO_URL}"' in SETUP_CELL
    assert f'RELEASE = "{release}"' in SETUP_CELL
    install = SETUP_CELL.index("%pip install")
    assert SETUP_CELL.index("importlib.invalidate_caches()") > install
    assert SETUP_CELL.index("raise ModuleNotFoundError") > install
    assert "constraints" not in SETUP_CELL, "Colab keeps its own versions: no constraints file there"


def test_setup_cell_explains_a_failed_install() -> None:
    """%pip never raises: when the package is still missing after it, the cell says what to check. Run in
    an IPython shell of its own process (a shell replaces sys.modules["__main__"] and the display hook)."""
    script = (
        "import json, sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "from traitlets.config import Config\n"
        "config = Config()\n"
        "config.HistoryManager.hist_file = ':memory:'\n"
        "shell = InteractiveShell.instance(config=config)\n"
        "calls = []\n"
        "shell.register_magic_function(calls.append, magic_kind='line', magic_name='pip')\n"
        "result = shell.run_cell(sys.stdin.read())\n"
        "error = result.error_in_exec\n"
        "print(json.dumps([calls, type(error).__name__, str(error)]))\n"
    )
    cell = SETUP_CELL.replace('"mmbook"', '"mmbook_missing"')  # the fake %pip above installs nothing
    out = subprocess.run([sys.executable, "-c", script], input=cell, capture_output=True, text=True)
    calls, error, message = json.loads(out.stdout.strip().splitlines()[-1])
    release = CONFIG["repository"]["release"]
    assert calls == [f'install -q "mmbook @ git+{REPO_URL}@{release}#subdirectory=code"']
    assert error == "ModuleNotFoundError"
    assert release in message and REPO_URL in message and "internet" in message and "README" in message


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_shape(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")
    for heading in ("## Learning objectives", "## Exercises", "## Summary", "## References"):
        assert heading in text, f"missing section {heading!r}"
    assert re.search(r"(```|:::)\{exercise\}", text) and re.search(r"(```|:::)\{solution(-start)?\}", text)
    assert "{footbibliography}" in text
    assert "TODO" not in text and "FIXME" not in text


PAGE_WIDTH = 88  # characters of code the book's column shows without scrolling sideways


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_code_fits_the_page(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    wide = [
        f"cell {index}: {line[:40]}... ({len(line)} characters)"
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for line in cell.source.splitlines()
        if len(line) > PAGE_WIDTH
    ]
    assert not wide, f"code lines wider than {PAGE_WIDTH} characters:\n" + "\n".join(wide)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_solutions_with_code_are_executed(path: Path) -> None:
    """A solution that shows code runs it: gated solution-start/-end cells around code cells, for an exercise of
    this chapter; the one-cell ``:::{solution}`` form is for solutions without code."""
    nb = nbformat.read(path, as_version=4)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    exercises = set(re.findall(r"^:label: (\S+)", markdown, flags=re.MULTILINE))
    for block in re.findall(r"^:::\{solution\}.*?^:::[ \t]*$", markdown, flags=re.DOTALL | re.MULTILINE):
        shows_code = "```python" in block or "{code-cell}" in block
        assert not shows_code, f"a solution shows code it does not run:\n{block[:300]}"
    open_label, code_cells = None, 0
    for index, cell in enumerate(nb.cells):
        start = re.match(r"::::\{solution-start\} (\S+)\n", cell.source) if cell.cell_type == "markdown" else None
        if start:
            assert open_label is None, f"cell {index}: a solution starts inside another"
            assert start.group(1) in exercises, f"cell {index}: no exercise labelled {start.group(1)}"
            open_label, code_cells = start.group(1), 0
        code_cells += cell.cell_type == "code" and open_label is not None
        if cell.cell_type == "markdown" and cell.source.rstrip().endswith("::::{solution-end}\n::::"):
            assert open_label is not None, f"cell {index}: solution-end without a start"
            assert code_cells, f"cell {index}: the gated solution {open_label} has no code cell"
            open_label = None
    assert open_label is None, f"the solution {open_label} never ends"


def test_every_chapter_is_in_the_toc_and_every_entry_exists() -> None:
    listed = toc_files()
    for path in CHAPTERS:
        assert f"chapters/{path.stem}" in listed, f"{path.name} is not in _toc.yml"
    for entry in listed:
        assert any((ROOT / f"{entry}{ext}").is_file() for ext in (".md", ".ipynb")), f"{entry} is missing"


def test_chapter_file_names() -> None:
    for path in CHAPTERS:
        number, _, name = path.stem.partition("_")
        assert number.isdigit() and len(number) == 2 and name


BUDGET_S = 120  # every chapter, cold, on a 2-core CPU
RUNTIMES = json.loads((ROOT / "book" / "runtimes.json").read_text(encoding="utf-8"))["chapters"]


def _bench_module():
    spec = importlib.util.spec_from_file_location("mmbook_bench", ROOT / "scripts" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_badge_measured_on_this_code_within_budget(path: Path) -> None:
    entry = RUNTIMES.get(path.stem)
    again = f"run `make bench CHAPTERS={path.stem[:2]}`"
    assert entry is not None, f"{path.stem} has no measured run time: {again}"
    assert "fingerprint" in entry, f"{path.stem}'s badge predates fingerprints: {again}"
    assert _bench_module().fingerprint(path, entry["modules"]) == entry["fingerprint"], (
        f"{path.stem} or the mmbook code it runs changed after its run time was measured: {again}"
    )
    assert entry["wall_s"] <= BUDGET_S, f"{path.stem} took {entry['wall_s']} s cold, over {BUDGET_S} s"
