"""Write the Colab and student editions of the chapters: plain notebooks that Colab renders without MyST.

Usage: ``python scripts/colab_edition.py [--executed _executed] [--out colab] [CHAPTER ...]``

For every chapter ``chapters/NN_x.ipynb`` it writes ``colab/NN_x.ipynb`` and ``colab/student/NN_x.ipynb``
(solutions removed). Code cells are copied unchanged, without outputs; the Markdown is rewritten:

* ``{glue:text}`name:fmt``` becomes the value of the book's run (read from the executed notebook that
  ``make notebooks`` leaves in ``_executed/``), formatted as myst-nb does, inside ``<span title="name">``
  so that a test can mask the values that change from run to run;
* labelled display equations get ``\\tag{chapter.n}`` and ``{eq}`` references read "Eq. (chapter.n)",
  as in the HTML book; citations read "Author et al. (year)" and ``{footbibliography}`` becomes the
  chapter's reference list; ``{doc}`` and ``{ref}`` become links to the published book;
* exercises become headings numbered as in the book, ``:::{solution}`` blocks fold into ``<details>``,
  gated solutions (``solution-start`` ... ``solution-end``) are announced in bold before their code;
  admonitions become quotes;
* the student edition leaves out both kinds of solution, and puts a starter code cell where a gated
  solution's code was.

Regenerate after the chapters change: ``make notebooks``, then ``python scripts/colab_edition.py``.

:func:`convert` needs only the chapter: without glue values it writes ``…`` in every span, which is
how ``tests/test_colab.py`` checks that the committed editions are in sync with the chapters.
"""

from __future__ import annotations

import argparse
import html
import posixpath
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import nbformat
import yaml
from myst_nb.core.variables import format_plain_text
from nbformat import NotebookNode

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "chapters"
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
REPOSITORY = CONFIG["repository"]["url"].removeprefix("https://github.com/").strip("/")
#: The release tag: the badges open the editions as released, with the package the setup cell installs.
RELEASE = CONFIG["repository"]["release"]
#: Where the HTML book is published: ``html.baseurl`` when set, otherwise the repository's GitHub Pages.
BASE_URL = (CONFIG.get("html", {}).get("baseurl") or "https://{}.github.io/{}/".format(*REPOSITORY.split("/")))
BASE_URL = BASE_URL.rstrip("/") + "/"
EQREF_FORMAT = CONFIG["sphinx"]["config"].get("math_eqref_format", "({number})")
BIBFILE = ROOT / CONFIG["bibtex_bibfiles"][0]
GLUE_PREFIX = "application/papermill.record/"
PLACEHOLDER = "…"

ROLE = re.compile(r"\{(?P<name>[\w:-]+)\}`(?P<content>[^`]*)`")
SPAN = re.compile(r'<span title="(?P<name>[^"]+)">.*?</span>', flags=re.DOTALL)
LABELLED_EQUATION = re.compile(r"^\$\$[ \t]*\n(?P<body>(?:(?!\$\$).)*?)\n\$\$[ \t]*\((?P<label>[^)\s]+)\)[ \t]*$",
                               flags=re.DOTALL | re.MULTILINE)
DIRECTIVE = re.compile(r"^(?P<fence>:{3,}|`{3,})\{(?P<name>[\w:-]+)\}[ \t]*(?P<argument>.*)$")
CODE_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})(?!\{)")
OPTION = re.compile(r"^:(?P<key>[\w-]+):[ \t]*(?P<value>.*)$")
GATED_START = re.compile(
    r"\A::::\{solution-start\}[ \t]*(?P<label>\S+)[^\n]*\n(?::[\w-]+:[^\n]*\n)*::::[ \t]*(?:\n|\Z)")
GATED_END = re.compile(r"\n*^::::\{solution-end\}\n::::\s*\Z", flags=re.MULTILINE)
TARGET = re.compile(r"^\((?P<label>[\w:-]+)\)=[ \t]*\n+#+[ \t]+(?P<title>.+)$", flags=re.MULTILINE)
ADMONITIONS = {"note", "tip", "hint", "important", "warning", "caution", "attention", "danger", "error",
               "seealso", "admonition"}


def mask(text: str) -> str:
    """Replace every glued value ``<span title="name">value</span>`` by its name."""
    return SPAN.sub(lambda match: match["name"], text)


def chapter_numbers() -> dict[str, int]:
    """The number of each chapter in the book, as the numbered part of ``_toc.yml`` gives it."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    for part in toc["parts"]:
        if part.get("numbered"):
            return {Path(entry["file"]).name: number for number, entry in enumerate(part["chapters"], start=1)}
    raise ValueError("_toc.yml has no numbered part")


def glue_values(executed: Path) -> dict[str, str]:
    """The ``text/plain`` form of every value glued in the executed notebook ``executed``."""
    values = {}
    for cell in nbformat.read(executed, as_version=4).cells:
        for output in cell.get("outputs", []):
            record = output.get("metadata", {}).get("scrapbook")
            if record is None:
                continue
            prefix = record.get("mime_prefix", "")
            data = {key.removeprefix(prefix): value for key, value in output.get("data", {}).items()}
            if "text/plain" in data:
                values[record["name"]] = data["text/plain"]
    return values


@cache
def _bibliography():  # noqa: ANN202  (pybtex's BibliographyData)
    from pybtex.database import parse_file

    return parse_file(BIBFILE)


@cache
def _latex_text(latex: str) -> str:
    from pybtex.richtext import Text

    return Text.from_latex(latex).render_as("text")


@cache
def cite_author_year(key: str) -> tuple[str, str]:
    """("Vaswani et al.", "2017") for the bibliography entry ``key``."""
    entry = _bibliography().entries[key]
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_latex_text(" ".join(person.prelast_names + person.last_names)) for person in people]
    if len(names) > 2:
        authors = f"{names[0]} et al."
    else:
        authors = " and ".join(names) or _latex_text(entry.fields.get("title", key))
    return authors, entry.fields.get("year", "n.d.")


@cache
def _formatter():  # noqa: ANN202  (pybtex's plain style and Markdown backend)
    from pybtex.plugin import find_plugin

    return find_plugin("pybtex.style.formatting", "plain")(), find_plugin("pybtex.backends", "markdown")()


@cache
def reference_entry(key: str) -> str:
    """One entry of a reference list in Markdown (authors, title, venue, year, arXiv/DOI/URL links)."""
    style, backend = _formatter()
    text = style.format_entry(key, _bibliography().entries[key]).text.render(backend)
    return " ".join(text.split())


def _page_title(path: Path) -> str:
    if path.suffix == ".ipynb":
        cells = nbformat.read(path, as_version=4).cells
        text = next(cell.source for cell in cells if cell.cell_type == "markdown")
    else:
        text = path.read_text(encoding="utf-8")
    match = re.search(r"^#[ \t]+(.+)$", text, flags=re.MULTILINE)
    return match[1].strip() if match else path.stem


@cache
def _targets() -> dict[str, tuple[str, str]]:
    """Every ``(label)=`` target of the book: label -> (page without suffix, section title)."""
    targets = {}
    for path in sorted(CHAPTERS.glob("*.ipynb")) + sorted((ROOT / "book").glob("*.md")):
        page = path.relative_to(ROOT).with_suffix("").as_posix()
        if path.suffix == ".ipynb":
            text = "\n\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
        else:
            text = path.read_text(encoding="utf-8")
        for match in TARGET.finditer(text):
            targets[match["label"]] = (page, match["title"].strip())
    return targets


@dataclass
class Chapter:
    """What a conversion needs to know about one chapter: its number, equations, exercises, citations."""

    name: str
    number: int
    equations: dict[str, str] = field(default_factory=dict)
    exercises: list[tuple[str, str]] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    cited: list[str] = field(default_factory=list)
    values: Mapping[str, str] | None = None
    exercise_count: int = 0

    @classmethod
    def scan(cls, nb: NotebookNode, name: str, number: int, values: Mapping[str, str] | None) -> Chapter:
        """Number the chapter's labelled equations and exercises in reading order, as the HTML book does."""
        chapter = cls(name, number, values=values)
        for cell in nb.cells:
            if cell.cell_type != "markdown":
                continue
            for match in LABELLED_EQUATION.finditer(cell.source):
                chapter.equations[match["label"]] = f"{number}.{len(chapter.equations) + 1}"
            for line_number, line in enumerate(lines := cell.source.splitlines()):
                directive = DIRECTIVE.match(line)
                if directive and directive["name"] == "exercise":
                    exercise = f"{number}.{len(chapter.exercises) + 1}"
                    chapter.exercises.append((exercise, directive["argument"].strip()))
                    options, _ = _options(lines[line_number + 1:])
                    if "label" in options:
                        chapter.labels[options["label"]] = exercise
        return chapter

    def exercise_name(self, label: str) -> str:
        """The name ("Exercise 2.1") of the exercise labelled ``label``."""
        if label not in self.labels:
            raise ValueError(f"{self.name}: a solution names {label!r}, which is no exercise label")
        return f"Exercise {self.labels[label]}"

    def glue(self, content: str) -> str:
        """A glue role's ``name:format`` as the formatted value of the book's run, or ``…`` without values."""
        key, _, spec = content.partition(":")
        if self.values is None:
            value = PLACEHOLDER
        elif key not in self.values:
            raise ValueError(f"{self.name}: {key!r} is not glued in the executed notebook (run `make notebooks`)")
        else:
            value = html.escape(format_plain_text(self.values[key], spec), quote=False)
        return f'<span title="{key}">{value}</span>'

    def cite(self, keys: str, textual: bool) -> str:
        """The citation as (Author et al., year; ...), or with ``textual`` as Author et al. (year)."""
        cites = []
        for key in (k.strip() for k in keys.split(",")):
            if key not in _bibliography().entries:
                raise ValueError(f"{self.name}: the citation {key!r} is not in {BIBFILE.name}")
            if key not in self.cited:
                self.cited.append(key)
            cites.append(cite_author_year(key))
        if textual:
            return "; ".join(f"{authors} ({year})" for authors, year in cites)
        return "(" + "; ".join(f"{authors}, {year}" for authors, year in cites) + ")"


def _options(lines: list[str]) -> tuple[dict[str, str], int]:
    options, count = {}, 0
    for line in lines:
        option = OPTION.match(line)
        if not option:
            break
        options[option["key"]] = option["value"].strip()
        count += 1
    return options, count


def _link(target: str, explicit: str | None, chapter: Chapter) -> str:
    page = posixpath.normpath(f"chapters/{target}")
    path = next((ROOT / f"{page}{suffix}" for suffix in (".ipynb", ".md") if (ROOT / f"{page}{suffix}").exists()),
                None)
    if path is None:
        raise ValueError(f"{chapter.name}: {{doc}} names {target!r}, which is no page of the book")
    return f"[{explicit or _page_title(path)}]({BASE_URL}{page}.html)"


def _ref(label: str, explicit: str | None, chapter: Chapter) -> str:
    if label in chapter.labels:
        return explicit or chapter.exercise_name(label)
    if label not in _targets():
        raise ValueError(f"{chapter.name}: {{ref}} names {label!r}, which no page of the book defines")
    page, title = _targets()[label]
    return f"[{explicit or title}]({BASE_URL}{page}.html#{label})"


def convert_roles(text: str, chapter: Chapter) -> str:
    """Replace every MyST role of ``text`` (glue, eq, footcite, doc, ref, math) by plain Markdown."""

    def replace(match: re.Match[str]) -> str:
        name, content = match["name"], match["content"]
        explicit = re.fullmatch(r"(?P<text>.*?)\s*<(?P<target>[^>]+)>", content, flags=re.DOTALL)
        text, target = (explicit["text"], explicit["target"]) if explicit else (None, content)
        if name == "glue:text":
            return chapter.glue(content)
        if name == "eq":
            if target not in chapter.equations:
                raise ValueError(f"{chapter.name}: {{eq}} names {target!r}, which labels no equation here")
            return EQREF_FORMAT.format(number=chapter.equations[target])
        if name in ("footcite", "footcite:p", "footcite:t", "cite", "cite:p", "cite:t"):
            return chapter.cite(content, textual=name.endswith(":t"))
        if name == "doc":
            return _link(target, text, chapter)
        if name == "ref":
            return _ref(target, text, chapter)
        if name == "math":
            return f"${content}$"
        raise ValueError(f"{chapter.name}: the role {{{name}}} has no plain-Markdown form in scripts/colab_edition.py")

    return ROLE.sub(replace, text)


def convert_equations(text: str, chapter: Chapter) -> str:
    """Write each labelled display equation's book number as ``\\tag{}`` inside its ``$$`` block."""
    return LABELLED_EQUATION.sub(
        lambda m: f"$$\n{m['body']}\n\\tag{{{chapter.equations[m['label']]}}}\n$$", text)


def _directive(name: str, argument: str, options: dict[str, str], body: str, chapter: Chapter) -> str:
    if name == "exercise":
        chapter.exercise_count += 1
        number, title = chapter.exercises[chapter.exercise_count - 1]
        heading = f"#### Exercise {number}" + (f" ({title})" if title else "")
        return f"{heading}\n\n{body}"
    if name == "solution":
        return f"<details>\n<summary>Solution to {chapter.exercise_name(argument)}</summary>\n\n{body}\n\n</details>"
    if name == "footbibliography":
        return "\n".join(f"- {reference_entry(key)}" for key in chapter.cited)
    if name in ADMONITIONS:
        title = argument if name == "admonition" else (argument or name.capitalize())
        quoted = "\n".join(f"> {line}".rstrip() for line in body.splitlines())
        return f"> **{title}**\n>\n{quoted}"
    raise ValueError(f"{chapter.name}: the directive {{{name}}} has no plain-Markdown form in scripts/colab_edition.py")


def convert_directives(text: str, chapter: Chapter) -> str:
    """Replace the directives of ``text`` (colon or backtick fences) by headings, ``<details>`` and quotes."""
    lines, out, index, fence = text.split("\n"), [], 0, None
    while index < len(lines):
        line = lines[index]
        code = CODE_FENCE.match(line)
        if fence is not None:
            fence = None if line.strip() == fence else fence
            out.append(line)
            index += 1
            continue
        if code:
            fence = code["fence"]
            out.append(line)
            index += 1
            continue
        directive = DIRECTIVE.match(line)
        if not directive:
            out.append(line)
            index += 1
            continue
        char, width = directive["fence"][0], len(directive["fence"])
        close = re.compile(rf"^{re.escape(char)}{{{width},}}[ \t]*$")
        options, count = _options(lines[index + 1:])
        end = next((i for i in range(index + 1 + count, len(lines)) if close.match(lines[i])), None)
        if end is None:
            raise ValueError(f"{chapter.name}: the directive {{{directive['name']}}} is not closed")
        body = convert_directives("\n".join(lines[index + 1 + count:end]).strip("\n"), chapter)
        out.append(_directive(directive["name"], directive["argument"].strip(), options, body, chapter))
        index = end + 1
    return "\n".join(out)


def convert_markdown(text: str, chapter: Chapter) -> str:
    """One Markdown cell of the chapter in plain Markdown (roles, equations and directives converted)."""
    start = GATED_START.match(text)
    if start:
        prose = text[start.end():].strip("\n")
        announce = f"**Solution to {chapter.exercise_name(start['label'])}** (the code below runs it)"
        text = announce + (f"\n\n{prose}" if prose else "")
    text = GATED_END.sub("", text)
    return convert_directives(convert_equations(convert_roles(text, chapter), chapter), chapter).strip("\n")


def _header(chapter: Chapter, path: str, student: bool) -> str:
    badge = f"https://colab.research.google.com/github/{REPOSITORY}/blob/{RELEASE}/{path}"
    page = f"{BASE_URL}chapters/{Path(chapter.name).stem}.html"
    edition = "Student edition" if student else "Colab edition"
    solutions = (" The solutions are left out: try each exercise yourself; where one asks for code, a starter"
                 " cell follows it."
                 if student else " The solutions to the exercises are folded under each exercise.")
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({badge})\n\n"
            f"*{edition} of [Chapter {chapter.number} of the book]({page}), generated from the chapter by "
            "`scripts/colab_edition.py`. The numbers in the text are those of the book's run; your run may "
            f"differ slightly. Equations, exercises and references are numbered as in the book.{solutions}*")


def convert(nb: NotebookNode, name: str, values: Mapping[str, str] | None, student: bool = False) -> NotebookNode:
    """The Colab edition (or with ``student``, the student edition) of the chapter notebook ``nb``.

    ``name`` is the chapter's file name; ``values`` maps glue names to their ``text/plain`` in the book's
    run, or is ``None`` to write ``…`` in every glued value (the masked conversion the sync test uses).
    """
    chapter = Chapter.scan(nb, name, chapter_numbers()[Path(name).stem], values)
    folder = "colab/student" if student else "colab"
    cells = [nbformat.v4.new_markdown_cell(_header(chapter, f"{folder}/{name}", student), id="colab-edition")]
    for cell in _without_solutions(nb, chapter) if student else nb.cells:
        if cell.cell_type == "code":
            cells.append(nbformat.v4.new_code_cell(cell.source, id=cell.get("id"), metadata=dict(cell.metadata)))
        elif cell.cell_type == "markdown":
            source = convert_markdown(cell.source, chapter)
            if source:
                cells.append(nbformat.v4.new_markdown_cell(source, id=cell.get("id"), metadata=dict(cell.metadata)))
    out = nbformat.v4.new_notebook(cells=cells, metadata=dict(nb.metadata))
    out.metadata["colab"] = {"name": name, "provenance": []}
    return out


def _without_solutions(nb: NotebookNode, chapter: Chapter) -> list[NotebookNode]:
    """The cells ``mmbook.book.student_edition`` keeps, with a starter code cell where a gated solution was.

    Mirrors ``student_edition`` with its own patterns: ``:::{solution}`` blocks are cut from the Markdown, and
    the cells from a ``solution-start`` through its ``solution-end`` give way to one code cell, tagged
    ``starter``, in which the student writes the exercise's code.
    """
    from mmbook.book import SOLUTION_BLOCK, SOLUTION_END, SOLUTION_START

    kept, inside = [], None
    for cell in nb.cells:
        markdown = cell.cell_type == "markdown"
        if inside is None and markdown and SOLUTION_START.match(cell.source):
            inside = GATED_START.match(cell.source)["label"]
        if inside is None:
            kept.append(nbformat.v4.new_markdown_cell(SOLUTION_BLOCK.sub("", cell.source), id=cell.get("id"),
                                                      metadata=cell.metadata) if markdown else cell)
        elif markdown and SOLUTION_END.search(cell.source):
            starter = f"# {chapter.exercise_name(inside)}: your code here."
            kept.append(nbformat.v4.new_code_cell(starter, id=f"starter-{inside}"[:64], metadata={"tags": ["starter"]}))
            inside = None
    if inside is not None:
        raise ValueError(f"{chapter.name}: the solution to {inside} has no solution-end")
    return kept


def write_editions(chapter: Path, out: Path, values: Mapping[str, str] | None) -> None:
    """Write ``out/<chapter>`` and ``out/student/<chapter>`` for one chapter notebook."""
    nb = nbformat.read(chapter, as_version=4)
    for student, folder in ((False, out), (True, out / "student")):
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(convert(nb, chapter.name, values, student=student), folder / chapter.name)


def main(argv: list[str] | None = None, report: Callable[[str], None] = print) -> int:
    """Command line: convert the chapters named (all by default) with the values of ``--executed``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", type=Path, help="chapter notebooks (default: all in chapters/)")
    parser.add_argument("--executed", type=Path, default=ROOT / "_executed",
                        help="folder of the executed chapters (make notebooks writes _executed/)")
    parser.add_argument("--out", type=Path, default=ROOT / "colab", help="output folder (default: colab/)")
    parser.add_argument("--masked", action="store_true",
                        help=f"write {PLACEHOLDER} for every glued value, without executed notebooks (a draft to "
                             "check the conversion; publish only editions made from executed notebooks)")
    args = parser.parse_args(argv)
    chapters = args.chapters or sorted(CHAPTERS.glob("*.ipynb"))
    missing = [c.name for c in chapters if not args.masked and not (args.executed / c.name).exists()]
    if missing:
        raise SystemExit(f"No executed notebook in {args.executed}/ for {', '.join(missing)}: "
                         "run `make notebooks` first (it executes the chapters into _executed/).")
    for chapter in chapters:
        try:
            write_editions(chapter, args.out, None if args.masked else glue_values(args.executed / chapter.name))
        except ValueError as error:
            raise SystemExit(f"error: {error}") from None
        report(f"{chapter.name}: {args.out / chapter.name}, {args.out / 'student' / chapter.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
