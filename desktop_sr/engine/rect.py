"""The one rectangle type of the code base: ``Rect(x0, y0, x1, y1)``, x first, x1/y1 exclusive.

Rectangles used to come in two orders: ``(x0, y0, x1, y1)`` at the session API (the GUI's visible region, the
editor, ``render(region=...)``) and ``(y0, y1, x0, x1)`` in the tiling code (it indexes H x W arrays, rows first).
A bare 4-tuple does not say which, so every crossing was a chance to swap them. ``Rect`` is the one order, with
names; :attr:`slices` gives the rows-first slices numpy and torch index with, so no code needs the other order.

A ``NamedTuple``, so it still unpacks, indexes, hashes and compares like the plain tuple callers used to pass
(``Rect(0, 0, 4, 4) == (0, 0, 4, 4)``): code at the API's edge turns a caller's tuple into one with ``Rect(*t)``.
Pure Python (no numpy, no torch): the GUI's and the editor's modules use it without loading either.
"""

from __future__ import annotations

from typing import NamedTuple


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class Rect(NamedTuple):
    """``[x0, x1) x [y0, y1)`` in the pixels of some image (which one, the code around it says)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @classmethod
    def whole(cls, width: int, height: int) -> Rect:
        """All of a ``width`` x ``height`` image."""
        return cls(0, 0, width, height)

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def area(self) -> int:
        return self.width * self.height

    @property
    def empty(self) -> bool:
        return self.x1 <= self.x0 or self.y1 <= self.y0

    @property
    def slices(self) -> tuple[slice, slice]:
        """``(rows, columns)`` for an H x W (x C) array: ``a[r.slices]``; for N x C x H x W, ``t[(..., *r.slices)]``."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def scaled(self, f: float) -> Rect:
        """The same rectangle on a grid ``f`` times finer, each edge rounded to the nearest pixel (exact for a
        whole-number ``f``, and for edges on multiples of ``1 / f``)."""
        return Rect(round(self.x0 * f), round(self.y0 * f), round(self.x1 * f), round(self.y1 * f))

    def outer(self, step: int) -> Rect:
        """The smallest rectangle on a grid ``step`` times coarser that covers this one (edges floored and
        ceiled): e.g. the latent pixels an output region needs, ``step`` being the VAE's factor."""
        return Rect(self.x0 // step, self.y0 // step, _ceil_div(self.x1, step), _ceil_div(self.y1, step))

    def shifted(self, dx: int, dy: int) -> Rect:
        """Moved by ``(dx, dy)``: e.g. into a padded image, or (negative) into a crop's own coordinates."""
        return Rect(self.x0 + dx, self.y0 + dy, self.x1 + dx, self.y1 + dy)

    def grown(self, margin: int) -> Rect:
        """Widened by ``margin`` on every side (not clipped: see :meth:`clipped`)."""
        return Rect(self.x0 - margin, self.y0 - margin, self.x1 + margin, self.y1 + margin)

    def clipped(self, width: int, height: int) -> Rect:
        """The part inside a ``width`` x ``height`` image (empty if none is)."""
        return self.intersection(Rect(0, 0, width, height))

    def intersection(self, other: tuple[int, int, int, int]) -> Rect:
        """The common part (check :attr:`empty`: rectangles that do not meet give an empty one)."""
        o = Rect(*other)
        return Rect(max(self.x0, o.x0), max(self.y0, o.y0), min(self.x1, o.x1), min(self.y1, o.y1))

    def overlaps(self, other: tuple[int, int, int, int]) -> bool:
        """Whether the two share at least one pixel."""
        return not self.intersection(other).empty

    def contains(self, other: tuple[int, int, int, int]) -> bool:
        """Whether ``other`` (a rectangle) lies inside this one, edges included."""
        o = Rect(*other)
        return self.x0 <= o.x0 and self.y0 <= o.y0 and o.x1 <= self.x1 and o.y1 <= self.y1


__all__ = ["Rect"]
