"""Pause and cancel for a running batch, safe to call from any thread (the GUI, a signal handler, a test).

Cancel goes through the engine's :class:`CancelToken`, which the engine checks between tiles, so the file in
progress stops within one tile. Pause blocks the runner's thread in its progress callback (between tiles too), so
it holds mid-file without throwing away the tiles already computed.
"""

from __future__ import annotations

import threading

from ..engine.api import CancelToken


class BatchControl:
    def __init__(self) -> None:
        self.token = CancelToken()
        self._running = threading.Event()
        self._running.set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def cancel(self) -> None:
        """Stop as soon as possible; the file in progress is abandoned and leaves no output."""
        self.token.cancel()
        self._running.set()  # wake a paused runner so it can notice

    @property
    def paused(self) -> bool:
        return not self._running.is_set() and not self.token.cancelled

    @property
    def cancelled(self) -> bool:
        return self.token.cancelled

    def wait_while_paused(self, poll: float = 0.25) -> bool:
        """Block while paused. Returns True if the batch was paused at all (the ETA clock must skip that time)."""
        if self._running.is_set():
            return False
        while not self._running.wait(poll):
            pass
        return True
