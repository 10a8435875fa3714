"""The real commands SIGKILLed at random moments, 20 times each: ``desktop-sr batch`` (then run again until done) and
``desktop-sr upscale``, in subprocesses with a real tiny Compact upscaler. No file under its final name is partial,
the batch's record always loads, and the runs after the kills finish exactly what was left: every photo once, none
redone. Each trial starts an interpreter with torch (seconds), so this is ``-m slow``; CI kills the real batch
writers in forked children instead (``test_faults_writes.py``) and one real batch subprocess
(``test_batch_run.py``)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_faults_batch import weights  # noqa: F401 - the fixture, used by name

from desktop_sr.batch import Manifest

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.name == "nt", reason="SIGKILL is POSIX")]
REPO = Path(__file__).resolve().parents[1]
N = 150


def photos(folder: Path, n: int = N) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels = np.random.default_rng(i).integers(0, 255, (48, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"p{i:02d}.png")
    return sorted(folder.glob("*.png"))


def whole(folder: Path) -> dict[str, int]:
    """Every photo under its final name opens and decodes; name -> mtime."""
    out = {}
    for p in folder.glob("*.png"):
        with Image.open(p) as im:
            im.load()
            assert im.size == (128, 96), p
        out[p.name] = p.stat().st_mtime_ns
    return out


def kill_when(cmd: list[str], started: Callable[[], bool], delay: float, env: dict[str, str]) -> int | None:
    """Start ``cmd``, wait until ``started()`` (a result of this run is written: the model is loaded and working),
    then ``delay`` more seconds, then SIGKILL."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        end = time.monotonic() + 120
        while not started() and proc.poll() is None and time.monotonic() < end:
            time.sleep(0.02)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        return proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_batch_killed_20_times_then_finished(tmp_path, weights):  # noqa: F811
    src, out = tmp_path / "in", tmp_path / "out"
    photos(src)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "desktop_sr", "batch", str(src), "-o", str(out), "--model", str(weights),
           "--scale", "2", "--device", "cpu", "--quiet"]  # fmt: skip
    rng = random.Random(29)
    stamps: dict[str, int] = {}
    kills = 0
    for _ in range(20):
        before = len(stamps)
        code = kill_when(cmd, lambda n=before: len(list(out.glob("*.png"))) > n, rng.uniform(0.0, 0.3), env)
        kills += code == -signal.SIGKILL
        now = whole(out)
        assert all(now[name] == t for name, t in stamps.items() if name in now), "a finished photo was redone"
        stamps.update(now)
        Manifest(out)  # loads: a torn last line is skipped
        if code == 0:
            break
    final = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-2000:]
    done = whole(out)
    assert sorted(done) == sorted(f"p{i:02d}_x2.png" for i in range(N))
    assert all(done[name] == t for name, t in stamps.items()), "a finished photo was redone"
    assert not [p for p in out.iterdir() if p.suffix in (".part", ".tmp")]
    print(f"\nbatch: {kills} kills, {len(stamps)} of {N} photos finished across them, the rest by the last run")


def test_upscale_killed_20_times_leaves_no_partial_result(tmp_path, weights):  # noqa: F811
    src = tmp_path / "in"
    inputs = photos(src, 12)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    rng = random.Random(30)
    kills = 0
    for trial in range(20):
        out = tmp_path / f"out{trial}"
        out.mkdir()
        cmd = [sys.executable, "-m", "desktop_sr", "upscale", *map(str, inputs), "-o", str(out), "--model",
               str(weights), "--scale", "2", "--device", "cpu", "--quiet"]  # fmt: skip
        first = out / "p00_x2.png"
        kills += kill_when(cmd, first.exists, rng.uniform(0.0, 0.3), env) == -signal.SIGKILL
        whole(out)  # every file under its final name is a whole photo; a temp may stay beside it
        assert all(p.name.startswith(".") for p in out.iterdir() if p.suffix == ".part")
    assert kills >= 15
    print(f"\nupscale: {kills} kills, no partial result under a final name")
