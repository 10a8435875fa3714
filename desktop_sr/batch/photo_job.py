"""One photo of a batch, start to finish: read, render, write atomically, and say what happened in plain words.

The local runner calls :func:`process_photo` on its own thread; a Ray worker calls the very same function on a
cluster node. Keeping the one path here is what makes a cluster batch write the same bytes as a local one and
report a bad photo with the same reason. Bookkeeping (manifest, ETA, collision checks) stays with the callers:
only the driver of a batch owns the manifest.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..engine.api import UpscaleSession
from ..engine.control import Control
from ..engine.errors import Cancelled, EngineError
from ..engine.loader import notice_of
from ..imaging import Photo, PhotoError, read_photo, write_photo
from ..imaging.formats import ALPHA_FORMATS, flattening_note
from ..target_size import check_session_fits, plan_size, resample
from .masks import params_with_saved_mask
from .plan import BatchSettings
from .results import ModelLoadFailed, Status

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhotoOutcome:
    """What became of one photo, small and picklable (a Ray worker sends it back to the driver)."""

    status: Status  # WRITTEN, FAILED or CANCELLED
    reason: str = ""
    seconds: float = 0.0  # read + render + write
    model_seconds: float = 0.0  # inside session.render only
    disk_full: bool = False
    size: int | None = None  # bytes of the written result, as the writer saw them
    megapixels: float = 0.0  # output size, for throughput figures
    notes: tuple[str, ...] = ()  # the photo's own notes (damaged metadata, transparency flattened)


def process_photo(
    source: Path,
    target: Path,
    settings: BatchSettings,
    session: Callable[[], UpscaleSession],
    *,
    control: Control | None = None,
    on_read: Callable[[Photo], None] | None = None,
    before_write: Callable[[], None] | None = None,
) -> PhotoOutcome:
    """Read ``source``, render it with ``settings.params``, write the result to ``target`` atomically.

    ``session`` is called once the photo has been read (a batch whose photos are all unreadable never loads the
    model); :class:`ModelLoadFailed` from it propagates, every other error becomes a FAILED outcome with a reason
    a person can act on. A cancel (between tiles, or one that arrived during the last tile) abandons the photo
    before anything is written. ``before_write`` runs just before the result goes to disk (the local runner
    records it in the manifest there).
    """
    start = time.perf_counter()
    model_seconds = 0.0
    megapixels = 0.0
    mask_notes: list[str] = []
    device_notes: list[str] = []
    face_notes: list[str] = []
    try:
        photo = read_photo(source)
        params, ratio = settings.params, float(settings.params.scale)
        if settings.use_saved_masks:
            params = params_with_saved_mask(source, params, mask_notes)
        plan = plan_size(photo.size, settings.target) if settings.target is not None else None
        if plan is not None:  # a target size: this photo's model scale, then a resample to the exact size
            params, ratio = params.with_(scale=plan.scale), plan.ratio
        megapixels = photo.width * photo.height * params.scale**2 / 1e6
        if on_read is not None:
            on_read(photo)
        model = session()
        notice = notice_of(model)
        model.set_photo(photo.rgb)
        if plan is not None:
            check_session_fits(model, plan)
        m0 = time.perf_counter()
        try:
            rgb = model.render(params, control=control)
            if plan is not None and plan.resample:
                rgb = resample(rgb, plan.size)
            if settings.faces is not None:  # after any model: faces restored on the finished result
                faces = settings.faces.apply(rgb, control=control)
                rgb = faces.image
                face_notes.append(f"faces: {faces.summary()}")
        finally:
            model_seconds = time.perf_counter() - m0
        if notice_of(model) != notice:  # its device failed during this photo: finished on the CPU, said once
            device_notes.append(notice_of(model))
        if control is not None:
            control.check()  # a cancel that arrived during the last tile still abandons the file
        target.parent.mkdir(parents=True, exist_ok=True)
        if before_write is not None:
            before_write()
        write_result(target, rgb, photo, settings, ratio)
    except Cancelled:
        return PhotoOutcome(Status.CANCELLED, "cancelled", time.perf_counter() - start, model_seconds,
                            megapixels=megapixels)  # fmt: skip
    except ModelLoadFailed:
        raise
    except Exception as exc:  # noqa: BLE001 - one bad file must never end the batch
        if not isinstance(exc, (PhotoError, EngineError, OSError, ValueError, MemoryError)):
            log.error("%s failed unexpectedly:\n%s", source, traceback.format_exc())
        return PhotoOutcome(Status.FAILED, reason_for(exc), time.perf_counter() - start, model_seconds,
                            disk_full=is_disk_full(exc), megapixels=megapixels)  # fmt: skip
    size = None
    with contextlib.suppress(OSError):
        size = target.stat().st_size
    notes = list(photo.warnings) + mask_notes + device_notes + face_notes
    fmt = settings.output_format(photo.source)
    if photo.alpha is not None and fmt not in ALPHA_FORMATS and float(photo.alpha.min()) < 1.0:
        notes.append(flattening_note(fmt))
    return PhotoOutcome(Status.WRITTEN, "", time.perf_counter() - start, model_seconds, size=size,
                        megapixels=megapixels, notes=tuple(notes))  # fmt: skip


def write_result(target: Path, rgb: np.ndarray, photo: Photo, settings: BatchSettings, ratio: float) -> None:
    """Write one result; ``ratio`` is output pixels per source pixel (the scale, or a target's exact ratio)."""
    options = replace(settings.save, format=settings.output_format(photo.source))
    write_photo(target, rgb, like=photo, scale=ratio, options=options)


def is_disk_full(exc: BaseException | None) -> bool:
    """True if ``exc`` or what caused it is "no space left on device" (the imaging layer wraps OSError)."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def reason_for(exc: BaseException) -> str:
    """A reason without the path (the summary already shows which file): what a person can act on."""
    if isinstance(exc, PhotoError):
        return exc.reason
    if isinstance(exc, MemoryError):
        return "out of memory; try smaller tiles or a smaller scale"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, (EngineError, ValueError)) else f"{type(exc).__name__}: {text}"
