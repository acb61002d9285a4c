"""The book's own small models: one registry, trained on the book's data on first use and cached (Chapter 1 on).

Every model the book trains is declared once as an :class:`Entry` (a name, a frozen settings dataclass, a
``train`` function, a ``load`` function and a smoke ``check``) and registered with :func:`register`. The
first :func:`path` or :func:`load` of a name trains it into ``$MMBOOK_CACHE/models/<name>``; later calls
load it. Models are saved with ``save_pretrained`` where a library class exists, so the standard
``from_pretrained(folder)`` and ``pipeline(..., model=folder)`` calls load them as they would load a hub
checkpoint.

Beside each model the file :data:`RECORD` holds its settings, a SHA-256 hash of its training code, its
training time and what ``train`` measured. A folder trained with other settings or other code, or one that
fails to load or to pass its check, is rebuilt, with a printed reason. Training runs in a fresh temporary
folder that is renamed into place, under a file lock shared by processes and a lock per model shared by
threads; it runs inside :func:`mmbook.env.training_state` (the trainer chooses its thread count), so the
caller's random state, thread count and determinism flag are as they were afterwards. Each process holds
one loaded copy of each model (:func:`load`).

The package also ships each model as the book trained it (:data:`SHIPPED`, written by ``make checkpoints``),
with the same record. An empty cache is filled from the shipped copy when its settings and code hash match
the code that is installed, so a chapter that only *uses* a model does not wait for its training; the
chapter that teaches a model passes ``shipped=False`` and trains it. A shipped copy made by other code is
never used (a test fails until ``make checkpoints`` renews it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmbook.env import cache_dir, training_state

MODELS_SUBDIR = "models"
#: The trained models shipped inside the package, one folder per name.
SHIPPED = Path(__file__).resolve().parent / "checkpoints"
#: The file beside each trained model that holds its settings, code hash, training time and measurements.
RECORD = "mmbook-record.json"
#: The modules that declare book models besides this one; imported when the whole registry is needed.
DECLARING_MODULES: tuple[str, ...] = (
    "mmbook.shape_finder", "mmbook.experiments.fusion_bench", "mmbook.experiments.book_matcher", "mmbook.tiny_vilt",
    "mmbook.tone_reader", "mmbook.tiny_vlm", "mmbook.tiny_models", "mmbook.experiments.compression",
    "mmbook.experiments.scaling", "mmbook.experiments.hallucination",
)  # fmt: skip


@dataclass(frozen=True)
class Entry:
    """One model the book trains: how it is trained, loaded and checked (Chapter 1).

    ``train(folder, settings)`` saves the model into ``folder`` and returns the record's extras (losses,
    measurements; a ``train_seconds`` it returns replaces the time the registry measured);
    ``load(folder)`` returns the object apps and chapters use; ``check(loaded)`` raises on a bad model.
    The source of ``train`` and of everything in ``code`` (functions, classes, modules, or dotted names
    ``"module"`` / ``"module:qualname"``, resolved when the hash is computed) goes into the code hash.
    """

    name: str
    what: str
    settings: Any
    train: Callable[[Path, Any], dict[str, Any]]
    load: Callable[[Path], Any]
    check: Callable[[Any], None]
    code: tuple[Any, ...] = ()


#: Every registered model by name; :func:`entries` imports the declaring modules first.
REGISTRY: dict[str, Entry] = {}

_guard = threading.Lock()
_locks: dict[str, threading.RLock] = {}
#: Loaded copies by (entry, folder): (the object, whether this process trained it).
_loaded: dict[tuple[Entry, str], tuple[Any, bool]] = {}


def register(entry: Entry) -> Entry:
    """Add ``entry`` to :data:`REGISTRY` and return it; a name is declared once (Chapter 1)."""
    if not dataclasses.is_dataclass(entry.settings) or not entry.settings.__dataclass_params__.frozen:
        raise TypeError(f"the settings of {entry.name!r} must be a frozen dataclass instance")
    old = REGISTRY.get(entry.name)
    if old is not None and _qualified(old.train) != _qualified(entry.train):
        raise ValueError(f"a model named {entry.name!r} is registered already (by {_qualified(old.train)})")
    REGISTRY[entry.name] = entry
    return entry


def entries() -> list[Entry]:
    """Every model the book trains, after importing the modules that declare them (Chapter 1)."""
    for module in DECLARING_MODULES:
        importlib.import_module(module)
    return list(REGISTRY.values())


def model_dir(name: str) -> Path:
    """Folder of the book's model ``name`` in the cache (Chapter 1)."""
    return Path(cache_dir()) / MODELS_SUBDIR / name


def read_record(folder: Path) -> dict[str, Any]:
    """The :data:`RECORD` saved beside a trained model (Chapters 6-10)."""
    return json.loads((Path(folder) / RECORD).read_text())


def settings_dict(settings: Any) -> dict[str, Any]:
    """``dataclasses.asdict(settings)`` as it reads back from JSON (tuples become lists) (Chapter 1)."""
    return json.loads(json.dumps(dataclasses.asdict(settings)))


def _qualified(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"


def _resolve(item: Any) -> Any:
    if not isinstance(item, str):
        return item
    module, _, qualname = item.partition(":")
    obj: Any = importlib.import_module(module)
    for part in filter(None, qualname.split(".")):
        obj = getattr(obj, part)
    return obj


def code_hash(entry: Entry) -> str:
    """SHA-256 of the source of ``entry.train`` and of every item of ``entry.code`` (Chapter 1)."""
    digest = hashlib.sha256()
    for item in (entry.train, *entry.code):
        digest.update(inspect.getsource(_resolve(item)).encode())
    return digest.hexdigest()


def _entry(name: str) -> Entry:
    if name not in REGISTRY:
        entries()
    if name not in REGISTRY:
        raise KeyError(f"no book model named {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def _lock(name: str) -> threading.RLock:
    with _guard:
        return _locks.setdefault(name, threading.RLock())


def _load_and_check(entry: Entry, folder: Path) -> Any:
    """``entry.load(folder)``, checked; inside :func:`~mmbook.env.training_state` because building a module
    to load weights into draws its initial values from the global generator."""
    with training_state(threads=None):
        loaded = entry.load(folder)
        entry.check(loaded)
    return loaded


def _validate(entry: Entry, folder: Path) -> tuple[Any, str | None]:
    """The loaded model and ``None``, or ``None`` and why ``folder`` cannot be used."""
    if not folder.is_dir():
        return None, "missing"
    try:
        record = read_record(folder)
    except (OSError, ValueError) as exc:
        return None, f"unusable: no readable {RECORD} ({type(exc).__name__}: {exc})"
    if record.get("settings") != settings_dict(entry.settings):
        return None, "saved with other training settings"
    if record.get("code_hash") != code_hash(entry):
        return None, "trained by other code (the training code changed since)"
    try:
        loaded = _load_and_check(entry, folder)
    except Exception as exc:  # a corrupt cache must never become a silently wrong model
        return None, f"unusable ({type(exc).__name__}: {exc})"
    return loaded, None


def _build(entry: Entry, folder: Path) -> Any:
    """Train ``entry`` into a fresh temporary folder, check it, and rename it to ``folder``."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".tmp", dir=folder.parent))
    try:
        start = time.perf_counter()
        with training_state(threads=None):
            extras = entry.train(tmp, entry.settings) or {}
        record = {"name": entry.name, "settings": settings_dict(entry.settings), "code_hash": code_hash(entry),
                  "train_seconds": time.perf_counter() - start, **extras}  # fmt: skip
        (tmp / RECORD).write_text(json.dumps(record))
        _load_and_check(entry, tmp)
        if folder.exists():  # move the old folder aside first: the rename below needs a free name
            old = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".old", dir=folder.parent))
            os.replace(folder, old / entry.name)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _load_and_check(entry, folder)


def _copy_shipped(entry: Entry, folder: Path) -> Any:
    """Copy the shipped checkpoint of ``entry`` into ``folder`` (through a temporary folder) and load it."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".tmp", dir=folder.parent))
    try:
        shutil.copytree(SHIPPED / entry.name, tmp, dirs_exist_ok=True)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _load_and_check(entry, folder)


def shipped_reason(name: str) -> str | None:
    """``None`` when the shipped checkpoint of ``name`` matches the installed code, else why not (Chapter 1)."""
    return _validate(_entry(name), SHIPPED / name)[1]


def _ensure(name: str, shipped: bool = True) -> tuple[Path, Any, bool]:
    """Folder, loaded object and whether this process trained it; trains or loads on first use (from the
    shipped copy when ``shipped`` and it matches the code)."""
    from filelock import FileLock

    entry = _entry(name)
    folder = model_dir(name)
    key = (entry, str(folder))
    with _lock(name):
        if key in _loaded:
            return folder, *_loaded[key]
        loaded, reason = _validate(entry, folder)
        trained, origin = False, "the model cache"
        if reason is not None:
            folder.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(str(folder) + ".lock"):
                loaded, reason = _validate(entry, folder)  # another process may have built it meanwhile
                if reason is not None:
                    if reason != "missing":
                        print(f"[mmbook.zoo] cached {name} at {folder} is {reason}; rebuilding")
                    if shipped and shipped_reason(name) is None:
                        loaded, origin = _copy_shipped(entry, folder), "the checkpoint shipped with mmbook"
                    else:
                        loaded, trained = _build(entry, folder), True
        seconds = read_record(folder)["train_seconds"]
        if trained:
            print(f"[mmbook.zoo] trained {entry.what} in {seconds:.0f} s: {folder}")
        else:
            print(f"[mmbook.zoo] loaded {entry.what} from {origin} (trained in {seconds:.0f} s): {folder}")
        _loaded[key] = (loaded, trained)
        return folder, loaded, trained


def path(name: str, *, shipped: bool = True) -> Path:
    """Folder of the book's model ``name``: on first use taken from the shipped checkpoint (when ``shipped``
    and it matches the code) or trained, then loaded from the cache, saying which (Chapter 1)."""
    return _ensure(name, shipped)[0]


def load(name: str, *, shipped: bool = True) -> Any:
    """The loaded model ``name``: one copy per process, shared by every caller and thread (Chapter 1)."""
    return _ensure(name, shipped)[1]


def record(name: str) -> dict[str, Any]:
    """The stored record of ``name``: settings, code hash, training time and measurements (Chapters 6-10)."""
    return read_record(path(name))


def trained_now(name: str) -> bool:
    """Whether this process trained ``name`` (``False``: it was loaded from the model cache) (Chapter 1)."""
    return _ensure(name)[2]


def forget(name: str | None = None) -> None:
    """Drop this process's loaded copy of ``name`` (of every model if ``None``); the next use re-reads the
    cache folder and re-checks it (Chapter 1)."""
    with _guard:
        for key in [k for k in _loaded if name is None or k[0].name == name]:
            del _loaded[key]


# ----------------------------------------------------------------------------------------------------
# accessors of the stand-ins declared in mmbook.tiny_models (tiny GPT-2, tiny CLIP) and mmbook.tiny_vlm


def tiny_gpt2_path() -> Path:
    """Folder of the tiny GPT-2, trained on first use (about 10 s on 2 CPU cores) (Chapter 1)."""
    return path("tiny-gpt2")


def tiny_clip_path() -> Path:
    """Folder of the tiny CLIP: trained on first use (about a minute on 2 CPU cores), then loaded (Chapter 6)."""
    return path("tiny-clip")


def tiny_clip_record() -> dict[str, Any]:
    """The tiny CLIP's record: ``settings``, the loss and logit scale after every step, the training time."""
    return record("tiny-clip")


def tiny_clip() -> tuple[Any, Any]:
    """The tiny CLIP as ``(CLIPModel, CLIPProcessor)``, trained on first use, one copy per process (Chapter 6)."""
    return load("tiny-clip")


def tiny_lm_path() -> Path:
    """Folder of the tiny Llama-family LM (a ``LlamaForCausalLM``), pretrained on shapes-world text (Chapter 11)."""
    return path("tiny-lm")


def tiny_vlm_path() -> Path:
    """Folder of the tiny VLM: a ``LlavaForConditionalGeneration`` with its processor (Chapter 11)."""
    return path("tiny-vlm")
