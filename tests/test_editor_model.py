"""The editor model's rules, against a numpy session and an inline job queue: no Qt, no torch, milliseconds each.

What a user would notice: a strength change shows a preview at once, other changes keep the last result labelled as
the previous settings, the exact result replaces either, nothing stale ever lands on screen, undo brings back
settings and renders them, a scale change keeps the old result until the new one is ready, and a photo opened while
a render runs never gets the old photo's pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fake_session import FakeSession, InlineQueue
from PIL import Image

from desktop_sr.editor import EditorModel, Shown
from desktop_sr.editor.executor import Executor
from desktop_sr.editor.history import Change
from desktop_sr.editor.jobs import DetailMap, LoadModel, PrepareCorners, Render, Rescale
from desktop_sr.engine.api import RenderParams
from desktop_sr.engine.errors import ModelError
from desktop_sr.engine.loader import ModelSpec
from desktop_sr.imaging import to_uint8


class Screen:
    """What the widgets would show, recorded from the model's events."""

    def __init__(self, editor: EditorModel) -> None:
        self.after: np.ndarray | None = None
        self.before: np.ndarray | None = None
        self.shown: list[Shown] = []
        self.errors: list[tuple[str, str]] = []
        self.params: list[RenderParams] = []
        self.detail: np.ndarray | None = None
        editor.after_changed.connect(self._after)
        editor.after_patched.connect(self._patch)
        editor.photo_changed.connect(lambda photo, before, new: setattr(self, "before", before))
        editor.shown_changed.connect(self.shown.append)
        editor.error.connect(lambda title, message: self.errors.append((title, message)))
        editor.params_changed.connect(self.params.append)
        editor.detail_changed.connect(lambda values: setattr(self, "detail", values))

    def _after(self, image: np.ndarray | None) -> None:
        self.after = None if image is None else image.copy()

    def _patch(self, image: np.ndarray, x: int, y: int) -> None:
        if self.after is None or self.after.shape != self.before.shape:
            self.after = self.before.copy()  # the view stretches what it has; the fake's before is exact size
        self.after[y : y + image.shape[0], x : x + image.shape[1]] = image


@pytest.fixture
def photos(tmp_path) -> list[Path]:
    rng = np.random.default_rng(3)
    paths = []
    for i, size in enumerate(((12, 10), (8, 6))):
        p = tmp_path / f"photo{i}.png"
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), np.uint8)).save(p)
        paths.append(p)
    return paths


@pytest.fixture
def setup():
    sessions: list[FakeSession] = []

    def open_model(job: LoadModel) -> FakeSession:
        if job.spec.name == "broken":
            raise ModelError(Path("broken.pkl"), "not a checkpoint")
        sessions.append(FakeSession(job.spec.name))
        return sessions[-1]

    queue = InlineQueue(Executor(open_model))
    editor = EditorModel(queue)
    queue.editor = editor
    return editor, queue, Screen(editor), sessions


def expected(photo: Path, params: RenderParams) -> np.ndarray:
    from desktop_sr.imaging import read_photo

    s = FakeSession()
    s.set_photo(read_photo(photo).rgb)
    return to_uint8(s.render(params))


def ready(editor, queue, photo) -> None:
    editor.load_model(ModelSpec(kind="fake", name="fake"))
    editor.open_photo(photo)
    queue.run_all()


def test_first_result_is_exact_and_corners_follow(setup, photos):
    editor, queue, screen, sessions = setup
    ready(editor, queue, photos[0])
    assert editor.shown is Shown.EXACT and editor.shown_params == RenderParams()
    assert np.array_equal(screen.after, expected(photos[0], RenderParams()))
    assert editor.blender is not None  # corners were prepared after the exact result
    assert [kind for kind, *_ in sessions[0].calls].count("corners") == 1


def test_strength_change_shows_a_preview_at_once_then_the_exact_result(setup, photos):
    editor, queue, screen, _ = setup
    ready(editor, queue, photos[0])
    params = RenderParams(sem=1.5)
    editor.set_params(params, Change.STRENGTH)
    # on screen before any job ran: the corner blend
    assert editor.shown is Shown.PREVIEW and editor.preview_count == 1 and queue.kinds() == ["Render"]
    assert np.abs(screen.after.astype(int) - expected(photos[0], params)).max() <= 1
    queue.run_all()
    assert editor.shown is Shown.EXACT and editor.shown_params == params
    assert np.array_equal(screen.after, expected(photos[0], params))


def test_other_changes_keep_the_last_result_as_stale_then_exact_in_view_first(setup, photos):
    editor, queue, screen, _ = setup
    ready(editor, queue, photos[0])
    old = screen.after.copy()
    editor.set_view((0, 0, 24, 20))  # the top-left quarter of the 48 x 40 result is on screen
    params = RenderParams(color_fix="wavelet")
    editor.set_params(params)
    assert editor.shown is Shown.STALE and np.array_equal(screen.after, old)  # never the original
    (job,) = queue.queued
    assert isinstance(job, Render) and job.region == (0, 0, 24, 20)
    queue.start()
    queue.step()
    assert editor.shown is Shown.PARTIAL
    want = expected(photos[0], params)
    assert np.array_equal(screen.after[:20, :24], want[:20, :24])
    queue.step()
    assert editor.shown is Shown.EXACT and np.array_equal(screen.after, want)


def test_a_drag_is_coalesced_and_ends_in_its_last_value(setup, photos):
    editor, queue, screen, sessions = setup
    ready(editor, queue, photos[0])
    before = len(sessions[0].renders())
    for i in range(20):
        editor.set_params(RenderParams(pix=(i + 1) / 20, sem=(20 - i) / 20), Change.STRENGTH)
    assert queue.kinds() == ["Render"]  # one queued render, not twenty
    queue.run_all()
    final = RenderParams(pix=1.0, sem=0.05)
    assert sessions[0].renders()[before:] == [(final, None)]
    assert editor.shown is Shown.EXACT and np.array_equal(screen.after, expected(photos[0], final))
    assert not editor.history.can_redo() and editor.history.undo() == RenderParams()  # one undo step


def test_a_superseded_result_is_dropped_by_job_id(setup, photos):
    editor, queue, screen, _ = setup
    ready(editor, queue, photos[0])
    editor.set_params(RenderParams(color_fix="none"))
    first = queue.start()
    control = queue.running[1]
    results = list(queue.executor.run(first, control))  # the worker finishes it (no tile boundary left)...
    editor.set_params(RenderParams(color_fix="wavelet"))  # ...as the user moves on
    assert control.cancelled  # a render still running would stop at its next tile
    queue.running = None
    editor.on_result(first, results[-1])  # its result arrives late
    assert editor.shown is Shown.STALE and editor.shown_params == RenderParams()  # the old result was not shown
    queue.run_all()
    assert editor.shown is Shown.EXACT and editor.shown_params == RenderParams(color_fix="wavelet")
    assert first.params == RenderParams(color_fix="none")


def test_undo_and_redo_restore_settings_and_render_them(setup, photos):
    editor, queue, screen, _ = setup
    ready(editor, queue, photos[0])
    first = screen.after.copy()
    for v in (1.05, 1.1, 1.15, 1.2):
        editor.set_params(RenderParams(sem=v), Change.STRENGTH)
    editor.set_params(RenderParams(sem=1.2, color_fix="wavelet"))
    queue.run_all()
    editor.undo()
    assert editor.params == RenderParams(sem=1.2) and screen.params[-1] == RenderParams(sem=1.2)
    editor.undo()
    assert editor.params == RenderParams() and not editor.history.can_undo()
    queue.run_all()
    assert editor.shown is Shown.EXACT and np.array_equal(screen.after, first)
    editor.redo()
    queue.run_all()
    assert editor.shown_params == RenderParams(sem=1.2) and editor.shown is Shown.EXACT


def test_scale_change_keeps_the_old_result_until_the_new_one_is_ready(setup, photos):
    editor, queue, screen, _ = setup
    ready(editor, queue, photos[0])
    old = screen.after.copy()
    editor.set_scale(2)
    assert queue.kinds() == ["Rescale"]  # the new 'before' first, no render of a size nothing is laid out for
    queue.start()
    queue.step()
    assert screen.before.shape == (20, 24, 3) and editor.shown is Shown.STALE and screen.after is not None
    assert np.array_equal(screen.after, old)  # still the x4 result, stretched by the view
    queue.run_all()
    assert editor.shown is Shown.EXACT and screen.after.shape == (20, 24, 3)
    assert np.array_equal(screen.after, expected(photos[0], RenderParams(scale=2)))


def test_a_photo_opened_mid_render_never_gets_the_old_photos_pixels(setup, photos):
    editor, queue, screen, _ = setup
    ready(editor, queue, photos[0])
    editor.set_view((0, 0, 24, 20))
    editor.set_params(RenderParams(color_fix="none"))
    queue.start()
    queue.step()  # the visible region of photo 0 is on screen
    editor.open_photo(photos[1])
    queue.step()  # photo 0's whole result arrives after the new photo was asked for: shown, then replaced
    queue.run_all()
    assert editor.photo.source == photos[1] and editor.shown is Shown.EXACT
    assert screen.after.shape == (24, 32, 3)
    assert np.array_equal(screen.after, expected(photos[1], RenderParams(color_fix="none")))


def test_the_old_photos_render_result_after_the_new_photo_is_dropped(setup, photos):
    editor, queue, screen, _ = setup
    ready(editor, queue, photos[0])
    editor.set_params(RenderParams(color_fix="none"))
    render = queue.start()
    opening = [j for j in queue.queued]  # nothing else queued yet
    editor.open_photo(photos[1])
    results = list(queue.executor.run(render, queue.running[1]))  # photo 0's render completes...
    queue.running = None
    queue.run_all()  # ...photo 1 opens and renders
    editor.on_result(render, results[-1])  # the old result arrives late: dropped by id
    assert not opening and screen.after.shape == (24, 32, 3) and editor.shown is Shown.EXACT


def test_panning_re_prioritises_the_render(setup, photos):
    editor, queue, screen, _ = setup
    ready(editor, queue, photos[0])
    editor.set_view((0, 0, 24, 20))
    editor.set_params(RenderParams(color_fix="none"))
    queue.start()
    queue.step()  # top-left exact
    editor.set_view((4, 4, 20, 16))  # still inside what is exact: nothing to do
    assert queue.kinds() == []
    editor.set_view((24, 20, 48, 40))  # panned to the bottom right while the rest renders
    assert queue.running[1].cancelled and [j.region for j in queue.queued] == [(24, 20, 48, 40)]
    queue.running = None
    queue.start()
    queue.step()
    assert np.array_equal(screen.after[20:, 24:], expected(photos[0], RenderParams(color_fix="none"))[20:, 24:])
    queue.run_all()
    assert editor.shown is Shown.EXACT
    editor.set_view((0, 0, 48, 40))  # exact everywhere: panning renders nothing
    assert queue.kinds() == []


def test_cancel_keeps_the_last_result_labelled(setup, photos):
    editor, queue, screen, _ = setup
    ready(editor, queue, photos[0])
    editor.set_detail(True)
    editor.set_params(RenderParams(color_fix="none"))
    assert queue.kinds() == ["Render", "DetailMap"]
    queue.start()
    editor.cancel()
    assert queue.kinds() == []
    assert not queue.step()  # stopped at the next tile boundary
    assert editor.shown is Shown.STALE and editor.shown_params == RenderParams()
    editor.set_busy(False)
    assert editor.badge()[0] == "Previous settings"
    editor.set_busy(True)  # the worker busy with something else (opening, saving): no render is under way
    assert editor.badge()[0] == "Previous settings"
    editor.set_params(RenderParams(color_fix="wavelet"))
    assert editor.badge()[0] == "Previous settings · rendering…"


def test_detail_map_follows_the_settings(setup, photos):
    editor, queue, screen, _ = setup
    ready(editor, queue, photos[0])
    editor.set_detail(True)
    assert queue.kinds() == ["DetailMap"]
    queue.run_all()
    assert editor.detail_for == RenderParams() and screen.detail.shape == (40, 48)
    editor.set_params(RenderParams(sem=1.5), Change.STRENGTH)
    assert any(isinstance(j, DetailMap) and j.params == RenderParams(sem=1.5) for j in queue.queued)
    queue.run_all()
    assert editor.detail_for == RenderParams(sem=1.5)
    editor.load_model(ModelSpec(kind="fake", name="other"))
    queue.run_all()
    assert editor.detail_for == RenderParams(sem=1.5)  # rendered again for the new model


def test_a_model_that_fails_gives_way_to_the_one_before(setup, photos):
    editor, queue, screen, sessions = setup
    ready(editor, queue, photos[0])
    editor.load_model(ModelSpec(kind="fake", name="broken"))
    queue.run_all()
    ((title, message),) = screen.errors
    assert title == "Cannot load the model" and "broken.pkl" in message and "Using fake instead" in message
    assert editor.model_info is not None and editor.model_spec.name == "fake" and editor.shown is Shown.EXACT
    assert len(sessions) == 2  # the old model was released for the new one, then loaded again


def test_a_model_without_realism_levels_resets_the_setting(setup, photos):
    editor, queue, screen, _ = setup
    ready(editor, queue, photos[0])
    editor.set_params(RenderParams(realism=250))
    queue.run_all()
    queue.executor.open_model = lambda job: FakeSession("plain", supports_realism=False)
    editor.load_model(ModelSpec(kind="fake", name="plain"))
    queue.run_all()
    assert editor.params.realism == 1 and screen.params[-1].realism == 1
    assert editor.shown_params == RenderParams() and editor.shown is Shown.EXACT


def test_nothing_renders_without_a_model_or_a_photo(setup, photos):
    editor, queue, screen, _ = setup
    editor.open_photo(photos[0])
    queue.run_all()
    assert screen.before is not None and screen.after is None and editor.shown is Shown.NONE
    editor.set_params(RenderParams(sem=0.5), Change.STRENGTH)
    assert queue.kinds() == []
    assert not any(isinstance(j, (Render, PrepareCorners, Rescale)) for j in queue.queued)
