"""Face restoration after any model (issue 27): face models in GFPGAN's, RestoreFormer's and CodeFormer's real
layouts (spandrel's own classes, random weights) are recognised, imported and refused where they do not belong; the
paste-back leaves everything outside the face masks as it was, changes the faces, has no seam; a photo with no face
is untouched; detection keeps >= 95 of the 100 LFW faces with no false alarm on the 100 non-faces.

A real 512 x 512 forward pass of these networks takes 15-40 s on a CPU, so the fast tests restore with a plumbing
stand-in (the aligned face inverted: any change shows) and one ``slow`` test runs each real network end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from desktop_sr.cli import ExitCode, main
from desktop_sr.engine.backends.faces import face_spec
from desktop_sr.engine.backends.faces.family import FAMILY, architecture_of
from desktop_sr.engine.errors import ModelError
from desktop_sr.engine.faces import FaceRestoration, FaceSettings, open_face_restorer
from desktop_sr.engine.faces import landmarks as lm
from desktop_sr.engine.families import family_for
from desktop_sr.models import ModelStore

pytest.importorskip("cv2", reason="the face detector is OpenCV 4's (the faces and test extras install it)")
if not lm.available():
    pytest.skip("OpenCV 5 has no Haar cascades (the test extra pins opencv-python<5)", allow_module_level=True)
skimage_data = pytest.importorskip("skimage.data", reason="the LFW faces and the astronaut ship in scikit-image")
from spandrel.architectures.Compact import Compact  # noqa: E402
from spandrel.architectures.GFPGAN import GFPGAN  # noqa: E402
from spandrel.architectures.RestoreFormer import RestoreFormer  # noqa: E402

codeformer = pytest.importorskip("spandrel_extra_arches.architectures.CodeFormer", reason="the faces extra")


def _gfpgan() -> torch.nn.Module:  # the hyper-parameters spandrel reads GFPGAN v1.3/v1.4 with
    return GFPGAN(out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None, fix_decoder=False,
                  num_mlp=8, input_is_latent=True, different_w=True, narrow=1, sft_half=True)  # fmt: skip


ARCHES = {
    "GFPGAN": _gfpgan,
    "RestoreFormer": RestoreFormer,
    "CodeFormer": lambda: codeformer.CodeFormer(connect_list=["32", "64", "128", "256"]),
}


def save_layout(name: str, path: Path, random: bool = True) -> Path:
    """An architecture's real layout (built on the meta device: names and shapes, no initialisation), saved the way
    the releases are (``params_ema`` in a ``.pth``; fp16 halves the bytes written); random weights, or a constant
    where only the layout matters (filling 90 M random numbers costs seconds)."""
    with torch.device("meta"):
        layout = ARCHES[name]().state_dict()
    gen = torch.Generator().manual_seed(0)
    fill = (lambda v: (torch.randn(v.shape, generator=gen) * 0.02).half()) if random else \
        (lambda v: torch.full(v.shape, 0.01, dtype=torch.float16))  # fmt: skip
    torch.save({"params_ema": {k: fill(v) for k, v in layout.items()}}, path)
    return path


@pytest.fixture(scope="session")
def restoreformer(tmp_path_factory) -> Path:
    """RestoreFormer's real layout (the smallest of the three to build): what the fast tests import and run."""
    return save_layout("RestoreFormer", tmp_path_factory.mktemp("faces") / "RestoreFormer.pth", random=False)


@pytest.fixture(scope="session")
def names_only(tmp_path_factory) -> dict[str, Path]:
    """Each architecture's tensor names with one-number tensors: what the torch-free recognition reads."""
    root = tmp_path_factory.mktemp("names")
    out = {}
    for name, make in ARCHES.items():
        with torch.device("meta"):
            keys = list(make().state_dict())
        out[name] = root / f"{name}.pth"
        torch.save({"params_ema": {k: torch.zeros(1) for k in keys}}, out[name])
    return out


@pytest.fixture
def store(tmp_path, monkeypatch) -> ModelStore:
    monkeypatch.setenv("DESKTOP_SR_MODELS_DIR", str(tmp_path / "models"))
    return ModelStore(tmp_path / "models")


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage_data.astronaut().astype(np.float32) / 255.0  # one face, about 95 px


class Inverted:
    """A plumbing stand-in for a face network: the aligned face inverted (any change shows; the paste-back is what
    is tested)."""

    name, architecture, has_fidelity, licence = "inverted", "test", False, "none"

    def restore(self, crop: np.ndarray, fidelity: float) -> np.ndarray:
        return 1.0 - crop


def test_each_architecture_is_recognised_by_its_tensor_names_imported_and_its_licence_recorded(
    names_only, restoreformer, store
):
    licences = {}
    for name, path in names_only.items():
        assert architecture_of(path).name == name  # torch-free, from the checkpoint's names alone
        assert family_for([path]) is FAMILY  # before the community family, which would refuse it
        licences[name] = architecture_of(path).licence
    # spandrel builds each network from its file (GFPGAN and CodeFormer take seconds: the slow test imports them)
    entry = store.import_model("faces", {"weights": restoreformer}, name="RestoreFormer")
    assert entry.details["architecture"] == "RestoreFormer" and entry.details["licence"] == licences["RestoreFormer"]
    assert "non-commercial" in licences["GFPGAN"] and "S-Lab" in licences["CodeFormer"]
    assert "non-commercial" in licences["CodeFormer"] and "Apache-2.0" in licences["RestoreFormer"]
    with pytest.raises(ModelError, match="cannot be the default"):
        store.set_default("RestoreFormer")  # a face model never makes a result


def test_a_model_of_the_wrong_kind_gets_a_clear_message(tmp_path, restoreformer, capsys):
    upscaler = tmp_path / "compact.pth"
    torch.save(Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=1, upscale=2).state_dict(), upscaler)
    with pytest.raises(ModelError, match="RealESRGAN Compact SR model, not a face restoration model"):
        open_face_restorer(face_spec(upscaler), device="cpu")
    photo = tmp_path / "p.png"
    Image.new("RGB", (16, 16)).save(photo)
    out = tmp_path / "o.png"
    assert main(["upscale", str(photo), "-o", str(out), "--restore-faces", str(upscaler)]) == ExitCode.MODEL
    assert "not a face restoration model" in capsys.readouterr().err and not out.exists()
    assert main(["upscale", str(photo), "-o", str(out), "--model", str(restoreformer)]) == ExitCode.MODEL
    assert "cannot make the result: use it with --restore-faces" in capsys.readouterr().err and not out.exists()


def test_outside_the_faces_the_result_is_unchanged_inside_it_changes_and_no_seam(astronaut):
    done = FaceRestoration(Inverted()).apply(astronaut, FaceSettings(strength=1.0))
    assert len(done.restored) == 1 and not done.too_small
    placed = next(iter(done.placed.values()))
    x0, y0, x1, y1 = placed.rect
    weight = np.zeros(astronaut.shape[:2], np.float32)
    weight[y0:y1, x0:x1] = placed.weight
    diff = np.abs(done.image - astronaut).max(-1)
    assert diff[weight == 0].max() == 0.0  # outside the mask: bit for bit (the goal: within 1 level)
    face = done.restored[0].box
    assert diff[face[1] : face[3], face[0] : face[2]].mean() > 0.2  # inside: the face changed
    # no seam: the weight falls over >= 7 px, so in the feather no step of the output is larger than the two
    # images' own steps plus 15 % of their difference (a hard paste steps by the whole difference at once)
    a, p = astronaut[y0:y1, x0:x1], placed.pixels
    out = done.image[y0:y1, x0:x1]
    feather = (placed.weight > 0.01) & (placed.weight < 0.99)
    assert np.abs(np.diff(placed.weight, axis=1)).max() <= 0.15 and feather.sum() > 1000
    step = lambda img: np.abs(np.diff(img, axis=1)).max(-1)  # noqa: E731
    gap = np.abs(p - a).max(-1)
    allowed = np.maximum(step(a), step(p)) + 0.15 * np.maximum(gap[:, 1:], gap[:, :-1]) + 1e-4
    assert (step(out) <= allowed)[feather[:, 1:]].all()
    hard = np.where(placed.weight[..., None] > 0, p, a)
    assert step(out)[feather[:, 1:]].max() < 0.5 * step(hard).max()  # what a seam would be
    # strength 0 is the result itself; a half strength re-blends the cached faces without a network pass
    assert np.array_equal(FaceRestoration.blend(astronaut, done, 0.0), astronaut)
    half = FaceRestoration.blend(astronaut, done, 0.5)
    expected = np.clip(a + 0.5 * placed.weight[..., None] * (p - a), 0, 1)
    assert np.allclose(half[y0:y1, x0:x1], expected, atol=1e-6) and np.array_equal(half[weight == 0],
                                                                                  astronaut[weight == 0])  # fmt: skip


def test_a_photo_without_a_face_is_untouched_and_small_faces_are_skipped_and_counted(astronaut):
    rng = np.random.default_rng(3)
    landscape = skimage_data.coffee().astype(np.float32) / 255.0
    done = FaceRestoration(Inverted()).apply(landscape, FaceSettings())
    assert not done.faces and np.array_equal(done.image, landscape) and done.summary() == "no face found"
    small = np.asarray(Image.fromarray(skimage_data.astronaut()).resize((256, 256)), np.float32) / 255.0
    small = np.clip(small + rng.normal(0, 0.001, small.shape).astype(np.float32), 0, 1)
    done = FaceRestoration(Inverted()).apply(small, FaceSettings(min_face=64))
    assert len(done.too_small) == 1 and not done.restored and np.array_equal(done.image, small)
    assert "1 too small" in done.summary()


def test_detection_keeps_95_of_100_lfw_faces_and_no_false_alarm(astronaut):
    crops = skimage_data.lfw_subset()  # 100 faces then 100 non-faces, 25 x 25 (the project's face benchmark)

    def canvas(crop: np.ndarray) -> np.ndarray:
        big = Image.fromarray((crop * 255).astype(np.uint8)).resize((100, 100), Image.Resampling.BICUBIC)
        c = np.full((160, 160), 128, np.uint8)
        c[30:130, 30:130] = np.asarray(big)
        return np.repeat(c[..., None], 3, axis=2).astype(np.float32) / 255.0

    found = alarms = 0
    for i, crop in enumerate(crops):
        faces = lm.detect(canvas(crop))
        if i < 100:
            hit = [f for f in faces if f.box[0] <= 80 <= f.box[2] and f.box[1] <= 80 <= f.box[3]]
            found += bool(hit)
            for f in hit:  # plausible landmarks: eyes level-ish, in the box's upper half, mouth below them
                p = f.array()
                assert f.box[0] <= p[0, 0] < p[1, 0] <= f.box[2] and p[0, 1] < (f.box[1] + f.box[3]) / 2
                assert p[3, 1] > p[0, 1] and p[4, 1] > p[1, 1]
        else:
            alarms += bool(faces)
    assert found >= 95 and alarms == 0
    (face,) = lm.detect(astronaut)
    assert face.eyes_detected  # the astronaut's eyes are found by the eye cascade, not placed from the box
    assert np.allclose(face.array()[:2], [[201.5, 100.5], [247, 103]], atol=6)


def test_the_cli_restores_faces_after_the_upscaler_and_the_batch_too(
    tmp_path, restoreformer, store, monkeypatch, capsys
):
    """The command line and the batch with a real face model file (RestoreFormer's layout), its network call
    replaced by the plumbing stand-in (a real pass is the slow test's)."""
    from desktop_sr.engine.backends.faces import load

    monkeypatch.setattr(load.SpandrelFaceRestorer, "restore", lambda self, crop, w: 1.0 - crop)
    up = tmp_path / "x1.pth"
    net = Compact(num_in_ch=3, num_out_ch=3, num_feat=4, num_conv=1, upscale=1)
    torch.nn.init.zeros_(net.body[-1].weight)  # output = the input (Compact adds the nearest upscale of it)
    torch.nn.init.zeros_(net.body[-1].bias)
    torch.save(net.state_dict(), up)
    photo = tmp_path / "astronaut.png"
    head = skimage_data.astronaut()[:256, 100:356]  # the face (about 95 px) and its surroundings
    Image.fromarray(head).save(photo)
    plain, faced = tmp_path / "plain.png", tmp_path / "faced.png"
    base = ["upscale", str(photo), "--model", str(up), "--scale", "1", "--device", "cpu", "--quiet"]
    assert main([*base, "-o", str(plain)]) == ExitCode.OK
    faces = ["--restore-faces", str(restoreformer), "--face-strength", "1"]
    assert main([*base, "-o", str(faced), *faces]) == ExitCode.OK
    err = capsys.readouterr().err
    assert "licence: RestoreFormer" in err and "1 face restored" in err
    a = np.asarray(Image.open(plain), np.int16)
    b = np.asarray(Image.open(faced), np.int16)
    changed = np.abs(a - b).max(-1)
    assert changed[70:160, 80:170].mean() > 30 and changed[:, :20].max() <= 1 and changed[230:].max() <= 1
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(head).save(folder / "a.png")
    dest = tmp_path / "batch"
    assert main(["batch", str(folder), "-o", str(dest), "--model", str(up), "--scale", "1", "--device", "cpu",
                 "--quiet", "--restore-faces", str(restoreformer)]) == ExitCode.OK  # fmt: skip
    (written,) = dest.glob("*.png")
    assert np.abs(np.asarray(Image.open(written), np.int16) - b).max() <= 1


@pytest.mark.parametrize(
    "name",
    # RestoreFormer (8 s) with -m slow: CI restores faces with it through the CLI and the batch (the test above)
    [pytest.param(n, marks=pytest.mark.slow) if n == "RestoreFormer" else n for n in ARCHES],
)
def test_each_real_network_restores_the_astronauts_face_and_leaves_the_rest(name, tmp_path, astronaut):
    path = save_layout(name, tmp_path / f"{name}.pth")  # random weights
    restorer = open_face_restorer(face_spec(path), device="cpu")  # spandrel builds it from the file
    assert restorer.architecture == name and restorer.has_fidelity == (name == "CodeFormer")
    done = FaceRestoration(restorer).apply(astronaut, FaceSettings(strength=1.0, fidelity=0.7))
    diff = np.abs(done.image - astronaut).max(-1)
    placed = next(iter(done.placed.values()))
    x0, y0, x1, y1 = placed.rect
    outside = np.ones(diff.shape, bool)
    outside[y0:y1, x0:x1] = placed.weight == 0
    assert diff[outside].max() == 0.0 and diff[y0:y1, x0:x1].max() > 0.05


def test_models_get_shows_the_licence_first_and_downloads_a_published_face_model(restoreformer, store, capsys):
    """The official releases cannot be reached here: a local server serves the file at the address given."""
    import functools
    import hashlib
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(restoreformer.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/{restoreformer.name}"
    try:
        assert main(["models", "get"]) == ExitCode.OK
        listing = capsys.readouterr().out
        assert "codeformer" in listing and "S-Lab" in listing and "gfpgan-1.4" in listing
        # non-commercial: nothing is fetched until the licence is accepted
        assert main(["models", "get", "codeformer", "--url", url, "--quiet"]) == ExitCode.USAGE
        err = capsys.readouterr().err
        assert "licence: CodeFormer" in err and "--accept-licence" in err and store.entries() == []
        assert main(["models", "get", "restoreformer", "--url", url, "--quiet"]) == ExitCode.OK
        assert "licence: RestoreFormer: RestoreFormer (wzhouxiff): Apache-2.0" in capsys.readouterr().err
    finally:
        server.shutdown()
    (entry,) = store.entries()
    assert entry.kind == "faces" and entry.details["architecture"] == "RestoreFormer"
    assert entry.source["sha256"] == hashlib.sha256(restoreformer.read_bytes()).hexdigest()
    assert entry.source["url"] == url and not (store.root / ".downloads" / "published" / "restoreformer").exists()
    assert main(["models", "verify", entry.id, "--quiet"]) == ExitCode.OK


def test_the_batch_dialog_offers_the_stores_face_models_with_their_licence(qtbot, tmp_path, restoreformer, store):
    pytest.importorskip("pytestqt")
    from desktop_sr.engine.api import RenderParams
    from desktop_sr.engine.backends.bundled import bundled_spec
    from desktop_sr.engine.faces import FaceChoice
    from desktop_sr.ui.batch_dialog import BatchDialog

    store.import_model("faces", {"weights": restoreformer}, name="RestoreFormer", mode="reference")
    dlg = BatchDialog(None, model_spec=bundled_spec(), params=RenderParams(scale=2), current_photo=None,
                      settings_dir=tmp_path / "config")  # fmt: skip
    qtbot.addWidget(dlg)
    dlg.output.setText(str(tmp_path / "out"))
    row = dlg.faces
    assert [row.model.itemText(i) for i in range(row.model.count())] == ["Off", "RestoreFormer"]
    assert dlg.batch_settings().faces is None and not row.strength.isEnabled()
    off = dlg.batch_settings().signature()
    row.model.setCurrentIndex(1)
    row.strength.setValue(0.6)
    assert "Licence: RestoreFormer (wzhouxiff): Apache-2.0" in row.licence.text()  # shown before it is used
    faces = dlg.batch_settings().faces
    assert isinstance(faces, FaceChoice) and faces.settings.strength == 0.6 and faces.spec.kind == "faces"
    assert dlg.batch_settings().signature() != off  # a rerun with faces redoes the photos
