"""Copy the book's browser assets from node_modules/ into _vendor/ (run by the Makefile after npm ci)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COPIES = {
    "node_modules/mathjax/es5": "_vendor/static/mathjax",
    "node_modules/requirejs/require.js": "_vendor/static/requirejs/require.js",
    "node_modules/@jupyter-widgets/html-manager/dist": "_vendor/static/html-manager",
}
# The widget manager loads its icon fonts relative to the page that embeds it, from
# "<page folder>/@jupyter-widgets/html-manager/dist/" or, from some widgets' styles,
# "<page folder>/@jupyter-widgets/": one copy in each, per folder that holds pages.
FONT_SUFFIXES = {".woff", ".woff2", ".ttf", ".eot", ".svg"}
PAGE_FOLDERS = ["chapters", "book"]


def main() -> int:
    missing = [src for src in COPIES if not (ROOT / src).exists()]
    if missing:
        print(f"vendor_assets: missing {', '.join(missing)}; run 'npm ci' first", file=sys.stderr)
        return 1
    shutil.rmtree(ROOT / "_vendor", ignore_errors=True)
    for src, dst in COPIES.items():
        source, target = ROOT / src, ROOT / dst
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
    fonts = [f for f in (ROOT / "node_modules/@jupyter-widgets/html-manager/dist").iterdir()
             if f.suffix in FONT_SUFFIXES]
    for folder in PAGE_FOLDERS:
        base = ROOT / "_vendor" / "pages" / folder / "@jupyter-widgets"
        for target in (base / "html-manager" / "dist", base):
            target.mkdir(parents=True, exist_ok=True)
            for font in fonts:
                shutil.copy2(font, target / font.name)
    print("vendor_assets: MathJax 3, require.js and the ipywidgets HTML manager copied to _vendor/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
