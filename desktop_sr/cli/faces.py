"""``--restore-faces MODEL [--face-strength S] [--face-fidelity W]`` for ``upscale`` and ``batch``.

The face model is resolved before any model loads (a registered model's id or name, or a file a face family claims),
so a wrong file or an upscaler given as a face model is refused at once; its licence is printed before first use.
Which families restore faces is learnt from their capabilities, never from their kind.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..engine.control import Control
from ..engine.errors import ModelError
from ..engine.faces import FaceChoice, FaceSettings
from ..engine.families import families, family
from ..engine.spec import ModelSpec


def unit(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is outside 0..1")
    return value


def add_face_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("faces")
    g.add_argument("--restore-faces", metavar="MODEL",
                   help="restore faces after upscaling with a face model: a model of 'desktop-sr models list' (id or "
                   "name) or a file (GFPGAN v1.3/v1.4, RestoreFormer, CodeFormer .pth); 'desktop-sr models get-face' "
                   "downloads one")  # fmt: skip
    g.add_argument("--face-strength", type=unit, default=1.0, metavar="S",
                   help="how much of the restored face is mixed in, 0..1 (default 1)")  # fmt: skip
    g.add_argument("--face-fidelity", type=unit, default=0.5, metavar="W",
                   help="CodeFormer's fidelity weight w, 0 (its own face) .. 1 (closest to the photo); "
                   "default 0.5")  # fmt: skip


def face_choice_from_args(args: argparse.Namespace) -> FaceChoice | None:
    """The face restoration asked for, or None. Raises :class:`ModelError` saying what to pass (torch-free)."""
    given = getattr(args, "restore_faces", None)
    if not given:
        return None
    spec = face_spec_for(str(given))
    settings = FaceSettings(strength=args.face_strength, fidelity=args.face_fidelity)
    return FaceChoice(spec, settings, device=getattr(args, "device", "auto"))


def face_spec_for(given: str) -> ModelSpec:
    """A face model's spec from a file or a registered model's id or name."""
    from ..models.registry import ModelStore

    path = Path(given).expanduser()
    restorers = [f for f in families() if f.capabilities.face_restoration]
    if path.exists():
        for fam in restorers:
            roles = fam.claims([path])
            if roles is not None:
                return fam.spec(roles)
        raise ModelError(path, "not a face restoration model this app knows (GFPGAN v1.3/v1.4, RestoreFormer, "
                         "CodeFormer); an upscaler goes to --model")  # fmt: skip
    try:
        spec = ModelStore().spec_for(given)
    except (ModelError, OSError) as exc:
        raise ModelError(path, f"no such file, and no registered face model of this name ({exc})") from exc
    if not family(spec.kind).capabilities.face_restoration:
        raise ModelError(path, f"is a {family(spec.kind).label} model, not a face restoration model")
    return spec


def say_licence(choice: FaceChoice, restorer_licence: str) -> None:
    """The face model's licence, before its first use."""
    print(f"desktop-sr: note: faces: {choice.spec.name}: licence: {restorer_licence}", file=sys.stderr)


def load_face_model(choice: FaceChoice) -> None:
    """Load the face model once (before the first photo, so a broken file stops the command early) and print its
    licence. Raises :class:`ModelError`."""
    from ..engine.faces import restoration_for

    say_licence(choice, restoration_for(choice.spec, choice.device).restorer.licence)


def restore_faces_of(choice: FaceChoice, result: np.ndarray, name: str, control: Control | None = None,
                     write: Callable[[str], None] | None = None) -> np.ndarray:  # fmt: skip
    """``result`` with its faces restored, and one line saying how many (``write``: the progress bar's own)."""
    done = choice.apply(result, control=control)
    (write or (lambda line: print(line, file=sys.stderr)))(f"desktop-sr: {name}: faces: {done.summary()}")
    return done.image
