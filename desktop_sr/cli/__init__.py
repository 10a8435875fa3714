"""The ``desktop-sr`` command line: :func:`main` starts the app or runs one headless command.

``entry``: the top parser and the dispatch; one module per command (``upscale``, ``batch`` with its ``--ray`` face
``batch_cluster``, ``models``, ``devices``); below them what the commands share (``common``: options, progress,
Ctrl-C; ``strength_maps``; ``help_text``). The exit codes are :class:`~desktop_sr.exit_codes.ExitCode`.
"""

from ..exit_codes import ExitCode
from .entry import build_parser, main

__all__ = ["ExitCode", "build_parser", "main"]
