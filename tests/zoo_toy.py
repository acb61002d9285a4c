"""A toy book model for the registry tests (tests/test_zoo.py): a linear layer trained in milliseconds.

Its trainer disturbs every piece of global state a real trainer might (the three global random generators,
the thread count, the determinism flag), so the tests can see that the registry restores them, and it
appends a line to ``$MMBOOK_TOY_LOG`` (when set) so the tests can count training runs across processes.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmbook import zoo

NAME = "toy-linear"


@dataclass(frozen=True)
class ToySettings:
    width: int = 4
    seed: int = 0
    pause: float = 0.0


def train_toy(folder: Path, settings: ToySettings) -> dict[str, Any]:
    torch.manual_seed(settings.seed)
    random.seed(settings.seed)
    np.random.seed(settings.seed)
    random.random(), np.random.rand(), torch.rand(1)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    layer = torch.nn.Linear(settings.width, 1)
    time.sleep(settings.pause)  # long enough for a second process to arrive while this one trains
    torch.save(layer.state_dict(), folder / "toy.pt")
    if os.environ.get("MMBOOK_TOY_LOG"):
        with open(os.environ["MMBOOK_TOY_LOG"], "a") as log:
            log.write(f"{os.getpid()}\n")
    return {"width": settings.width}


def load_toy(folder: Path) -> torch.nn.Linear:
    state = torch.load(folder / "toy.pt", weights_only=True)
    layer = torch.nn.Linear(state["weight"].shape[1], 1)
    layer.load_state_dict(state)
    return layer.eval()


def check_toy(layer: torch.nn.Linear) -> None:
    with torch.no_grad():
        if not torch.isfinite(layer(torch.ones(1, layer.in_features))).all():
            raise ValueError("non-finite output")


ENTRY = zoo.register(zoo.Entry(NAME, "the toy model", ToySettings(), train_toy, load_toy, check_toy))
