"""Chapters' experiment harnesses: task data, benchmark runners and the demo models built on them.

The lesson modules (:mod:`mmbook.fusion`, :mod:`mmbook.matching`, ...) hold what a reader reads; each
module here holds what one chapter runs them on (see ``code/README.md``).
"""
