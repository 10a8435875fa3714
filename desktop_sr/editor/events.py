"""A change event the widgets subscribe to: the Qt-free counterpart of a Qt signal, for the editor model.

The model lives on the GUI thread and calls its subscribers synchronously, in the order they subscribed, so a slider
move reaches the screen before control returns to the event loop (the instant preview depends on it). Small on
purpose: an evented-model library would add a dependency for what is a list of callables here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, ParamSpec

P = ParamSpec("P")


class Event(Generic[P]):
    """``event.connect(fn)``, ``event.emit(*args)``; ``fn`` gets the same arguments."""

    def __init__(self) -> None:
        self._subscribers: list[Callable[P, object]] = []

    def connect(self, fn: Callable[P, object]) -> Callable[P, object]:
        self._subscribers.append(fn)
        return fn

    def disconnect(self, fn: Callable[P, object]) -> None:
        self._subscribers.remove(fn)

    def emit(self, *args: P.args, **kwargs: P.kwargs) -> None:
        for fn in list(self._subscribers):
            fn(*args, **kwargs)
