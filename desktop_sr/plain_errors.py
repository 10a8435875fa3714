"""Library and network errors in plain sentences, once for the CLI and the GUI.

An offline machine asking the Hugging Face Hub for a model gets ``LocalEntryNotFoundError: ... ConnectError: [Errno -2]
Name or service not known ...`` from huggingface_hub: three libraries' words for "this machine is offline". A user
can act on the plain sentence, not on the chain. :func:`plain_reason` walks an exception's causes and says what the
deepest recognisable one means; :func:`said_about` puts a file's path in front exactly once (our own errors already
start with it).

Qt-free and torch-free: imported by the CLI, the model store's downloads and the GUI alike.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator
from pathlib import Path

#: Words of name-resolution failures (glibc, macOS, Windows), in messages that wrap the original exception as text.
_NO_NAME = ("name or service not known", "temporary failure in name resolution", "nodename nor servname",
            "getaddrinfo failed", "no address associated with hostname")  # fmt: skip
_OFFLINE = "this machine is offline, or cannot reach the server (no connection, or its name cannot be looked up)"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it was raised from or during, each once."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        stack.extend(x for x in (e.__cause__, e.__context__) if x is not None)
        stack.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def network_reason(exc: BaseException) -> str | None:
    """What a network failure means for the user (offline, refused, timed out, offline mode on), or None when
    ``exc`` is not one."""
    chain = list(_chain(exc))
    texts = " | ".join(str(e) for e in chain).lower()
    if any("OfflineModeIsEnabled" in _names(e) for e in chain):
        return "offline mode is on (HF_HUB_OFFLINE is set), so nothing is downloaded"
    if any(isinstance(e, socket.gaierror) for e in chain) or any(words in texts for words in _NO_NAME):
        return _OFFLINE
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "connection refused" in texts:
        return "the server refused the connection (it is down, or a firewall or proxy stops it)"
    if any(isinstance(e, TimeoutError | socket.timeout) for e in chain) or "timed out" in texts:
        return "the connection timed out (a slow or blocked network); try again later"
    if any(n in _names(e) for e in chain for n in ("ConnectError", "ConnectionError", "LocalEntryNotFoundError")):
        return _OFFLINE
    return None


def disk_reason(exc: BaseException) -> str | None:
    """What a file-system error means (a full or read-only disk, no permission), or None."""
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno is not None:
            where = f" ({e.filename})" if getattr(e, "filename", None) else ""
            if e.errno == errno.ENOSPC:
                return f"the disk is full{where}"
            if e.errno == errno.EROFS:
                return f"the disk is read-only{where}"
            if e.errno in (errno.EACCES, errno.EPERM):
                return f"permission denied{where}"
    return None


def plain_reason(exc: BaseException) -> str:
    """One line a user can act on: the network or disk meaning where there is one, else the error's own first line
    (without the class name a library put in front)."""
    found = network_reason(exc) or disk_reason(exc)
    if found:
        return found
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text


def said_about(path: str | Path, exc: BaseException) -> str:
    """``path: reason``, with the path once: our errors (PhotoError, OutputProblem) already start with it."""
    text = str(exc) if str(exc).strip() else type(exc).__name__
    for spelling in {str(path), os.fspath(Path(path))}:
        if text.startswith(f"{spelling}:") or text.startswith(f"{spelling} "):
            return text
    return f"{path}: {text}"
