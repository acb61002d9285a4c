"""A Hugging Face Spaces folder for any of the book's apps (Chapter 9; Chapter 10 ships the assistant).

A Space is a git repository with ``app.py``, ``requirements.txt`` and a ``README.md`` whose YAML header
tells Spaces which SDK and version to run. The app file builds the app from :data:`mmbook.apps.APPS`,
so the Space runs exactly the code the book tests.
"""

from __future__ import annotations

from pathlib import Path

#: Where the companion package is installed from; a test checks it against the book's ``_config.yml``.
REPOSITORY_URL = "https://github.com/mmbook-authors/multimodal-gradio-book"
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"


def write_space(name: str, folder: str | Path, *, title: str | None = None) -> list[Path]:
    """Write ``app.py``, ``requirements.txt`` and ``README.md`` for the app ``name`` into ``folder`` (Chapter 9).

    Returns the paths written. ``ValueError`` for an app the book does not have.
    """
    import gradio as gr
    import torch

    from mmbook.apps import APPS

    if name not in APPS:
        raise ValueError(f"unknown app {name!r}; the book's apps are: {', '.join(sorted(APPS))}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    title = title or f"mmbook: {name}"
    files = {
        "app.py": (
            '"""A Space running one of the apps of the book *Multimodal Large Models: Principles and Practice*."""\n\n'
            "import mmbook  # noqa: F401  (network hygiene before gradio is imported)\n"
            "from mmbook.apps import APPS\n"
            "from mmbook.limits import LAUNCH\n\n"
            f"demo = APPS[{name!r}]()\n\n"
            'if __name__ == "__main__":\n'
            "    demo.launch(**LAUNCH)\n"
        ),
        "requirements.txt": (
            f"--extra-index-url {CPU_TORCH_INDEX}\n"
            f"torch=={torch.__version__.split('+')[0]}\n"
            f"mmbook @ git+{REPOSITORY_URL}#subdirectory=code\n"
        ),
        "README.md": (
            "---\n"
            f"title: {title}\n"
            "sdk: gradio\n"
            f"sdk_version: {gr.__version__}\n"
            'python_version: "3.11"\n'
            "app_file: app.py\n"
            "pinned: false\n"
            "license: mit\n"
            "---\n\n"
            f"# {title}\n\n"
            f"The `{name}` app of the book's companion package `mmbook` ({REPOSITORY_URL}).\n"
        ),
    }
    written = []
    for filename, text in files.items():
        path = folder / filename
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
