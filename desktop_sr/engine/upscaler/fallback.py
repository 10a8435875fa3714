"""What an upscaler session does when its device fails: a slower render, never a crash.

A GPU reached through Vulkan fails in ways torch's devices rarely do: a driver that cannot create the device, a
device lost in the middle of a render (on Windows a tile past the driver's time limit resets the GPU), memory the
driver cannot give, an error code from ncnn. The session (:mod:`.session`) answers a
:class:`~desktop_sr.engine.errors.DeviceFailed` twice at most: first its tiles again at half the size (a time limit
or a failed allocation passes with smaller tiles), then the rest of the render on the torch network on the CPU,
built only then, with one line (:attr:`UpscalerSession.notice <.session.UpscalerSession.notice>`) that the CLI prints
and the GUI's status bar shows.

Tiles the device finished are kept when its results agree with the CPU's within the tolerance (2 levels of 255;
:attr:`Fallback.keeps_tiles`), so a photo whose GPU failed at tile 30 of 40 costs 10 CPU tiles, not 40; a device
run in a precision that does not agree (fp16 storage) is recomputed from the start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from ..errors import DeviceFailed
from .network import Network
from .tiled import NetTiles

#: The smallest tile a retry goes down to (input pixels). RRDBNet sees far: on a real 64 px photo, 64 px tiles put
#: seams up to 55 levels of 255 off the untiled result (37.8 dB), 32 px ones 86; 96 px ones are within 53 dB
#: (:mod:`.tiled`). A device that needs smaller tiles than this is better replaced by the CPU.
MIN_TILE = 96


@dataclass
class Fallback:
    """The network to finish on when the session's device fails (torch on the CPU), and what was tried."""

    #: Builds the fallback network (loads the torch weights): called once, only when the device failed.
    build: Callable[[], Network]
    #: The failed device's tiles agree with the fallback's within the tolerance, so those done are kept.
    keeps_tiles: bool = True
    retried: bool = False

    def smaller(self, tiles: NetTiles) -> NetTiles | None:
        """Tiles half as large, once per session; None when that was tried, or the tiles cannot shrink further."""
        half = tiles.tile // 2
        if self.retried or half < MIN_TILE:
            return None
        self.retried = True
        return replace(tiles, tile=half, overlap=min(tiles.overlap, half // 4))


def fallback_notice(exc: DeviceFailed) -> str:
    """The one line a user reads when the render moved to the CPU."""
    if exc.at_start:
        return f"{exc.device} could not start ({exc.reason}); running on the CPU instead (slower)"
    return f"{exc.device} failed during the render ({exc.reason}); finishing on the CPU (slower)"
