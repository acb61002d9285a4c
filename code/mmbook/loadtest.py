"""Load tests of a running Gradio app (Chapter 9; Chapter 10 measures the assistant).

Each simulated visitor has its own connection (its own session) in its own thread and sends requests one
after another; all visitors start together. A visitor is a ``gradio_client.Client`` or, with
``via="rest"``, a plain HTTP client speaking Gradio's REST call API (``POST /gradio_api/call/<name>`` for
an event id, then ``GET`` of its event stream). The result holds every latency and every failure, so a
chapter can report percentiles and errors rather than an average.
"""

from __future__ import annotations

import heapq
import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import numpy as np


@dataclass
class LoadResult:
    """Latencies (seconds) of the requests that succeeded, the failures, and the wall time of the test.

    ``rounds[i]`` says which request of its visitor ``latencies[i]`` was (0 for the first), so that
    :meth:`after` can leave out the opening burst (Chapter 10).
    """

    clients: int
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    rounds: list[int] = field(default_factory=list)

    def after(self, skip: int) -> list[float]:
        """The successful latencies of every visitor's requests after its first ``skip`` (Chapter 10)."""
        return [t for t, k in zip(self.latencies, self.rounds, strict=True) if k >= skip]

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

    @property
    def mean(self) -> float:
        """The mean successful latency, in seconds (NaN if none succeeded)."""
        return float(np.mean(self.latencies)) if self.latencies else float("nan")


def stream_answer(lines: Iterable[str], api_name: str = "") -> list[Any]:
    """The data of the ``complete`` event in the lines of a Gradio event stream (Chapters 10 and 13); the
    app's message as ``RuntimeError`` for an ``error`` event or a stream that ends without an answer."""
    event = None
    for line in lines:
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event in ("complete", "error"):
            data = json.loads(line.removeprefix("data: "))
            if event == "error":
                raise RuntimeError(data.get("error") if isinstance(data, dict) else data)
            return data
    raise RuntimeError(f"the event stream of {api_name or 'the call'} ended without an answer")


class RestClient:
    """One visitor on Gradio's REST call API with ``httpx`` (Chapter 10): ``predict`` like ``gradio_client``'s.

    Arguments travel as JSON as they are, so this suits endpoints of text, numbers and choices; files would
    first have to be uploaded. An ``event: error`` in the stream raises ``RuntimeError`` with the app's
    message.
    """

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/") + "/gradio_api/call"
        self.http = httpx.Client(timeout=60)

    def predict(self, *args: Any, api_name: str) -> Any:
        """The endpoint's answer: its one output, or a tuple of several, as ``gradio_client`` returns them."""
        name = api_name.lstrip("/")
        posted = self.http.post(f"{self.url}/{name}", json={"data": list(args)})
        posted.raise_for_status()
        with self.http.stream("GET", f"{self.url}/{name}/{posted.json()['event_id']}") as stream:
            data = stream_answer(stream.iter_lines(), api_name)
        return data[0] if len(data) == 1 else tuple(data)

    def close(self) -> None:
        """Close the connection."""
        self.http.close()


def load_test(url: str, api_name: str, args: Sequence[Any], *, clients: int, requests_per_client: int,
              check: Callable[[Any], bool] | None = None, download_files: bool = False,
              via: Literal["client", "rest"] | Callable[[str], Any] = "client") -> LoadResult:
    """``clients`` visitors each send ``requests_per_client`` calls of ``api_name`` with ``args`` (Chapter 9).

    ``check``, if given, is called on every answer and must return true; an exception, a refused
    request or a failed check counts as a failure with its message. Output files (pictures, sounds) are
    not downloaded unless ``download_files``: the answer then holds their server-side paths. ``via``
    picks the visitors: ``gradio_client.Client`` or :class:`RestClient` (Chapter 10), or is a function that
    makes one visitor for ``url``, such as :class:`mmbook.serving.RouteClient` (Chapter 13).
    """
    from gradio_client import Client

    if clients < 1 or requests_per_client < 1:
        raise ValueError(f"need at least one client and one request each; got {clients} and {requests_per_client}")
    if callable(via):
        visitors: list[Any] = [via(url) for _ in range(clients)]
    elif via == "client":
        visitors = [Client(url, verbose=False, download_files=download_files) for _ in range(clients)]
    elif via == "rest":
        visitors = [RestClient(url) for _ in range(clients)]
    else:
        raise ValueError(f"via must be 'client' or 'rest'; got {via!r}")
    result = LoadResult(clients)
    lock = threading.Lock()
    start_together = threading.Barrier(clients)

    def visit(client: Any) -> None:
        start_together.wait()
        for k in range(requests_per_client):
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
                result.rounds.append(k)

    begin = time.perf_counter()
    try:
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(visit, visitors))
    finally:
        result.seconds = time.perf_counter() - begin
        # All at once: gradio_client's close waits up to a second for its heartbeat thread.
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(lambda visitor: visitor.close(), visitors))
    return result


def simulate_closed_loop(clients: int, requests_per_client: int, service: float, round_trip: float = 0.0,
                         ) -> list[list[float]]:
    """Latencies of a closed loop on one first-come-first-served worker, computed exactly (Chapter 10).

    All ``clients`` send their first request at time 0 and the next one the moment an answer arrives. A
    request spends ``round_trip`` seconds on work done in parallel (network, client, parsing), then
    waits for the single worker, which is busy ``service`` seconds per request. Returns each client's
    latencies in order; ties in the queue go to the lower client number.
    """
    if clients < 1 or requests_per_client < 1 or service <= 0 or round_trip < 0:
        raise ValueError("need clients >= 1, requests_per_client >= 1, service > 0 and round_trip >= 0")
    latencies: list[list[float]] = [[] for _ in range(clients)]
    queue = [(round_trip, client, 0.0) for client in range(clients)]  # (reaches the worker, client, sent at)
    heapq.heapify(queue)
    worker_free = 0.0
    while queue:
        reaches, client, sent = heapq.heappop(queue)
        worker_free = max(worker_free, reaches) + service
        latencies[client].append(worker_free - sent)
        if len(latencies[client]) < requests_per_client:
            heapq.heappush(queue, (worker_free + round_trip, client, worker_free))
    return latencies
