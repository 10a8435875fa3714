"""The one background relay (pytest-qt): results on the GUI thread with their job, one failure path, newest-wins
slots, cancel between steps, and no timer ticking while there is nothing to do."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import ClassVar

from desktop_sr.engine.errors import EngineError
from desktop_sr.ui.relay import BackgroundRelay, Task


@dataclass(frozen=True)
class Step(Task):
    value: int = 0
    slot: ClassVar[str | None] = "step"


def test_results_failures_and_the_idle_timer(qtbot):
    gate = threading.Event()
    threads: list[str] = []

    def run(job: Step, control):
        threads.append(threading.current_thread().name)
        gate.wait(10)
        if job.value < 0:
            raise EngineError("negative values are not allowed")
        if job.value == 13:
            raise KeyError("unlucky")
        yield job.value
        yield job.value * 10

    relay = BackgroundRelay(run, name="test")
    got: list[tuple[int, object]] = []
    failed: list[tuple[int, str]] = []
    relay.result.connect(lambda job, value: got.append((job.id, value)))
    relay.failed.connect(lambda job, message: failed.append((job.id, message)))
    try:
        assert not relay.timer_active() and not relay.busy  # idle: nothing polls
        a = Step(1)
        relay.submit(a)
        assert relay.timer_active() and relay.busy
        qtbot.waitUntil(lambda: bool(threads), timeout=5000)
        b, c = Step(2), Step(3)
        relay.submit(b)
        relay.submit(c)  # same slot: replaces b while queued
        gate.set()
        qtbot.waitUntil(lambda: not relay.busy, timeout=5000)
        assert got == [(a.id, 1), (a.id, 10), (c.id, 3), (c.id, 30)]  # each result carries its job
        assert not relay.timer_active()  # stops once everything is delivered
        assert threads and all(t == "desktop-sr-test" for t in threads)
        bad, buggy = Step(-1), Step(13)
        relay.submit(bad)
        qtbot.waitUntil(lambda: not relay.busy, timeout=5000)
        relay.submit(buggy)
        qtbot.waitUntil(lambda: not relay.busy, timeout=5000)
        assert failed == [(bad.id, "negative values are not allowed"), (buggy.id, "KeyError: 'unlucky'")]
    finally:
        gate.set()
        assert relay.stop(5)


def test_cancel_and_supersede_stop_the_running_job_between_steps(qtbot):
    started = threading.Event()

    def run(job: Step, control):
        started.set()
        for _ in range(500):
            control.check()
            control.report(1, 2, "wait")
            threading.Event().wait(0.01)
        return "finished"

    relay = BackgroundRelay(run)
    cancelled: list[int] = []
    relay.cancelled.connect(lambda job: cancelled.append(job.id))
    try:
        job = Step(1)
        relay.submit(job)
        assert started.wait(5)
        with qtbot.waitSignal(relay.progress, timeout=5000):
            pass
        relay.supersede("step")
        qtbot.waitUntil(lambda: not relay.busy, timeout=5000)
        assert cancelled == [job.id]
    finally:
        assert relay.stop(5)
