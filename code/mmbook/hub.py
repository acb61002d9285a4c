"""The book's one loading policy for pretrained models (Chapter 1; the catalogue grows in Chapter 8).

Online, a model comes from the Hugging Face Hub under its pinned id. Offline, the *same*
``from_pretrained`` / ``pipeline`` call receives the folder of the book's own small stand-in, trained on
the book's data and saved with ``save_pretrained`` (see :mod:`mmbook.zoo`). Every call prints which path
ran, so a reader never mistakes the stand-in for the real model.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmbook.env import is_offline


@dataclass(frozen=True)
class HubModel:
    """One entry of the catalogue: the real checkpoint and the book's offline stand-in."""

    name: str
    hub_id: str
    task: str
    standin: Callable[[], Path] | None
    standin_note: str
    revision: str | None = None


@dataclass(frozen=True)
class Resolved:
    """Where a model is loaded from: a hub id (online) or a local folder (offline)."""

    model: HubModel
    source: str
    online: bool

    @property
    def kwargs(self) -> dict[str, Any]:
        return {"revision": self.model.revision} if self.online and self.model.revision else {}


def _tiny_gpt2() -> Path:
    from mmbook.zoo import tiny_gpt2_path

    return tiny_gpt2_path()


def _tiny_clip() -> Path:
    from mmbook.zoo import tiny_clip_path

    return tiny_clip_path()


CATALOGUE: dict[str, HubModel] = {
    "gpt2": HubModel(
        name="gpt2",
        hub_id="openai-community/gpt2",
        task="text-generation",
        standin=_tiny_gpt2,
        standin_note="a 2-layer GPT-2 the book trains in seconds on shapes-world captions; "
        "it continues captions, nothing more",
    ),
    "clip": HubModel(
        name="clip",
        hub_id="openai/clip-vit-base-patch32",
        task="zero-shot-image-classification",
        standin=_tiny_clip,
        standin_note="a tiny CLIP the book trains in about a minute on shapes-world pairs; it knows "
        "colours, five shapes and nine positions, and only the words of its captions",
    ),
}


def lookup(name: str) -> HubModel:
    """The catalogue entry for a book name (``"gpt2"``) or a hub id (``"openai-community/gpt2"``).

    Unknown names raise a ``KeyError`` that names the id, the closest known ids and their offline
    stand-ins (Chapter 1).
    """
    for model in CATALOGUE.values():
        if name in (model.name, model.hub_id):
            return model
    known = [m.name for m in CATALOGUE.values()] + [m.hub_id for m in CATALOGUE.values()]
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.4)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    options = "; ".join(f"{m.hub_id!r} (offline: {m.standin_note})" for m in CATALOGUE.values())
    raise KeyError(f"Unknown model id {name!r}.{hint} The book's catalogue has: {options}.")


def resolve(name: str, *, offline: bool | None = None, verbose: bool = True) -> Resolved:
    """Decide where ``name`` loads from and say so (Chapter 1)."""
    model = lookup(name)
    offline = is_offline() if offline is None else offline
    if not offline:
        resolved = Resolved(model, model.hub_id, online=True)
        message = f"online: {model.hub_id} from the Hugging Face Hub"
    elif model.standin is None:
        raise RuntimeError(
            f"{model.hub_id!r} needs the network and the book has no offline stand-in for it."
        )
    else:
        folder = model.standin()
        resolved = Resolved(model, str(folder), online=False)
        message = f"offline: the book's stand-in for {model.hub_id} ({model.standin_note}) at {folder}"
    if verbose:
        print(f"[mmbook.hub] {message}")
    return resolved


def from_pretrained(cls: Any, name: str, *, offline: bool | None = None, **kwargs: Any) -> Any:
    """``cls.from_pretrained`` on the hub id online or on the stand-in folder offline (Chapter 1)."""
    where = resolve(name, offline=offline)
    return cls.from_pretrained(where.source, **where.kwargs, **kwargs)


def pipeline(task: str, name: str, *, offline: bool | None = None, **kwargs: Any) -> Any:
    """``transformers.pipeline(task, model=...)`` through the loading policy (Chapter 1)."""
    from transformers import pipeline as hf_pipeline

    model = lookup(name)
    if task != model.task:
        raise ValueError(f"{model.hub_id!r} is catalogued for the task {model.task!r}, not {task!r}.")
    where = resolve(name, offline=offline)
    return hf_pipeline(task, model=where.source, **where.kwargs, **kwargs)
