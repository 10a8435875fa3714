"""The exit codes of every ``desktop-sr`` command and of ``--selftest``, defined once.

Qt-free and CLI-free, so the self-test (:mod:`desktop_sr.selftest_report`) and the command line
(:mod:`desktop_sr.cli`) share them without either importing the other.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """What the process returns: 0 success, 1 some input failed (or the self-test failed), 2 bad usage, 3 the model
    could not be loaded, 130 interrupted by Ctrl-C (128 + SIGINT, what shells report)."""

    OK = 0
    FAILED = 1
    USAGE = 2
    MODEL = 3
    INTERRUPTED = 130
