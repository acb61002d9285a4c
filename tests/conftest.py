"""Shared fixtures: offline, telemetry off, a private model cache, and running apps on 127.0.0.1.

The model cache: every test run trains the book's models once into its own temporary folder (set as
``MMBOOK_CACHE`` here, before :mod:`mmbook` is imported, and removed at the end), so the tests never read or
write a user's ``~/.cache/mmbook``. To reuse a warm cache between runs, set ``MMBOOK_TEST_CACHE`` to a
folder: the run then uses (and keeps) that folder instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator

import pytest

_PRIVATE_CACHE = None if os.environ.get("MMBOOK_TEST_CACHE") else tempfile.mkdtemp(prefix="mmbook-test-cache-")
os.environ["MMBOOK_CACHE"] = os.environ.get("MMBOOK_TEST_CACHE") or _PRIVATE_CACHE

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MMBOOK_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import mmbook  # noqa: E402,F401  (network hygiene before gradio is imported)


@pytest.fixture(scope="session", autouse=True)
def private_model_cache() -> Iterator[str]:
    """The run's model cache (see the module docstring); a private one is removed after the run."""
    yield os.environ["MMBOOK_CACHE"]
    if _PRIVATE_CACHE is not None:
        shutil.rmtree(_PRIVATE_CACHE, ignore_errors=True)


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
