"""mmbook.demos: mode detection, the snapshot path with and without Chromium."""

from __future__ import annotations

import shutil

import pytest
from mmbook import demos
from mmbook.apps import build_hello_app


def test_mode_override(monkeypatch) -> None:
    monkeypatch.setenv("MMBOOK_DEMO_MODE", "inline")
    assert demos.mode() == "inline"
    monkeypatch.setenv("MMBOOK_DEMO_MODE", "snapshot")
    assert demos.mode() == "snapshot"


def test_mode_outside_a_kernel_is_snapshot(monkeypatch) -> None:
    monkeypatch.delenv("MMBOOK_DEMO_MODE", raising=False)
    assert demos.mode() == "snapshot"


def test_first_api_name() -> None:
    assert demos.first_api_name(build_hello_app()) == "/greet"


@pytest.mark.skipif(demos.chromium_path() is None, reason="needs Chromium (installed by .ci/run)")
def test_snapshot_calls_and_photographs() -> None:
    run = demos.snapshot(build_hello_app(), ["Ada"])
    assert run.answer == "Hello, Ada!"
    assert run.png is not None and run.png.startswith(b"\x89PNG") and len(run.png) > 5000
    assert run.note is None


def test_snapshot_without_chromium_gives_a_clear_note(monkeypatch) -> None:
    monkeypatch.setenv("MMBOOK_CHROMIUM", "/nonexistent/chromium")
    run = demos.snapshot(build_hello_app(), ["Ada"])
    assert run.answer == "Hello, Ada!" and run.png is None
    assert "Chromium is not installed" in run.note


def test_show_prints_the_note_and_never_an_iframe(monkeypatch, capsys) -> None:
    monkeypatch.setenv("MMBOOK_CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setenv("MMBOOK_DEMO_MODE", "snapshot")
    demos.show(build_hello_app(), ["Ada"])
    out = capsys.readouterr().out
    assert "Note: Chromium is not installed" in out and "iframe" not in out


def test_snapshot_fails_loudly_when_the_example_breaks() -> None:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError):
        demos.snapshot(build_hello_app(), [""])


def test_chromium_path_finds_the_browser_on_path(monkeypatch) -> None:
    monkeypatch.delenv("MMBOOK_CHROMIUM", raising=False)
    assert demos.chromium_path() == next(
        (p for p in map(shutil.which, demos.CHROMIUM_NAMES) if p), None
    )


def test_serve_launches_and_closes_quietly(capsys) -> None:
    import gradio as gr
    from gradio_client import Client
    from mmbook.demos import serve

    demo = gr.Interface(lambda text: text.upper(), "text", "text", api_name="shout")
    with serve(demo, show_error=False) as url:
        assert url.startswith("http://127.0.0.1:")
        client = Client(url, verbose=False)
        assert client.predict("hi", api_name="/shout") == "HI"
        client.close()
    assert "Closing server" not in capsys.readouterr().out
    with pytest.raises(Exception):  # noqa: B017  (the server is gone: any connection error will do)
        Client(url, verbose=False)
