"""Serving more users (Chapter 13): the assistant's ``/best_match`` endpoint four ways.

Each builder serves the same answers as Chapter 10's assistant (:meth:`Assistant.best_match`):

- :func:`build_gradio_api`: Gradio's queue with a ``concurrency_limit`` (Gradio's default is 1), or with
  ``batch=True``, where the queue hands the function every waiting request at once, up to
  ``max_batch_size`` (:func:`best_match_batch` answers them with one pass of the text tower);
- :func:`build_fastapi_app`: a plain FastAPI route ``POST /api/best_match`` for API traffic, with a Gradio
  app mounted beside it by ``gr.mount_gradio_app``;
- :func:`main`: a launcher, ``python -m mmbook.serving VARIANT --port N [--workers W]``; ``--workers``
  starts several processes on one socket (uvicorn's workers), each with its own model and its own queue
  (and :class:`NoDelayH11Protocol` keeps their keep-alive connections fast).

:func:`batch_throughput` and :func:`batch_cycle` are the chapter's model of a batching queue, and
:class:`RouteClient` is a load-test visitor for a plain JSON route (for :func:`mmbook.loadtest.load_test`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import BaseModel
from uvicorn.protocols.http.h11_impl import H11Protocol

import mmbook  # noqa: F401  (network hygiene before gradio is imported)

#: The query that the chapter and the benchmark send.
QUERY = "a red circle in the center"
#: The variants the launcher and ``scripts/serve_bench.py`` know, and what each is.
VARIANTS: dict[str, str] = {
    "assistant": "Chapter 10's whole assistant app (its /best_match is gr.api, concurrency_limit=1)",
    "gradio": "Gradio queue, concurrency_limit=1 (the default)",
    "gradio-c4": "Gradio queue, concurrency_limit=4",
    "gradio-batch": "Gradio queue, batch=True, max_batch_size=32",
    "fastapi": "plain FastAPI route beside the mounted Gradio app",
}
#: The plain route of the ``fastapi`` variant; the Gradio variants answer at ``/gradio_api/call/best_match``.
ROUTE = "/api/best_match"


class Query(BaseModel):
    """The body of ``POST /api/best_match`` (Chapter 13)."""

    query: str


def load_matcher(offline: bool | None = None) -> Any:
    """Chapter 10's :class:`~mmbook.apps.assistant.Assistant` with only its search index, the one model
    that ``/best_match`` needs: the other tools refuse with a message (Chapter 13)."""
    from mmbook import hub
    from mmbook.apps.assistant import Assistant, AssistantModels
    from mmbook.env import is_offline
    from mmbook.pretrained import Task
    from mmbook.search import SearchIndex

    offline = is_offline() if offline is None else offline
    index = SearchIndex.of_gallery(*hub.load("clip", offline=offline))
    absent = Task("not loaded", unavailable="This server answers /best_match only.")
    search = Task(f"{'offline' if offline else 'online'}: the search index of Chapter 10", value=index)
    return Assistant(AssistantModels(online=not offline, pretrained=None, search=search,  # type: ignore[arg-type]
                                     listen=absent, vlm=absent))


def best_match_batch(assistant: Any, queries: Sequence[Any], *, errors: bool = False) -> list[dict[str, Any]]:
    """:meth:`Assistant.best_match` for many queries with one pass of the text tower (Chapter 13).

    A bad query raises the checker's :class:`mmbook.errors.InputError`; with ``errors`` it gets the answer
    ``{"error": message}`` instead, and the others their answers (a batch serves several visitors).
    """
    from mmbook import contrastive
    from mmbook.errors import InputError

    index = assistant.models.search.get()
    texts: list[str | None] = []
    problems: dict[int, str] = {}
    for k, query in enumerate(queries):
        try:
            texts.append(index.check_query(query))
        except InputError as error:
            if not errors:
                raise
            texts.append(None)
            problems[k] = str(error)
    good = [text for text in texts if text is not None]
    answers: list[dict[str, Any]] = []
    if good:
        ids, mask = contrastive.tokens(index.processor, good)
        device = index.model.device
        embedded = contrastive.embed_texts(index.model, ids.to(device), mask.to(device))
        scores, found = (embedded @ index.embeddings.T).cpu().topk(1, dim=1)
        answers = [{"caption": index.captions[i], "index": i, "score": round(s, 4)}
                   for s, i in zip(scores[:, 0].tolist(), found[:, 0].tolist(), strict=True)]
    ordered = iter(answers)
    return [{"error": problems[k]} if k in problems else next(ordered) for k in range(len(queries))]


def build_gradio_api(assistant: Any, *, concurrency_limit: int | None = 1, batch: bool = False,
                     max_batch_size: int = 32) -> Any:
    """A Gradio app whose one endpoint is ``/best_match`` (Chapter 13).

    Without ``batch`` it is ``gr.api`` with ``concurrency_limit`` (None: no limit). With ``batch`` the
    queue passes every waiting request, up to ``max_batch_size``, to :func:`best_match_batch` in one call.
    A batch answers several visitors and an exception would fail them all, so a bad query's answer is
    ``{"error": message}`` (Gradio 6.31's event ``validator`` does not refuse inputs of batched events).
    """
    import gradio as gr

    from mmbook.apps.common import checked

    @checked
    def best_match(query: str) -> dict:  # gr.api reads the signature
        return assistant.best_match(query)

    def best_match_many(queries: list[str]) -> tuple[list[dict[str, Any]]]:
        return (best_match_batch(assistant, queries, errors=True),)

    with gr.Blocks(title="best_match") as demo:
        if batch:
            query = gr.Textbox(visible=False)
            answer = gr.JSON(visible=False)
            gr.Button(visible=False).click(
                best_match_many, query, answer, api_name="best_match", batch=True,
                max_batch_size=max_batch_size, concurrency_limit=concurrency_limit,
            )  # fmt: skip
        else:
            gr.api(best_match, api_name="best_match", concurrency_limit=concurrency_limit)
    return demo


def build_fastapi_app(assistant: Any, demo: Any | None = None, ui_path: str = "/ui") -> Any:
    """A FastAPI app with the route ``POST /api/best_match`` (body ``{"query": "..."}``) and, at ``ui_path``,
    ``demo`` (by default :func:`build_gradio_api`) mounted with ``gr.mount_gradio_app`` (Chapter 13).

    The route runs in FastAPI's thread pool with no queue. A bad query gets HTTP 422 and the checker's
    message in ``detail``, as FastAPI reports a body of the wrong shape.
    """
    import gradio as gr
    from fastapi import FastAPI, HTTPException

    from mmbook.errors import InputError

    app = FastAPI(title="best_match")

    @app.post(ROUTE)
    def best_match(body: Query) -> dict:
        try:
            return assistant.best_match(body.query)
        except InputError as error:
            raise HTTPException(status_code=422, detail=str(error)) from None

    return gr.mount_gradio_app(app, demo if demo is not None else build_gradio_api(assistant), path=ui_path)


def build_variant(variant: str, assistant: Any | None = None) -> Any:
    """The ASGI app of one of :data:`VARIANTS` (a FastAPI app; the Gradio ones at ``/``) (Chapter 13).

    ``assistant`` (a :func:`load_matcher`) is loaded if not given; the ``assistant`` variant loads all of
    Chapter 10's models instead."""
    import gradio as gr
    from fastapi import FastAPI

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    if variant == "assistant":
        from mmbook.apps.assistant import build_assistant_app

        return gr.mount_gradio_app(FastAPI(), build_assistant_app(), path="")
    assistant = assistant if assistant is not None else load_matcher()
    if variant == "fastapi":
        return build_fastapi_app(assistant)
    demo = build_gradio_api(assistant, concurrency_limit=4 if variant == "gradio-c4" else 1,
                            batch=variant == "gradio-batch")
    return gr.mount_gradio_app(FastAPI(), demo, path="")


def create_app() -> Any:
    """uvicorn's factory for worker processes: the variant named by ``MMBOOK_SERVING_VARIANT`` (Chapter 13)."""
    import torch

    torch.set_num_threads(int(os.environ.get("MMBOOK_SERVING_THREADS", "1")))
    return build_variant(os.environ.get("MMBOOK_SERVING_VARIANT", "fastapi"))


def batch_cycle(batch: int, s0: float, s1: float) -> float:
    """Seconds a batch of ``batch`` requests keeps the worker busy, ``s0 + batch * s1`` (Chapter 13)."""
    if batch < 1 or s0 < 0 or s1 < 0:
        raise ValueError(f"need batch >= 1, s0 >= 0 and s1 >= 0; got {batch}, {s0}, {s1}")
    return s0 + batch * s1


def batch_throughput(clients: int, max_batch: int, s0: float, s1: float, wait: float = 0.0,
                     round_trip: float = 0.0) -> tuple[float, float]:
    """Steady throughput (requests/s) and mean latency (s) of a closed loop of ``clients`` on one batching
    worker (Chapter 13).

    The worker takes up to ``max_batch`` waiting requests, after waiting up to ``wait`` seconds for the
    batch to fill. When the worker is the bottleneck every client waits in the queue, so each batch holds
    ``b = min(clients, max_batch)`` and the throughput is ``b / (s0 + b s1)``; with few clients the
    round trip limits it instead, ``clients / (round_trip + wait + s0 + s1 clients)`` at most. The latency
    follows from Little's law, ``clients / throughput``.
    """
    if clients < 1 or max_batch < 1 or wait < 0 or round_trip < 0:
        raise ValueError("need clients >= 1, max_batch >= 1, wait >= 0 and round_trip >= 0")
    b = min(clients, max_batch)
    worker = b / batch_cycle(b, s0, s1)
    unqueued = clients / (round_trip + wait + batch_cycle(clients, s0, s1)) if clients <= max_batch else worker
    throughput = min(worker, unqueued)
    return throughput, clients / throughput


@dataclass
class Stopwatch:
    """Where a server's time goes (Chapter 13): ``(name, start, end)`` of every HTTP request that passes
    :meth:`middleware` (named by method and path, event ids cut off) and of every call of a function
    wrapped by :meth:`timed`, on one ``time.perf_counter`` clock."""

    records: list[tuple[str, float, float]] = field(default_factory=list)

    def middleware(self, app: Any) -> Callable[..., Any]:
        """``app`` (any ASGI app) with every HTTP request timed from its arrival to its last byte sent."""

        async def timed_app(scope: dict, receive: Callable, send: Callable) -> None:
            if scope["type"] != "http":
                return await app(scope, receive, send)
            start = time.perf_counter()
            try:
                await app(scope, receive, send)
            finally:
                path = scope["path"]
                if scope["method"] == "GET" and "/call/" in path:
                    path = path.rsplit("/", 1)[0] + "/<event id>"
                self.records.append((f"{scope['method']} {path}", start, time.perf_counter()))

        return timed_app

    def timed(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` with each call recorded under ``name``."""

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.records.append((name, start, time.perf_counter()))

        return wrapper

    def medians(self) -> dict[str, float]:
        """The median seconds of each name's records."""
        names = sorted({name for name, _, _ in self.records})
        return {n: statistics.median(e - s for name, s, e in self.records if name == n) for n in names}


@contextlib.contextmanager
def serve_asgi(app: Any) -> Iterator[str]:
    """``with serve_asgi(app) as url:``: ``app`` (FastAPI, a mounted Gradio app, any ASGI app) served by
    uvicorn on 127.0.0.1 in a thread of this process, and stopped after the block (Chapter 13)."""
    import uvicorn

    from mmbook.demos import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class RouteClient:
    """A load-test visitor for a plain JSON route (Chapter 13): ``predict(query, api_name=...)`` posts
    ``{"query": query}`` to ``url + api_name`` and returns the JSON answer, like
    :class:`mmbook.loadtest.RestClient` does for Gradio's call API. An HTTP error raises ``RuntimeError``
    with the server's ``detail``.
    """

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(timeout=60)

    def predict(self, query: Any, api_name: str = ROUTE) -> Any:
        """The route's answer to ``query``."""
        response = self.http.post(self.url + api_name, json={"query": query})
        if response.is_error:
            raise RuntimeError(f"HTTP {response.status_code}: {response.json().get('detail')}")
        return response.json()

    def close(self) -> None:
        """Close the connection."""
        self.http.close()


class NoDelayH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with Nagle's algorithm off on every connection (Chapter 13).

    With ``--workers`` above 1, uvicorn 0.54 binds the shared socket without ``IPPROTO_TCP``, so asyncio
    leaves ``TCP_NODELAY`` off and each keep-alive response waits for the client's delayed ACK, about
    40 ms on Linux (uvicorn issue 3149). One worker is not affected.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


def main(argv: list[str] | None = None) -> None:
    """``python -m mmbook.serving VARIANT [--host H] [--port N] [--workers W]`` (Chapter 13)."""
    parser = argparse.ArgumentParser(prog="python -m mmbook.serving", description=main.__doc__)
    parser.add_argument("variant", choices=list(VARIANTS), help="which server to run")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    parser.add_argument("--workers", type=int, default=1, help="processes on the one socket (default: 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process (default: 1)")
    args = parser.parse_args(argv)
    import uvicorn

    os.environ["MMBOOK_SERVING_VARIANT"] = args.variant
    os.environ["MMBOOK_SERVING_THREADS"] = str(args.threads)
    uvicorn.run("mmbook.serving:create_app", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level="warning", http=NoDelayH11Protocol)

__all__ = ["QUERY", "ROUTE", "Query", "VARIANTS", "RouteClient", "batch_cycle", "batch_throughput", "best_match_batch",
           "build_fastapi_app", "build_gradio_api", "build_variant", "create_app", "load_matcher", "main", "serve_asgi"]


if __name__ == "__main__":
    main()
