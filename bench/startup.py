"""Start-up: ``desktop-sr --version``, and the GUI's main window painted, each a fresh process, wall time.

The window is the app's own (``desktop_sr.ui.app``'s MainWindow, shown as ``run_gui`` shows it, Qt offscreen unless
QT_QPA_PLATFORM says otherwise); the child prints once the window has received its first paint event, and whether
torch had been imported by then (the model loads on the worker thread, after the window is up). With
``--baseline CHECKOUT`` the same figures for another checkout, interleaved, and the ratios.

    python bench/startup.py --rounds 5
    python bench/startup.py --baseline /tmp/perf-baseline
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

GUI_CHILD = r"""
import sys, time
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication
from desktop_sr.ui.main_window import MainWindow

app = QApplication(sys.argv[:1])
window = MainWindow()

class FirstPaint(QObject):
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint:
            print("painted", "torch" in sys.modules, flush=True)
            QTimer.singleShot(0, app.quit)
            obj.removeEventFilter(self)
        return False

watcher = FirstPaint()
window.installEventFilter(watcher)
window.show()
app.exec()
window.close()
"""


def timed(cmd: list[str], checkout: Path, env: dict[str, str]) -> tuple[float, str]:
    """Seconds from spawn to the child's first line on stdout (or to its exit), and that line."""
    env = dict(env, PYTHONPATH=str(checkout))
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, cwd=str(checkout), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    seconds = time.perf_counter() - start
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
    return seconds, line


def measure(checkout: Path, home: Path) -> dict[str, tuple[float, str]]:
    env = dict(os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), XDG_DATA_HOME=str(home / "data"))
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    return {
        "desktop-sr --version": timed([sys.executable, "-m", "desktop_sr", "--version"], checkout, env),
        "GUI window painted": timed([sys.executable, "-c", GUI_CHILD], checkout, env),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline", type=Path, help="another checkout, measured in the same run")
    args = ap.parse_args()
    import tempfile

    checkouts = {"new": ROOT} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    runs: dict[str, dict[str, list[float]]] = {name: {} for name in checkouts}
    notes: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as home:  # a fresh profile: no recent files, no remembered model
        for r in range(args.rounds):
            for name, path in checkouts.items() if r % 2 == 0 else reversed(checkouts.items()):
                for what, (seconds, line) in measure(path, Path(home)).items():
                    runs[name].setdefault(what, []).append(seconds)
                    if what.startswith("GUI"):
                        notes[name] = "torch imported before the paint" if line.endswith("True") else "no torch yet"
    print(f"load average {os.getloadavg()[0]:.1f}; median of {args.rounds} fresh processes each")
    for what in runs["new"]:
        line = f"{what:24s} new {statistics.median(runs['new'][what]):6.2f} s"
        if "baseline" in runs:
            base = statistics.median(runs["baseline"][what])
            line += f"   baseline {base:6.2f} s   ratio {statistics.median(runs['new'][what]) / base:.2f}"
        print(line)
    for name, note in notes.items():
        print(f"{name}: {note}")


if __name__ == "__main__":
    main()
