"""Load tests of a running Gradio app through ``gradio_client`` (Chapter 9; Chapter 10 measures the assistant).

Each simulated visitor is its own ``gradio_client.Client`` (its own session) in its own thread, sending
requests one after another; all visitors start together. The result holds every latency and every
failure, so a chapter can report percentiles and errors rather than an average.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class LoadResult:
    """Latencies (seconds) of the requests that succeeded, the failures, and the wall time of the test."""

    clients: int
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        """Requests sent: successes and failures."""
        return len(self.latencies) + len(self.failures)

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile of the successful latencies, in seconds (NaN if none succeeded)."""
        return float(np.percentile(self.latencies, q)) if self.latencies else float("nan")

    @property
    def throughput(self) -> float:
        """Successful requests per second."""
        return len(self.latencies) / self.seconds if self.seconds else 0.0


def load_test(url: str, api_name: str, args: Sequence[Any], *, clients: int, requests_per_client: int,
              check: Any = None, download_files: bool = False) -> LoadResult:
    """``clients`` visitors each send ``requests_per_client`` calls of ``api_name`` with ``args`` (Chapter 9).

    ``check``, if given, is called on every answer and must return true; an exception, a refused
    request or a failed check counts as a failure with its message. Output files (pictures, sounds) are
    not downloaded unless ``download_files``: the answer then holds their server-side paths.
    """
    from gradio_client import Client

    if clients < 1 or requests_per_client < 1:
        raise ValueError(f"need at least one client and one request each; got {clients} and {requests_per_client}")
    visitors = [Client(url, verbose=False, download_files=download_files) for _ in range(clients)]
    result = LoadResult(clients)
    lock = threading.Lock()
    start_together = threading.Barrier(clients)

    def visit(client: Any) -> None:
        start_together.wait()
        for _ in range(requests_per_client):
            begin = time.perf_counter()
            try:
                answer = client.predict(*args, api_name=api_name)
                if check is not None and not check(answer):
                    raise AssertionError(f"unexpected answer {answer!r}"[:200])
            except Exception as error:  # every failure is recorded, none stops the test
                with lock:
                    result.failures.append(f"{type(error).__name__}: {error}"[:300])
                continue
            with lock:
                result.latencies.append(time.perf_counter() - begin)

    begin = time.perf_counter()
    try:
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(visit, visitors))
    finally:
        result.seconds = time.perf_counter() - begin
        for client in visitors:
            client.close()
    return result
