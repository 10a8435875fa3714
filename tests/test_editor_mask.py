"""The painted mask in the editor model (issue 19), against the numpy session: no Qt, no torch.

A stroke changes the mask and the result where painted and only there, the preview follows at once and the exact
render after the stroke; undo and redo walk the strokes; the sliders keep the mask; the mask is kept with the photo
and comes back when it is opened again; starting masks come from the detail map and from the faces found.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from fake_session import FakeSession, InlineQueue
from PIL import Image

from desktop_sr.editor import EditorModel, Shown
from desktop_sr.editor.executor import Executor
from desktop_sr.editor.history import Change
from desktop_sr.editor.mask import Brush, Stroke, from_boxes, mask_grid
from desktop_sr.engine.api import RenderParams
from desktop_sr.engine.loader import ModelSpec

DATA = Path(__file__).parent / "data"


@pytest.fixture
def editor(tmp_path, monkeypatch):
    monkeypatch.setenv("DESKTOP_SR_MASKS_DIR", str(tmp_path / "masks"))
    queue = InlineQueue(Executor(lambda job: FakeSession(job.spec.name)))
    model = EditorModel(queue)
    queue.editor = model
    after: list[np.ndarray] = []
    model.after_changed.connect(lambda img: after.append(None if img is None else img.copy()))
    return model, queue, after


def open_photo(model: EditorModel, queue: InlineQueue, path: Path) -> None:
    model.load_model(ModelSpec(kind="fake", name="fake"))
    model.open_photo(path)
    queue.run_all()


@pytest.fixture
def photo(tmp_path) -> Path:
    p = tmp_path / "photo.png"
    Image.open(DATA / "astronaut_64.png").convert("RGB").save(p)
    return p


def paint(model: EditorModel, brush: Brush, points: list[tuple[float, float]]) -> None:
    model.masks.begin_stroke(brush, *points[0])
    for x, y in points[1:]:
        model.masks.stroke_to(x, y)
    model.masks.end_stroke()


def test_a_stroke_changes_the_mask_and_result_only_where_painted_and_undo_restores(editor, photo):
    model, queue, after = editor
    open_photo(model, queue, photo)
    before = after[-1]
    assert model.shown is Shown.EXACT and model.masks.values() is None
    paint(model, Brush("less", size=40, feather=0.3), [(40, 40), (80, 40)])  # output px (256 x 256 at x4)
    mask = model.masks.values()
    assert mask is not None and mask.shape == (64, 64)
    assert mask[10, 15] == 0.0 and mask[50, 50] == 1.0  # under the stroke / far from it
    assert model.shown is Shown.PREVIEW  # the preview blend came at once, the exact render is queued
    queue.run_all()
    assert model.shown is Shown.EXACT
    diff = np.abs(after[-1].astype(int) - before.astype(int)).sum(axis=2)
    assert diff[32:48, 40:80].min() > 0 and not diff[120:, :].any()
    model.undo()
    queue.run_all()
    assert model.masks.values() is None and np.array_equal(after[-1], before)
    model.redo()
    queue.run_all()
    assert np.array_equal(model.masks.values(), mask)


def test_sliders_keep_the_mask_and_the_eraser_takes_it_away(editor, photo):
    model, queue, _ = editor
    open_photo(model, queue, photo)
    paint(model, Brush("more", size=60, strength=0.5), [(128, 128)])
    painted = model.masks.values()
    assert painted is not None and painted.max() == pytest.approx(1.5)
    model.set_params(RenderParams(sem=0.7), Change.STRENGTH)  # the controls know nothing of the mask
    assert model.params.sem == 0.7 and np.array_equal(model.masks.values(), painted)
    paint(model, Brush("erase", size=200, feather=0.0), [(128, 128)])
    assert model.masks.values() is None and model.params.maps is None


def test_the_mask_is_kept_with_the_photo(editor, photo, tmp_path):
    model, queue, _ = editor
    open_photo(model, queue, photo)
    paint(model, Brush("less", size=50), [(100, 100)])
    painted = model.masks.values()
    other = tmp_path / "other.png"
    Image.open(DATA / "coffee_128.png").convert("RGB").save(other)
    model.open_photo(other)
    queue.run_all()
    assert model.masks.values() is None and model.params.maps is None
    moved = photo.rename(tmp_path / "renamed.png")  # the mask follows the photo's content, not its name
    model.open_photo(moved)
    queue.run_all()
    assert np.abs(model.masks.values() - painted).max() < 1e-3
    model.masks.set(None)
    model.open_photo(moved)
    queue.run_all()
    assert model.masks.values() is None


def test_a_starting_mask_from_the_detail_map(editor, photo):
    model, queue, _ = editor
    open_photo(model, queue, photo)
    model.masks.from_detail(threshold=0.3)
    queue.run_all()  # the detail map is computed first
    mask = model.masks.values()
    detail = FakeSession()
    detail.set_photo(np.asarray(Image.open(photo), np.float32) / 255)
    values = detail.detail_map(RenderParams())
    small = np.asarray(Image.fromarray(values).resize(mask.shape[::-1], Image.Resampling.BOX))
    assert mask is not None
    assert mask[small > 0.45].mean() < 0.2 and mask[small < 0.15].mean() > 0.8


def test_stroke_coverage_does_not_build_up_within_a_stroke():
    start = np.ones((20, 20), np.float32)
    s = Stroke(start, Brush("less", size=8, feather=0.5, strength=0.5), (20, 20))
    for _ in range(5):
        s.add(10, 10)
    assert s.values().min() == 0.5  # not 0.5 ** 5


def test_face_boxes_become_soft_ellipses():
    mask = from_boxes([(20, 20, 40, 40)], (100, 80), mask_grid(100, 80), 0.0)
    assert mask[30, 30] == 0.0 and mask[5, 5] == 1.0 and mask[70, 90] == 1.0


@pytest.mark.skipif(
    importlib.util.find_spec("cv2") is None and importlib.util.find_spec("skimage") is None,
    reason="no face detector installed (the faces extra)",
)
def test_protect_faces_finds_the_astronauts_face_and_lowers_semantic_strength_there(editor, tmp_path):
    from desktop_sr.editor.faces import available_backends

    assert available_backends(), "a face detector must be installed with the test extra"
    model, queue, _ = editor
    path = tmp_path / "astronaut.jpg"
    Image.open(DATA / "astronaut_512.jpg").resize((256, 256)).save(path)
    open_photo(model, queue, path)
    model.masks.protect_faces()
    queue.run_all()
    mask = model.masks.values()
    assert mask is not None
    h, w = mask.shape
    face = mask[int(0.15 * h) : int(0.3 * h), int(0.42 * w) : int(0.52 * w)]  # the astronaut's face
    assert face.max() < 0.2
    assert mask[int(0.8 * h) :, :].min() == 1.0  # the suit and the flag keep their strength
