"""Command line: ``desktop-sr`` starts the app; ``desktop-sr upscale ...`` and friends work headless;
``desktop-sr --selftest`` checks an installation without a display (see :mod:`desktop_sr.selftest`).

Exit codes: 0 success, 1 some input failed (or the self-test failed), 2 bad usage, 3 the model could not be loaded,
130 interrupted by Ctrl-C (one line on stderr, no traceback; output files are written atomically, so none is
left half-written).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from .. import __version__
from ..exit_codes import ExitCode
from ..logfile import log_uncaught_errors, start_log
from .common import report_interrupted

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from .devices import add_devices_parser
    from .help_text import plain
    from .upscale import add_upscale_parser

    parser = argparse.ArgumentParser(
        prog="desktop-sr",
        description="Diffusion super-resolution for photos. Without a command, opens the app (optionally with photos).",
        epilog=plain(__doc__.split("\n\n", 1)[1]),
    )
    parser.add_argument("--version", action="version", version=f"desktop-sr {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the engine does")
    parser.add_argument(
        "--selftest",
        action="store_true",
        help="check this installation without a display: start the app offscreen, upscale the bundled sample photo "
        "with the default model, check the result; prints one line and exits 0 when everything works",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_upscale_parser(sub)
    add_devices_parser(sub)
    for register in _optional_commands():
        register(sub)
    return parser


def _optional_commands() -> list:
    """The batch and models commands, each registered only when its module imports."""
    found = []
    for module, name in (("desktop_sr.cli.batch", "add_batch_parser"), ("desktop_sr.cli.models", "add_models_parser")):
        try:
            mod = __import__(module, fromlist=[name])
        except ImportError:
            continue
        found.append(getattr(mod, name))
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Ctrl-C anywhere (start-up imports, model load, render, write) ends with one line."""
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:
        report_interrupted()
        if any(t.daemon and t.is_alive() for t in threading.enumerate()):
            # a worker (e.g. a tiled VAE thread) may be inside a native call; finalising around it aborts
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(ExitCode.INTERRUPTED)
        return ExitCode.INTERRUPTED


def _main(argv: list[str]) -> int:
    commands = {"upscale", "batch", "models", "devices"}
    if not argv or (argv[0] not in commands and not argv[0].startswith("-")):
        return _run_gui(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    root = logging.getLogger()
    if not root.handlers:  # a real run (under pytest the root logger has the test's handlers already)
        terminal = logging.StreamHandler()
        terminal.setLevel(logging.INFO if args.verbose else logging.WARNING)
        terminal.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        root.addHandler(terminal)
        root.setLevel(logging.INFO)  # the log file keeps INFO (each photo's outcome); the terminal its own level
    if start_log(args.command or "cli") is not None:
        log_uncaught_errors()
    if args.selftest:
        if args.command is not None:
            parser.error("--selftest takes no command")
        from ..selftest import run_selftest

        return run_selftest()
    if args.command is None:
        return _run_gui([])
    from .devices import report_device_problem

    if report_device_problem(args):  # a --device this machine cannot run on: one line, before any work
        return ExitCode.USAGE
    return int(args.func(args))


def no_display_reason(env: Mapping[str, str] | None = None, platform: str | None = None) -> str | None:
    """Why the desktop app cannot show a window here, or None. On Linux without a display Qt aborts the process
    (exit 134) with a hint about xcb libraries, which is not the problem; this says what is, before Qt starts."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux") or env.get("QT_QPA_PLATFORM", "").split(":")[0] not in ("", "xcb", "wayland"):
        return None  # Windows and macOS always have one; an explicit Qt platform (offscreen, vnc) is the user's
    if env.get("WAYLAND_DISPLAY"):
        return None
    display = env.get("DISPLAY", "")
    if not display:
        return "no display (DISPLAY is not set: an SSH session or a server?)"
    local = display.split(".")[0]
    if local.startswith(":") and local[1:].isdigit() and not Path(f"/tmp/.X11-unix/X{local[1:]}").exists():
        return f"no display: nothing serves DISPLAY={display} on this machine"
    return None


def _run_gui(paths: list[str]) -> int:
    if (reason := no_display_reason()) is not None:
        print(f"desktop-sr: {reason}. The app needs a desktop session (or X forwarding: ssh -X); "
              "'desktop-sr upscale' and 'desktop-sr batch' work without one.", file=sys.stderr)  # fmt: skip
        return ExitCode.USAGE
    import torch  # noqa: F401  - torch's native libraries must load before Qt's (clashes on Windows and Linux)

    try:
        from ..ui.app import run_gui
    except ImportError as exc:
        print(f"desktop-sr: the desktop app cannot start ({exc}); use 'desktop-sr upscale --help'", file=sys.stderr)
        return ExitCode.USAGE
    return run_gui(paths)
