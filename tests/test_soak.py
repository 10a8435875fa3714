"""The short soak: ``bench/soak.py``'s session driver in the test's window (photos opened in turn, slider changes,
exact renders, an A/B compare and a batch per round, a real tiny Compact upscaler) for a warm-up round and three more:
resident memory after the warm-up grows less than 10 %, no thread is left behind, the engine's cache stays within
its byte bound and a closed photo's arrays are released. The full session (30 photos, 500 slider changes, 20
renders) is ``python bench/soak.py``."""

from __future__ import annotations

import gc
import importlib.util
import sys
import weakref
from pathlib import Path

import pytest

pytest.importorskip("psutil")
torch = pytest.importorskip("torch")
pytest.importorskip("spandrel")

ROOT = Path(__file__).resolve().parents[1]


def load_soak():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("soak", ROOT / "bench" / "soak.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def one_thread():  # type: ignore[no-untyped-def]
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions on a busy machine: one thread is far faster
    yield
    torch.set_num_threads(before)


def test_a_short_soak_reaches_a_plateau(window, qtbot, qapp, tmp_path, one_thread):
    soak = load_soak()
    work = soak.Workload(photos=2, slider=30, renders=2, batch=True, ab=True)
    first_photo: list[weakref.ref] = []

    def row(sample) -> None:  # type: ignore[no-untyped-def]
        if not first_photo and window.editor.photo is not None:
            first_photo.append(weakref.ref(window.editor.photo.rgb.base if window.editor.photo.rgb.base is not None
                                           else window.editor.photo.rgb))  # fmt: skip
        print(f"{sample.label}: {sample.rss_mb:.1f} MB, {sample.threads} threads")

    samples, session = soak.run(window, qapp, 3, work, tmp_path, row)
    assert not window.errors
    rss, threads = soak.growth(samples)
    print(f"RSS after warm-up -> end: {rss * 100:+.1f} %, threads {threads:+d}")
    assert rss < 0.10, [s.rss_mb for s in samples]
    assert threads <= 1, [s.threads for s in samples]
    assert session.next_photo == 8 and session.batches == 4 and session.compares == 4
    cache = window.worker.session.cache
    assert 0 < cache.bytes <= cache.max_bytes == soak.CACHE_MB * 1024 * 1024
    gc.collect()
    assert first_photo and first_photo[0]() is None, "the first photo's pixels are still held after 7 more opened"
