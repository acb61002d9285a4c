"""Shared fixtures: offline, telemetry off, a private model cache, and running apps on 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MMBOOK_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import mmbook  # noqa: E402,F401  (network hygiene before gradio is imported)


@pytest.fixture
def running_app() -> Iterator[Callable]:
    """Start apps on 127.0.0.1 and yield a ``gradio_client.Client`` for each; close all afterwards."""
    from gradio_client import Client
    from mmbook.demos import launch_local

    started = []

    def start(demo):
        url = launch_local(demo)
        client = Client(url, verbose=False)
        started.append((demo, client))
        return client

    yield start
    for demo, client in started:
        client.close()
        demo.close()
