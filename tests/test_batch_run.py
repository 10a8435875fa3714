"""Batches end to end on the tiny random model: bad files, mirrored names, metadata per file, collision policies,
pause, a SIGKILL mid-batch and the resume after it, through the runner, the CLI in-process and a subprocess."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from device_target import TARGET
from PIL import Image

from desktop_sr.batch import (
    BatchListener,
    BatchRunner,
    BatchSettings,
    Manifest,
    ModelLoadFailed,
    make_plan,
)
from desktop_sr.batch.manifest import MANIFEST_NAME
from desktop_sr.batch.results import Status
from desktop_sr.cli import ExitCode, main
from desktop_sr.engine.api import RenderParams
from desktop_sr.engine.backends.pisa import pisa_spec
from desktop_sr.engine.control import Control

MAKE, MODEL = 0x010F, 0x0110
BAD = {"2023/trunc.jpg", "2023/summer/noise.jpg", "badheader.png", "2023/summer/empty.png"}
REPO = Path(__file__).resolve().parent.parent


def save_photo(path: Path, seed: int, size: tuple[int, int] = (32, 32)) -> None:
    """A small JPEG whose EXIF Make/Model name this very file, so mixed-up metadata would show."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, size[0] * size[1] * 3).reshape(size[1], size[0], 3)
    img = Image.fromarray(np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8))
    exif = Image.Exif()
    exif[MAKE], exif[MODEL] = f"Maker {path.stem}", f"Camera {seed}"
    img.save(path, quality=92, exif=exif.tobytes())


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """30 photos in three levels: 26 good JPEGs, 3 corrupt files and 1 zero-byte file; plus junk to ignore."""
    root = tmp_path_factory.mktemp("shoot") / "shoot"
    good = [f"p{i:02d}.jpg" for i in range(9)] + [f"2023/q{i:02d}.jpg" for i in range(9)]
    good += [f"2023/summer/r{i:02d}.jpg" for i in range(8)]
    for i, rel in enumerate(good):
        save_photo(root / rel, i, (32, 32) if i % 3 else (40, 32))
    (root / "2023").mkdir(exist_ok=True)
    data = (root / "p00.jpg").read_bytes()
    (root / "2023" / "trunc.jpg").write_bytes(data[: len(data) // 3])
    (root / "2023" / "summer" / "noise.jpg").write_bytes(np.random.default_rng(0).bytes(700))
    (root / "badheader.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    (root / "2023" / "summer" / "empty.png").write_bytes(b"")
    (root / ".DS_Store").write_bytes(b"junk")
    (root / "Thumbs.db").write_bytes(b"junk")
    (root / "2023" / "readme.txt").write_text("not a photo")
    assert len([p for p in root.rglob("*") if p.suffix in (".jpg", ".png")]) == 30
    return root


def good_sources(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.jpg") if p.relative_to(root).as_posix() not in BAD)


def model_args(tiny_model) -> list[str]:
    return ["--model", str(tiny_model["base"]), "--lora", str(tiny_model["pkl"]), "--device", TARGET.device]


@pytest.fixture(scope="module")
def session(tiny_model):
    from desktop_sr.engine.loader import open_session

    s = open_session(pisa_spec(tiny_model["base"], tiny_model["pkl"]), device=TARGET.device)
    yield s
    s.close()


def summary_line(stderr: str) -> str:
    return next(line for line in stderr.splitlines() if " written" in line and " in " in line)


@pytest.mark.slow  # ~20 s; CI's hostile batch (tests/test_faults_batch.py) runs 200 photos with 20 bad ones
def test_folder_tree_with_bad_files_in_process(tree, tmp_path, tiny_model, capsys):
    out = tmp_path / "out"
    t0 = time.perf_counter()
    code = main(["batch", str(tree), "-o", str(out), "-r", "--scale", "2", "--name", "{stem}_x{scale}_{model}",
                 "--quiet", *model_args(tiny_model)])  # fmt: skip
    wall = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert code == ExitCode.FAILED
    # Every good photo written under its mirrored folder with the template's name.
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    expected = sorted(p.relative_to(tree).with_name(f"{p.stem}_x2_pisa_tiny.png").as_posix()
                      for p in good_sources(tree))  # fmt: skip
    assert len(expected) == 26 and written == expected
    # The four bad files listed, each with its reason.
    failed = dict(re.findall(r"failed: (.+?): (.+)", err))
    assert {Path(p).relative_to(tree).as_posix() for p in failed} == BAD
    assert failed[str(tree / "2023/summer/empty.png")] == "the file is empty (0 bytes)"
    assert all(reason for reason in failed.values())
    line = summary_line(err)
    assert line.startswith("desktop-sr batch: 26 written, 4 failed")
    print(f"\n30-photo batch in-process: wall {wall:.1f} s; {line}")
    # Each output carries its own source's metadata and is twice its size.
    for src in good_sources(tree):
        dst = out / src.relative_to(tree).with_name(f"{src.stem}_x2_pisa_tiny.png")
        with Image.open(src) as a, Image.open(dst) as b:
            assert b.size == (a.size[0] * 2, a.size[1] * 2)
            ea, eb = a.getexif(), b.getexif()
            assert (eb[MAKE], eb[MODEL]) == (ea[MAKE], ea[MODEL]) == (f"Maker {src.stem}", eb[MODEL])
    assert not list(out.rglob("*.part"))


SLOW_RUN = r"""
import sys, time, pathlib
import desktop_sr.engine.loader as loader
marker, stop_at = pathlib.Path(sys.argv[1]), int(sys.argv[2])
real = loader.open_session

class Slow:
    # Renders for real, then sleeps on render number stop_at: the test kills us there, mid-file.
    def __init__(self, session):
        self.session, self.n = session, 0
    def __getattr__(self, name):
        return getattr(self.session, name)
    def render(self, params, **kw):
        self.n += 1
        out = self.session.render(params, **kw)
        marker.write_text(str(self.n))
        if self.n == stop_at:
            time.sleep(300)
        return out

loader.open_session = lambda *a, **k: Slow(real(*a, **k))
from desktop_sr.cli import main
sys.exit(main(sys.argv[3:]))
"""


def wait_for(predicate, timeout: float, proc: subprocess.Popen | None = None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the runner exited early: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL is POSIX")
@pytest.mark.slow  # ~33 s idle; CI kills the batch runner 20 times in tests/test_faults_writes.py instead
@pytest.mark.timeout(1500)  # two subprocesses rendering 26 photos: minutes on a loaded machine, not a hang
def test_sigkill_mid_batch_then_resume_in_a_subprocess(tree, tmp_path, tiny_model):
    src = tmp_path / "shoot"
    shutil.copytree(tree, src)
    out = tmp_path / "out"
    args = ["batch", str(src), "-o", str(out), "--recursive", "--scale", "2", "--quiet", *model_args(tiny_model)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    marker = tmp_path / "renders"
    first = subprocess.Popen([sys.executable, "-c", SLOW_RUN, str(marker), "6", *args], env=env,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        wait_for(lambda: marker.exists() and marker.read_text() == "6", 120, first)
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == -signal.SIGKILL
    # Killed while the 6th photo was in hand: exactly five results, each complete, and no partial file.
    done_before = sorted(out.rglob("*.png"))
    assert len(done_before) == 5
    for p in done_before:
        with Image.open(p) as im:
            im.load()
    assert not [p for p in out.rglob("*") if p.suffix == ".part"]
    journal = (out / MANIFEST_NAME).read_text(encoding="utf-8")
    assert journal.count('"state": "done"') == 5
    stamps = {p: p.stat().st_mtime_ns for p in done_before}
    # A temp file as a kill during a write would leave it; the rerun must clear it.
    assert [p.name for p in done_before] == [f"p0{i}_x2.png" for i in range(5)]  # badheader.png failed
    stale = out / ".p05_x2.k1ll3d.part"
    stale.write_bytes(b"half a png")

    second = subprocess.run([sys.executable, "-m", "desktop_sr", *args], env=env, capture_output=True, text=True,
                            timeout=1200)  # fmt: skip
    assert second.returncode == ExitCode.FAILED, second.stderr[-3000:]
    line = summary_line(second.stderr)
    assert "21 written, 5 done before, 4 failed" in line, line
    assert len(re.findall(r"failed: ", second.stderr)) == 4
    assert len(list(out.rglob("*.png"))) == 26 and not stale.exists()
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items()), "finished files were redone"
    print(f"\n30-photo batch in a subprocess after a kill: {line}")


# -- the runner's API --------------------------------------------------------------------------------------------


_seeds = itertools.count(100)


def two_photos(folder: Path) -> None:
    """Two new photos. New pixels each time: the shared session caches results by content, and a cached render
    reports no tiles, which would hide what pause and cancel tests look at."""
    save_photo(folder / "a.jpg", next(_seeds))
    save_photo(folder / "b.jpg", next(_seeds))


@pytest.mark.parametrize(
    ("policy", "style", "new_a"),
    [("skip", "paren", None), ("overwrite", "paren", "a_x2.png"), ("rename", "paren", "a_x2 (1).png"),
     ("rename", "underscore", "a_x2_1.png")],
)  # fmt: skip
def test_collision_policies_end_to_end(tmp_path, session, policy, style, new_a):
    two_photos(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    Image.new("RGB", (3, 3), (255, 0, 0)).save(out / "a_x2.png")  # someone's earlier export
    sentinel = (out / "a_x2.png").read_bytes()
    settings = BatchSettings(out, RenderParams(scale=2), on_conflict=policy, rename_style=style)
    summary = BatchRunner(make_plan([tmp_path / "in"], settings), session).run()
    by_name = {r.source.name: r for r in summary.results}
    assert by_name["b.jpg"].status == Status.WRITTEN and Image.open(out / "b_x2.png").size == (64, 64)
    if new_a is None:
        assert by_name["a.jpg"].status == Status.SKIPPED
        assert (out / "a_x2.png").read_bytes() == sentinel
    else:
        assert by_name["a.jpg"].status == Status.WRITTEN and by_name["a.jpg"].target.name == new_a
        assert Image.open(out / new_a).size == (64, 64)
        if policy == "rename":
            assert (out / "a_x2.png").read_bytes() == sentinel
    assert sorted(p.name for p in out.glob("*.png")) == sorted({"a_x2.png", "b_x2.png", new_a or "a_x2.png"})


def test_rerun_into_the_same_folder_does_nothing_and_never_loads_the_model(tmp_path, session):
    two_photos(tmp_path / "in")
    settings = BatchSettings(tmp_path / "out", RenderParams(scale=2), on_conflict="rename")
    first = BatchRunner(make_plan([tmp_path / "in"], settings), session).run()
    assert first.count(Status.WRITTEN) == 2

    def no_model():
        raise AssertionError("the model was loaded for a batch with nothing to do")

    again = BatchRunner(make_plan([tmp_path / "in"], settings, Manifest(settings.output_dir)), no_model).run()
    assert again.count(Status.DONE_BEFORE) == 2
    assert sorted(p.name for p in settings.output_dir.glob("*.png")) == ["a_x2.png", "b_x2.png"]


def test_pause_holds_between_tiles_and_resume_finishes(tmp_path, session):
    two_photos(tmp_path / "in")
    out = tmp_path / "out"
    control = Control()
    events: list[str] = []

    class Listener(BatchListener):
        def tile_progress(self, progress) -> None:
            events.append(f"{progress.index}:{progress.stage}")
            if len(events) == 1:
                control.pause()  # on the runner's thread, right after the first tile of the first photo

        def paused(self, paused: bool) -> None:
            events.append("paused" if paused else "resumed")

    runner = BatchRunner(make_plan([tmp_path / "in"], BatchSettings(out, RenderParams(scale=2))), session,
                         listener=Listener(), control=control)  # fmt: skip
    thread = threading.Thread(target=runner.run)
    thread.start()
    wait_for(lambda: "paused" in events, 30)
    time.sleep(0.6)
    assert events == ["0:encode", "paused"] and not list(out.glob("*.png"))
    control.resume()
    thread.join(60)
    assert not thread.is_alive()
    assert events[2] == "resumed" and runner.summary.count(Status.WRITTEN) == 2


def test_cancel_abandons_the_file_in_progress(tmp_path, session):
    two_photos(tmp_path / "in")
    out = tmp_path / "out"
    control = Control()

    class Listener(BatchListener):
        def tile_progress(self, progress) -> None:
            if progress.index == 1 and progress.stage.startswith("unet"):
                control.cancel()

    summary = BatchRunner(make_plan([tmp_path / "in"], BatchSettings(out, RenderParams(scale=2))), session,
                          listener=Listener(), control=control).run()  # fmt: skip
    assert summary.cancelled and [r.status for r in summary.results] == [Status.WRITTEN, Status.CANCELLED]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["a_x2.png"]
    assert not list(out.glob("*.part"))


def test_invalid_template_is_a_usage_error_before_anything_runs(tree, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["batch", str(tree), "-o", str(out), "--name", "{stem}/{scale}",
                 "--model", str(tmp_path / "no-model"), "--lora", str(tmp_path / "no.pkl")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE  # not ExitCode.MODEL: the template is checked before the model is touched
    assert "invalid name template '{stem}/{scale}'" in err and "path separator" in err
    assert not out.exists()
    code = main(["batch", str(tree), "-o", str(out), "--name", "{stem}_{resolution}", "--dry-run"])
    assert code == ExitCode.USAGE and "unknown field {resolution}" in capsys.readouterr().err


def test_a_model_that_cannot_load_fails_the_batch_once_and_writes_nothing(tmp_path, tiny_model, capsys):
    two_photos(tmp_path / "in")
    bad = tmp_path / "broken.pkl"
    bad.write_bytes(b"nonsense" * 50)
    out = tmp_path / "out"
    code = main(["batch", str(tmp_path / "in"), "-o", str(out), "--model", str(tiny_model["base"]), "--lora",
                 str(bad), "--quiet", "--device", TARGET.device])  # fmt: skip
    assert code == ExitCode.MODEL and str(bad) in capsys.readouterr().err
    assert not list(out.glob("*.png"))

    def unreadable():
        raise OSError("disk error")

    with pytest.raises(ModelLoadFailed, match="disk error"):
        BatchRunner(make_plan([tmp_path / "in"], BatchSettings(out)), unreadable).run()


def test_dry_run_prints_the_plan(tree, tmp_path, capsys):
    code = main(["batch", str(tree), "-o", str(tmp_path / "out"), "-r", "--dry-run", "--format", "jpeg"])
    out = capsys.readouterr().out.splitlines()
    # the four files whose headers already show they cannot be read are listed so (and make the exit code 1)
    assert code == 1 and len(out) == 30
    unreadable = [line for line in out if "\tcannot read (" in line]
    names = sorted(Path(line.split("\t")[0]).name for line in unreadable)
    assert names == ["badheader.png", "empty.png", "noise.jpg", "trunc.jpg"]
    assert all(line.endswith("\twrite") and "_x4.jpg\t" in line for line in out if line not in unreadable)
    assert not (tmp_path / "out").exists()


def test_failed_files_are_retried_and_reported_per_file(tmp_path, session):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "broken.jpg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 50)
    out = tmp_path / "out"
    settings = BatchSettings(out, RenderParams(scale=2))
    summary = BatchRunner(make_plan([tmp_path / "in"], settings), session).run()
    assert [(r.status, bool(r.reason)) for r in summary.results] == [(Status.FAILED, True)]
    assert summary.failures[0][0].name == "broken.jpg" and not summary.ok
    save_photo(tmp_path / "in" / "broken.jpg", 5)  # fixed by the user
    again = BatchRunner(make_plan([tmp_path / "in"], settings, Manifest(out)), session).run()
    assert [r.status for r in again.results] == [Status.WRITTEN] and again.ok


def test_a_full_disk_stops_the_batch_and_a_rerun_finishes_it(tmp_path, session, monkeypatch):
    """Every later photo would render and then fail the same way: stop at the first "no space left", keep what
    was written, and let a rerun (after freeing space) do the rest."""
    import errno

    from desktop_sr.batch import photo_job
    from desktop_sr.imaging import PhotoError

    src = tmp_path / "in"
    for i in range(4):
        save_photo(src / f"p{i}.jpg", i)
    out = tmp_path / "out"
    settings = BatchSettings(out, RenderParams(scale=2))
    real_write = photo_job.write_result
    writes = []

    def full_after_one(target, *a, **kw):
        writes.append(target.name)
        if len(writes) >= 2:
            raise PhotoError(target, "the disk is full") from OSError(errno.ENOSPC, "No space left on device")
        return real_write(target, *a, **kw)

    monkeypatch.setattr(photo_job, "write_result", full_after_one)
    summary = BatchRunner(make_plan([src], settings), session).run()
    assert [r.status for r in summary.results] == [Status.WRITTEN, Status.FAILED]
    assert "disk is full" in summary.results[1].reason and summary.not_reached == 2
    assert "stopped (the disk is full" in summary.describe() and not summary.ok
    assert sorted(p.name for p in out.glob("*.png")) == ["p0_x2.png"]

    monkeypatch.setattr(photo_job, "write_result", real_write)  # space was freed
    again = BatchRunner(make_plan([src], settings, Manifest(out)), session).run()
    assert [r.status for r in again.results] == [Status.DONE_BEFORE, *[Status.WRITTEN] * 3] and again.ok
    assert sorted(p.name for p in out.glob("*.png")) == [f"p{i}_x2.png" for i in range(4)]
