"""What ``desktop-sr --selftest`` reports: the failure and the one-line report. Shared by the Qt-free checks
(:mod:`desktop_sr.selftest`) and the Qt half (:mod:`desktop_sr.ui.selftest`), so neither imports the other back."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .exit_codes import ExitCode


class SelftestFailure(Exception):
    """The self-test failed; ``str(exc)`` is the reason in words and ``exit_code`` what the process returns."""

    def __init__(self, reason: str, exit_code: int = ExitCode.FAILED) -> None:
        super().__init__(reason)
        self.exit_code = exit_code


@dataclass
class SelftestReport:
    """Timings (in the order the steps ran) and facts gathered along the way, printed as one line at the end."""

    steps: list[tuple[str, float]] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time a step; the time is recorded even when the step fails, so a failure report still shows progress."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.steps.append((name, time.perf_counter() - start))

    def line(self, ok: bool, reason: str = "") -> str:
        """One line: verdict, reason on failure, facts, then step timings and the time since the process started."""
        head = "desktop-sr selftest " + ("ok" if ok else f"FAILED: {reason}")
        facts = "; ".join(f"{k} {v}" for k, v in self.facts.items())
        timings = ", ".join(f"{name} {seconds:.2f}s" for name, seconds in self.steps)
        age = process_age()
        total = f"; {age:.2f}s since process start" if age is not None else ""
        parts = [head] + ([facts] if facts else []) + ([f"timings: {timings}{total}"] if timings or total else [])
        return " | ".join(parts)


def process_age() -> float | None:
    """Seconds since this process started (not since Python started running our code), or None where unknown.

    Measured from the kernel's process start time so the report includes the frozen app's own unpacking and the
    interpreter's start-up, which is what a person waiting for the window experiences. Linux only (/proc); elsewhere
    the build script measures the same thing from outside.
    """
    try:
        stat = Path("/proc/self/stat").read_text()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # the command name may contain spaces; fields resume after ')'
    start_ticks = int(fields[19])  # field 22 of proc(5), counting from the state field (3) as index 0
    return max(0.0, uptime - start_ticks / ticks)
