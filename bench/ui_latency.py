"""How fast a slider move shows up in the app: the instant corner-blend preview against the exact render.

Drives the real main window (Qt offscreen) on a real photo (scikit-image's astronaut) with a tiny random PiSA-SR
model, so the figure measures the app's own path (slider -> blend -> QImage -> repaint), not the network. For each
output size it prints the median time from a slider change to the preview painted on screen, the median time to the
exact result replacing it, and their ratio (the exact time grows with the model; the preview's does not).

    python bench/ui_latency.py                  # outputs 512 and 1024 px, 5 moves each
    python bench/ui_latency.py --sizes 2048 --moves 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch  # noqa: F401 - torch before Qt, as the app does

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PIL import Image  # noqa: E402
from PySide6.QtWidgets import QApplication, QMessageBox  # noqa: E402

from desktop_sr.engine.api import RenderParams  # noqa: E402
from desktop_sr.engine.backends.pisa import pisa_spec

OUT = Path(__file__).parent / "out"


def tiny_model(root: Path) -> tuple[Path, Path]:
    from desktop_sr.engine.backends.pisa.model import load_unet
    from desktop_sr.engine.backends.pisa.synthetic import build_random_sd, random_lora, write_official_pkl

    base, pkl = root / "tiny_sd", root / "tiny_lora.pkl"
    if not (base / "unet" / "config.json").is_file():
        build_random_sd(base)
    if not pkl.is_file():
        write_official_pkl(random_lora(load_unet(base), seed=1), pkl)
    return base, pkl


def wait(app: QApplication, cond, timeout: float = 600.0) -> float:
    start = time.perf_counter()
    while not cond():
        if time.perf_counter() - start > timeout:
            raise TimeoutError("the app did not get there in time")
        app.processEvents()
        time.sleep(0.001)
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024], help="output sizes (x4 of the input)")
    ap.add_argument("--moves", type=int, default=5)
    args = ap.parse_args()

    from skimage import data

    from desktop_sr.ui.main_window import MainWindow

    OUT.mkdir(exist_ok=True)
    base, pkl = tiny_model(OUT)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    QMessageBox.critical = lambda *a: print("error:", a[2], file=sys.stderr)  # type: ignore[method-assign]
    print("| output | preview (median) | exact render (median) | preview / exact |")
    print("|---|---|---|---|")
    for size in args.sizes:
        path = OUT / f"astronaut_{size // 4}.png"
        Image.fromarray(data.astronaut()).resize((size // 4, size // 4), Image.Resampling.LANCZOS).save(path)
        config = OUT / f"ui-config-{size}"
        shutil.rmtree(config, ignore_errors=True)  # default controls: the last run's settings must not carry over
        w = MainWindow(settings_dir=config, load_model=False)
        w.resize(1280, 820)
        w.show()
        w.load_model(pisa_spec(base, pkl))
        wait(app, lambda w=w: w.editor.model_info is not None)
        w.open_path(path)
        wait(app, lambda e=w.editor: e.shown_params == RenderParams() and e.shown == "exact" and e.blender is not None)
        previews, exacts = [], []
        for i in range(args.moves):
            value = 21 + i  # 1.05, 1.10, ...: every move is new, so nothing is cached as an exact result
            start = time.perf_counter()
            w.controls.sem.slider.setValue(value)
            w.view.repaint()  # paint now, as the next frame would
            previews.append(time.perf_counter() - start)
            assert w.editor.shown == "preview", w.editor.shown
            target = RenderParams(sem=value / 20)
            waited = wait(app, lambda e=w.editor, t=target: e.shown_params == t and e.shown == "exact")
            exacts.append(waited + previews[-1])
        p, e = statistics.median(previews), statistics.median(exacts)
        print(f"| {size} px | {p * 1000:.1f} ms | {e:.2f} s | {p / e:.3f} |")
        w.close()
        app.processEvents()
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
