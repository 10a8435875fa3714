"""Entry point of the frozen (PyInstaller) app: the same command line as ``desktop-sr``, in the right order.

torch is imported first, before anything can import Qt: both ship native libraries (OpenMP, libstdc++ on Linux;
the MSVC runtime, OpenMP and CUDA DLLs on Windows), and whichever loads first decides which copy the process
uses. torch's builds are stricter about those versions than Qt's, so torch first is the order that works; the
reverse is known to fail on Windows with "DLL load failed while importing _C" and can leave torch with an older
libstdc++ or OpenMP on Linux. ``freeze_support`` keeps multiprocessing children (torch's data loaders, if ever
used) from starting a second copy of the app on Windows and macOS.
"""

from __future__ import annotations

import multiprocessing
import sys


def main() -> int:
    multiprocessing.freeze_support()
    import torch  # noqa: F401  - before Qt, see the module docstring

    from desktop_sr.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
