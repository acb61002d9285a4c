"""Hand notebooks executed by nbmake to the book's execution cache (called by `make notebooks`).

myst-nb looks notebooks up in jupyter-cache by a hash of their code cells and cell metadata. nbmake adds
timing metadata to each cell, so the original metadata is restored before the executed notebook is
cached under the original file's path. The book build then finds every chapter in the cache and does
not execute it a second time.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import yaml
from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn

ROOT = Path(__file__).resolve().parent.parent


def main(executed_dir: str) -> int:
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    cache = get_cache(str(ROOT / config["execute"]["cache"]))
    count = 0
    for executed_path in sorted(Path(executed_dir).glob("*.ipynb")):
        original_path = ROOT / "chapters" / executed_path.name
        original = nbformat.read(original_path, as_version=4)
        executed = nbformat.read(executed_path, as_version=4)
        if len(original.cells) != len(executed.cells):
            print(f"prime_cache: {executed_path.name} changed shape; not cached", file=sys.stderr)
            return 1
        for before, after in zip(original.cells, executed.cells, strict=True):
            after.metadata = before.metadata
        executed.metadata.pop("execution", None)
        cache.cache_notebook_bundle(
            CacheBundleIn(executed, str(original_path)), check_validity=False, overwrite=True
        )
        count += 1
    print(f"prime_cache: {count} executed notebook(s) cached for the book build")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "_executed"))
