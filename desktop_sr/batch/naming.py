"""Output file names from a template such as ``{stem}_x{scale}``, validated before a batch starts.

A batch that fails on file 900 because the template has a typo wastes an evening, so :func:`parse_template`
checks everything that can be checked without a photo (known fields, format specs, no path separators, no
characters that a common file system refuses) and :meth:`NameTemplate.render` re-checks the one thing that
depends on the photo: the result must not be empty. The template never holds the extension: the output format
decides it, so a JPEG export of ``a.png`` cannot end up named ``a.png``.
"""

from __future__ import annotations

import datetime as _dt
import re
import string
from dataclasses import dataclass

from ..engine.api import RenderParams

#: Fields a template may use, with what they mean (the dialog shows this as help text).
FIELDS: dict[str, str] = {
    "stem": "source file name without extension",
    "ext": "source extension without the dot, lower case (jpg, png…)",
    "scale": "upscale factor (1, 2, 3, 4)",
    "size": "the size asked for: x4, or a target such as 6000px, fit3840x2160, print30x20cm",
    "pix": "pixel strength (e.g. 1.0)",
    "sem": "semantic strength (e.g. 0.8)",
    "realism": "realism level (1…999)",
    "model": "model name",
    "date": "date of the batch, YYYY-MM-DD (or {date:%Y%m%d})",
}
DEFAULT_TEMPLATE = "{stem}_x{scale}"
#: The default when a target size is set (every photo may run at another model scale, so {scale} says little).
TARGET_TEMPLATE = "{stem}_{size}"

# Refused by Windows (and so by most USB drives and NAS shares), plus control characters.
_FORBIDDEN = re.compile(r'[<>:"|?*\x00-\x1f]')
_SEPARATORS = ("/", "\\")
_RESERVED = {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(1, 10)} | {f"lpt{i}" for i in range(1, 10)}
_MAX_NAME = 200  # leaves room for an extension and a " (123)" suffix under the usual 255-byte limit


class TemplateError(ValueError):
    """The naming template cannot produce valid file names. The message says what to change."""

    def __init__(self, template: str, reason: str) -> None:
        self.template = template
        self.reason = reason
        super().__init__(f"invalid name template {template!r}: {reason}")


@dataclass(frozen=True)
class NameValues:
    """The values one source file offers to the template."""

    stem: str
    ext: str
    scale: int
    pix: float
    sem: float
    realism: int
    model: str
    date: _dt.date
    size: str = ""

    @staticmethod
    def for_source(stem: str, ext: str, params: RenderParams, model: str, date: _dt.date, size: str = "") -> NameValues:
        return NameValues(
            stem=stem,
            ext=ext.lstrip(".").lower(),
            scale=params.scale,
            pix=round(float(params.pix), 3),
            sem=round(float(params.sem), 3),
            realism=int(params.realism),
            model=model,
            date=date,
            size=size or f"x{params.scale}",
        )


class _DateValue:
    """A date that formats as ISO by default and with strftime codes when a spec is given ({date:%Y%m%d})."""

    def __init__(self, date: _dt.date) -> None:
        self.date = date

    def __format__(self, spec: str) -> str:
        return self.date.strftime(spec) if spec else self.date.isoformat()


def _check_literal(template: str, text: str) -> None:
    for sep in _SEPARATORS:
        if sep in text:
            raise TemplateError(template, f"contains the path separator {sep!r}; a template names a file, not a folder")
    bad = _FORBIDDEN.search(text)
    if bad:
        raise TemplateError(template, f"contains {bad.group()!r}, which file names cannot hold on every system")


@dataclass(frozen=True)
class NameTemplate:
    """A parsed, validated template. Build it with :func:`parse_template`."""

    text: str
    fields: tuple[str, ...]

    def render(self, values: NameValues) -> str:
        """The file name (without extension) for one source. Raises :class:`TemplateError` if it comes out unusable.

        Characters a field brings in that file names cannot hold (a ``/`` in a model name) become ``_``, because
        the user did not type them; characters the user typed were refused up front.
        """
        raw = self.text.format(
            stem=_clean(values.stem),
            ext=_clean(values.ext),
            scale=values.scale,
            pix=values.pix,
            sem=values.sem,
            realism=values.realism,
            model=_clean(values.model),
            date=_DateValue(values.date),
            size=_clean(values.size or f"x{values.scale}"),
        )
        name = _clean(raw).strip().rstrip(".")
        if not name or name in (".", ".."):
            raise TemplateError(self.text, f"gives an empty file name for {values.stem!r}")
        if name.lower().split(".")[0] in _RESERVED:
            raise TemplateError(self.text, f"gives {name!r}, a name Windows reserves for devices")
        return name[:_MAX_NAME].rstrip(" .")


def _clean(text: str) -> str:
    text = text.replace("/", "_").replace("\\", "_")
    return _FORBIDDEN.sub("_", text)


def parse_template(text: str) -> NameTemplate:
    """Parse and validate ``text``. Raises :class:`TemplateError` with a message meant for the user.

    Checks: balanced braces, only known fields, no positional ``{}`` or attribute/index access, format specs that
    suit the field's type, no separators or forbidden characters in the literal text, and a non-empty result for
    a sample photo (a template of only spaces, or ``{stem}`` with a spec that blanks it, is caught here).
    """
    if not text or not text.strip():
        raise TemplateError(text, "is empty; for example use " + DEFAULT_TEMPLATE)
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(text, f"has unbalanced braces ({exc}); write {{{{ or }}}} for a literal brace") from None
    used: list[str] = []
    for literal, field, spec, conversion in parts:
        _check_literal(text, literal)
        if field is None:
            continue
        if field == "":
            raise TemplateError(text, "has an empty {} field; name it, e.g. {stem}")
        if field not in FIELDS:
            known = ", ".join("{" + f + "}" for f in FIELDS)
            raise TemplateError(text, f"has the unknown field {{{field}}}; known fields: {known}")
        if conversion:
            raise TemplateError(text, f"uses a conversion (!{conversion}) in {{{field}}}; remove it")
        if spec and ("{" in spec or "}" in spec):
            raise TemplateError(text, f"nests a field in the format of {{{field}}}")
        if spec:
            _check_literal(text, spec if field != "date" else spec.replace("%", ""))
        used.append(field)
    template = NameTemplate(text, tuple(used))
    sample = NameValues("photo", "jpg", 4, 1.0, 1.0, 1, "model", _dt.date(2024, 1, 31), "x4")
    try:
        template.render(sample)
    except TemplateError:
        raise
    except (ValueError, TypeError) as exc:
        raise TemplateError(text, f"a format spec does not suit its field ({exc})") from None
    return template
