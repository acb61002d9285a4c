"""Write the setup cell, the first code cell of every chapter, from ``_config.yml``.

Usage: ``python scripts/setup_cell.py [CHAPTER ...]`` (default: every notebook in ``chapters/``).

The setup cell installs the companion package where it is missing (Colab) from the repository URL
``repository.url`` at the release tag ``repository.release``, both read from ``_config.yml``, the one
place that names them. Run this script after changing either (a fork, a new release);
``tests/test_notebooks.py`` fails while a chapter's setup cell differs from :data:`SETUP_CELL`.

On Colab nothing else is pinned: pip keeps what the runtime ships wherever it satisfies the package's
ranges in ``code/pyproject.toml`` (``constraints.txt`` is for CI and local installs only).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
REPOSITORY_URL: str = CONFIG["repository"]["url"].rstrip("/")
RELEASE: str = CONFIG["repository"]["release"]

# %pip installs into the kernel's own environment; unlike subprocess it shows pip's output, and unlike
# `pip` it never raises when the install fails, hence the second find_spec and the error with advice.
TEMPLATE = '''# Setup: on Colab, install the companion package of the book's release;
# everywhere, seed and pick the device.
import importlib
import importlib.util

if importlib.util.find_spec("mmbook") is None:
    REPO = "{url}"
    RELEASE = "{release}"  # a git tag of REPO
    %pip install -q "mmbook @ git+{{REPO}}@{{RELEASE}}#subdirectory=code"
    importlib.invalidate_caches()
    if importlib.util.find_spec("mmbook") is None:
        raise ModuleNotFoundError(
            f"Installing mmbook {{RELEASE}} failed (pip's message is above). Check that"
            " the runtime has internet access, that Python is 3.11 or newer and that"
            f" {{REPO}} has the tag {{RELEASE}}. To run the chapters on your own"
            " machine instead, clone the repository and follow its README (make book)."
        )
import mmbook

DEVICE = mmbook.env.setup(seed=0)'''

#: The setup cell of every chapter, for the repository and release named in ``_config.yml``.
SETUP_CELL = TEMPLATE.format(url=REPOSITORY_URL, release=RELEASE)


def write_setup_cell(path: Path) -> bool:
    """Make the first code cell of the notebook ``path`` the setup cell; return whether it changed."""
    nb = nbformat.read(path, as_version=4)
    cell = next((c for c in nb.cells if c.cell_type == "code"), None)
    if cell is None:
        raise ValueError(f"{path}: no code cell to hold the setup cell")
    if cell.source == SETUP_CELL:
        return False
    cell.source = SETUP_CELL
    nbformat.write(nb, path)
    return True


def main(argv: list[str]) -> int:
    """Command line: write the setup cell into the chapters named (all by default)."""
    paths = [Path(arg) for arg in argv] or sorted((ROOT / "chapters").glob("*.ipynb"))
    for path in paths:
        print(f"{path.name}: {'updated' if write_setup_cell(path) else 'up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
