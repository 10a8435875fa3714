"""Community upscalers through spandrel: six architectures built with spandrel's own classes and random weights,
saved as .pth and .safetensors, are detected, imported, rendered at every scale, used by the CLI and the batch; a
pickle that would run code, a garbage file and an unknown architecture are refused with the file named."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from desktop_sr.cli import ExitCode, main
from desktop_sr.engine.api import RenderParams
from desktop_sr.engine.backends.spandrel import community_spec
from desktop_sr.engine.control import Control
from desktop_sr.engine.errors import Cancelled, ModelError
from desktop_sr.engine.loader import open_session
from desktop_sr.models import ModelStore

spandrel = pytest.importorskip("spandrel", reason="spandrel (and torchvision) are installed by the test command")
from spandrel.architectures.Compact import Compact  # noqa: E402
from spandrel.architectures.DAT import DAT  # noqa: E402
from spandrel.architectures.ESRGAN import ESRGAN  # noqa: E402
from spandrel.architectures.HAT import HAT  # noqa: E402
from spandrel.architectures.SPAN import SPAN  # noqa: E402
from spandrel.architectures.SwinIR import SwinIR  # noqa: E402


def _networks() -> dict[str, tuple[str, int, torch.nn.Module]]:
    """name -> (architecture spandrel reports, scale, network): small but in each architecture's real layout."""
    torch.manual_seed(0)
    tf = {"in_chans": 3, "img_size": 16, "mlp_ratio": 2, "upsampler": "pixelshuffle"}
    return {
        "esrgan_x4": ("ESRGAN", 4, ESRGAN(in_nc=3, out_nc=3, num_filters=16, num_blocks=1, scale=4)),
        "compact_x2": ("RealESRGAN Compact", 2, Compact(num_in_ch=3, num_out_ch=3, num_feat=16, num_conv=2, upscale=2)),
        "swinir_x2": ("SwinIR", 2, SwinIR(upscale=2, window_size=4, embed_dim=12, depths=[1], num_heads=[2], **tf)),
        "hat_x2": (
            "HAT",
            2,
            HAT(
                upscale=2,
                window_size=4,
                embed_dim=12,
                depths=[1],
                num_heads=[2],
                compress_ratio=3,
                squeeze_factor=3,
                overlap_ratio=0.5,
                **tf,
            ),
        ),  # fmt: skip
        "dat_x2": (
            "DAT",
            2,
            DAT(upscale=2, img_size=16, embed_dim=32, split_size=[2, 4], depth=[1], num_heads=[2], expansion_factor=2),
        ),  # fmt: skip
        "span_x4": ("SPAN", 4, SPAN(num_in_ch=3, num_out_ch=3, feature_channels=12, upscale=4)),
    }


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, tuple[str, int, Path, Path]]:
    """name -> (architecture, scale, .pth, .safetensors)."""
    root = tmp_path_factory.mktemp("community")
    out = {}
    for name, (arch, scale, net) in _networks().items():
        state = {k: v.contiguous() for k, v in net.state_dict().items()}
        pth, st = root / f"{name}.pth", root / f"{name}.safetensors"
        torch.save({"params_ema": state}, pth)  # the layout Real-ESRGAN and BasicSR release
        save_file(state, str(st))
        out[name] = (arch, scale, pth, st)
    return out


@pytest.fixture
def store(tmp_path, monkeypatch) -> ModelStore:
    monkeypatch.setenv("DESKTOP_SR_MODELS_DIR", str(tmp_path / "models"))
    return ModelStore(tmp_path / "models")


@pytest.mark.parametrize("name", list(_networks()))
def test_each_architecture_imports_detects_and_renders_from_both_formats(name, files, store, photo):
    arch, scale, pth, st = files[name]
    for path in (pth, st):
        entry = store.import_model("community", {"weights": path}, name=f"{name} {path.suffix}")
        assert entry.details["architecture"] == arch and entry.details["scale"] == f"x{scale}"
        session = open_session(store.spec(entry), device="cpu")
        try:
            session.set_photo(photo[:24, :32])
            out = session.render(RenderParams(scale=scale))
            assert out.shape == (24 * scale, 32 * scale, 3) and out.dtype == np.float32
            assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
            # the sliders: pix = sem = 0 is the bicubic "before", exactly
            np.testing.assert_allclose(session.render(RenderParams(scale=scale, pix=0, sem=0)),
                                       np.clip(session.bicubic(scale), 0, 1), atol=1e-6)  # fmt: skip
        finally:
            session.close()
    rows = {r.name: r for r in store.rows()}
    assert f"architecture {arch}" in rows[f"{name} .pth"].about


def test_other_scales_come_from_the_networks_output_and_a_region_equals_its_crop(files, photo):
    _arch, _scale, pth, _st = files["compact_x2"]
    session = open_session(community_spec(pth), device="cpu")
    session.set_photo(photo[:20, :28])
    for scale in (1, 3, 4):
        whole = session.render(RenderParams(scale=scale))
        assert whole.shape == (20 * scale, 28 * scale, 3)
        region = (scale * 5, scale * 3, scale * 17, scale * 14)
        crop = session.render(RenderParams(scale=scale), region=region)
        np.testing.assert_allclose(crop, whole[region[1] : region[3], region[0] : region[2]], atol=1e-5)


def test_x1_x3_and_x8_models_offer_their_own_scale(tmp_path, photo):
    for factor in (1, 3, 8):
        net = Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=1, upscale=factor) if factor != 8 else \
            ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=8)  # fmt: skip
        path = tmp_path / f"x{factor}.safetensors"
        save_file(net.state_dict(), str(path))
        session = open_session(community_spec(path), device="cpu")
        assert factor in session.info.scales and session.network.scale == factor
        session.set_photo(photo[:12, :16])
        assert session.render(RenderParams(scale=factor)).shape == (12 * factor, 16 * factor, 3)


def test_cancel_stops_a_render_between_tiles(files, photo):
    _arch, _scale, pth, _st = files["esrgan_x4"]
    spec = replace(community_spec(pth), options={"tile": "32", "overlap": "8"})
    session = open_session(spec, device="cpu")
    session.set_photo(photo)
    control = Control(lambda done, total, _stage: control.cancel() if done >= 1 else None)
    with pytest.raises(Cancelled):
        session.render(RenderParams(), control=control)
    assert session.network_passes == 1  # stopped after the first tile


class _WritesAFile:
    """A pickle payload that creates a file when unpickled (what a malicious .pth does)."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):  # noqa: ANN204
        return (Path.write_text, (self.target, "pwned"))


def test_a_pickle_that_would_run_code_is_refused_and_runs_nothing(tmp_path, store, files):
    target = tmp_path / "pwned.txt"
    evil = tmp_path / "evil.pth"
    state = dict(torch.load(files["esrgan_x4"][2], weights_only=True)["params_ema"])
    with evil.open("wb") as f:
        torch.save({"params_ema": state, "payload": _WritesAFile(target)}, f)
    with pytest.raises(ModelError, match="refused.*could run code") as exc:
        store.import_model("community", {"weights": evil})
    assert exc.value.path == evil and not target.exists() and store.entries() == []
    with pytest.raises(ModelError, match="refused"):
        open_session(community_spec(evil), device="cpu")
    assert not target.exists()
    torch.load(evil, weights_only=False)  # the payload is live: an unguarded load runs it
    assert target.read_text() == "pwned"


def test_garbage_and_unknown_architectures_get_a_clear_message_naming_the_file(tmp_path, store):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelError, match="not a model file") as exc:
        store.import_model("community", {"weights": garbage})
    assert exc.value.path == garbage and str(garbage) in str(exc.value)
    unknown = tmp_path / "unknown.safetensors"
    save_file({"encoder.foo.weight": torch.zeros(4, 4), "decoder.bar.bias": torch.zeros(4)}, str(unknown))
    with pytest.raises(ModelError, match="unknown architecture") as exc:
        store.import_model("community", {"weights": unknown})
    assert exc.value.path == unknown
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(ModelError, match="empty"):
        store.import_model("community", {"weights": empty})
    assert store.entries() == []


def test_cli_imports_lists_and_upscales_with_a_community_model(tmp_path, store, files, capsys):
    _arch, _scale, _pth, st = files["span_x4"]
    src = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(1).random((20, 24, 3)) * 255).astype(np.uint8)).save(src)
    assert main(["models", "import", str(st), "--name", "Span four", "--quiet"]) == ExitCode.OK
    assert "architecture SPAN" in capsys.readouterr().out
    assert main(["models", "list"]) == ExitCode.OK
    listing = capsys.readouterr().out
    assert "Span four" in listing and "community" in listing
    out = tmp_path / "out.png"
    assert main(["upscale", str(src), "-o", str(out), "--model", "Span four", "--scale", "2", "--device", "cpu"]) == 0
    assert Image.open(out).size == (48, 40)
    direct = tmp_path / "direct.png"  # a file that is not imported works too
    assert main(["upscale", str(src), "-o", str(direct), "--model", str(st), "--device", "cpu"]) == ExitCode.OK
    assert Image.open(direct).size == (96, 80)
    # a batch of a folder with the imported model
    folder, dest = tmp_path / "in", tmp_path / "batch_out"
    folder.mkdir()
    for i in range(2):
        Image.open(src).save(folder / f"p{i}.png")
    assert main(["batch", str(folder), "-o", str(dest), "--model", "Span four", "--scale", "2", "--device", "cpu"]) == 0
    assert sorted(Image.open(p).size for p in dest.glob("*.png")) == [(48, 40), (48, 40)]


def test_cli_import_of_a_refused_file_says_why_and_adds_nothing(tmp_path, store, capsys):
    bad = tmp_path / "bad.ckpt"
    bad.write_text("not a checkpoint")
    code = main(["models", "import", str(bad), "--quiet"])
    err = capsys.readouterr().err
    assert code != ExitCode.OK and "bad.ckpt" in err and "Traceback" not in err
    assert store.entries() == []


def test_the_window_renders_a_community_x8_model_and_offers_its_scale(qtbot, window, tmp_path, photo_path):
    path = tmp_path / "x8.safetensors"
    save_file(ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=8).state_dict(), str(path))
    window.load_model(community_spec(path, "Eight"))
    window.editor.open_photo(photo_path)
    qtbot.waitUntil(lambda: window.editor.model_info is not None, timeout=60000)
    combo = window.controls.scale
    offered = [combo.itemData(i) for i in range(combo.count()) if isinstance(combo.itemData(i), int)]
    assert offered == [1, 2, 3, 4, 8] and window.editor.model_info.scales == (1, 2, 3, 4, 8)
    combo.setCurrentIndex(combo.findData(8))
    qtbot.waitUntil(lambda: window.editor.shown == "exact" and window.editor.shown_params.scale == 8, timeout=60000)
    assert (window.view.after.width(), window.view.after.height()) == (48 * 8, 40 * 8)
    from desktop_sr.engine.backends.bundled import bundled_spec

    window.controls.configure_for_model(False, False, (), False, "", (1, 2, 3, 4))  # what the bundled model makes
    offered = [combo.itemData(i) for i in range(combo.count()) if isinstance(combo.itemData(i), int)]
    assert offered == [1, 2, 3, 4] and combo.currentData() == 4 and bundled_spec().kind == "bundled"


def test_without_a_matching_torchvision_the_message_says_what_to_install(files, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def broken(name, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        if name == "spandrel":
            raise RuntimeError("operator torchvision::nms does not exist")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", broken)
    with pytest.raises(ModelError, match="matches this torch.*torchvision::nms") as exc:
        open_session(community_spec(files["span_x4"][3]), device="cpu")
    assert exc.value.path == files["span_x4"][3]
