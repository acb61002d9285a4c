"""The built HTML book, opened from file:// in headless Chromium with the network switched off.

Run after `jupyter-book build .` (make test does). Each page must show typeset math, no broken image,
no iframe pointing at a local server, rendered widgets where the page saved widget state, and Colab
links (badge and launch button) to the chapter's Colab edition on every chapter page.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from mmbook.demos import CHROMIUM_FLAGS, chromium_path

ROOT = Path(__file__).resolve().parent.parent
RELEASE = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))["repository"]["release"]
HTML = ROOT / "_build" / "html"
PAGES = sorted(p for p in HTML.rglob("*.html") if p.parent.name in {"chapters", "book"})
CHAPTER_PAGES = [p for p in PAGES if p.parent.name == "chapters"]

pytestmark = pytest.mark.skipif(chromium_path() is None, reason="needs Chromium (installed by .ci/run)")


def test_book_was_built() -> None:
    assert (HTML / "index.html").is_file(), "build the book first: jupyter-book build ."
    assert CHAPTER_PAGES, "no chapter pages in _build/html/chapters"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chrome = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        yield chrome
        chrome.close()


def load(browser, path: Path) -> tuple:
    context = browser.new_context(offline=True)
    page = context.new_page()
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.goto(path.as_uri(), wait_until="load")
    page.wait_for_timeout(300)
    if page.locator(".math").count():
        page.wait_for_function("() => document.querySelectorAll('mjx-container').length > 0", timeout=20_000)
    return context, page, failed


@pytest.mark.parametrize("path", PAGES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_page_renders_offline(browser, path: Path) -> None:
    context, page, failed = load(browser, path)
    try:
        local_failures = [url for url in failed if url.startswith("file://")]
        assert not local_failures, f"missing local files: {local_failures}"
        broken = page.evaluate(
            "() => [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)"
        )
        assert not broken, f"broken images: {broken}"
        frames = page.evaluate("() => [...document.querySelectorAll('iframe')].map(f => f.src)")
        assert not [src for src in frames if "127.0.0.1" in src or "localhost" in src]
        if page.locator(".math").count():
            assert page.locator("mjx-container").count() > 0, "math was not typeset"
            assert "\\[" not in page.inner_text("article")
        if page.locator('script[type="application/vnd.jupyter.widget-state+json"]').count():
            # rendered by the widget manager; a finished progress bar with leave=False is rendered hidden
            page.wait_for_selector(".jupyter-widgets", state="attached", timeout=20_000)
    finally:
        context.close()


@pytest.mark.parametrize("path", CHAPTER_PAGES, ids=lambda p: p.name)
def test_chapter_has_badges(browser, path: Path) -> None:
    context, page, _ = load(browser, path)
    try:
        # the badge and the theme's launch button both open the Colab edition (colab/), never chapters/
        edition = f"/blob/{RELEASE}/colab/{path.stem}.ipynb"
        colab = page.locator('a.mmbook-colab[href^="https://colab.research.google.com/github/"]')
        assert colab.count() == 1
        assert colab.get_attribute("href").endswith(edition)
        launch = page.locator('.dropdown-launch-buttons a[href^="https://colab.research.google.com/"]')
        assert launch.count() == 1, "no Colab launch button"
        assert launch.get_attribute("href") == colab.get_attribute("href")
        assert page.locator(".mmbook-runtime").count() == 1, "no run-time badge: run make bench"
    finally:
        context.close()
