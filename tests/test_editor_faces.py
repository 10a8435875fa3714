"""The editor's Faces panel (issue 27), without Qt: the Qt-free editor model and its real executor against a numpy
session (tests/fake_session.py) on a small photo with a real face (scikit-image's astronaut), a counting stand-in for
the face network (a real pass is tests/test_faces_restore.py's slow test) and the engine's own detection, alignment,
paste-back and cache.

What a user would notice: choosing a face model restores the faces of the result on screen and leaves the rest as
it was; a strength change or a face switched off shows at once without a network pass; undo and redo bring each
state back; a new result gets its faces again; a photo without a face is left alone; a face model that went missing
says so and the app goes on; the exported file is what the view shows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fake_session import FakeSession, InlineQueue
from PIL import Image

from desktop_sr.editor import EditorModel, Shown
from desktop_sr.editor import face_restore as fr
from desktop_sr.editor.executor import Executor
from desktop_sr.editor.history import Change
from desktop_sr.editor.jobs import RestoreFaces
from desktop_sr.engine.api import RenderParams
from desktop_sr.engine.faces import FaceRestoration
from desktop_sr.engine.faces import landmarks as lm
from desktop_sr.engine.loader import ModelSpec
from desktop_sr.imaging import SaveOptions

pytest.importorskip("cv2", reason="the face detector is OpenCV 4's (the faces and test extras install it)")
if not lm.available():
    pytest.skip("OpenCV 5 has no Haar cascades (the test extra pins opencv-python<5)", allow_module_level=True)
skimage_data = pytest.importorskip("skimage.data", reason="the astronaut and the coffee ship in scikit-image")

PARAMS = RenderParams(scale=2)


class Counting:
    """A stand-in for a face network that counts its passes: the aligned face inverted (any change shows), pulled
    towards the photo by the fidelity weight where the model has one."""

    architecture, licence = "test", "none"

    def __init__(self, name: str = "inverted", has_fidelity: bool = False) -> None:
        self.name, self.has_fidelity = name, has_fidelity
        self.calls = 0

    def restore(self, crop: np.ndarray, fidelity: float) -> np.ndarray:
        self.calls += 1
        return (1.0 - crop) * (1.0 - fidelity) + crop * fidelity


class Screen:
    """The "after" side and the Faces panel as the widgets would show them."""

    def __init__(self, editor: EditorModel) -> None:
        self.after: np.ndarray | None = None
        self.errors: list[tuple[str, str]] = []
        self.panel: fr.FacePanel | None = None
        editor.after_changed.connect(lambda image: setattr(self, "after", None if image is None else image.copy()))
        editor.error.connect(lambda title, message: self.errors.append((title, message)))
        editor.faces.changed.connect(lambda panel: setattr(self, "panel", panel))


@pytest.fixture
def head(tmp_path) -> Path:
    """The astronaut's head at 80 x 80 (a face of about 62 px in the x2 result: above the 48 px threshold)."""
    path = tmp_path / "head.png"
    Image.fromarray(skimage_data.astronaut()[:256, 100:356]).resize((80, 80), Image.Resampling.LANCZOS).save(path)
    return path


@pytest.fixture
def editor_setup():
    restorers = {"inverted": Counting(), "codeformer-like": Counting("codeformer-like", has_fidelity=True)}
    loaded = {name: FaceRestoration(r) for name, r in restorers.items()}

    def open_faces(spec: ModelSpec, device: str) -> FaceRestoration:
        if spec.name in loaded:
            return loaded[spec.name]
        from desktop_sr.engine.faces import restoration_for

        return restoration_for(spec, device)  # the engine's own: a missing or wrong file is named

    queue = InlineQueue(Executor(lambda job: FakeSession(job.spec.name), open_faces))
    editor = EditorModel(queue, PARAMS)
    queue.editor = editor
    screen = Screen(editor)
    return editor, queue, screen, restorers


def plain_result(path: Path, params: RenderParams = PARAMS) -> np.ndarray:
    from desktop_sr.imaging import read_photo, to_uint8

    s = FakeSession()
    s.set_photo(read_photo(path).rgb)
    return to_uint8(s.render(params))


def ready(editor: EditorModel, queue: InlineQueue, photo: Path) -> None:
    editor.load_model(ModelSpec(kind="fake", name="fake"))
    editor.open_photo(photo)
    queue.run_all()
    assert editor.shown is Shown.EXACT


def face_weight(editor: EditorModel) -> np.ndarray:
    """Where the restored faces may change the result (their feathered masks' support), in result pixels."""
    r = editor.faces._ready
    assert r is not None
    w, h = r.size
    weight = np.zeros((h, w), np.float32)
    for placed in r.placed.values():
        x0, y0, x1, y1 = placed.rect
        weight[y0:y1, x0:x1] = np.maximum(weight[y0:y1, x0:x1], placed.weight)
    return weight


SPEC = ModelSpec(kind="faces", name="inverted")


def test_choosing_a_face_model_restores_the_face_on_screen_and_a_strength_change_is_instant(editor_setup, head):
    editor, queue, screen, restorers = editor_setup
    ready(editor, queue, head)
    plain = plain_result(head)
    assert np.array_equal(screen.after, plain)
    editor.faces.choose(SPEC)
    assert queue.kinds() == ["RestoreFaces"] and screen.panel.summary == "Restoring faces…"
    editor.set_busy(True)  # the worker took the job
    assert editor.badge()[0] == "Exact · restoring faces…"
    editor.set_busy(False)
    queue.run_all()
    assert restorers["inverted"].calls == 1
    panel = screen.panel
    (row,) = panel.rows
    assert panel.summary == "1 face restored" and row.label == f"Face 1 ({round(row.face.size)} px)"
    assert 55 <= row.face.size <= 70 and row.on and not row.too_small
    weight = face_weight(editor)
    diff = np.abs(screen.after.astype(int) - plain.astype(int)).max(-1)
    assert diff[weight == 0].max() <= 1  # outside the face: the result as it was (within 1 level)
    x0, y0, x1, y1 = panel.rows[0].face.box
    assert diff[y0:y1, x0:x1].mean() > 40  # inside: the restored face

    # a strength drag: shown at once, no job, no network pass, one undo step
    full = screen.after.copy()
    for i, s in enumerate((0.8, 0.6, 0.5)):
        editor.clock = lambda i=i: 100.0 + 0.1 * i
        editor.faces.set_strength(s)
    assert queue.kinds() == [] and restorers["inverted"].calls == 1
    half = np.abs(screen.after.astype(int) - plain.astype(int)).max(-1)
    assert 0.3 * diff[y0:y1, x0:x1].mean() < half[y0:y1, x0:x1].mean() < 0.7 * diff[y0:y1, x0:x1].mean()
    assert editor.faces.last_blend_ms is not None
    editor.undo()
    assert editor.faces.edit.strength == 1.0 and np.array_equal(screen.after, full)  # the whole drag at once
    editor.undo()
    assert editor.faces.edit.model is None and np.array_equal(screen.after, plain)
    editor.redo()
    assert queue.kinds() == [] and np.array_equal(screen.after, full)  # the cached faces: no pass
    assert restorers["inverted"].calls == 1


def test_a_face_switched_off_is_the_plain_result_and_a_new_result_gets_its_faces_again(editor_setup, head):
    editor, queue, screen, restorers = editor_setup
    ready(editor, queue, head)
    editor.faces.choose(SPEC)
    queue.run_all()
    restored = screen.after.copy()
    plain = plain_result(head)
    x0, y0, x1, y1 = screen.panel.rows[0].face.box
    assert editor.faces.toggle_at((x0 + x1) / 2, (y0 + y1) / 2)  # a click on its outline
    assert np.array_equal(screen.after, plain)  # off: the unrestored result, inside its box too
    assert screen.panel.summary == "0 faces restored, 1 off" and not screen.panel.rows[0].on
    editor.faces.set_face(1, True)
    assert np.array_equal(screen.after, restored) and restorers["inverted"].calls == 1
    editor.undo()
    assert np.array_equal(screen.after, plain)  # undo: off again
    editor.redo()

    # a slider of the render: the preview and the visible part show the faces at hand, the new exact result is
    # restored again
    params = PARAMS.with_(sem=0.5)
    editor.set_view((0, 0, 120, 120))  # zoomed in on the face
    editor.set_params(params, Change.STRENGTH)
    assert editor.shown is Shown.PREVIEW
    preview_plain = editor.blender.blend(params.pix, params.sem)
    assert np.abs(screen.after.astype(int) - preview_plain.astype(int))[y0:y1, x0:x1].mean() > 20
    new_plain = plain_result(head, params)
    queue.start()
    queue.step()
    assert editor.shown is Shown.PARTIAL
    assert np.abs(screen.after.astype(int) - new_plain.astype(int))[y0:y1, x0:x1].mean() > 20  # no flash
    assert (
        np.abs(screen.after.astype(int) - new_plain.astype(int))[:120, :120][face_weight(editor)[:120, :120] == 0].max()
        <= 1
    )
    queue.run_all()
    assert editor.shown is Shown.EXACT and restorers["inverted"].calls == 2  # found and restored again
    assert np.abs(screen.after.astype(int) - new_plain.astype(int))[y0:y1, x0:x1].mean() > 20
    assert screen.panel.summary == "1 face restored"


def test_fidelity_is_a_network_pass_on_the_worker_and_only_for_a_model_with_one(editor_setup, head):
    editor, queue, screen, restorers = editor_setup
    ready(editor, queue, head)
    editor.faces.choose(SPEC)
    queue.run_all()
    assert not screen.panel.has_fidelity
    editor.faces.choose(ModelSpec(kind="faces", name="codeformer-like"))
    queue.run_all()
    assert screen.panel.has_fidelity and restorers["codeformer-like"].calls == 1
    before = screen.after.copy()
    editor.faces.set_fidelity(0.9)
    assert queue.kinds() == ["RestoreFaces"]
    queue.run_all()
    assert restorers["codeformer-like"].calls == 2 and not np.array_equal(screen.after, before)


def test_a_photo_without_a_face_is_untouched_and_says_so(editor_setup, tmp_path):
    editor, queue, screen, restorers = editor_setup
    coffee = Path(__file__).parent / "data" / "coffee_128.png"
    ready(editor, queue, coffee)
    plain = screen.after.copy()
    editor.faces.choose(SPEC)
    queue.run_all()
    assert screen.panel.summary == "No face found" and screen.panel.rows == ()
    assert np.array_equal(screen.after, plain) and restorers["inverted"].calls == 0


def test_a_missing_face_model_is_said_and_restoration_is_off(editor_setup, head, tmp_path):
    from desktop_sr.engine.families import family

    editor, queue, screen, _ = editor_setup
    ready(editor, queue, head)
    plain = screen.after.copy()
    gone = family("faces").spec({"weights": tmp_path / "gone" / "GFPGANv1.4.pth"}, "GFPGAN v1.4")
    editor.faces.choose(gone)
    queue.run_all()
    ((title, message),) = screen.errors
    assert title == "Cannot restore faces" and "GFPGANv1.4.pth" in message and "not restored" in message
    assert editor.faces.edit.model is None and np.array_equal(screen.after, plain)
    assert screen.panel.summary == ""
    editor.set_params(PARAMS.with_(sem=0.5), Change.STRENGTH)  # the editor goes on
    queue.run_all()
    assert editor.shown is Shown.EXACT and len(screen.errors) == 1


def test_without_opencv_the_panel_says_what_to_install(editor_setup, head, monkeypatch):
    editor, queue, screen, _ = editor_setup
    ready(editor, queue, head)
    monkeypatch.setattr(fr, "detector_available", lambda: False)
    editor.faces.choose(SPEC)
    assert queue.kinds() == [] and editor.faces.edit.model is None
    assert 'pip install "desktop-sr[faces]"' in screen.panel.summary


def test_the_export_is_what_the_view_shows(editor_setup, head, tmp_path):
    editor, queue, screen, restorers = editor_setup
    ready(editor, queue, head)
    editor.faces.choose(SPEC)
    queue.run_all()
    editor.faces.set_strength(0.7)
    shown = screen.after.copy()
    out = tmp_path / "out.png"
    editor.export(out, SaveOptions())
    (job,) = queue.queued
    assert job.faces == editor.faces.edit
    queue.run_all()
    assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), shown)
    assert restorers["inverted"].calls == 1  # the same result's faces: from the face model's cache
    assert not any(isinstance(j, RestoreFaces) for j in queue.queued)


def test_a_new_photo_forgets_the_faces_of_the_last_one_and_a_render_stops_a_stale_restoration(editor_setup, head):
    editor, queue, screen, restorers = editor_setup
    ready(editor, queue, head)
    editor.faces.choose(SPEC)
    queue.start()  # the face model runs ...
    editor.set_params(PARAMS.with_(sem=0.5), Change.STRENGTH)  # ... and the user moves a slider: it is stale
    assert not queue.step()  # cancelled between faces
    queue.run_all()
    assert restorers["inverted"].calls == 1 and screen.panel.summary == "1 face restored"  # the new result's
    editor.faces.set_fidelity(0.8)  # (no fidelity weight in this model: no pass)
    assert queue.kinds() == []
    editor.faces.set_face(1, False)
    editor.open_photo(Path(__file__).parent / "data" / "coffee_128.png")
    queue.run_all()
    assert screen.panel.summary == "No face found" and editor.faces.edit.model == SPEC
    assert editor.faces.edit.off == frozenset()  # the last photo's face switched off is no face of this one
    editor.open_photo(head)
    queue.run_all()
    assert screen.panel.rows[0].on
    editor.set_params(PARAMS.with_(sem=0.7), Change.STRENGTH)
    queue.start()
    while queue.step():  # the render: its faces' job is queued next
        pass
    assert queue.kinds() == ["RestoreFaces"] and screen.panel.busy
    editor.cancel()  # the status bar's Cancel
    assert queue.kinds() == [] and not screen.panel.busy and screen.panel.summary == fr.CANCELLED


def test_the_face_model_is_remembered_for_the_next_session(tmp_path, head):
    from desktop_sr.editor.face_edit import FaceEdit
    from desktop_sr.editor.remembered import faces_from_settings, remember_faces
    from desktop_sr.settings import load_settings, save_settings

    settings, _ = load_settings(tmp_path)
    edit = FaceEdit(ModelSpec.of("faces", "CodeFormer", {"weights": tmp_path / "codeformer.pth"}), 0.7, 0.3)
    remember_faces(settings, edit)
    save_settings(settings, tmp_path)
    again, warning = load_settings(tmp_path)
    assert warning is None and faces_from_settings(again) == edit
    remember_faces(again, FaceEdit())
    assert faces_from_settings(again) == FaceEdit()

    # a session that starts with a face model restores the faces of its first result
    restorer = Counting()
    restoration = FaceRestoration(restorer)
    queue = InlineQueue(Executor(lambda job: FakeSession(job.spec.name), lambda spec, device: restoration))
    editor = EditorModel(queue, PARAMS, faces=FaceEdit(SPEC, 0.5))
    queue.editor = editor
    screen = Screen(editor)
    ready(editor, queue, head)
    assert restorer.calls == 1 and screen.panel.summary == "1 face restored" and editor.faces.edit.strength == 0.5
    assert not editor.history.can_undo()  # where the session started, not a change
