"""Nothing lost when a writer is killed or two write at once: the settings, ``batch.json``, the model registry, the
cost book, the saved masks and a batch (its journal and results) each written by real writer code in child
processes that are SIGKILLed after a random delay, 20 times per kind; then checked: every file under its final name
is whole, every entry a writer confirmed is there, and the next run finishes what was left. Two writers hammering
the same file at once lose no entry.

The children are forked from this process (the writers are torch-free, so a fork costs milliseconds rather than
an interpreter start), run the production writer in a loop, and confirm each finished write by appending its
number to an acknowledgement file (``write(2)`` outlives a SIGKILL). ``-m slow`` runs 100 more trials per kind.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fake_session import FakeSession
from PIL import Image

from desktop_sr import durable
from desktop_sr.batch import BatchRunner, BatchSettings, Manifest, make_plan
from desktop_sr.batch.manifest import MANIFEST_NAME
from desktop_sr.batch.results import Status
from desktop_sr.engine.api import RenderParams
from desktop_sr.imaging.mask_store import SavedMasks, load_masks, save_masks
from desktop_sr.models import ModelStore
from desktop_sr.settings import BatchChoices, read_batch_choices, read_settings, save_batch_choices, save_settings
from desktop_sr.timing import CostBook

pytestmark = pytest.mark.skipif(os.name == "nt" or not hasattr(os, "fork"), reason="SIGKILL and fork are POSIX")

FORK = multiprocessing.get_context("fork")


#: 20 kills per kind in CI, 100 more behind ``-m slow``.
TRIALS = pytest.mark.parametrize("trials", [20, pytest.param(100, marks=pytest.mark.slow)])


# -- the writers, each a loop of real writes that confirms every finished one ----------------------------------------


def _ack(folder: Path, tag: str, i: int) -> None:
    fd = os.open(folder / f"ack-{tag}", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{i}\n".encode())
    finally:
        os.close(fd)


def acked(folder: Path, tag: str) -> list[int]:
    try:
        return [int(x) for x in (folder / f"ack-{tag}").read_text().split()]
    except FileNotFoundError:
        return []


def next_index(folder: Path, tag: str) -> int:
    done = acked(folder, tag)
    return max(done) + 1 if done else 0


def settings_writer(folder: Path, tag: str, start: int, count: int) -> None:
    """A window's life: settings read once, then one field changed and saved again and again (plus a recent file)."""
    settings, _ = read_settings(folder / "config")
    for i in range(start, start + count):
        if tag == "A":
            settings.prompt = f"A{i}"
        else:
            settings.export_folder = f"B{i}"
        settings.add_recent(f"/photos/{tag}{i % 3}.jpg")
        save_settings(settings, folder / "config")
        _ack(folder, tag, i)


def batch_choices_writer(folder: Path, tag: str, start: int, count: int) -> None:
    for i in range(start, start + count):
        save_batch_choices(BatchChoices(output=f"{tag}{i}", template="{stem}_" + "x" * 200), folder / "config")
        _ack(folder, tag, i)


def cost_book_writer(folder: Path, tag: str, start: int, count: int) -> None:
    book = CostBook(folder / "cache" / "render-cost.json")
    for i in range(start, start + count):
        book.record(f"model {tag}{i}", "cpu", 1.0, 2.0 + i)
        _ack(folder, tag, i)


def registry_writer(folder: Path, tag: str, start: int, count: int) -> None:
    store = ModelStore(folder / "models")
    for i in range(start, start + count):
        store.import_model("community", {"weights": folder / "w.pth"}, mode="reference", validate=False,
                           name=f"{tag}{i}")  # fmt: skip
        _ack(folder, tag, i)


def mask_photo(folder: Path, tag: str, i: int) -> Path:
    path = folder / "photos" / f"{tag}{i}.png"
    if not path.exists():  # written whole or not at all: a photo torn by a kill would share its key with another
        path.parent.mkdir(exist_ok=True)
        durable.replace_with(path, lambda tmp: Image.new("RGB", (4, 4), (i % 256, i // 256, len(tag))).save(tmp, "PNG"))
    return path


def mask_of(i: int) -> np.ndarray:
    return np.full((24, 24), (i % 50) / 25.0, np.float32)


def masks_writer(folder: Path, tag: str, start: int, count: int) -> None:
    for i in range(start, start + count):
        photo = mask_photo(folder, tag, i)
        save_masks(photo, SavedMasks(pix=mask_of(i), sem=mask_of(i + 1)), folder=folder / "masks")
        _ack(folder, tag, i)


#: Seconds before a kill, per kind: up to a few of its writes (a registry import or two masks take longer).
DELAYS = {"settings": 0.04, "batch.json": 0.04, "cost book": 0.04, "registry": 0.15, "masks": 0.12}
WRITERS: dict[str, Callable[[Path, str, int, int], None]] = {
    "settings": settings_writer,
    "batch.json": batch_choices_writer,
    "cost book": cost_book_writer,
    "registry": registry_writer,
    "masks": masks_writer,
}


def check(kind: str, folder: Path, tags: tuple[str, ...]) -> None:
    """Every file of ``kind`` whole and every confirmed entry there."""
    if kind == "settings":
        path = folder / "config" / "settings.json"
        json.loads(path.read_text(encoding="utf-8"))  # whole
        settings, problem = read_settings(folder / "config")
        assert problem is None
        if "A" in tags and acked(folder, "A"):  # the last confirmed save, or the one after it (done, not confirmed)
            assert int(settings.prompt[1:]) - max(acked(folder, "A")) in (0, 1), settings.prompt
        if "B" in tags and acked(folder, "B"):
            assert int(settings.export_folder[1:]) - max(acked(folder, "B")) in (0, 1), settings.export_folder
    elif kind == "batch.json":
        json.loads((folder / "config" / "batch.json").read_text(encoding="utf-8"))
        choices = read_batch_choices(folder / "config")
        last = max(acked(folder, tags[0]))
        assert int(choices.output[1:]) - last in (0, 1) and choices.template.endswith("x" * 200)
    elif kind == "cost book":
        data = json.loads((folder / "cache" / "render-cost.json").read_text(encoding="utf-8"))
        book = CostBook(folder / "cache" / "render-cost.json")
        for tag in tags:
            for i in acked(folder, tag):
                assert book.seconds_per_megapixel(f"model {tag}{i}", "cpu") == 2.0 + i, (tag, i, sorted(data))
    elif kind == "registry":
        names = {e.name for e in ModelStore(folder / "models").entries()}
        for tag in tags:
            assert {f"{tag}{i}" for i in acked(folder, tag)} <= names
    elif kind == "masks":
        for tag in tags:
            for i in acked(folder, tag):
                saved = load_masks(mask_photo(folder, tag, i), folder=folder / "masks")
                assert saved is not None, (tag, i)
                np.testing.assert_allclose(saved.pix, mask_of(i), atol=1e-4)
                np.testing.assert_allclose(saved.sem, mask_of(i + 1), atol=1e-4)


def temp_files(folder: Path) -> list[Path]:
    """The writers' temp files (the test's own photos, which it writes the same way, are not the app's)."""
    return [p for p in folder.rglob(".*") if p.suffix in (".tmp", ".part") and p.parent.name != "photos"]


def kill_after(target: Callable[[], None], delay: float) -> bool:
    """Run ``target`` in a forked child and SIGKILL it after ``delay`` seconds; True if it was still running."""
    child = FORK.Process(target=target, daemon=True)
    child.start()
    child.join(delay)
    running = child.is_alive()
    if running:
        os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
    child.join(10)
    assert not child.is_alive()
    return running


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "w.pth").write_bytes(b"weights" * 10)
    return tmp_path


@TRIALS
@pytest.mark.parametrize("kind", list(WRITERS))
def test_sigkill_at_random_moments_leaves_every_file_whole_and_loses_no_confirmed_entry(kind, folder, trials):
    writer = WRITERS[kind]
    rng = random.Random(f"{kind}-29")
    killed = 0
    for _ in range(trials):
        start = next_index(folder, "A")
        killed += kill_after(lambda start=start: writer(folder, "A", start, 10_000), rng.uniform(0.003, DELAYS[kind]))
        if acked(folder, "A"):
            check(kind, folder, ("A",))  # between kills: whole, nothing confirmed lost
    assert killed >= trials - 1, "the writer should still be busy when it is killed"
    # The next run after the last kill finishes and clears what the killed ones left.
    writer(folder, "A", next_index(folder, "A"), 2)
    check(kind, folder, ("A",))
    assert not temp_files(folder), temp_files(folder)
    print(f"\n{kind}: {killed} kills, {len(acked(folder, 'A'))} confirmed writes, none lost or torn")


@pytest.mark.parametrize("kind", [k for k in WRITERS if k != "batch.json"])  # batch.json is one record: last wins
def test_two_processes_writing_at_once_lose_no_entry(kind, folder):
    count = 12
    children = [FORK.Process(target=WRITERS[kind], args=(folder, tag, 0, count)) for tag in ("A", "B")]
    for c in children:
        c.start()
    for c in children:
        c.join(120)
        assert c.exitcode == 0
    assert acked(folder, "A") == acked(folder, "B") == list(range(count))
    check(kind, folder, ("A", "B"))
    if kind == "settings":  # each window's last change survived the other's saves; both windows' recent files too
        settings, _ = read_settings(folder / "config")
        assert (settings.prompt, settings.export_folder) == (f"A{count - 1}", f"B{count - 1}")
        assert {f"/photos/{t}{k}.jpg" for t in "AB" for k in range(3)} == set(settings.recent_files)
    if kind == "registry":
        assert len(ModelStore(folder / "models").entries()) == 2 * count
    assert not temp_files(folder)


# -- a batch killed at random moments, resumed each time ---------------------------------------------------------


@TRIALS
def test_sigkill_mid_batch_at_random_moments_then_the_rerun_finishes_exactly_what_was_left(tmp_path, trials):
    """The real runner, journal and photo writer (the numpy stand-in session for speed) killed 20 times."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    n = 120
    for i in range(n):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(
            src / f"p{i:03d}.png"
        )
    settings = BatchSettings(out, RenderParams(scale=2))

    def run() -> object:
        return BatchRunner(make_plan([src], settings, Manifest(out)), FakeSession()).run()

    rng = random.Random(29)
    stamps: dict[str, int] = {}
    for _ in range(trials):
        kill_after(run, rng.uniform(0.02, 0.12))
        for p in out.glob("*.png"):  # every file under its final name is a whole photo, and stays as written
            with Image.open(p) as im:
                im.load()
                assert im.size == (48, 40)
            assert stamps.setdefault(p.name, p.stat().st_mtime_ns) == p.stat().st_mtime_ns, f"{p.name} was redone"
        Manifest(out)  # the journal loads (a torn last line is skipped)
    summary = run()  # type: ignore[assignment]
    assert summary.count(Status.WRITTEN) + summary.count(Status.DONE_BEFORE) == n  # type: ignore[attr-defined]
    assert summary.count(Status.WRITTEN) == n - len(stamps)  # type: ignore[attr-defined]
    assert sorted(p.name for p in out.glob("*.png")) == [f"p{i:03d}_x2.png" for i in range(n)]
    assert not temp_files(out)
    assert (out / MANIFEST_NAME).exists() and not list(out.glob(".*.lock"))
    print(f"\nbatch: {len(stamps)} of {n} photos finished across the kills, the rest by the rerun; none redone")


def test_the_cost_book_and_settings_survive_a_damaged_file(tmp_path):
    """A file damaged by something else (another program, a disk error) is read as empty and replaced whole."""
    book = CostBook(tmp_path / "render-cost.json")
    book.path.write_text('{"half": 1.0, "tor', encoding="utf-8")
    book.record("m", "cpu", 2.0, 4.0)
    assert json.loads(book.path.read_text(encoding="utf-8")) == {"m @ cpu": {"samples": [[2.0, 4.0]]}}
    (tmp_path / "settings.json").write_text("{not json", encoding="utf-8")
    settings, _ = read_settings(tmp_path)
    settings.prompt = "kept"
    save_settings(settings, tmp_path)
    assert read_settings(tmp_path)[0].prompt == "kept"


def test_a_writer_killed_while_holding_the_lock_does_not_block_the_next(tmp_path):
    """The OS drops a dead holder's lock: the next save does not wait for the lock's timeout."""
    path = tmp_path / "render-cost.json"

    def hold() -> None:
        with durable.locked(path):
            time.sleep(60)

    kill_after(hold, 0.3)
    t0 = time.perf_counter()
    CostBook(path).record("m", "cpu", 1.0, 1.0)
    assert time.perf_counter() - t0 < 4.0 and path.exists()
