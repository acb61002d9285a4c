"""Locust visitors for ``scripts/serve_bench.py`` (Chapter 13): each asks ``/best_match`` again and again.

``SERVE_BENCH_MODE=gradio`` speaks Gradio's call API (``POST /gradio_api/call/best_match`` for an event id,
then ``GET`` of its event stream) and reports the two as one request named ``best_match``;
``SERVE_BENCH_MODE=gradio-session`` does the same with one ``session_hash`` per visitor, so that the server
keeps one session per visitor instead of making one per request; ``SERVE_BENCH_MODE=route`` posts to
the plain route ``/api/best_match``. Every answer is checked.
"""

from __future__ import annotations

import os
import time
import uuid

from locust import FastHttpUser, constant, task
from mmbook.loadtest import stream_answer

QUERY = os.environ.get("SERVE_BENCH_QUERY", "a red circle in the center")
MODE = os.environ.get("SERVE_BENCH_MODE", "gradio")


class Visitor(FastHttpUser):
    """One closed-loop visitor: the next request the moment the answer arrives."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self.body: dict = {"data": [QUERY]}
        if MODE == "gradio-session":
            self.body["session_hash"] = uuid.uuid4().hex

    @task
    def best_match(self) -> None:
        begin = time.perf_counter()
        error: Exception | None = None
        try:
            if MODE == "route":
                response = self.client.post("/api/best_match", json={"query": QUERY}, name="route")
                response.raise_for_status()
                answer = response.json()
            else:
                posted = self.client.post("/gradio_api/call/best_match", json=self.body, name="post")
                posted.raise_for_status()
                event_id = posted.json()["event_id"]
                stream = self.client.get(f"/gradio_api/call/best_match/{event_id}", name="stream")
                stream.raise_for_status()
                answer = stream_answer(stream.text.splitlines(), "best_match")[0]
            if "caption" not in answer:
                raise RuntimeError(f"unexpected answer {answer!r}"[:200])
        except Exception as exc:  # every failure is recorded, none stops the test
            error = exc
        self.environment.events.request.fire(
            request_type="REST", name="best_match", response_time=1000 * (time.perf_counter() - begin),
            response_length=0, exception=error, context={},
        )  # fmt: skip
