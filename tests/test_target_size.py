"""Output size by target: exact sizes for long edge, fit and print, the model scale chosen, the errors, the DPI
written under both policies, and the CLI and batch giving exactly the size asked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from device_target import TARGET
from PIL import Image

from desktop_sr.batch import BatchRunner, BatchSettings, make_plan
from desktop_sr.cli import ExitCode, main
from desktop_sr.engine.api import RenderParams
from desktop_sr.imaging import SaveOptions, read_photo, write_photo
from desktop_sr.target_size import (
    TargetError,
    TargetKind,
    TargetSize,
    TargetTooLarge,
    check_fits,
    parse_box,
    parse_print,
    plan_size,
    resample,
)

DATA = Path(__file__).parent / "data"


# -- the arithmetic ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("target", "photo", "size"),
    [
        (TargetSize.long_edge(6000), (4000, 3000), (6000, 4500)),
        (TargetSize.long_edge(6000), (3000, 4000), (4500, 6000)),  # portrait: the long edge is the height
        (TargetSize.long_edge(1000), (333, 100), (1000, 300)),
        (TargetSize.fit(3840, 2160), (1000, 500), (3840, 1920)),  # the width binds
        (TargetSize.fit(3840, 2160), (1000, 750), (2880, 2160)),  # the height binds
        (TargetSize.fit(3840, 2160), (600, 900), (1440, 2160)),  # a portrait in a landscape box
        (TargetSize.print_size(30, 20, "cm", 300), (1500, 1000), (3543, 2362)),  # 30 cm = 11.811 in x 300
        (TargetSize.print_size(30, 20, "cm", 300), (1000, 1500), (2362, 3543)),  # the print turns with the photo
        (TargetSize.print_size(12, 8, "in", 240), (1200, 900), (2560, 1920)),  # 12x8 in box, 4:3 photo fits 2560
        (TargetSize.print_size(297, 210, "mm", 300), (1754, 1240), (3508, 2480)),  # A4 landscape at 300 dpi
    ],
)
def test_exact_output_sizes(target, photo, size):
    assert target.pixels(*photo) == size


@pytest.mark.parametrize(
    ("photo", "target", "scale", "resampled"),
    [
        ((1500, 1000), TargetSize.long_edge(3000), 2, False),  # exactly x2: no resampling at all
        ((1500, 1000), TargetSize.long_edge(3001), 3, True),  # just over x2: x3, then down
        ((1500, 1000), TargetSize.long_edge(4400), 3, True),
        ((1500, 1000), TargetSize.long_edge(6000), 4, False),
        ((1500, 1000), TargetSize.print_size(30, 20, "cm", 300), 3, True),  # 3543 px = x2.36
    ],
)
def test_the_smallest_model_scale_that_reaches_the_target(photo, target, scale, resampled):
    plan = plan_size(photo, target, scales=(2, 3, 4))
    assert plan.scale == scale and plan.resample is resampled
    assert plan.size == target.pixels(*photo)


def test_scale_one_serves_a_same_size_target_when_the_engine_offers_it():
    assert plan_size((800, 600), TargetSize.long_edge(800), scales=(1, 2, 3, 4)).scale == 1
    assert plan_size((800, 600), TargetSize.long_edge(800), scales=(2, 3, 4)).scale == 2


def test_a_target_smaller_than_the_photo_says_it_would_downscale():
    with pytest.raises(TargetError, match=r"2000 × 1333 pixels, smaller than the photo \(3000 × 2000\): that would "
                       r"downscale it"):  # fmt: skip
        plan_size((3000, 2000), TargetSize.long_edge(2000))


def test_a_target_beyond_the_largest_scale_is_refused():
    with pytest.raises(TargetError, match=r"5\.00 times the photo .* up to ×4"):
        plan_size((1000, 500), TargetSize.long_edge(5000), scales=(2, 3, 4))


def test_a_target_larger_than_memory_allows_names_what_fits():
    plan = plan_size((4000, 3000), TargetSize.long_edge(14000), scales=(2, 3, 4))
    assert plan.scale == 4
    with pytest.raises(TargetTooLarge, match=r"needs a ×4 render \(16000 × 12000\).* 8000 px on the long edge \(×2\)"):
        check_fits(plan, 70, overhead=1 << 30, available=6 << 30)  # x2 needs 4.4 GB, x3 8.6 GB, x4 14.4 GB
    check_fits(plan, 70, overhead=1 << 30, available=64 << 30)  # plenty: no error


def test_the_kind_is_an_enum_that_keeps_its_word():
    """A kind given as its word becomes the member; the word is what labels, messages and a batch's saved signature
    (JSON of the target) carry, so the enum changes none of them."""
    import json
    from dataclasses import asdict

    target = TargetSize("fit", 3840, 2160)
    assert target.kind is TargetKind.FIT and target == TargetSize.fit(3840, 2160)
    assert f"{TargetKind.LONG_EDGE}" == "long-edge" and TargetSize.print_size(30, 20).kind is TargetKind.PRINT
    assert json.dumps(asdict(target), sort_keys=True) == (
        '{"dpi": null, "height": 2160, "kind": "fit", "unit": "px", "width": 3840}'
    )
    with pytest.raises(TargetError, match="unknown target 'box'; choose one of long-edge, fit, print"):
        TargetSize("box", 100, 100)


def test_parsing():
    assert parse_box("3840x2160") == (3840, 2160) and parse_box(" 800 × 600 ") == (800, 600)
    assert parse_print("30x20cm") == (30.0, 20.0, "cm") and parse_print('12x8"') == (12.0, 8.0, "in")
    assert parse_print("29,7x21cm") == (29.7, 21.0, "cm")
    for bad in ("30x20", "axb", "0x5cm"):
        with pytest.raises(TargetError):
            parse_print(bad)
    with pytest.raises(TargetError):
        parse_box("3840")


def test_lanczos_resample_is_exact_in_size_and_faithful():
    y, x = np.mgrid[0:300, 0:400] / 400.0
    smooth = np.stack([x, y, 0.5 + 0.3 * np.sin(6 * x)], axis=-1).astype(np.float32)
    out = resample(smooth, (257, 193))
    assert out.shape == (193, 257, 3) and out.dtype == np.float32
    rows, cols = np.mgrid[0:193, 0:257] + 0.5
    y2, x2 = rows * (300 / 193) - 0.5, cols * (400 / 257) - 0.5  # where each output pixel's centre falls
    expected = np.stack([x2 / 400, y2 / 400, 0.5 + 0.3 * np.sin(6 * x2 / 400)], axis=-1)
    inner = (slice(4, -4), slice(4, -4))
    assert np.abs(out[inner] - expected[inner]).max() < 2e-3  # float all the way: no 8-bit steps


# -- the DPI written --------------------------------------------------------------------------------------------------
@pytest.fixture
def photo_72dpi(tmp_path):
    src = tmp_path / "scan.jpg"
    exif = Image.Exif()
    exif[0x011A] = exif[0x011B] = 72.0
    exif[0x0128] = 2
    Image.open(DATA / "astronaut_64.png").convert("RGB").save(src, dpi=(72, 72), exif=exif, quality=95)
    return read_photo(src)


def _dpi(path: Path) -> tuple[float, float]:
    with Image.open(path) as img:
        info = img.info.get("dpi")
        if info is None and "resolution" in img.info:
            info = img.info["resolution"]
        return float(info[0]), float(info[1])


def _exif_dpi(path: Path) -> float:
    with Image.open(path) as img:
        return float(img.getexif()[0x011A])


@pytest.mark.parametrize("name", ["r.png", "r.jpg", "r.tif", "r16.png", "r16.tif"])
def test_dpi_policies_are_written_to_every_format(photo_72dpi, tmp_path, name):
    rgb = np.zeros((256, 256, 3), np.float32)
    depth = 16 if "16" in name else 8
    keep_size = write_photo(tmp_path / ("size_" + name), rgb, like=photo_72dpi, scale=4,
                            options=SaveOptions(bit_depth=depth))  # fmt: skip
    keep_dpi = write_photo(tmp_path / ("dpi_" + name), rgb, like=photo_72dpi, scale=4,
                           options=SaveOptions(bit_depth=depth, dpi_policy="keep-dpi"))  # fmt: skip
    printed = write_photo(tmp_path / ("print_" + name), rgb, like=photo_72dpi, scale=4,
                          options=SaveOptions(bit_depth=depth, dpi=300))  # fmt: skip
    assert _dpi(keep_size) == pytest.approx((288, 288), abs=0.05)  # 72 x 4: same print size
    assert _dpi(keep_dpi) == pytest.approx((72, 72), abs=0.05)  # the print is 4 times larger
    assert _dpi(printed) == pytest.approx((300, 300), abs=0.05)
    if name in ("r.png", "r.jpg", "r16.png"):  # these carry the full EXIF: it must agree with the file
        assert _exif_dpi(keep_size) == pytest.approx(288)
        assert _exif_dpi(keep_dpi) == pytest.approx(72)
        assert _exif_dpi(printed) == pytest.approx(300)


# -- end to end -------------------------------------------------------------------------------------------------------
def model_args(tiny_model) -> list[str]:
    return ["--model", str(tiny_model["base"]), "--lora", str(tiny_model["pkl"]), "--device", TARGET.device, "--quiet"]


@pytest.mark.parametrize(
    ("option", "size", "name"),
    [
        (["--long-edge", "75"], (75, 60), "in_75px.png"),  # x2 (80 x 64), then down
        (["--fit", "70x70"], (70, 56), "in_fit70x70.png"),
        (["--print", "1x1in", "--dpi", "72"], (72, 58), "in_print1x1in.png"),  # 72 x 57.6 -> 58
    ],
)
def test_cli_gives_exactly_the_size_asked(tmp_path, tiny_model, option, size, name):
    src = tmp_path / "in.png"
    Image.open(DATA / "astronaut_64.png").crop((0, 0, 40, 32)).save(src, dpi=(100, 100))
    out = tmp_path / "out"
    assert main(["upscale", str(src), "-o", str(out), *option, *model_args(tiny_model)]) == ExitCode.OK
    with Image.open(out / name) as img:
        assert img.size == size
        dpi = img.info["dpi"][0]
    if "--print" in option:
        assert dpi == pytest.approx(72, abs=0.05)
    else:  # keep-print-size: the DPI grows by the exact ratio of the result to the photo
        assert dpi == pytest.approx(100 * size[0] / 40, abs=0.05)


def test_cli_refuses_a_downscale_and_a_double_size(tmp_path, tiny_model, capsys):
    src = tmp_path / "in.png"
    Image.open(DATA / "astronaut_64.png").save(src)
    code = main(["upscale", str(src), "-o", str(tmp_path / "o.png"), "--long-edge", "50", *model_args(tiny_model)])
    assert code == ExitCode.USAGE and "would downscale" in capsys.readouterr().err  # said before the model loads
    assert not (tmp_path / "o.png").exists()
    code = main(["upscale", str(src), "-o", str(tmp_path / "o.png"), "--scale", "2", "--fit", "9x9",
                 *model_args(tiny_model)])  # fmt: skip
    assert code == ExitCode.USAGE and "they all set the size" in capsys.readouterr().err


def test_batch_reaches_the_target_for_every_photo(tmp_path, tiny_model):
    from desktop_sr.engine.backends.pisa.session import load_pisa_session

    folder = tmp_path / "in"
    folder.mkdir()
    Image.open(DATA / "astronaut_64.png").crop((0, 0, 40, 32)).save(folder / "wide.png", dpi=(72, 72))
    Image.open(DATA / "coffee_128.png").crop((0, 0, 24, 48)).save(folder / "tall.png", dpi=(72, 72))
    save = SaveOptions(format="png", dpi_policy="keep-dpi")
    settings = BatchSettings(output_dir=tmp_path / "out", params=RenderParams(), template="{stem}_{size}",
                             target=TargetSize.long_edge(75), save=save)  # fmt: skip
    plan = make_plan([folder], settings)
    assert [i.target.name for i in plan.items] == ["tall_75px.png", "wide_75px.png"]
    session = load_pisa_session(tiny_model["base"], tiny_model["pkl"], device=TARGET.device)
    summary = BatchRunner(plan, session).run()
    assert summary.ok, summary.failures
    with (
        Image.open(tmp_path / "out" / "wide_75px.png") as wide,
        Image.open(tmp_path / "out" / "tall_75px.png") as tall,
    ):
        assert wide.size == (75, 60) and tall.size == (38, 75)  # tall: 24 x 48 at x2 is 48 x 96, then down
        assert wide.info["dpi"][0] == pytest.approx(72, abs=0.05)  # keep-dpi


def test_batch_cli_with_a_print_target(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.open(DATA / "astronaut_64.png").crop((0, 0, 40, 32)).save(folder / "a.png")
    out = tmp_path / "out"
    # the bundled model (x4 of 40 x 32 in a second): a print target is the same for any model, and PiSA-SR would first
    # enlarge this small photo to 512 px (the 13 s of this test before)
    code = main(["batch", str(folder), "-o", str(out), "--print", "4x3cm", "--dpi", "60", "--model", "bundled",
                 "--device", TARGET.device, "--quiet"])  # fmt: skip
    assert code == ExitCode.OK
    with Image.open(out / "a_print4x3cm.png") as img:  # 4 cm at 60 dpi = 94.5 px; 3 cm = 70.9 -> 89 x 71 fits
        assert img.size == (89, 71) and img.info["dpi"][0] == pytest.approx(60, abs=0.05)


def test_an_export_at_a_target_size_resamples_and_scales_the_dpi(photo_72dpi, tmp_path):
    """The app's export path: the render is at the model scale, the file at exactly the target size."""
    rendered = np.full((192, 192, 3), 0.25, np.float32)  # the 64 px photo at x3
    out = write_photo(tmp_path / "t.png", rendered, like=photo_72dpi, scale=3,
                      options=SaveOptions(size=(150, 150)))  # fmt: skip
    with Image.open(out) as img:
        assert img.size == (150, 150)
        assert img.info["dpi"][0] == pytest.approx(72 * 150 / 64, abs=0.05)
    assert np.abs(read_photo(out).rgb - 0.25).max() < 1 / 255
