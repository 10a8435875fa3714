"""A full disk: one clear message naming the folder, its free space and about what a result needs; no partial file;
a batch stops at the first full write instead of rendering every remaining photo to fail it, and continues where it
stopped once there is space.

Two disks: a real 96 KB tmpfs that the test mounts (root only; skipped elsewhere) and, everywhere, a disk whose
capacity is injected at the moment a finished temp file is committed (the write itself succeeded, as it does on
file systems that allocate late, and the rename never happens).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fake_session import FakeSession
from PIL import Image

from desktop_sr import durable
from desktop_sr.batch import BatchRunner, BatchSettings, Manifest, make_plan
from desktop_sr.batch.results import Status
from desktop_sr.engine.api import RenderParams
from desktop_sr.imaging import PhotoError, write_photo
from desktop_sr.settings import read_settings, save_settings
from desktop_sr.timing import CostBook

N = 10


def noisy_photos(folder: Path, n: int = N, size: int = 64) -> None:
    """Noise compresses to nothing: each x2 result is a ~17 KB PNG, so a small disk fills after a few."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels = np.random.default_rng(i).integers(0, 255, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"p{i:02d}.png")


def run_batch(src: Path, out: Path):  # type: ignore[no-untyped-def]
    settings = BatchSettings(out, RenderParams(scale=2))
    return BatchRunner(make_plan([src], settings, Manifest(out)), FakeSession()).run()


def no_partial_files(out: Path) -> list[Path]:
    """Every photo under its final name opens whole; returns them. No temp file is left."""
    assert not [p for p in out.rglob(".*") if p.suffix in (".part", ".tmp")]
    done = sorted(out.glob("*.png"))
    for p in done:
        with Image.open(p) as im:
            im.load()
            assert im.size == (128, 128)
    return done


class SmallDisk:
    """A disk of ``capacity`` bytes under ``folder``: a commit that would go past it fails with ENOSPC."""

    def __init__(self, folder: Path, capacity: int) -> None:
        self.folder, self.capacity = folder, capacity
        self.real_commit = durable.commit

    def used(self) -> int:
        return sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file() and p.suffix != ".part")

    def commit(self, tmp: Path, path: Path) -> None:
        if path.is_relative_to(self.folder) and self.used() + tmp.stat().st_size > self.capacity:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))
        self.real_commit(tmp, path)


@pytest.fixture
def small_disk(tmp_path, monkeypatch) -> SmallDisk:
    disk = SmallDisk(tmp_path / "out", 100_000)
    monkeypatch.setattr(durable, "commit", disk.commit)
    return disk


def test_a_full_disk_stops_the_batch_with_one_message_and_the_rerun_continues(tmp_path, small_disk):
    src, out = tmp_path / "in", tmp_path / "out"
    noisy_photos(src)
    first = run_batch(src, out)
    written = first.count(Status.WRITTEN)
    assert 1 <= written < N
    failed = [r for r in first.results if r.status == Status.FAILED]
    assert len(failed) == 1 and failed[0].disk_full  # stopped at the first full write, not one failure per photo
    assert first.not_reached == N - written - 1
    message = first.stopped
    assert message.startswith(f"the disk is full: {out} has ") and "free" in message, message
    assert "this file needs about" in message and "KB" in message and "continues where it stopped" in message
    done = no_partial_files(out)
    stamps = {p: p.stat().st_mtime_ns for p in done}

    small_disk.capacity = 10_000_000  # space freed
    second = run_batch(src, out)
    assert (second.count(Status.DONE_BEFORE), second.count(Status.WRITTEN)) == (written, N - written)
    assert not second.stopped
    assert len(no_partial_files(out)) == N
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items()), "a finished photo was redone"


def test_a_full_disk_on_export_names_the_folder_and_keeps_the_earlier_file(tmp_path, small_disk):
    out = tmp_path / "out"
    out.mkdir()
    target = out / "result.png"
    Image.new("RGB", (4, 4), (1, 2, 3)).save(target)
    before = target.read_bytes()
    small_disk.capacity = 10_000
    pixels = np.random.default_rng(0).random((200, 200, 3), dtype=np.float32)
    with pytest.raises(PhotoError) as err:
        write_photo(target, pixels)
    assert f"the disk is full: {out} has" in str(err.value) and "needs about" in str(err.value)
    assert target.read_bytes() == before and sorted(p.name for p in out.iterdir()) == ["result.png"]


def test_settings_and_the_cost_book_on_a_full_disk_keep_the_old_file_and_the_app_goes_on(tmp_path, monkeypatch):
    settings, _ = read_settings(tmp_path)
    settings.prompt = "first"
    save_settings(settings, tmp_path)
    CostBook(tmp_path / "render-cost.json").record("m", "cpu", 1.0, 3.0)

    def full(tmp: Path, path: Path) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))

    monkeypatch.setattr(durable, "commit", full)
    settings.prompt = "second"
    save_settings(settings, tmp_path)  # logged, not raised: a window closing on a full disk still closes
    CostBook(tmp_path / "render-cost.json").record("m", "cpu", 1.0, 9.0)
    assert read_settings(tmp_path)[0].prompt == "first"
    assert CostBook(tmp_path / "render-cost.json").seconds_per_megapixel("m", "cpu") == 3.0
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]


# -- a real small disk ---------------------------------------------------------------------------------------------


@pytest.fixture
def tmpfs(tmp_path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.name == "nt" or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs a POSIX mount")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({made.stderr.decode(errors='replace').strip()}): the injected disk runs"
        )
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_real_full_tmpfs_stops_the_batch_and_resumes_after_it_grows(tmp_path, tmpfs):
    src, out = tmp_path / "in", tmpfs / "out"
    noisy_photos(src)
    first = run_batch(src, out)
    written = first.count(Status.WRITTEN)
    assert 1 <= written < N and first.stopped.startswith(f"the disk is full: {out} has ")
    assert sum(r.status == Status.FAILED for r in first.results) == 1
    done = no_partial_files(out)
    grown = subprocess.run(["mount", "-o", "remount,size=2m", str(tmpfs)], capture_output=True)
    assert grown.returncode == 0, grown.stderr
    second = run_batch(src, out)
    assert (second.count(Status.DONE_BEFORE), second.count(Status.WRITTEN)) == (written, N - written)
    assert len(no_partial_files(out)) == N and set(done) <= set(out.glob("*.png"))
    print(f"\ntmpfs of 96 KB: {written} of {N} written, then stopped with: {first.stopped}")
