"""A result too large for the memory left is refused up front with a message that says what would fit, in the
engine, the batch runner (that file fails, the others are written) and the app (a dialog, the window survives)."""

from __future__ import annotations

import numpy as np
import pytest
from device_target import TARGET
from PIL import Image

from desktop_sr.engine.api import RenderParams
from desktop_sr.engine.backends.pisa import pisa_spec
from desktop_sr.engine.errors import TooLarge
from desktop_sr.engine.hardware import memory
from desktop_sr.engine.hardware.memory import available_ram, check_output_fits

MB = 1024**2


def test_the_machine_reports_its_free_memory():
    free = available_ram()
    assert free is not None and 64 * MB < free < 1 << 50


def test_the_message_names_the_size_and_the_scale_that_fits():
    gb = 1024**3
    with pytest.raises(TooLarge) as err:  # 4000 x 3000 at x4, 100 bytes a pixel + 1 GB: 18.9 GB; x2 needs 5.5 GB
        check_output_fits(4000, 3000, 4, 100, available=6 * gb, overhead=gb)
    text = str(err.value)
    assert "16000 × 12000 pixels (192 MP)" in text and "18.9 GB" in text and "6.0 GB is free" in text
    assert "Choose ×2" in text
    with pytest.raises(TooLarge, match="Crop or downsize"):
        check_output_fits(4000, 3000, 4, 100, available=5 * gb, overhead=gb)
    check_output_fits(4000, 3000, 2, 100, available=6 * gb, overhead=gb)  # fits: no error


def test_a_session_refuses_before_any_network_pass(tiny_model, monkeypatch):
    from desktop_sr.engine.backends.pisa.session import load_pisa_session

    session = load_pisa_session(tiny_model["base"], tiny_model["pkl"], device=TARGET.device)
    calls = []
    session.model.unet.register_forward_hook(lambda *a: calls.append(1))
    session.set_photo(np.random.default_rng(0).random((40, 48, 3), dtype=np.float32))
    result_x4 = 48 * 4 * 40 * 4 * session.BYTES_PER_OUTPUT_PX
    monkeypatch.setattr(memory, "available_ram", lambda: session.RENDER_OVERHEAD + result_x4 * 6 // 10)
    with pytest.raises(TooLarge, match="Choose ×3"):
        session.render(RenderParams(scale=4))
    assert calls == []  # refused before the UNet ran
    assert session.render(RenderParams(scale=3)).shape == (120, 144, 3)  # what the message advised works
    session.close()


def test_the_batch_fails_only_the_photo_that_does_not_fit(tmp_path, tiny_model, monkeypatch):
    from desktop_sr.batch import BatchRunner, BatchSettings, make_plan
    from desktop_sr.batch.results import Status
    from desktop_sr.engine.loader import open_session

    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(1)
    for name, side in (("small.png", 16), ("huge.png", 64), ("other.png", 16)):
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(src / name)
    session = open_session(pisa_spec(tiny_model["base"], tiny_model["pkl"]), device=TARGET.device)
    huge = 64 * 4 * 64 * 4 * session.BYTES_PER_OUTPUT_PX
    monkeypatch.setattr(memory, "available_ram", lambda: session.RENDER_OVERHEAD + huge // 2)
    out = tmp_path / "out"
    summary = BatchRunner(make_plan([src], BatchSettings(out, RenderParams(scale=4))), session).run()
    status = {r.source.name: r for r in summary.results}
    assert status["huge.png"].status == Status.FAILED and "needs about" in status["huge.png"].reason
    assert status["small.png"].status == Status.WRITTEN and status["other.png"].status == Status.WRITTEN
    assert sorted(p.name for p in out.glob("*.png")) == ["other_x4.png", "small_x4.png"]  # nothing half-written
    session.close()
