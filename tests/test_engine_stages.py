"""The render stages: one name each, the same words as before (progress reports, timing lines, the GUI's text)."""

from __future__ import annotations

import pytest

from desktop_sr.editor.render_time import JobClock
from desktop_sr.engine.stages import Stage
from desktop_sr.engine.timing import StageTimes
from desktop_sr.timing import render_fraction


def test_the_values_are_the_words_the_engine_always_reported():
    assert [s.value for s in Stage] == [
        "encode", "unet", "unet-pix", "unet-full", "unet-pix+full", "decode", "colour fix", "upscale",
    ]  # fmt: skip
    assert f"{Stage.UNET_PIX}" == str(Stage.UNET_PIX) == "unet-pix" and Stage.DECODE == "decode"
    assert Stage.unet("pix") is Stage.UNET_PIX and Stage.unet("full") is Stage.UNET_FULL


@pytest.mark.parametrize(
    ("name", "kind"),
    [("unet-pix", Stage.UNET), ("unet-pix+full", Stage.UNET), ("unet", Stage.UNET), ("encode", Stage.ENCODE),
     ("upscale", Stage.UPSCALE), ("Copying unet/x.bin", None), ("", None)],
)  # fmt: skip
def test_a_report_names_a_stage_or_is_a_label_in_words(name, kind):
    assert Stage.kind_of(name) is kind
    assert (Stage.of(name) is None) == (kind is None)


def test_timing_lines_keep_their_spaced_names():
    times = StageTimes()
    for stage in (Stage.ENCODE, Stage.UNET_PIX, Stage.UNET_PAIR, Stage.COLOUR_FIX):
        with times.stage(stage):
            pass
    with times.stage("write"):  # the command line times its own steps by name
        pass
    assert list(times.as_dict()) == ["encode", "unet pix", "unet pix+full", "colour fix", "write"]
    assert all(type(name) is str for name in times.as_dict())


def test_progress_fractions_and_model_time_follow_the_stage_kind():
    assert render_fraction(Stage.ENCODE, 1, 2) == pytest.approx(0.1)
    assert render_fraction("unet-full", 2, 2) == pytest.approx(0.75)
    assert render_fraction(Stage.UPSCALE, 1, 4) == pytest.approx(0.25)  # the whole render
    assert render_fraction("Copying x.bin", 1, 2) == pytest.approx(0.5)
    clock = JobClock(1, "Rendering", clock=lambda: 0.0)
    clock.report(1, 2, Stage.DECODE)
    assert not clock.model_ran
    clock.report(1, 4, "unet-pix")
    assert clock.model_ran
