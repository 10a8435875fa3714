"""A long editing session in the real window: does memory reach a plateau?

Drives the main window (Qt offscreen) the way a long session does: photos opened in turn, hundreds of slider changes,
exact renders, A/B compares (keep as before, compare, back to the original) and batches, with a real (tiny, random)
Real-ESRGAN Compact upscaler through spandrel, so the whole path runs (engine caches, previews, QImages, undo
history, batch runner) without minutes of network time. Every round prints the resident memory (RSS) and the number
of threads; the figure that matters is the growth after the first round (warm-up: imports, caches filling to their
bounds; the engine's result cache is set to 4 MB so that it is full by then), as a ratio. A leak (a closed photo's
arrays or previews kept, a cache past its byte bound, a thread per render) shows as growth every round.

    python bench/soak.py          # 30 photos, 500 slider changes, 20 renders, 5 A/B compares and 5 batches
    python bench/soak.py --photos 60 --slider 2000 --renders 60 --rounds 10

``tests/test_soak.py`` runs a short version in CI with a bound on the growth.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PIL import Image  # noqa: E402
from PySide6.QtWidgets import QApplication, QMessageBox  # noqa: E402

OUT = Path(__file__).parent / "out" / "soak"
CACHE_MB = 4


@dataclass(frozen=True)
class Sample:
    """Where the process stands after a round."""

    label: str
    seconds: float
    rss_mb: float
    threads: int  # native threads of the process (Qt's, torch's, Python's)
    py_threads: int


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 1e6


def native_threads() -> int:
    import psutil

    return psutil.Process().num_threads()


@dataclass(frozen=True)
class Workload:
    """How much one round does (the CLI's figures are per session: divided over the rounds)."""

    photos: int = 3
    slider: int = 50
    renders: int = 2
    batch: bool = True
    ab: bool = True


def make_photos(folder: Path, n: int, size: int = 40) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        path = folder / f"photo{i:03d}.png"
        if not path.exists():
            rng = np.random.default_rng(i)
            base = np.linspace(0, 255, size * size * 3).reshape(size, size, 3)
            pixels = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(path)
        out.append(path)
    return out


def make_model(folder: Path) -> Path:
    """A tiny random Compact x2 in safetensors (a real architecture spandrel detects)."""
    from safetensors.torch import save_file
    from spandrel.architectures.Compact import Compact

    path = folder / "compact_x2.safetensors"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        net = Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=1, upscale=2)
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


class SoakSession:
    """Drives one window through rounds of :class:`Workload`; call :meth:`round` repeatedly."""

    def __init__(self, window, app: QApplication, photos: list[Path], model: Path, work: Path) -> None:  # type: ignore[no-untyped-def]
        from desktop_sr.engine.backends.spandrel.family import community_spec

        self.window, self.app, self.photos, self.work = window, app, photos, work
        # The engine's result cache at a small byte bound, reached during the warm-up: a session of thousands of
        # tiny photos would otherwise fill the default 1 GB bound for hours, which is growth by design, not a leak.
        self.spec = replace(community_spec(model), options={"cache_mb": str(CACHE_MB)})
        self.next_photo = 0
        self.slider_moves = 0
        self.renders = 0
        self.batches = 0
        self.compares = 0

    def wait(self, cond: Callable[[], bool], timeout: float = 300.0) -> None:
        start = time.perf_counter()
        while not cond():
            if time.perf_counter() - start > timeout:
                raise TimeoutError("the window did not get there in time")
            self.app.processEvents()
            time.sleep(0.001)

    def exact(self) -> bool:
        editor = self.window.editor
        return (not editor.busy and editor.shown.name == "EXACT"
                and editor.shown_params == self.window.controls.params())  # fmt: skip

    def load_model(self) -> None:
        self.window.load_model(self.spec)
        self.wait(lambda: self.window.editor.model_info is not None and not self.window.editor.busy)

    def open_next(self) -> None:
        path = self.photos[self.next_photo % len(self.photos)]
        self.next_photo += 1
        self.window.open_path(path)
        self.wait(lambda: self._showing(path) and self.exact())

    def _showing(self, path: Path) -> bool:
        photo = self.window.editor.photo
        return photo is not None and Path(photo.source) == path

    def slide(self, n: int) -> None:
        """Slider changes as a hand makes them: many, fast, each giving an instant preview; the last one renders."""
        pix = self.window.controls.pix.slider
        for _ in range(n):
            self.slider_moves += 1
            pix.setValue((pix.value() + 3) % (pix.maximum() + 1))
            self.app.processEvents()
        self.wait(self.exact)

    def render(self) -> None:
        """A change that needs an exact render (the semantic strength), waited for."""
        sem = self.window.controls.sem.spin
        sem.setValue(0.5 + (self.renders % 7) * 0.2)
        self.renders += 1
        self.wait(self.exact)

    def compare(self) -> None:
        """Keep as before, change, compare, back to the original."""
        self.window.ab.pin_result()
        self.render()
        self.window.ab.unpin_result()
        self.compares += 1

    def batch(self) -> None:
        """A batch of five photos with its own session, as the batch dialog's worker runs one."""
        from desktop_sr.batch import BatchRunner, BatchSettings, make_plan
        from desktop_sr.engine.api import RenderParams
        from desktop_sr.engine.loader import open_session

        out = self.work / f"batch{self.batches}"
        settings = BatchSettings(out, RenderParams(scale=2))
        plan = make_plan(self.photos[:5], settings)
        summary = BatchRunner(plan, lambda: open_session(self.spec, device="cpu")).run()
        assert summary.ok, summary.describe()
        self.batches += 1
        for p in out.iterdir():
            p.unlink()
        out.rmdir()

    def round(self, work: Workload) -> None:
        for i in range(work.photos):
            self.open_next()
            self.slide(work.slider // work.photos)
            if i < work.renders:
                self.render()
        for _ in range(max(0, work.renders - work.photos)):
            self.render()
        if work.ab:
            self.compare()
        if work.batch:
            self.batch()


def sample(label: str, start: float) -> Sample:
    import gc

    gc.collect()
    return Sample(label, time.perf_counter() - start, rss_mb(), native_threads(), threading.active_count())


def growth(samples: list[Sample]) -> tuple[float, int]:
    """RSS growth from the end of the first round (warm-up) to the end, as a ratio; and the change in threads."""
    return samples[-1].rss_mb / samples[1].rss_mb - 1.0, samples[-1].threads - samples[1].threads


def run(window, app: QApplication, rounds: int, work: Workload, folder: Path,  # type: ignore[no-untyped-def]
        print_row: Callable[[Sample], None] | None = None) -> tuple[list[Sample], SoakSession]:  # fmt: skip
    """Warm-up round plus ``rounds`` rounds; a sample before and after each."""
    photos = make_photos(folder / "photos", max(work.photos * (rounds + 1), 5))
    session = SoakSession(window, app, photos, make_model(folder), folder)
    start = time.perf_counter()
    samples = [sample("start", start)]
    session.load_model()
    for r in range(rounds + 1):
        session.round(work)
        samples.append(sample("warm-up" if r == 0 else f"round {r}", start))
        if print_row is not None:
            print_row(samples[-1])
    return samples, session


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=30)
    ap.add_argument("--slider", type=int, default=500)
    ap.add_argument("--renders", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5, help="the work is spread over these rounds (plus a warm-up), "
                    "each with one A/B compare and one batch of five photos")  # fmt: skip
    args = ap.parse_args()
    torch.set_num_threads(1)  # tiny convolutions: one thread is faster than several waiting for each other

    from desktop_sr.ui.main_window import MainWindow

    OUT.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    QMessageBox.critical = lambda *a: print("error:", a[2], file=sys.stderr)  # type: ignore[method-assign]
    os.environ["DESKTOP_SR_MODELS_DIR"] = str(OUT / "models")
    window = MainWindow(settings_dir=OUT / "config", load_model=False)
    window.resize(1280, 820)
    window.show()
    n = args.rounds
    work = Workload(max(1, args.photos // n), max(1, args.slider // n), max(1, args.renders // n),
                    batch=True, ab=True)  # fmt: skip
    print("| after | seconds | RSS (MB) | native threads | Python threads |")
    print("|---|---|---|---|---|")

    def row(s: Sample) -> None:
        print(f"| {s.label} | {s.seconds:.1f} | {s.rss_mb:.1f} | {s.threads} | {s.py_threads} |", flush=True)

    samples, session = run(window, app, n, work, OUT, row)
    rss, threads = growth(samples)
    print(f"\nsession: {session.next_photo} photos opened, {session.slider_moves} slider changes, "
          f"{session.renders} renders, {session.compares} A/B compares, {session.batches} batches")  # fmt: skip
    print(f"RSS after warm-up -> end: x{1 + rss:.3f} ({rss * 100:+.1f} %; goal < +10 %); threads {threads:+d}")
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
