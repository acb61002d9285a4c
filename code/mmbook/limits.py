"""The limits every app of the book enforces, in one table (Chapter 10 explains them).

The input checks read these constants, and :data:`LAUNCH` holds the ``launch`` arguments that every app
gets from the launcher ``python -m mmbook.apps``, :func:`mmbook.demos.launch_local` and a Space.
"""

from __future__ import annotations

from typing import Any

#: Scene seeds an app accepts: 0 to this.
MAX_SEED = 1_000_000
#: The most pixels (width × height) of a picture an app opens.
MAX_PIXELS = 4096 * 4096
#: The largest upload the server accepts, checked by Gradio before any handler runs.
MAX_FILE_SIZE = "10mb"
#: The most characters of any typed text.
MAX_TEXT_CHARS = 500

#: ``launch`` arguments applied to every app: the upload limit, and no public share link unless asked.
LAUNCH: dict[str, Any] = {"max_file_size": MAX_FILE_SIZE, "share": False}

__all__ = ["LAUNCH", "MAX_FILE_SIZE", "MAX_PIXELS", "MAX_SEED", "MAX_TEXT_CHARS"]
