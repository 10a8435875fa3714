"""What a new user met (issue 30): metadata in every format, plain messages, no display, a cluster that is gone."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from PIL import Image

from desktop_sr.imaging import SaveOptions, read_photo, write_photo
from desktop_sr.plain_errors import plain_reason, said_about

EXIF_IFD = 0x8769


def _camera_jpeg(path: Path) -> Path:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "Canon EOS R6"
    sub = exif.get_ifd(EXIF_IFD)
    sub[0x9003], sub[0x829A], sub[0x8827], sub[0x920A] = "2024:05:01 10:00:00", (1, 250), 400, (50, 1)
    Image.new("RGB", (24, 16), (120, 140, 200)).save(path, exif=exif)
    return path


@pytest.mark.parametrize("compression", ["deflate", "lzw", "none"])
@pytest.mark.parametrize("depth", [8, 16])
def test_a_tiff_from_a_jpeg_keeps_the_exposure_iso_and_original_date(tmp_path, compression, depth):
    """Measured: --format tiff (deflate, the default) kept only IFD0 (make, model); the Exif IFD was dropped."""
    photo = read_photo(_camera_jpeg(tmp_path / "in.jpg"))
    out = write_photo(tmp_path / "out.tif", photo.rgb, like=photo,
                      options=SaveOptions(format="tiff", compression=compression, bit_depth=depth))  # fmt: skip
    with Image.open(out) as im:
        exif = im.getexif()
        sub = exif.get_ifd(EXIF_IFD)
    assert exif.get(0x0110) == "Canon EOS R6"
    assert sub.get(0x9003) == "2024:05:01 10:00:00" and sub.get(0x8827) == 400
    assert _number(sub.get(0x829A)) == pytest.approx(1 / 250) and _number(sub.get(0x920A)) == pytest.approx(50)


def _number(value: object) -> float:
    """A rational tag as a number, however it comes back (a number, or the file's numerator and denominator)."""
    return value[0] / value[1] if isinstance(value, tuple) else float(value)


def test_an_offline_hub_error_is_one_plain_sentence():
    """huggingface_hub's LocalEntryNotFoundError wrapping httpx's ConnectError wrapping a name lookup failure."""

    class ConnectError(Exception):
        pass

    class LocalEntryNotFoundError(Exception):
        pass

    try:
        try:
            try:
                raise socket.gaierror(-2, "Name or service not known")
            except OSError as exc:
                raise ConnectError("[Errno -2] Name or service not known") from exc
        except ConnectError as exc:
            raise LocalEntryNotFoundError("An error happened while trying to locate the files on the Hub") from exc
    except LocalEntryNotFoundError as exc:
        said = plain_reason(exc)
    assert said.startswith("this machine is offline") and "Errno" not in said and "Hub" not in said


def test_a_photo_error_names_its_path_once():
    from desktop_sr.imaging import PhotoError

    err = PhotoError("hostile/bomb_20000.png", "20000 x 20000 is more than the limit")
    assert said_about(Path("hostile/bomb_20000.png"), err).count("bomb_20000.png") == 1
    assert said_about("a.png", ValueError("bad")) == "a.png: bad"


def test_get_pisa_offline_gives_the_baidu_password_and_does_not_ask_for_an_adapter_it_has(tmp_path):
    from desktop_sr.models.get_pisa import offline_instructions, staging

    stage = staging(tmp_path)
    text = offline_instructions(stage)
    assert "password: pisa" in text and "pisa_sr.pkl" in text
    adapter = tmp_path / "my_pisa.pkl"
    adapter.write_bytes(b"x")
    assert "pisa_sr.pkl" not in offline_instructions(stage, adapter=adapter)


def test_a_failed_hub_download_leaves_no_empty_base_folder(tmp_path, monkeypatch):
    import huggingface_hub

    from desktop_sr.models.download import download_base
    from desktop_sr.models.errors import DownloadError

    def offline(**kwargs: object) -> None:
        raise OSError(-3, "Temporary failure in name resolution")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(DownloadError, match="this machine is offline"):
        download_base(tmp_path / "get-pisa" / "stable-diffusion-2-1-base")
    assert not (tmp_path / "get-pisa" / "stable-diffusion-2-1-base").exists()


def test_without_a_display_the_app_says_so_and_names_the_commands_that_work(tmp_path):
    from desktop_sr.cli.entry import no_display_reason

    assert "DISPLAY is not set" in no_display_reason({}, "linux")
    assert "nothing serves DISPLAY=:97" in no_display_reason({"DISPLAY": ":97"}, "linux")
    assert no_display_reason({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert no_display_reason({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert no_display_reason({}, "win32") is None and no_display_reason({"DISPLAY": "host:10.0"}, "linux") is None


def test_a_ray_cluster_that_is_gone_is_said_in_seconds_without_rays_traceback(tmp_path, monkeypatch):
    from desktop_sr.batch import cluster_setup

    monkeypatch.setattr(cluster_setup.tempfile, "gettempdir", lambda: str(tmp_path))
    assert "no Ray cluster was started" in cluster_setup.unreachable("auto")
    with socket.socket() as free:  # a port nothing listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{port}")
    said = cluster_setup.unreachable("auto")
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in said and "ray start" in said
    assert f"127.0.0.1:{port}" in cluster_setup.unreachable(f"ray://127.0.0.1:{port}")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert cluster_setup.unreachable(f"127.0.0.1:{server.getsockname()[1]}") is None


def test_help_texts_name_every_action_and_their_own_exit_codes(capsys):
    from desktop_sr.cli import main

    for argv in (["models", "--help"], ["batch", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        text = capsys.readouterr().out
        assert "those of desktop_sr.cli" not in text and "Exit codes" in text
    with pytest.raises(SystemExit):
        main(["models", "--help"])
    assert "get-pisa" in capsys.readouterr().out


def test_a_ctrl_c_line_starts_its_own_line_after_a_progress_bar_in_a_log(capsys):
    from desktop_sr.cli import common

    bar = common.StageBar("photo.jpg")
    common.report_interrupted()
    bar.close()
    err = capsys.readouterr().err
    assert "\ndesktop-sr: interrupted" in err


def test_results_of_the_sample_photo_are_not_proposed_inside_the_installed_app(tmp_path, monkeypatch):
    """Measured: Save proposed .../desktop_sr/resources/sample_chelsea_x4.png, the batch .../resources_upscaled."""
    import platformdirs

    import desktop_sr
    from desktop_sr.imaging.preflight import writable_home_for
    from desktop_sr.resources import sample_photo_path
    from desktop_sr.ui.export_dialog import proposed_folder

    monkeypatch.setattr(platformdirs, "user_pictures_dir", lambda: str(tmp_path / "Pictures"))
    package = Path(desktop_sr.__file__).resolve().parent
    proposed = proposed_folder(sample_photo_path(), "")
    assert proposed == tmp_path / "Pictures" / "desktop-sr" and package not in proposed.parents
    mine = tmp_path / "shoot" / "a.jpg"
    mine.parent.mkdir()
    assert writable_home_for(mine) == mine.parent  # a user's photo: beside it, as before


def test_an_unreachable_target_keeps_its_entry_and_names_the_models_own_top_scale(qtbot):
    """Measured: a remembered print size too large for the bundled model fell back to "×1 (restore)" while the view
    kept the x8 size, and every render then failed with "region (0, 0, 2048, 1360) is outside the 256 x 170 result"."""
    from desktop_sr.target_size import TargetSize
    from desktop_sr.ui.size_choice import SizeChoice

    choice = SizeChoice()
    qtbot.addWidget(choice)
    choice.set_photo_size((256, 170))
    choice.set_target(TargetSize.print_size(300, 200, "cm", 300))
    choice.set_scales((1, 2, 3, 4))  # the bundled model loads
    assert choice.target() is not None and choice.currentText().startswith("300 × 200 cm")
    assert choice.scale() == 4 and "go up to ×4 (1024 × 680)" in choice.problem()


def test_a_view_measured_at_another_scale_renders_its_part_instead_of_failing(tmp_path):
    import numpy as np
    from fake_session import FakeSession, InlineQueue

    from desktop_sr.editor import EditorModel
    from desktop_sr.editor.executor import Executor
    from desktop_sr.engine.api import RenderParams
    from desktop_sr.engine.loader import ModelSpec

    Image.fromarray(np.full((17, 25, 3), 90, np.uint8)).save(tmp_path / "p.png")
    queue = InlineQueue(Executor(lambda job: FakeSession(job.spec.name)))
    ed = EditorModel(queue, RenderParams(scale=1))
    queue.editor = ed
    errors: list[str] = []
    shown: list[np.ndarray] = []
    ed.error.connect(lambda title, message: errors.append(message))
    ed.after_changed.connect(lambda image: shown.append(image) if image is not None else None)
    ed.load_model(ModelSpec(kind="fake", name="fake"))
    queue.run_all()
    ed.set_view((0, 0, 200, 136))  # the view of an x8 result while the render is x1
    ed.open_photo(tmp_path / "p.png")
    queue.run_all()
    assert not errors, errors
    assert ed.has_after and shown[-1].shape[:2] == (17, 25)


def test_a_batch_started_while_the_editor_loads_its_model_borrows_it_rather_than_load_a_copy():
    """Measured: the batch dialog opened during the first start's load loaded a second copy (about 20 s)."""
    import threading

    from fake_session import FakeSession

    from desktop_sr.editor.executor import BorrowedSession, SharedModel
    from desktop_sr.engine.loader import ModelSpec

    spec = ModelSpec(kind="fake", name="fake")
    shared, opened, lent = SharedModel(), [], []
    shared.expect(spec)  # the editor queued the load
    borrower = threading.Thread(target=lambda: lent.append(shared.lend(spec, "cpu", None, lambda: opened.append(1))))
    borrower.start()
    borrower.join(0.3)
    assert borrower.is_alive() and not opened  # it waits for the editor's model
    shared.hold(FakeSession("fake"), spec)  # the load finished
    borrower.join(5)
    assert isinstance(lent[0], BorrowedSession) and not opened
    lent[0].close()
    other = SharedModel()
    other.expect(spec)
    other.expect(None)  # that load failed: the batch loads its own at once
    other.lend(spec, "cpu", None, lambda: opened.append(1))
    assert opened == [1]
