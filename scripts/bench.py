"""`make bench` (or `make bench CHAPTERS="02 05"`): execute every chapter cold and record wall time and
peak memory in book/runtimes.json.

"Cold" means a fresh kernel and an empty model cache, as a reader meets the chapter on a new machine: the
models the chapter teaches are trained, the others come from the checkpoints shipped with mmbook. Each
chapter runs in its own child process; the peak resident memory is that of the largest process in the
child's tree (the kernel), read from ``wait4``. The book shows the table as each chapter's badge and on
the "Run times" page. This is a benchmark, not a timed test.

Each entry also records the ``mmbook`` modules the chapter's kernel loaded and a fingerprint of the
chapter's code cells and those modules' sources; tests/test_notebooks.py fails when a chapter or the code
it runs changed after its badge was measured, and when a chapter is over the 120-second budget.

With ``MMBOOK_BENCH_EXECUTED=<folder>`` the executed chapters are kept there, for
``scripts/colab_edition.py --executed <folder>`` (the Colab editions then carry the values of the bench run).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "book" / "runtimes.json"


#: The last cell bench appends to a chapter: it prints the ``mmbook`` modules the chapter's kernel loaded.
MODULES_CELL = (
    "import json as _json, sys as _sys\n"
    "print(_json.dumps(sorted(m for m in _sys.modules if m == 'mmbook' or m.startswith('mmbook.'))))"
)


def code_cells(path: Path) -> list[str]:
    """The sources of the code cells of the notebook ``path``, in order."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in cells if c["cell_type"] == "code"]  # fmt: skip


def module_file(name: str) -> Path | None:
    """The source file of the module ``name``, or ``None`` when it no longer exists."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin) if spec and spec.origin and spec.origin.endswith(".py") else None


def fingerprint(path: Path, modules: list[str]) -> str:
    """SHA-256 of what a chapter's run time depends on: its code cells and the source of every ``mmbook``
    module its kernel loaded. A badge whose fingerprint differs was measured on other code."""
    digest = hashlib.sha256()
    for source in code_cells(path):
        digest.update(source.encode() + b"\0")
    for name in sorted(modules):
        file = module_file(name)
        digest.update(name.encode() + b"\0" + (file.read_bytes() if file else b"<missing>") + b"\0")
    return digest.hexdigest()


def run_one(path: str, modules_out: str) -> None:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(MODULES_CELL))
    NotebookClient(nb, timeout=900, resources={"metadata": {"path": str(Path(path).parent)}}).execute()
    printed = "".join(o.get("text", "") for o in nb.cells.pop().outputs if o.get("output_type") == "stream")
    Path(modules_out).write_text(printed.strip().splitlines()[-1], encoding="utf-8")
    if os.environ.get("MMBOOK_BENCH_EXECUTED"):  # keep the executed chapter (scripts/colab_edition.py reads it)
        folder = Path(os.environ["MMBOOK_BENCH_EXECUTED"])
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, folder / Path(path).name)


def machine() -> str:
    return f"{os.cpu_count()}-core {platform.machine()} CPU, Python {platform.python_version()}"


def bench(path: Path) -> dict:
    env = dict(os.environ, MMBOOK_DEMO_MODE="snapshot")
    with tempfile.TemporaryDirectory() as cache:
        env["MMBOOK_CACHE"] = cache
        modules_out = Path(cache) / "modules.json"
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, __file__, "--one", str(path), str(modules_out)], env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"bench: {path.name} failed")
        modules = json.loads(modules_out.read_text(encoding="utf-8"))
    return {"wall_s": round(wall, 1), "peak_mb": round(usage.ru_maxrss / 1024), "machine": machine(),
            "fingerprint": fingerprint(path, modules), "modules": modules}  # fmt: skip


def main(names: list[str]) -> int:
    """Bench every chapter, or only those whose file names start with one of ``names`` (kept with the rest)."""
    chapters = sorted((ROOT / "chapters").glob("*.ipynb"))
    if names:
        chapters = [p for p in chapters if any(p.stem.startswith(n) for n in names)]
        if not chapters:
            raise SystemExit(f"bench: no chapter matches {names}")
    results = json.loads(OUTPUT.read_text(encoding="utf-8"))["chapters"] if names and OUTPUT.exists() else {}
    for path in chapters:  # written after every chapter: a chapter that fails keeps the others' results
        results[path.stem] = bench(path)
        print(f"{path.stem:28s} {results[path.stem]['wall_s']:7.1f} s {results[path.stem]['peak_mb']:6d} MB")
        kept = {stem: results[stem] for stem in sorted(results) if (ROOT / "chapters" / f"{stem}.ipynb").exists()}
        data = {"date": dt.date.today().isoformat(), "machine": machine(), "chapters": kept}
        OUTPUT.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"bench: wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        run_one(sys.argv[2], sys.argv[3])
    else:
        sys.exit(main(sys.argv[1:]))
