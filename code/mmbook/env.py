"""Environment: network hygiene, online/offline detection, seeds and device (Chapter 1).

The variables below must be set before :mod:`gradio` or :mod:`huggingface_hub` is imported; importing
:mod:`mmbook` does that. Values a user has set already are kept.
"""

from __future__ import annotations

import os
import random
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

HYGIENE: dict[str, str] = {
    "GRADIO_ANALYTICS_ENABLED": "False",  # no version check, no usage analytics
    "HF_HUB_DISABLE_TELEMETRY": "1",  # no telemetry from huggingface_hub or gradio_client
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",  # quiet and safe with forked servers
}


def apply_hygiene() -> None:
    """Set the telemetry-off variables unless the user set them already (Chapter 1)."""
    for key, value in HYGIENE.items():
        os.environ.setdefault(key, value)


apply_hygiene()


def is_colab() -> bool:
    """True inside Google Colab (Chapter 1)."""
    return "google.colab" in sys.modules


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


@lru_cache(maxsize=1)
def _hub_unreachable(host: str = "huggingface.co", timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return False
    except OSError:
        return True


#: Set to 1 to run the online code paths on a simulated hub (:mod:`mmbook.simulated_hub`), with no network.
SIMULATE_HUB = "MMBOOK_SIMULATE_HUB"


def is_simulated_hub() -> bool:
    """True when ``MMBOOK_SIMULATE_HUB=1``: online code paths run on small random checkpoints (Chapter 1)."""
    return _truthy(os.environ.get(SIMULATE_HUB))


def is_offline() -> bool:
    """True when the Hugging Face Hub cannot or must not be used (Chapter 1).

    ``MMBOOK_SIMULATE_HUB=1`` comes first: then the answer is ``False`` (the hub is simulated, see
    :mod:`mmbook.simulated_hub`). Otherwise ``HF_HUB_OFFLINE=1`` or ``MMBOOK_OFFLINE=1`` decide without
    touching the network; failing those, one TCP connection to the hub is tried (once per process).
    """
    if is_simulated_hub():
        return False
    if _truthy(os.environ.get("HF_HUB_OFFLINE")) or _truthy(os.environ.get("MMBOOK_OFFLINE")):
        return True
    return _hub_unreachable()


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and PyTorch and ask PyTorch for deterministic kernels (Chapter 1)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Let PyTorch use ``count`` threads inside this block (``None``: unchanged), then restore (Chapters 3-10).

    The chapters time and train tiny models on one thread: it is as fast as two for them, and unlike two it
    is not slowed down by other programs keeping a core busy.
    """
    import torch

    before = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def training_state(threads: int | None = 1, deterministic: bool = False) -> Iterator[None]:
    """Train inside this block; on leaving it the caller's state is as it was (Chapters 4-10).

    Inside, PyTorch uses ``threads`` threads (``None``: unchanged) and deterministic algorithms only if
    ``deterministic``; PyTorch's generators (``torch.random.fork_rng``), Python's :mod:`random` and NumPy's
    global generator are forked, so a trainer may reseed them freely. Afterwards the thread count, the
    determinism flags and all three random states are restored.

    Why these defaults: the book's models are so small that two threads gain little over one, and one thread
    is not slowed down when other programs keep the cores busy (two threads waiting on each other made a
    training ten times slower here). Under :func:`seed_everything`'s ``use_deterministic_algorithms(True)``
    the backward pass of indexing (embedding look-ups, patch gathering) takes a slow sorting path on the CPU;
    on a CPU with a fixed number of threads the fast kernels give the same numbers run after run anyway.
    """
    import numpy as np
    import torch

    python_state, numpy_state = random.getstate(), np.random.get_state()
    flags = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        with torch.random.fork_rng(), torch_threads(threads):
            torch.use_deterministic_algorithms(deterministic)
            yield
    finally:
        torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def device() -> str:
    """The best available torch device: ``"cuda"``, ``"mps"`` or ``"cpu"`` (Chapter 1)."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def cache_dir() -> str:
    """Folder for the book's own checkpoints: ``$MMBOOK_CACHE`` or ``~/.cache/mmbook`` (Chapter 1)."""
    root = os.environ.get("MMBOOK_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "mmbook")
    os.makedirs(root, exist_ok=True)
    return root


def setup(seed: int = 0) -> str:
    """The chapters' setup: seed everything, print where the chapter runs, return the device (Chapter 1)."""
    seed_everything(seed)
    dev = device()
    where = "Colab" if is_colab() else "local"
    hub = "offline (the book's own models)" if is_offline() else "online (hub models)"
    if is_simulated_hub():
        hub = "online, SIMULATED (hub classes with random weights, no network)"
    print(f"mmbook {__import__('mmbook').__version__} | {where} | device={dev} | hub: {hub} | seed={seed}")
    return dev
