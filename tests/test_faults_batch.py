"""A 200-photo batch of which 10 % is hostile, through the real command with a real (tiny) community upscaler:
every good photo written, every failure named with its reason, exit 1. And model files that change underneath:
truncated or removed while a batch has the model loaded (the batch finishes, nothing written is touched), or before
it starts (one clear message, nothing written).

The hostile files, two of each kind: zero bytes, truncated JPEG, text renamed .jpg, CMYK JPEG, palette PNG with
transparency, 16-bit grey PNG, animated GIF, a PNG header claiming 60000 x 60000 pixels (a decompression bomb),
unreadable permissions, and a file deleted while the batch runs. Three of these kinds are photos the app reads
correctly (CMYK is converted, the palette's transparency and 16-bit grey kept), so they are written; a GIF is not a
type a batch takes from a folder, so it is passed over and counted before any work; the others fail, each with its
reason. As root, permissions do not stop a read, so the
"unreadable" files count as written there; the test asks the OS which they are.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from desktop_sr.batch import photo_job
from desktop_sr.batch.manifest import MANIFEST_NAME
from desktop_sr.cli import ExitCode, main

torch = pytest.importorskip("torch")
pytest.importorskip("spandrel")
from safetensors.torch import save_file  # noqa: E402
from spandrel.architectures.Compact import Compact  # noqa: E402

GOOD = 180
SIZE = 20


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A real Real-ESRGAN Compact x2 network, tiny and random: the real spandrel path in a few ms per photo."""
    torch.manual_seed(0)
    net = Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=1, upscale=2)
    path = tmp_path_factory.mktemp("model") / "compact_x2.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


def png_bomb(path: Path, w: int = 60000, h: int = 60000) -> None:
    """A valid PNG header and a few rows: the size a decoder would allocate is what the header claims."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * (w * 3 + 1) * 2)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


def hostile(folder: Path, i: int) -> dict[str, Path]:
    """One file of each hostile kind; returns kind -> path."""
    rng = np.random.default_rng(1000 + i)
    rgb = rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
    out: dict[str, Path] = {}

    def name(kind: str, ext: str) -> Path:
        out[kind] = folder / f"x{i}_{kind.replace(' ', '_')}{ext}"
        return out[kind]

    name("zero bytes", ".jpg").write_bytes(b"")
    Image.fromarray(rgb).save(folder / "tmp.jpg", quality=90)
    data = (folder / "tmp.jpg").read_bytes()
    (folder / "tmp.jpg").unlink()
    name("truncated", ".jpg").write_bytes(data[: len(data) // 3])
    name("text", ".jpg").write_text("a shopping list, not a photo\n" * 5, encoding="utf-8")
    Image.fromarray(rgb).convert("CMYK").save(name("cmyk", ".jpg"))
    Image.fromarray(rgb).quantize(16).save(name("palette alpha", ".png"), transparency=0)
    Image.fromarray(rng.integers(0, 65535, (SIZE, SIZE)).astype(np.uint16)).save(name("grey16", ".png"))
    frames = [Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)).convert("P") for _ in range(3)]
    frames[0].save(name("animated", ".gif"), save_all=True, append_images=frames[1:], duration=50, loop=0)
    png_bomb(name("bomb", ".png"))
    Image.fromarray(rgb).save(name("unreadable", ".jpg"), quality=90)
    os.chmod(out["unreadable"], 0)
    Image.fromarray(rgb).save(name("deleted", ".jpg"), quality=90)
    return out


@pytest.fixture(autouse=True)
def one_thread() -> None:
    """Tiny convolutions on a busy machine: one torch thread is hundreds of times faster than several that wait for
    each other (the result is the same)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def shoot(tmp_path) -> tuple[Path, dict[str, Path]]:
    src = tmp_path / "shoot"
    src.mkdir()
    for i in range(GOOD):
        pixels = np.random.default_rng(i).integers(0, 255, (SIZE, SIZE + 4, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(src / f"g{i:03d}.jpg", quality=90)
    bad = {f"{kind} #{i}": path for i in range(2) for kind, path in hostile(src, i).items()}
    yield src, bad
    for p in bad.values():
        if p.exists():
            os.chmod(p, 0o644)


def test_a_200_photo_batch_with_20_hostile_files(shoot, tmp_path, weights, monkeypatch, capsys, caplog):
    src, bad = shoot
    assert len(list(src.iterdir())) == 200
    out = tmp_path / "out"
    deleted = [p for k, p in bad.items() if k.startswith("deleted")]
    real_read = photo_job.read_photo

    def read_while_someone_deletes(path, *a, **kw):  # the user deletes two photos while the batch runs
        if path.name == "g100.jpg":
            for p in deleted:
                p.unlink()
        return real_read(path, *a, **kw)

    monkeypatch.setattr(photo_job, "read_photo", read_while_someone_deletes)
    caplog.set_level(logging.INFO, logger="desktop_sr.batch")  # what the log file gets
    code = main(["batch", str(src), "-o", str(out), "--model", str(weights), "--scale", "2", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == ExitCode.FAILED

    readable = {k for k, p in bad.items() if k.startswith("unreadable") and os.access(p, os.R_OK)}
    fails = {k for k in bad if k.split(" #")[0] in ("zero bytes", "truncated", "text", "bomb", "deleted")}
    fails |= {k for k in bad if k.startswith("unreadable")} - readable
    failed_lines = dict(re.findall(r"failed: (\S+): (.+)", err))
    assert {Path(p).name for p in failed_lines} == {bad[k].name for k in fails}, err[-3000:]
    reasons = {k: failed_lines[str(bad[k])] for k in fails}
    assert "empty" in reasons["zero bytes #0"] and "truncated" in reasons["truncated #0"].lower()
    assert "not an image" in reasons["text #0"] and "decompression bomb" in reasons["bomb #0"]
    assert all(reasons[k] for k in fails) and not any("Traceback" in r for r in reasons.values())

    written = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    # A GIF is not a photo type a batch takes from a folder: passed over and counted as such, before any work.
    assert "2 other files ignored" in err
    taken = [k for k in bad if k not in fails and not k.startswith("animated")]
    expected = [f"g{i:03d}_x2.png" for i in range(GOOD)] + [f"{bad[k].stem}_x2.png" for k in taken]
    assert written == sorted(expected), sorted(set(written) ^ set(expected))
    for name in written:  # every result whole, at twice the size
        with Image.open(out / name) as im:
            im.load()
            assert im.size[0] == 2 * SIZE + (8 if name.startswith("g") else 0)
    assert not [p for p in out.iterdir() if p.suffix in (".part", ".tmp")]
    summary = err.strip().splitlines()[-1]
    assert f"{len(written)} written" in summary and f"{len(fails)} failed" in summary, summary
    assert (out / MANIFEST_NAME).exists()
    logged = [r.getMessage() for r in caplog.records if r.name == "desktop_sr.batch.results"]
    assert len(logged) == 200 - 2  # one line per photo (the GIFs were passed over), for a report
    assert {m.split(" -> ")[0] for m in logged if ": failed (" in m} == {str(bad[k]) for k in fails}
    print(f"\n200 photos, 20 hostile: {summary}")


def test_a_model_file_truncated_or_removed_during_a_batch(tmp_path, weights, capsys):
    """Loaded once: truncating or deleting the file mid-batch changes nothing for this batch. The next batch says
    plainly that the model cannot be read, before touching any photo, and what was written stays as it was."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(6):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(src / f"p{i}.png")
    model = tmp_path / "model.safetensors"
    model.write_bytes(weights.read_bytes())
    real_read = photo_job.read_photo
    seen: list[str] = []

    def read(path, *a, **kw):
        seen.append(path.name)
        if len(seen) == 3:
            model.write_bytes(model.read_bytes()[:100])  # truncated under the running batch
        if len(seen) == 5:
            model.unlink()
        return real_read(path, *a, **kw)

    args = ["batch", str(src), "-o", str(out), "--model", str(model), "--scale", "2", "--device", "cpu", "--quiet"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(photo_job, "read_photo", read)
        assert main(args) == ExitCode.OK
    done = {p: p.read_bytes() for p in out.glob("*.png")}
    assert len(done) == 6
    capsys.readouterr()

    (src / "p6.png").write_bytes((src / "p0.png").read_bytes())
    code = main(args)  # the model file is gone now
    err = capsys.readouterr().err
    assert code == ExitCode.MODEL and str(model) in err and "Traceback" not in err, err
    model.write_bytes(weights.read_bytes()[:100])
    code = main(args)
    err = capsys.readouterr().err
    assert code == ExitCode.MODEL and "Traceback" not in err, err
    assert {p: p.read_bytes() for p in out.glob("*.png")} == done  # nothing written was touched
