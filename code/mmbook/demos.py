"""Showing a Gradio demo in a notebook, live or photographed (Chapter 1; used by every demo chapter).

In an interactive Jupyter or Colab session :func:`show` launches the app inline (never with a public
share link). In non-interactive execution (nbmake, the book build) it starts the app on 127.0.0.1,
calls it once through ``gradio_client`` with an example and checks that an answer comes back,
photographs the page in headless Chromium, displays the picture and closes the server, so the HTML
book holds a real picture of the real app instead of a dead ``localhost`` frame.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from mmbook.env import is_colab

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]


@dataclass
class DemoRun:
    """What :func:`show` did in snapshot mode: the URL, the example call and the picture."""

    url: str
    api_name: str | None
    example: Sequence[Any] | None
    answer: Any
    png: bytes | None
    note: str | None = None


def mode() -> str:
    """``"inline"`` in a live notebook, ``"snapshot"`` in non-interactive execution (Chapter 1).

    ``MMBOOK_DEMO_MODE=inline|snapshot`` overrides. Non-interactive executors (nbclient, used by nbmake
    and the book build) send requests that do not allow stdin; live front ends allow it.
    """
    forced = os.environ.get("MMBOOK_DEMO_MODE", "").strip().lower()
    if forced in {"inline", "snapshot"}:
        return forced
    if is_colab():
        return "inline"
    try:
        from IPython import get_ipython

        kernel = getattr(get_ipython(), "kernel", None)
    except ImportError:
        kernel = None
    return "inline" if kernel is not None and getattr(kernel, "_allow_stdin", False) else "snapshot"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (Chapter 1)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def chromium_path() -> str | None:
    """Path of a Chromium-family browser: ``$MMBOOK_CHROMIUM`` or the first one on ``PATH`` (Chapter 1)."""
    explicit = os.environ.get("MMBOOK_CHROMIUM")
    if explicit:
        return explicit if os.path.exists(explicit) else None
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


def launch_local(demo: Any, **kwargs: Any) -> str:
    """Launch ``demo`` on 127.0.0.1 on a free port without blocking; return its URL (Chapter 1).

    The book's limits (:data:`mmbook.limits.LAUNCH`, such as the largest upload) apply. ``kwargs`` are
    further ``launch`` arguments; they may override those and ``show_error`` (on by default).
    """
    from mmbook.limits import LAUNCH

    port = free_port()
    options = {**LAUNCH, "server_name": "127.0.0.1", "server_port": port, "prevent_thread_lock": True,
               "share": False, "inline": False, "quiet": True, "show_error": True}
    demo.launch(**{**options, **kwargs})
    return f"http://127.0.0.1:{port}/"


@contextlib.contextmanager
def serve(demo: Any, **kwargs: Any) -> Iterator[str]:
    """``with serve(demo) as url:``: the app runs on 127.0.0.1 inside the block, closed quietly after (Chapter 9)."""
    url = launch_local(demo, **kwargs)
    try:
        yield url
    finally:
        with contextlib.redirect_stdout(io.StringIO()):  # gradio prints "Closing server ..."
            demo.close()


def _file_path(value: Any) -> str | None:
    """The local path inside a ``gradio_client.handle_file`` value, if ``value`` is one."""
    if isinstance(value, dict) and isinstance(value.get("path"), str):
        return value["path"]
    return None


def _endpoint(demo: Any, api_name: str) -> Any:
    return next(f for f in demo.fns.values() if f.api_name and "/" + str(f.api_name) == api_name)


def _tag_components(demo: Any, api_name: str) -> None:
    """Give the endpoint's inputs and trigger an ``elem_id`` (before launch) so the page can find them."""
    fn = _endpoint(demo, api_name)
    for block in [*fn.inputs, *(demo.blocks[i] for i, _ in fn.targets)]:
        if not getattr(block, "elem_id", None):
            block.elem_id = f"mmbook-{block._id}"


def _settle(page: Any, timeout_ms: int = 5_000) -> None:
    """Wait until the page has no network traffic, or ``timeout_ms``: some apps (``gr.ChatInterface``)
    keep a connection open, and the page is ready long before it closes."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_load_state("networkidle", timeout=timeout_ms)
    except PlaywrightTimeout:
        pass


def _fill_and_run(page: Any, demo: Any, api_name: str, example: Sequence[Any]) -> None:
    """Type ``example`` into the inputs of ``api_name`` in the page, click its trigger, wait."""
    fn = _endpoint(demo, api_name)
    for component, value in zip(fn.inputs, example, strict=False):
        block = page.locator(f"#{component.elem_id}")
        path = _file_path(value)
        if isinstance(value, dict) and "text" in value:  # gr.MultimodalTextbox: attach the files, type the text
            for item in value.get("files") or []:
                if _file_path(item) is not None:
                    block.locator("input[type=file]").set_input_files(_file_path(item))
                    page.wait_for_timeout(500)
            block.locator("textarea").first.fill(str(value["text"]))
        elif path is not None:
            block.locator("input[type=file]").set_input_files(path)
        elif block.locator("input[type=radio]").count():  # gr.Radio: pick the choice with that value
            block.locator(f'input[type=radio][value="{value}"]').check()
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int | float):
            block.locator("input[type=number]").first.fill(str(value))
            block.locator("input[type=number]").first.press("Enter")
        elif isinstance(value, str):
            block.locator("textarea, input[type=text]").first.fill(value)
    page.wait_for_timeout(500)
    trigger = next((i for i, event in fn.targets if event == "click"), None)
    button = page.locator(f"#{demo.blocks[trigger].elem_id}") if trigger is not None else None
    if button is not None and button.count() and button.first.is_visible():
        button.first.click()
    elif fn.inputs and page.locator(f"#{fn.inputs[0].elem_id} textarea").count():
        # No visible button (gr.ChatInterface submits from its textbox): press Enter in the first input.
        page.locator(f"#{fn.inputs[0].elem_id} textarea").first.press("Enter")
    else:
        return
    page.wait_for_timeout(500)
    _settle(page)
    page.wait_for_timeout(1000)


def screenshot(url: str, *, demo: Any = None, api_name: str | None = None,
               example: Sequence[Any] | None = None, width: int = 1000, height: int = 480,
               browser: str | None = None) -> bytes:
    """A full-page PNG of ``url`` taken in headless Chromium through Playwright (Chapter 1).

    With ``demo``, ``api_name`` and ``example`` the example is first typed (or uploaded) into the page
    and the event's button clicked, so the picture shows the app with its answer. Runs in a worker
    thread because Playwright's sync API refuses to run inside the kernel's event loop.
    """
    from playwright.sync_api import sync_playwright

    executable = browser or chromium_path()
    if executable is None:
        raise FileNotFoundError("no Chromium found; install the Debian package 'chromium' or set MMBOOK_CHROMIUM")
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            with sync_playwright() as p:
                chrome = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
                try:
                    page = chrome.new_page(viewport={"width": width, "height": height})
                    page.goto(url, wait_until="load", timeout=60_000)
                    _settle(page)
                    page.wait_for_selector(".gradio-container", timeout=60_000)
                    if demo is not None and api_name and example is not None:
                        _fill_and_run(page, demo, api_name, example)
                    page.wait_for_timeout(400)
                    result["png"] = page.screenshot(full_page=True)
                finally:
                    chrome.close()
        except Exception as exc:  # handed back to the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["png"]


def first_api_name(demo: Any) -> str:
    """The name of the demo's first public API endpoint, e.g. ``"/greet"`` (Chapter 1)."""
    names = list(demo.get_api_info()["named_endpoints"])
    if not names:
        raise ValueError("the demo has no public API endpoint to call")
    return names[0]


def call(url: str, example: Sequence[Any], api_name: str) -> Any:
    """Call a running app once through ``gradio_client`` (Chapter 1)."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    try:
        return client.predict(*example, api_name=api_name)
    finally:
        client.close()


def _describe(answer: Any, limit: int = 400) -> str:
    if isinstance(answer, list | tuple):
        text = "[" + ", ".join(_describe(a, limit) for a in answer) + "]"
    elif _file_path(answer) is not None:
        text = f"<file {os.path.basename(_file_path(answer))}>"
    else:
        text = repr(answer)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def snapshot(demo: Any, example: Sequence[Any] | None = None, *, api_name: str | None = None,
             width: int = 1000, height: int = 480, launch: dict[str, Any] | None = None) -> DemoRun:
    """Start, call, photograph and close ``demo``; raise if the example call returns nothing (Chapter 1).

    ``launch`` holds extra ``demo.launch`` arguments, such as ``theme`` and ``css`` (Chapter 9).
    """
    if example is not None:
        api_name = api_name or first_api_name(demo)
        _tag_components(demo, api_name)
    url = launch_local(demo, **(launch or {}))
    try:
        answer = None
        if example is not None:
            answer = call(url, example, api_name)
            if answer is None:
                raise RuntimeError(f"the demo answered None to {api_name} with {example!r}")
        if chromium_path() is None:
            return DemoRun(url, api_name, example, answer, None,
                           note="Chromium is not installed, so no picture of the app was taken "
                                "(install the Debian package `chromium`). The app started and answered.")
        try:
            png = screenshot(url, demo=demo, api_name=api_name, example=example, width=width, height=height)
        except ImportError:
            return DemoRun(url, api_name, example, answer, None,
                           note="Playwright is not installed, so no picture of the app was taken "
                                "(`pip install playwright`). The app started and answered.")
        return DemoRun(url, api_name, example, answer, png)
    finally:
        with contextlib.redirect_stdout(io.StringIO()):  # gradio prints "Closing server ..."
            demo.close()


def show(demo: Any, example: Sequence[Any] | None = None, *, api_name: str | None = None,
         width: int = 1000, height: int = 480, launch: dict[str, Any] | None = None) -> DemoRun | None:
    """Show ``demo`` in the notebook: live when interactive, otherwise as a checked photograph (Chapter 1).

    ``launch`` holds extra ``demo.launch`` arguments, such as ``theme`` and ``css`` (Chapter 9).
    """
    from IPython.display import Image, Markdown, display

    if mode() == "inline":
        from mmbook.limits import LAUNCH

        demo.launch(**{**LAUNCH, "share": False, "inline": True, "height": height, "quiet": True, **(launch or {})})
        return None
    run = snapshot(demo, example, api_name=api_name, width=width, height=height, launch=launch)
    if run.png is not None:
        display(Image(data=run.png, width=min(width, 900)))
    else:
        print(f"Note: {run.note}", file=sys.stdout)
    if example is not None:
        display(Markdown(
            f"*Checked through `gradio_client`:* `{run.api_name}` with `{_describe(list(example), 200)}` "
            f"answered `{_describe(run.answer)}`."
        ))
    return run
