"""Undo and redo of the controls: one slider drag is one step; the app renders what undo brings back."""

from __future__ import annotations

from desktop_sr.editor.history import MERGE_SECONDS, Change, ParamsHistory
from desktop_sr.engine.api import RenderParams


def test_a_drag_is_one_step_and_a_new_change_drops_the_redo():
    h = ParamsHistory(RenderParams())
    for i, sem in enumerate((1.05, 1.1, 1.15, 1.2)):  # one drag: changes 0.1 s apart
        h.record(RenderParams(sem=sem), Change.STRENGTH, now=10.0 + i * 0.1)
    h.record(RenderParams(sem=1.2, color_fix="wavelet"), Change.OTHER, now=11.0)
    h.record(RenderParams(sem=1.2, pix=0.5, color_fix="wavelet"), Change.STRENGTH, now=11.2)  # a new gesture
    assert h.undo() == RenderParams(sem=1.2, color_fix="wavelet")
    assert h.undo() == RenderParams(sem=1.2)
    assert h.undo() == RenderParams()  # the whole drag at once
    assert h.undo() is None and not h.can_undo()
    assert h.redo() == RenderParams(sem=1.2)
    h.record(RenderParams(sem=1.2, scale=2), Change.OTHER, now=20.0)
    assert not h.can_redo()  # a new change after undo starts a new branch


def test_a_pause_splits_a_drag_and_repeats_are_ignored():
    h = ParamsHistory(RenderParams())
    h.record(RenderParams(pix=0.9), Change.STRENGTH, now=0.0)
    h.record(RenderParams(pix=0.9), Change.STRENGTH, now=0.1)  # same values: nothing to undo
    h.record(RenderParams(pix=0.8), Change.STRENGTH, now=0.1 + MERGE_SECONDS + 0.1)
    assert h.undo() == RenderParams(pix=0.9) and h.undo() == RenderParams() and h.undo() is None


def test_a_change_given_as_its_word_is_the_member():
    """A Qt signal may deliver the change as its word: ``Change(word)`` (what ``set_params`` does) is the member."""
    assert Change("strength") is Change.STRENGTH and Change("mask") is Change.MASK and Change.OTHER == "other"
