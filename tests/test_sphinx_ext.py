"""The book's Sphinx extension (``book/_ext/mmbook_sphinx.py``) without a book build: the Colab links.

The launch button is made by sphinx-book-theme's own ``add_launch_buttons`` from the configuration that
Jupyter Book derives from ``_config.yml``; the extension must then point it at the Colab edition.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat
import yaml
from jupyter_book.config import yaml_to_sphinx
from sphinx_book_theme.header_buttons import prep_header_buttons
from sphinx_book_theme.header_buttons.launch import add_launch_buttons

ROOT = Path(__file__).resolve().parent.parent
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
PAGE = "chapters/01_background"

spec = importlib.util.spec_from_file_location("mmbook_sphinx", ROOT / "book" / "_ext" / "mmbook_sphinx.py")
ext = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ext)


class _Config(dict):
    """Sphinx's config answers both ``config["key"]`` and ``config.key``."""

    __getattr__ = dict.__getitem__


def _app() -> SimpleNamespace:
    theme_options = yaml_to_sphinx(CONFIG)[0]["html_theme_options"]
    env = SimpleNamespace(doc2path=lambda name: str(ROOT / f"{name}.ipynb"),
                          metadata={PAGE: {"kernelspec": {"name": "python3"}}})
    return SimpleNamespace(confdir=str(ROOT), env=env, config=_Config(html_theme_options=theme_options))


def _page_context(app: SimpleNamespace) -> dict:
    owner, name = CONFIG["repository"]["url"].removeprefix("https://github.com/").split("/")
    context = {"pagename": PAGE, "sourcename": f"{PAGE}.ipynb", "page_source_suffix": ".ipynb",
               "github_url": "https://github.com", "github_user": owner, "github_repo": name}
    prep_header_buttons(app, PAGE, "page.html", context, None)
    add_launch_buttons(app, PAGE, "page.html", context, None)
    return context


def _colab_buttons(context: dict) -> list[dict]:
    return [button for group in context["header_buttons"] if group.get("label") == "launch-buttons"
            for button in group["buttons"] if button.get("text") == "Colab"]


def test_colab_links_open_the_colab_edition_at_the_release() -> None:
    repo = CONFIG["repository"]["url"].removeprefix("https://github.com/")
    expected = (f"https://colab.research.google.com/github/{repo}/blob/{CONFIG['repository']['release']}"
                "/colab/01_background.ipynb")
    app = _app()
    assert ext._colab_url(app, PAGE) == expected
    assert ext._colab_url(app, "book/teachers") is None
    assert (ROOT / "colab" / "01_background.ipynb").is_file()


def test_the_themes_colab_launch_button_is_pointed_at_the_colab_edition() -> None:
    app = _app()
    context = _page_context(app)
    (button,) = _colab_buttons(context)
    assert "/blob/main/chapters/01_background.ipynb" in button["url"], "the theme's own link changed"
    ext._colab_launch_button(app, PAGE, "page.html", context, None)
    assert button["url"] == ext._colab_url(app, PAGE)


def test_the_badge_row_opens_the_colab_edition() -> None:
    app = _app()
    context = {"body": "<h1>Background</h1><p>text</p>"}
    ext._add_badges(app, PAGE, "page.html", context, None)
    assert f'href="{ext._colab_url(app, PAGE)}">Open in Colab</a>' in context["body"]


def test_a_small_book_builds_with_colab_links_and_the_editions_table(tmp_path) -> None:
    """Two chapters and a teachers' page through Sphinx with the theme (-W -n): both Colab links of a
    chapter page and the ``{colab-editions}`` table open colab/ at the release."""
    (tmp_path / "_config.yml").write_text((ROOT / "_config.yml").read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT / 'book' / '_ext')!r})\n"
        f"extensions = ['myst_nb', 'mmbook_sphinx']\nhtml_theme = 'sphinx_book_theme'\n"
        f"html_theme_options = {_app().config.html_theme_options!r}\n"
        "nb_execution_mode = 'off'\nmyst_enable_extensions = ['colon_fence']\n", encoding="utf-8")
    (tmp_path / "index.md").write_text("# Home\n\n```{toctree}\nchapters/01_background\nteachers\n```\n")
    (tmp_path / "teachers.md").write_text("# Teachers\n\n:::{colab-editions}\n:::\n")
    (tmp_path / "chapters").mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Background"),
                                         nbformat.v4.new_code_cell("1 + 1")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "chapters" / "01_background.ipynb")
    out = subprocess.run([sys.executable, "-m", "sphinx", "-W", "-n", "-q", "-b", "html", str(tmp_path),
                          str(tmp_path / "_build")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    app = _app()
    colab, student = ext._colab_url(app, PAGE), ext._colab_url(app, PAGE).replace("/colab/", "/colab/student/")
    page = (tmp_path / "_build" / "chapters" / "01_background.html").read_text(encoding="utf-8")
    assert page.count(f'href="{colab}"') == 2, "the badge and the launch button"
    assert "/chapters/01_background.ipynb" not in page.replace("_sources/chapters/01_background.ipynb", "")
    teachers = (tmp_path / "_build" / "teachers.html").read_text(encoding="utf-8")
    assert f'href="{colab}"' in teachers and f'href="{student}"' in teachers
    assert 'href="chapters/01_background.html"' in teachers
