"""``desktop-sr devices``: the compute devices of this machine, which one ``auto`` picks, and for each GPU this
torch cannot use, why and what to install.

Each row gives the name ``--device`` accepts, what the device is, its memory and the precision the engine runs in
there; a ``*`` marks the device ``auto`` picks. Vulkan devices (``vulkan:N``) run the bundled model on any GPU;
a software one (llvmpipe, lavapipe, SwiftShader: the CPU) is never picked by ``auto``. Exit code 0. With ``--json``,
the same as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..exit_codes import ExitCode
from .help_text import plain

if TYPE_CHECKING:
    from ..engine.hardware.devices import DeviceEntry

#: ``--device`` values that need no look at the machine: ``auto`` is resolved by the engine, the CPU always runs.
_ALWAYS_THERE = ("auto", "cpu", "cpu:0")
SOFTWARE_NOTE = "software: the CPU emulating a GPU, slower than torch there; auto never picks it"


def add_devices_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("devices", help="list the compute devices: which one auto picks, and why a GPU goes unused",
                       description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(func=run_devices)


def format_table(
    entries: Sequence[DeviceEntry], picked: DeviceEntry | None, torch_picked: DeviceEntry | None = None
) -> str:
    """The table ``desktop-sr devices`` prints: one row per device, the reason on the line under an unusable one.
    ``torch_picked``: what ``auto`` picks for a model that needs torch, when that is not ``picked`` (a Vulkan GPU)."""
    width = max(len("NAME"), *(len(e.name) for e in entries))
    label_width = max(len("DEVICE"), *(len(e.label) for e in entries))
    lines = [f"  {'NAME':<{width}}  {'DEVICE':<{label_width}}  {'MEMORY':>8}  PRECISION"]
    for e in entries:
        mark = "*" if e is picked else " "
        precision = e.precision if e.usable else "unusable"
        lines.append(f"{mark} {e.name:<{width}}  {e.label:<{label_width}}  {e.memory_text():>8}  {precision}")
        if not e.usable:
            lines.append(f"  {'':<{width}}  why: {e.reason}")
        elif e.software:
            lines.append(f"  {'':<{width}}  {SOFTWARE_NOTE}")
    if picked is not None and torch_picked is not None and torch_picked is not picked:
        lines.append(f"(* = the device --device auto picks: {picked.name} for the bundled model, {torch_picked.name} "
                     "for models that need torch)")  # fmt: skip
    elif picked is not None:
        lines.append(f"(* = the device --device auto picks: {picked.name})")
    return "\n".join(lines)


def run_devices(args: argparse.Namespace) -> int:
    from ..engine.hardware.devices import DeviceUnavailable, choose, inventory, torch_facts

    with warnings.catch_warnings():  # torch's own warning about a card it cannot use: the table says it better
        warnings.simplefilter("ignore")
        facts = torch_facts()
        entries = inventory(facts)
    try:
        picked: DeviceEntry | None = choose(entries, "auto")
        torch_picked: DeviceEntry | None = choose(entries, "auto", vulkan=False)
    except DeviceUnavailable:
        picked = torch_picked = None
    if args.json:
        data = {"torch": facts.version, "torch_build": facts.build, "auto": picked.name if picked else None,
                "auto_torch": torch_picked.name if torch_picked else None,
                "devices": [e.as_dict() for e in entries]}  # fmt: skip
        print(json.dumps(data, indent=2))
    else:
        print(format_table(entries, picked, torch_picked))
        print(f"this torch is {facts.build}")
    return ExitCode.OK


def device_problem(args: argparse.Namespace) -> str | None:
    """One line for a ``--device`` this machine has not got, or this torch cannot use (then the command stops before
    any work, instead of failing with a traceback or after the photos were read); None when it can run there.

    ``auto`` and the CPU are not looked at (no torch import before the cheap checks). With ``batch --ray`` the
    workers' GPUs count, not this machine's, so nothing is checked here."""
    device = getattr(args, "device", None)
    if device is None or str(device).strip().lower() in _ALWAYS_THERE or getattr(args, "ray", None) is not None:
        return None
    from ..engine.hardware.devices import DeviceUnavailable, choose, inventory

    try:
        with warnings.catch_warnings():  # one line: torch's own warning about an unusable card would be a second
            warnings.simplefilter("ignore")
            choose(inventory(), device)
    except DeviceUnavailable as exc:
        return f"--device {device}: {exc}"
    return None


def report_device_problem(args: argparse.Namespace) -> bool:
    """Print :func:`device_problem`'s line on stderr; True if there was one."""
    problem = device_problem(args)
    if problem:
        print(f"desktop-sr: {problem}", file=sys.stderr)
    return problem is not None
