"""Time estimates in the editor (issue 16), against a numpy session and an inline queue: no Qt, no torch.

What a user would notice: a render estimated over ten minutes asks before it starts (once per photo, model and
expensive setting, never for a slider move after that); a no leaves the screen as it was and says how to start it
anyway; the progress line has a rate and the time left from the first tile on (and never a made-up rate before);
whole renders that ran the model are measured for the next estimate.
"""

from __future__ import annotations

import numpy as np
import pytest
from fake_session import FakeSession, InlineQueue
from PIL import Image

from desktop_sr.editor import EditorModel, Shown
from desktop_sr.editor.executor import Executor
from desktop_sr.editor.history import Change
from desktop_sr.editor.jobs import Render
from desktop_sr.engine.api import RenderParams
from desktop_sr.engine.loader import ModelSpec
from desktop_sr.imaging import SaveOptions
from desktop_sr.timing import LONG_JOB_SECONDS, CostBook

SPEC = ModelSpec(kind="fake", name="fake")


@pytest.fixture
def photo(tmp_path):
    p = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (50, 40, 3), np.uint8)).save(p)  # 40 x 50
    return p


@pytest.fixture
def editor(tmp_path):
    book = CostBook(tmp_path / "cost.json")
    queue = InlineQueue(Executor(lambda job: FakeSession(job.spec.name)))
    now = [0.0]
    ed = EditorModel(queue, clock=lambda: now[0], cost_book=book)
    queue.editor = ed
    ed.now = now  # type: ignore[attr-defined]
    ed.asked = []  # type: ignore[attr-defined]
    ed.statuses = []  # type: ignore[attr-defined]
    ed.progress_lines = []  # type: ignore[attr-defined]
    ed.long_render.connect(lambda seconds, text: ed.asked.append((seconds, text)))
    ed.status.connect(lambda text, ms: ed.statuses.append(text))
    ed.progress.connect(ed.progress_lines.append)
    return ed, queue, book


def slow_machine(book: CostBook) -> None:
    """An earlier x4 render of a photo this size took over five hours here (twice: a fit needs no more)."""
    for _ in range(2):
        book.record("fake", "cpu", 40 * 50 * 16 / 1e6, 30 * LONG_JOB_SECONDS)


def test_a_render_estimated_as_long_asks_first_and_yes_starts_it(editor, photo):
    ed, queue, book = editor
    slow_machine(book)
    ed.load_model(SPEC)
    queue.run_all()
    ed.open_photo(photo)
    queue.start()
    queue.step()  # the photo is open; the render is not queued: the question is on screen
    assert not any(isinstance(j, Render) for j in queue.queued)
    ((seconds, text),) = ed.asked
    assert seconds > LONG_JOB_SECONDS and "160 × 200" in text and "×4" in text and "h" in text
    ed.answer_long_render(True)
    assert [type(j).__name__ for j in queue.queued][:1] == ["Render"]
    queue.run_all()
    assert ed.shown is Shown.EXACT
    ed.set_params(RenderParams(pix=0.5), Change.STRENGTH)  # same photo, model, scale: no new question
    ed.set_params(RenderParams(pix=0.5, color_fix="none"))
    queue.run_all()
    assert len(ed.asked) == 1 and ed.shown is Shown.EXACT
    ed.set_params(RenderParams(pix=0.5, color_fix="none", realism=250))  # new model work: asked again
    assert len(ed.asked) == 2


def test_no_leaves_the_screen_and_render_now_starts_it(editor, photo):
    ed, queue, book = editor
    slow_machine(book)
    ed.load_model(SPEC)
    ed.open_photo(photo)
    queue.run_all()
    ed.answer_long_render(False)
    queue.run_all()
    assert ed.shown is Shown.NONE and "Render now" in ed.statuses[-1]
    ed.set_params(RenderParams(sem=1.5), Change.STRENGTH)  # a declined render is not asked about at every move
    assert len(ed.asked) == 1 and not queue.queued
    ed.export(photo.with_name("out.png"), SaveOptions())  # an explicit export of it asks again
    assert len(ed.asked) == 2 and not queue.queued
    ed.answer_long_render(False)
    ed.render_now()
    assert [type(j).__name__ for j in queue.queued] == ["Render"]
    queue.run_all()
    assert ed.shown is Shown.EXACT and ed.shown_params == RenderParams(sem=1.5)


def test_nothing_measured_yet_never_asks(editor, photo):
    ed, queue, _book = editor
    ed.load_model(SPEC)
    ed.open_photo(photo)
    queue.run_all()
    assert not ed.asked and ed.shown is Shown.EXACT


def test_progress_has_a_rate_and_time_left_from_the_first_tile(editor, photo):
    ed, queue, book = editor
    ed.load_model(SPEC)
    queue.run_all()
    ed.open_photo(photo)
    queue.start()
    while queue.step():  # opened; the render is queued
        pass
    ed.progress_lines.clear()
    queue.start()  # the render starts at t = 0
    assert ed.progress_lines[-1].fraction is None and ed.progress_lines[-1].detail == ""
    job, control, _ = queue.running
    ed.now[0] = 0.0
    control.report(0, 4, "unet")
    assert "after the first tile" in ed.progress_lines[-1].detail  # no rate from nothing
    ed.now[0] = 3.0
    control.report(1, 4, "unet")
    line = ed.progress_lines[-1]
    assert line.label == "Rendering" and "s/tile" in line.detail and "left" in line.detail
    assert line.fraction == pytest.approx(0.2 + 0.55 / 4)
    ed.now[0] = 6.0
    control.report(2, 4, "unet")
    assert "3.0 s/tile" in ed.progress_lines[-1].detail


def test_whole_renders_that_ran_the_model_are_measured(editor, photo):
    ed, queue, book = editor
    ed.load_model(SPEC)
    ed.open_photo(photo)
    assert book.seconds_per_megapixel("fake", "cpu") is None
    queue.run_all()
    assert book.seconds_per_megapixel("fake", "cpu") is not None  # the next estimate comes from this render
    assert ed.estimate_seconds(RenderParams(scale=2)) is not None


def test_a_decode_of_cached_latents_is_not_a_render_to_measure():
    from desktop_sr.editor.render_time import JobClock

    clock = JobClock(1, "Rendering", clock=lambda: 1.0)
    clock.report(1, 2, "decode")
    assert not clock.model_ran
    clock.report(1, 4, "unet-full")
    assert clock.model_ran
