"""Docstrings shown as ``--help`` text: reStructuredText markup removed, so the terminal reads plain words."""

from __future__ import annotations

import re

_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")  # :mod:`desktop_sr.cli` -> desktop_sr.cli
_LITERAL = re.compile(r"``([^`]+)``")  # ``desktop-sr upscale`` -> desktop-sr upscale


def plain(doc: str | None) -> str:
    """``doc`` without Sphinx roles and double-backtick literals (quoted with single quotes instead)."""
    text = _ROLE.sub(r"\1", doc or "")
    return _LITERAL.sub(r"'\1'", text).strip()
