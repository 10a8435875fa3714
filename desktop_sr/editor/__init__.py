"""The editor model: one editing session's state and rules, without Qt (see :mod:`desktop_sr.editor.model`)."""

from .events import Event
from .model import EditorModel, JobQueue, Shown, corner_key

__all__ = ["EditorModel", "Event", "JobQueue", "Shown", "corner_key"]
