"""Strength maps outside the GUI (issue 19): `upscale --sem-map`, the saved-mask store, and batch using saved masks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from device_target import TARGET
from PIL import Image

from desktop_sr.cli import ExitCode, main
from desktop_sr.engine.api import RenderParams
from desktop_sr.engine.strength_map import StrengthMaps
from desktop_sr.imaging import PhotoError
from desktop_sr.imaging.mask_store import SavedMasks, load_masks, save_masks

DATA = Path(__file__).parent / "data"


def model_args(tiny_model) -> list[str]:
    return ["--model", str(tiny_model["base"]), "--lora", str(tiny_model["pkl"]), "--device", TARGET.device, "--quiet"]


@pytest.fixture()
def photo_file(tmp_path) -> Path:
    src = tmp_path / "in.png"
    Image.open(DATA / "astronaut_64.png").crop((0, 0, 40, 32)).save(src)
    return src


def left_black(width: int, height: int, mode: str = "L") -> Image.Image:
    top = 65535 if mode == "I;16" else 255
    arr = np.full((height, width), top, np.uint16 if mode == "I;16" else np.uint8)
    arr[:, : width // 2] = 0
    return Image.fromarray(arr)


@pytest.fixture(scope="module")
def session(tiny_model):
    from desktop_sr.engine.backends.pisa.session import load_pisa_session

    return load_pisa_session(tiny_model["base"], tiny_model["pkl"], device=TARGET.device)


def rendered(session, src: Path, params: RenderParams) -> np.ndarray:
    session.set_photo(np.asarray(Image.open(src).convert("RGB"), np.float32) / 255)
    return np.round(session.render(params) * 255)


def test_sem_map_scales_the_semantic_strength_place_by_place(tmp_path, photo_file, tiny_model, session):
    mask = tmp_path / "mask.png"
    left_black(80, 64, "I;16").save(mask)  # 16-bit, twice the photo's size: only the proportions must match
    out = tmp_path / "out.png"
    code = main(["upscale", str(photo_file), "-o", str(out), "--sem", "1.5", "--sem-map", str(mask),
                 *model_args(tiny_model)])  # fmt: skip
    assert code == ExitCode.OK
    got = np.asarray(Image.open(out), np.float32)
    sem = np.zeros((64, 80), np.float32)
    sem[:, 40:] = 1.0
    expected = rendered(session, photo_file, RenderParams(sem=1.5, maps=StrengthMaps(sem=sem)))
    assert np.abs(got - expected).max() <= 1
    plain = rendered(session, photo_file, RenderParams(sem=1.5))
    assert np.abs(got - plain)[:, :40].mean() > 1.0  # the black half lost its invented detail


@pytest.mark.parametrize(
    "make,message",
    [
        (None, "strength map not found"),
        (lambda p: p.write_text("not an image"), "cannot read the strength map"),
        (lambda p: p.mkdir(), "is a folder"),
    ],
)
def test_a_bad_map_is_a_usage_error_before_the_model_loads(tmp_path, photo_file, capsys, make, message):
    mask = tmp_path / "mask.png"
    if make is not None:
        make(mask)
    code = main(["upscale", str(photo_file), "-o", str(tmp_path / "o.png"), "--sem-map", str(mask),
                 "--model", str(tmp_path / "no-model"), "--lora", str(tmp_path / "no.pkl")])  # fmt: skip
    assert code == ExitCode.USAGE
    err = capsys.readouterr().err
    assert message in err and str(mask) in err and "cannot load the model" not in err


def test_a_map_of_other_proportions_is_refused_before_the_model_loads(tmp_path, photo_file, capsys):
    mask = tmp_path / "square.png"
    left_black(64, 64).save(mask)
    code = main(["upscale", str(photo_file), "-o", str(tmp_path / "o.png"), "--pix-map", str(mask),
                 "--model", str(tmp_path / "no-model"), "--lora", str(tmp_path / "no.pkl")])  # fmt: skip
    assert code == ExitCode.FAILED
    err = capsys.readouterr().err
    assert "64 x 64" in err and "40 x 32" in err and "proportions" in err and "cannot load the model" not in err
    assert not (tmp_path / "o.png").exists()


# -- the saved-mask store ---------------------------------------------------------------------------------------------
def test_saved_masks_round_trip_and_follow_the_photo_when_renamed(tmp_path, photo_file):
    folder = tmp_path / "masks"
    sem = np.linspace(0.0, 2.0, 40 * 32, dtype=np.float32).reshape(32, 40)
    save_masks(photo_file, SavedMasks(sem=sem, settings={"sem": 0.7}), size=(40, 32), folder=folder)
    moved = photo_file.rename(tmp_path / "renamed.png")
    saved = load_masks(moved, folder=folder)
    assert saved is not None and saved.pix is None and saved.settings == {"sem": 0.7}
    assert np.abs(saved.sem - sem).max() < 2.0 / 65535 + 1e-6  # 16-bit steps
    entry = json.loads(next(folder.glob("*.json")).read_text())
    assert entry["photo"] == "in.png" and entry["size"] == [40, 32]
    save_masks(moved, SavedMasks(), folder=folder)  # no maps: forget them
    assert load_masks(moved, folder=folder) is None
    assert not [p for p in folder.iterdir() if p.name != ".masks.lock"]  # the lock file of concurrent writers stays


def test_a_damaged_saved_mask_is_reported_not_raised_into_a_crash(tmp_path, photo_file):
    folder = tmp_path / "masks"
    path = save_masks(photo_file, SavedMasks(sem=np.ones((8, 10), np.float32)), folder=folder)
    assert path is not None
    next(folder.glob("*.png")).write_bytes(b"garbage")
    with pytest.raises(PhotoError, match="saved mask cannot be read"):
        load_masks(photo_file, folder=folder)
    assert load_masks(tmp_path / "missing.png", folder=folder) is None


def test_batch_uses_a_photos_saved_mask_unless_told_not_to(tmp_path, tiny_model, session, capsys):
    src = tmp_path / "in"
    src.mkdir()
    crop = Image.open(DATA / "astronaut_64.png").crop((0, 0, 40, 32))
    crop.save(src / "a.png")
    crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(src / "b.png")
    sem = np.ones((32, 40), np.float32)
    sem[:, :20] = 0.0
    save_masks(src / "a.png", SavedMasks(sem=sem))  # the test session's masks folder (conftest)
    out = tmp_path / "out"
    assert main(["batch", str(src), "-o", str(out), "--sem", "1.5", *model_args(tiny_model)]) == ExitCode.OK
    a = np.asarray(Image.open(out / "a_x4.png"), np.float32)
    b = np.asarray(Image.open(out / "b_x4.png"), np.float32)
    assert np.abs(a - rendered(session, src / "a.png", RenderParams(sem=1.5, maps=StrengthMaps(sem=sem)))).max() <= 1
    assert np.abs(b - rendered(session, src / "b.png", RenderParams(sem=1.5))).max() <= 1
    out2 = tmp_path / "out2"
    assert main(["batch", str(src), "-o", str(out2), "--sem", "1.5", "--no-saved-masks", *model_args(tiny_model)]) == 0
    a2 = np.asarray(Image.open(out2 / "a_x4.png"), np.float32)
    assert np.abs(a2 - rendered(session, src / "a.png", RenderParams(sem=1.5))).max() <= 1
