"""`make bench` (or `make bench CHAPTERS="02 05"`): execute every chapter cold and record wall time and
peak memory in book/runtimes.json.

"Cold" means a fresh kernel and an empty model cache (the book's small models are trained again). Each
chapter runs in its own child process; the peak resident memory is that of the largest process in the
child's tree (the kernel), read from ``wait4``. The book shows the table as each chapter's badge and on
the "Run times" page. This is a benchmark, not a timed test.
"""

from __future__ import annotations

import datetime as dt
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


def run_one(path: str) -> None:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=900, resources={"metadata": {"path": str(Path(path).parent)}}).execute()


def machine() -> str:
    return f"{os.cpu_count()}-core {platform.machine()} CPU, Python {platform.python_version()}"


def bench(path: Path) -> dict:
    env = dict(os.environ, MMBOOK_DEMO_MODE="snapshot")
    with tempfile.TemporaryDirectory() as cache:
        env["MMBOOK_CACHE"] = cache
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, __file__, "--one", str(path)], env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench: {path.name} failed")
    return {"wall_s": round(wall, 1), "peak_mb": round(usage.ru_maxrss / 1024), "machine": machine()}


def main(names: list[str]) -> int:
    """Bench every chapter, or only those whose file names start with one of ``names`` (kept with the rest)."""
    chapters = sorted((ROOT / "chapters").glob("*.ipynb"))
    if names:
        chapters = [p for p in chapters if any(p.stem.startswith(n) for n in names)]
        if not chapters:
            raise SystemExit(f"bench: no chapter matches {names}")
    results = json.loads(OUTPUT.read_text(encoding="utf-8"))["chapters"] if names and OUTPUT.exists() else {}
    for path in chapters:
        results[path.stem] = bench(path)
        print(f"{path.stem:28s} {results[path.stem]['wall_s']:7.1f} s {results[path.stem]['peak_mb']:6d} MB")
    results = {stem: results[stem] for stem in sorted(results) if (ROOT / "chapters" / f"{stem}.ipynb").exists()}
    data = {"date": dt.date.today().isoformat(), "machine": machine(), "chapters": results}
    OUTPUT.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"bench: wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        run_one(sys.argv[2])
    else:
        sys.exit(main(sys.argv[1:]))
