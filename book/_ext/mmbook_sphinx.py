"""Sphinx glue for the book: offline browser assets and the badge row of each chapter.

* Offline assets: when ``_vendor/`` holds MathJax 3, require.js and the ipywidgets HTML manager (copied
  from ``node_modules`` by ``scripts/vendor_assets.py``), the HTML pages load them from ``_static/`` and
  need no network. Without them the public CDNs stay in place and a warning is printed by the Makefile.
* Badges: every chapter page gets, under its title, an "Open in Colab" link and its measured run time
  from ``book/runtimes.json`` (written by ``make bench``).
* Colab: the badge and the theme's Colab launch button open the chapter's Colab edition,
  ``colab/<chapter>.ipynb`` (plain Markdown, written by ``scripts/colab_edition.py``), at the book's
  release tag, from the repository URL and tag in ``_config.yml`` (the tag the setup cell installs).
  ``{colab-editions}`` tables both editions of every chapter (the teachers' page).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import yaml
from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

VENDOR = "_vendor"
COLAB = "https://colab.research.google.com/github/"
MATHJAX = "mathjax/tex-chtml.js"
REQUIRE = "requirejs/require.js"
WIDGETS = "html-manager/embed-amd.js"


def _use_vendored_assets(app: Sphinx, config) -> None:
    vendor = Path(app.confdir) / VENDOR / "static"
    needed = [vendor / MATHJAX, vendor / REQUIRE, vendor / WIDGETS]
    if not all(p.is_file() for p in needed):
        logger.info("mmbook: _vendor/ is incomplete; MathJax and widgets load from public CDNs")
        return
    config.html_static_path = [*config.html_static_path, str(vendor)]
    config.html_extra_path = [*config.html_extra_path, str(vendor.parent / "pages")]
    config.mathjax_path = MATHJAX
    # No integrity/crossorigin attributes: they block scripts opened from file://.
    config.nb_ipywidgets_js = {REQUIRE: {}, WIDGETS: {"data-jupyter-widgets-cdn": ""}}


@cache
def _repository(confdir: str) -> dict:
    config = yaml.safe_load((Path(confdir) / "_config.yml").read_text(encoding="utf-8"))
    return config.get("repository", {})


def edition_file(confdir: str, chapter: str, student: bool = False) -> str | None:
    """The GitHub path ``<owner>/<name>/blob/<release>/colab/[student/]<chapter>.ipynb`` of a chapter's Colab
    (or student) edition; ``None`` without a GitHub repository and a release tag in ``_config.yml``."""
    repository = _repository(confdir)
    repo = str(repository.get("url", "")).rstrip("/")
    release = repository.get("release")
    if not repo.startswith("https://github.com/") or not release:
        return None
    folder = "colab/student" if student else "colab"
    return f"{repo.removeprefix('https://github.com/')}/blob/{release}/{folder}/{chapter}.ipynb"


def _colab_url(app: Sphinx, pagename: str) -> str | None:
    """Colab's address of the Colab edition of the chapter page ``pagename`` (``chapters/NN_x`` ->
    ``colab/NN_x.ipynb``) at the release tag; ``None`` for other pages."""
    if not pagename.startswith("chapters/"):
        return None
    path = edition_file(str(app.confdir), pagename.removeprefix("chapters/"))
    return None if path is None else f"{COLAB}{path}"


def _colab_launch_button(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Point sphinx-book-theme's Colab launch button (built from the page's own path, ``chapters/``) at the
    Colab edition; runs after the theme's ``add_launch_buttons`` (priority 501)."""
    url = _colab_url(app, pagename)
    if url is None:
        return
    for group in context.get("header_buttons", []):
        if group.get("label") == "launch-buttons":
            for button in group["buttons"]:
                if button.get("text") == "Colab":
                    button["url"] = url


def _runtimes(app: Sphinx) -> dict:
    path = Path(app.confdir) / "book" / "runtimes.json"
    return json.loads(path.read_text(encoding="utf-8")).get("chapters", {}) if path.is_file() else {}


def _outdated_by_runtimes(app: Sphinx, env, added, changed, removed) -> list[str]:
    """Rewrite every chapter page when ``book/runtimes.json`` changed since the last build (new badges)."""
    path = Path(app.confdir) / "book" / "runtimes.json"
    content = path.read_text(encoding="utf-8") if path.is_file() else ""
    if getattr(env, "mmbook_runtimes", None) == content:
        return []
    env.mmbook_runtimes = content
    return [name for name in env.found_docs if name.startswith("chapters/")]


def _add_badges(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    if not pagename.startswith("chapters/") or "body" not in context:
        return
    badges = []
    url = _colab_url(app, pagename)
    if url:
        badges.append(f'<a class="mmbook-badge mmbook-colab" href="{url}">Open in Colab</a>')
    run = _runtimes(app).get(pagename.removeprefix("chapters/"))
    if run:
        badges.append(
            f'<span class="mmbook-badge mmbook-runtime" title="measured by make bench on {run["machine"]}">'
            f'Runs in {run["wall_s"]:.0f} s · peak {run["peak_mb"]:.0f} MB on a 2-core CPU</span>'
        )
    if not badges:
        return
    row = '<p class="mmbook-badges">' + " ".join(badges) + "</p>"
    body = context["body"]
    end = body.find("</h1>")
    context["body"] = body[: end + 5] + row + body[end + 5 :] if end >= 0 else row + body


CSS = """
.mmbook-badges { margin: 0.2rem 0 1.2rem 0; }
.mmbook-badge { display: inline-block; padding: 0.15rem 0.6rem; margin-right: 0.4rem; border-radius: 0.3rem;
  font-size: 0.85rem; font-weight: 600; text-decoration: none; }
a.mmbook-colab { background: #f9ab00; color: #202124 !important; }
.mmbook-runtime { background: #e8eaed; color: #202124; }
"""


def _write_css(app: Sphinx, exception) -> None:
    if exception is None and app.builder.format == "html":
        (Path(app.outdir) / "_static" / "mmbook.css").write_text(CSS, encoding="utf-8")


class RuntimesTable(SphinxDirective):
    """``{runtimes-table}``: the table of ``book/runtimes.json`` as measured by ``make bench``."""

    def run(self) -> list[nodes.Node]:
        path = Path(self.env.srcdir) / "book" / "runtimes.json"
        self.env.note_dependency(str(path))
        if not path.is_file():
            raise self.error("book/runtimes.json is missing: run `make bench` to measure the chapters")
        data = json.loads(path.read_text(encoding="utf-8"))
        rows = [["Chapter", "Wall time (s)", "Peak memory (MB)"]]
        rows += [[name, f"{r['wall_s']:.1f}", f"{r['peak_mb']:.0f}"] for name, r in data["chapters"].items()]
        table = nodes.table()
        group = nodes.tgroup(cols=3)
        table += group
        group.extend(nodes.colspec(colwidth=1) for _ in range(3))
        head, body = nodes.thead(), nodes.tbody()
        group += [head, body]
        for index, row in enumerate(rows):
            line = nodes.row()
            for cell in row:
                entry = nodes.entry()
                entry += nodes.paragraph(text=cell)
                line += entry
            (head if index == 0 else body).append(line)
        caption = nodes.paragraph(text=f"Measured on {data['date']} on a {data['machine']}.")
        return [table, caption]


class ColabEditionsTable(SphinxDirective):
    """``{colab-editions}``: every chapter with its Colab and student editions, opened in Colab or on GitHub."""

    def _links(self, chapter: str, student: bool) -> nodes.paragraph:
        path = edition_file(str(self.env.app.confdir), chapter, student)
        if path is None:
            raise self.error("_config.yml needs repository.url on GitHub and repository.release")
        cell = nodes.paragraph()
        cell += nodes.reference("", "Open in Colab", refuri=f"{COLAB}{path}")
        cell += nodes.Text(" · ")
        cell += nodes.reference("", "GitHub", refuri=f"https://github.com/{path}")
        return cell

    def run(self) -> list[nodes.Node]:
        self.env.note_dependency(str(Path(self.env.app.confdir) / "_config.yml"))
        chapters = sorted(name for name in self.env.found_docs if name.startswith("chapters/"))
        table = nodes.table()
        group = nodes.tgroup(cols=3)
        table += group
        group.extend(nodes.colspec(colwidth=width) for width in (3, 2, 2))
        head, body = nodes.thead(), nodes.tbody()
        group += [head, body]
        row = nodes.row()
        for title in ("Chapter", "Colab edition (with solutions)", "Student edition"):
            row += nodes.entry("", nodes.paragraph(text=title))
        head += row
        for docname in chapters:
            ref = addnodes.pending_xref("", refdomain="std", reftype="doc", reftarget=f"/{docname}",
                                        refexplicit=False, refwarn=True, refdoc=self.env.docname)
            ref += nodes.inline(text=docname)
            row = nodes.row()
            row += nodes.entry("", nodes.paragraph("", "", ref))
            for student in (False, True):
                row += nodes.entry("", self._links(docname.removeprefix("chapters/"), student))
            body += row
        return [table]


def setup(app: Sphinx) -> dict:
    app.add_directive("runtimes-table", RuntimesTable)
    app.add_directive("colab-editions", ColabEditionsTable)
    app.connect("config-inited", _use_vendored_assets, priority=100)
    app.connect("env-get-outdated", _outdated_by_runtimes)
    app.connect("html-page-context", _add_badges)
    app.connect("html-page-context", _colab_launch_button, priority=600)
    app.connect("build-finished", _write_css)
    app.add_css_file("mmbook.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
