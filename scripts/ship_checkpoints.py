"""`make checkpoints` (or `make checkpoints MODELS="tiny-clip tiny-vlm"`): train the book's models with the
installed code and ship them in code/mmbook/checkpoints/, each with its record (settings, code hash).

Without names, only the models whose shipped copy is missing or stale are trained. A chapter that merely
uses a model then loads the shipped copy instead of waiting for the training; tests/test_zoo.py fails while
a shipped copy does not match the code.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile


def main(names: list[str]) -> int:
    with tempfile.TemporaryDirectory() as cache:
        os.environ["MMBOOK_CACHE"] = cache
        from mmbook import zoo

        known = {entry.name for entry in zoo.entries()}
        unknown = sorted(set(names) - known)
        if unknown:
            known_names = ", ".join(sorted(known))
            raise SystemExit(f"checkpoints: no book model named {', '.join(unknown)}; known: {known_names}")
        for entry in zoo.entries():
            if names and entry.name not in names:
                continue
            reason = zoo.shipped_reason(entry.name)
            if not names and reason is None:
                print(f"checkpoints: {entry.name} is up to date")
                continue
            folder = zoo.path(entry.name, shipped=False)
            target = zoo.SHIPPED / entry.name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(folder, target)
            print(f"checkpoints: shipped {entry.name} ({reason or 'renewed on request'})")
        for stale in sorted(p for p in zoo.SHIPPED.iterdir() if p.is_dir() and p.name not in known):
            shutil.rmtree(stale)
            print(f"checkpoints: removed {stale.name}, no longer a book model")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
