"""The full search sweep of Chapter 12: exact, IVF, HNSW and IVF-PQ indexes from 10k to 1M vectors.

The database is :func:`mmbook.vector_index.synthetic` vectors around the tiny CLIP's embeddings of 2,000
shapes-world scenes (pictures and captions); the queries are 1,000 more of them. For every size and index kind
it records the build time, the index bytes, and recall@10 against the exact index with queries per second at
each ``nprobe`` / ``efSearch``. Writes ``search_bench.json`` and ``search_bench.md`` to ``--out`` and exits 1
when no approximate index reaches the target at the largest size::

    python scripts/search_bench.py --out _build/search_bench                # the full sweep, several minutes
    python scripts/search_bench.py --sizes 10000 20000 --out /tmp/smoke     # a smoke run
    python scripts/search_bench.py --threads 1 --ship   # the full sweep, copied into the package

``--ship`` also writes the JSON to :data:`mmbook.vector_index.BENCHMARK`, the copy Chapter 12 plots.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import faiss
from mmbook import vector_index, zoo
from mmbook.data import make_shapes

SIZES = (10_000, 30_000, 100_000, 300_000, 1_000_000)
EFFORTS = {"flat": [0], "ivf": [1, 2, 4, 8, 16, 32, 64], "hnsw": [16, 32, 64, 128, 256], "ivfpq": [8, 32]}
TARGET_RECALL, TARGET_SPEEDUP = 0.95, 5.0


def best_at(rows: list[dict[str, Any]], n: int) -> dict[str, Any] | None:
    """The fastest approximate row at size ``n`` with recall ≥ the target, with its speed-up over exact."""
    exact = next(r["qps"] for r in rows if r["n"] == n and r["kind"] == "flat")
    good = [r for r in rows if r["n"] == n and r["kind"] != "flat" and r["recall"] >= TARGET_RECALL]
    if not good:
        return None
    best = max(good, key=lambda r: r["qps"])
    return {**best, "speedup": best["qps"] / exact}


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a markdown table."""
    lines = ["| vectors | index | effort | recall@10 | queries/s | build s | MB |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['n']:,} | {r['kind']} | {r['effort']} | {r['recall']:.3f} | {r['qps']:,.0f} | "
              f"{r['build_s']:.1f} | {r['bytes'] / 1e6:.1f} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the sweep; 0 when the target is met at the largest size, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=0, help="FAISS threads (0: all cores)")
    parser.add_argument("--out", type=Path, default=Path("_build/search_bench"))
    parser.add_argument("--ship", action="store_true", help="also copy the JSON into the package")
    args = parser.parse_args(argv)
    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    model, processor = zoo.tiny_clip()
    scenes = make_shapes(2000, seed=7)
    base = vector_index.Corpus.build(model, processor, scenes.images, scenes.captions).vectors
    queries = vector_index.synthetic(base, args.queries, seed=1)
    start = time.perf_counter()
    rows = []
    for n in args.sizes:  # one size at a time, so that progress shows
        rows += vector_index.scaling(base, [n], queries, EFFORTS)
        print(table([r for r in rows if r["n"] == n]), flush=True)
    best = best_at(rows, max(args.sizes))
    met = best is not None and best["speedup"] >= TARGET_SPEEDUP
    verdict = ("no approximate index reached the recall target" if best is None else
               f"{best['kind']} at effort {best['effort']}: recall@10 {best['recall']:.3f}, "
               f"{best['speedup']:.1f}× the exact index's queries per second")
    summary = (f"At {max(args.sizes):,} vectors, {verdict} (target: recall ≥ {TARGET_RECALL}, ≥ "
               f"{TARGET_SPEEDUP:.0f}×; FAISS threads: {faiss.omp_get_max_threads()}; "
               f"{time.perf_counter() - start:.0f} s).")
    args.out.mkdir(parents=True, exist_ok=True)
    measured = (f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPU cores, FAISS threads "
                f"{faiss.omp_get_max_threads()}, {args.queries} queries, {time.perf_counter() - start:.0f} s")
    result = json.dumps({"rows": rows, "best": best, "met": met, "measured": measured}, indent=1)
    (args.out / "search_bench.json").write_text(result)
    if args.ship:
        vector_index.BENCHMARK.write_text(result)
    (args.out / "search_bench.md").write_text(f"{summary}\n\n{table(rows)}\n")
    print(summary)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
