"""The Spaces folder writer (Chapter 9): the files, their header, and an app.py that builds the app."""

from __future__ import annotations

import runpy
from pathlib import Path

import gradio as gr
import pytest
import yaml
from mmbook.apps.spaces import REPOSITORY_URL, write_space

ROOT = Path(__file__).resolve().parent.parent


def test_the_repository_url_is_the_books() -> None:
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert REPOSITORY_URL == config["repository"]["url"]


def test_a_space_folder_runs_the_app(tmp_path) -> None:
    written = write_space("hello", tmp_path / "space", title="Hello from the book")
    assert sorted(p.name for p in written) == ["README.md", "app.py", "requirements.txt"]
    readme = (tmp_path / "space" / "README.md").read_text()
    header = yaml.safe_load(readme.split("---")[1])
    assert header["sdk"] == "gradio" and header["sdk_version"] == gr.__version__ and header["app_file"] == "app.py"
    assert header["title"] == "Hello from the book"
    requirements = (tmp_path / "space" / "requirements.txt").read_text().splitlines()
    assert requirements[0].startswith("--extra-index-url") and requirements[1].startswith("torch==")
    assert requirements[2] == f"mmbook @ git+{REPOSITORY_URL}#subdirectory=code"
    namespace = runpy.run_path(str(tmp_path / "space" / "app.py"), run_name="space")  # builds, does not launch
    assert isinstance(namespace["demo"], gr.Blocks)


def test_unknown_app() -> None:
    with pytest.raises(ValueError, match="unknown app 'nope'; the book's apps are: "):
        write_space("nope", "/tmp/unused")
