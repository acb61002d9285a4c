"""A simulated Hugging Face Hub: the online code paths run with no network (CI; Chapters 1, 3, 6, 8-11).

With ``MMBOOK_SIMULATE_HUB=1`` (:func:`mmbook.env.is_simulated_hub`) the book behaves as online, and
:func:`mmbook.hub.resolve` hands every catalogue id the folder of a small checkpoint saved in that id's real
format: the same model and processor classes (the catalogue's ``classes``), with **random weights**
(:mod:`mmbook.random_checkpoints`). Each is built once into ``<cache>/simulated-hub/<name>`` and reused. The
chapters' online branches then run to the end through exactly the calls the real models get; what the
models say is noise, and every resolve says so. Stable Diffusion has no simulated checkpoint (it needs a GPU
and diffusers): its loader keeps saying what is missing.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from mmbook import random_checkpoints
from mmbook.env import cache_dir, training_state

SUBDIR = "simulated-hub"
#: The file written last into a finished simulated checkpoint, with the hash of the code that wrote it; a
#: folder without it, or written by other code, is built again.
MARKER = "mmbook-simulated.json"

#: How each catalogue name's simulated checkpoint is written (``builder(folder)``).
BUILDERS: dict[str, Callable[[Path], Path]] = {
    "gpt2": random_checkpoints.save_random_gpt2,
    "clip": random_checkpoints.save_random_clip,
    "blip": random_checkpoints.save_random_blip,
    "vilt": random_checkpoints.save_random_vilt,
    "smolvlm": random_checkpoints.save_random_smolvlm,
    "whisper": random_checkpoints.save_random_whisper,
}


def folder(name: str) -> Path:
    """Where the simulated checkpoint of the catalogue name ``name`` lives in the model cache."""
    return Path(cache_dir()) / SUBDIR / name


def code_hash() -> str:
    """SHA-256 of :mod:`mmbook.random_checkpoints`, the code that writes the simulated checkpoints."""
    return hashlib.sha256(inspect.getsource(random_checkpoints).encode()).hexdigest()


def is_complete(path: Path) -> bool:
    """True when ``path`` holds a finished simulated checkpoint written by the installed code (its marker,
    with the current :func:`code_hash`, and its ``config.json``)."""
    try:
        marker = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("code_hash") == code_hash() and (path / "config.json").is_file()


def checkpoint(name: str, hub_id: str) -> Path:
    """The folder of ``name``'s simulated checkpoint, built on first use (Chapters 1-11 under CI).

    A folder that is missing, incomplete or written by other code is built again, saying so; a
    name without a builder, or a build that fails, raises a ``RuntimeError`` that says what and where.
    """
    if name not in BUILDERS:
        raise RuntimeError(
            f"The simulated hub (MMBOOK_SIMULATE_HUB=1) has no checkpoint for {hub_id!r}: it simulates "
            f"{', '.join(sorted(BUILDERS))}. Unset MMBOOK_SIMULATE_HUB to use the real hub."
        )
    target = folder(name)
    if is_complete(target):
        return target
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if is_complete(target):  # another process built it meanwhile
            return target
        if target.exists():
            print(f"[mmbook.hub] the simulated checkpoint at {target} is incomplete or was written by "
                  "other code; building it again")
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=target.parent))
        try:
            with training_state(threads=None):  # the caller's random state is left as it was
                BUILDERS[name](tmp)
            marker = {"name": name, "simulates": hub_id, "weights": "random", "code_hash": code_hash()}
            (tmp / MARKER).write_text(json.dumps(marker))
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        except Exception as error:
            raise RuntimeError(
                f"The simulated checkpoint of {hub_id!r} could not be built in {target} "
                f"({type(error).__name__}: {error}). Check that the cache folder is writable, or unset "
                "MMBOOK_SIMULATE_HUB to use the real hub."
            ) from error
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


__all__ = ["BUILDERS", "MARKER", "SUBDIR", "checkpoint", "code_hash", "folder", "is_complete"]
