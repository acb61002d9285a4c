"""The full serving sweep of Chapter 13: every server variant under 1, 8, 32 and 64 locust visitors.

Each variant runs in its own process (``python -m mmbook.serving VARIANT --workers W``), and locust runs
headless in another (``locust -f scripts/locustfile.py --headless -u N -r N -t Ts --csv ...``), so the
load generator never shares an interpreter with the server. Writes ``serve_bench.json`` and
``serve_bench.md`` (throughput, p50 and p95 for each variant and load) to ``--out``::

    python scripts/serve_bench.py --out _build/serve_bench          # the full sweep, several minutes
    python scripts/serve_bench.py --variants fastapi --clients 4 --seconds 3   # a smoke run
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
QUERY = "a red circle in the center"
LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
#: name -> (mmbook.serving variant, processes, the visitors' protocol: scripts/locustfile.py's modes)
SETUPS: dict[str, tuple[str, int, str]] = {
    "assistant": ("assistant", 1, "gradio"),
    "assistant-session": ("assistant", 1, "gradio-session"),
    "gradio": ("gradio", 1, "gradio"),
    "gradio-c4": ("gradio-c4", 1, "gradio"),
    "gradio-batch": ("gradio-batch", 1, "gradio"),
    "gradio-2proc": ("gradio", 2, "gradio"),
    "fastapi": ("fastapi", 1, "route"),
    "fastapi-2proc": ("fastapi", 2, "route"),
}


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(variant: str, workers: int, port: int, log: Path) -> subprocess.Popen:
    """Start ``python -m mmbook.serving`` and wait until it answers (its models load first)."""
    server = subprocess.Popen(
        [sys.executable, "-m", "mmbook.serving", variant, "--port", str(port), "--workers", str(workers)],
        stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip
    probe = "/ui/config" if variant == "fastapi" else "/config"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the {variant} server stopped (exit {server.returncode}); see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{probe}", timeout=2).status_code == 200:
                time.sleep(2.0 * (workers - 1))  # every worker process loads its own model
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.terminate()
    raise RuntimeError(f"the {variant} server did not answer within 300 s; see {log}")


def warm_up(url: str, mode: str, requests: int = 40) -> None:
    """Send ``requests`` requests one after another (the first calls of a fresh process are slow),
    on fresh connections so that every worker process gets some."""
    for _ in range(requests):
        with httpx.Client(base_url=url, timeout=60) as http:
            if mode == "route":
                http.post("/api/best_match", json={"query": QUERY}).raise_for_status()
            else:
                posted = http.post("/gradio_api/call/best_match", json={"data": [QUERY]})
                http.get(f"/gradio_api/call/best_match/{posted.json()['event_id']}").raise_for_status()


def run_locust(url: str, mode: str, clients: int, seconds: int, prefix: Path) -> dict[str, Any]:
    """One headless locust run; the ``best_match`` row of its statistics."""
    env = {**os.environ, "SERVE_BENCH_MODE": mode}
    command = ["locust", "-f", str(LOCUSTFILE), "--headless", "-u", str(clients), "-r", str(clients),
               "-t", f"{seconds}s", "--csv", str(prefix), "--host", url, "--only-summary", "--stop-timeout", "5"]
    subprocess.run([str(Path(sys.executable).parent / command[0]), *command[1:]], env=env, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=seconds + 60)  # fmt: skip
    with open(f"{prefix}_stats.csv", newline="") as handle:
        row = next((r for r in csv.DictReader(handle) if r["Name"] == "best_match"), None)
    if row is None:
        raise RuntimeError(f"locust recorded no best_match request in {seconds} s against {url}")
    return {"requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
            "requests_per_s": float(row["Requests/s"]), "p50_ms": float(row["50%"]), "p95_ms": float(row["95%"])}


def markdown(results: list[dict[str, Any]]) -> str:
    """The results as a markdown table."""
    lines = ["| setup | clients | requests/s | p50 (ms) | p95 (ms) | failures |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['setup']} | {r['clients']} | {r['requests_per_s']:.1f} | {r['p50_ms']:.0f} | "
              f"{r['p95_ms']:.0f} | {r['failures']} |" for r in results]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", choices=list(SETUPS), default=list(SETUPS))
    parser.add_argument("--clients", nargs="+", type=int, default=[1, 8, 32, 64])
    parser.add_argument("--seconds", type=int, default=10, help="length of each locust run (default 10)")
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "serve_bench")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for setup in args.variants:
        variant, workers, mode = SETUPS[setup]
        port = free_port()
        server = start_server(variant, workers, port, args.out / f"{setup}.log")
        try:
            warm_up(f"http://127.0.0.1:{port}", mode)
            for clients in args.clients:
                row = run_locust(f"http://127.0.0.1:{port}", mode, clients, args.seconds,
                                 args.out / f"{setup}-{clients}")
                results.append({"setup": setup, "clients": clients, **row})
                print(markdown(results[-1:]).splitlines()[-1], flush=True)
        finally:
            server.terminate()
            server.wait(timeout=30)
    (args.out / "serve_bench.json").write_text(json.dumps(results, indent=1))
    (args.out / "serve_bench.md").write_text(markdown(results))
    print(markdown(results))
    return results


if __name__ == "__main__":
    main()
