"""One folder per model family. Each has a torch-free ``family.py`` that registers a
:class:`~desktop_sr.engine.families.ModelFamily`; its heavy modules load only when a model of the family opens.

Adding a family: a folder here, and its ``family`` module in :data:`BUILT_IN` (a plug-in package instead declares an
entry point, see :data:`~desktop_sr.engine.families.ENTRY_POINT_GROUP`).
"""

#: The families that ship with the app, in the order their modules register (lists sort by each family's ``order``).
BUILT_IN = (
    "desktop_sr.engine.backends.bundled.family",
    "desktop_sr.engine.backends.pisa.family",
    "desktop_sr.engine.backends.spandrel.family",
    "desktop_sr.engine.backends.faces.family",
)
