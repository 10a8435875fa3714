"""Regenerate the committed app resources: the icon (PNG, ICO, ICNS) and the bundled sample photo.

Run by hand (``python packaging/make_resources.py``) when the icon design or the sample changes; the outputs are
committed under ``desktop_sr/resources/`` so that a plain ``pip install`` and the frozen app both have them without
this script or scikit-image. The icon is drawn rather than shipped as a binary blob from elsewhere so its licence is
the project's own and anyone can change it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

RESOURCES = Path(__file__).resolve().parent.parent / "desktop_sr" / "resources"
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256)
SAMPLE_NAME = "sample_chelsea.png"


def _scene(size: int) -> Image.Image:
    """A tiny landscape (sky, sun, two hills): the 'photo' inside the icon."""
    img = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(img)
    for y in range(size):  # sky: warm horizon to deep blue
        t = y / size
        draw.line([(0, y), (size, y)], fill=(int(40 + 200 * t), int(90 + 110 * t), int(200 - 40 * t)))
    r = size * 0.14
    cx, cy = size * 0.68, size * 0.36
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(255, 214, 90))
    draw.polygon([(0, size * 0.78), (size * 0.35, size * 0.48), (size * 0.75, size), (0, size)], fill=(30, 110, 70))
    draw.polygon([(size * 0.3, size), (size * 0.72, size * 0.58), (size, size * 0.75), (size, size)], fill=(20, 80, 55))
    return img


def draw_icon(size: int = 1024) -> Image.Image:
    """The app icon: a photo whose left half is blocky (the low-resolution input) and right half smooth (the
    result), split by the compare view's divider, on a rounded square. Drawn at 1024 px and downscaled so every
    size is antialiased."""
    icon = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    margin = size // 16
    shadow = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    ImageDraw.Draw(shadow).rounded_rectangle(
        [margin, margin + size // 64, size - margin, size - margin + size // 64], radius=size // 5, fill=(0, 0, 0, 110)
    )
    icon.alpha_composite(shadow.filter(ImageFilter.GaussianBlur(size // 80)))

    inner = size - 2 * margin
    smooth = _scene(inner)
    blocky = smooth.resize((8, 8), Image.Resampling.BOX).resize((inner, inner), Image.Resampling.NEAREST)
    photo = smooth.copy()
    photo.paste(blocky.crop((0, 0, inner // 2, inner)), (0, 0))
    draw = ImageDraw.Draw(photo)
    line = max(2, inner // 60)
    x = inner // 2
    draw.rectangle([x - line // 2, 0, x + line // 2, inner], fill=(255, 255, 255))
    knob = inner // 11
    draw.ellipse([x - knob, inner // 2 - knob, x + knob, inner // 2 + knob], fill=(255, 255, 255))
    arrow = knob // 2
    for sign in (-1, 1):  # the divider's handle: two small arrow heads, as in the app's split view
        tip = x + sign * int(arrow * 1.3)
        base = x + sign * int(arrow * 0.3)
        draw.polygon([(tip, inner // 2), (base, inner // 2 - arrow), (base, inner // 2 + arrow)], fill=(30, 60, 140))

    mask = Image.new("L", (inner, inner), 0)
    ImageDraw.Draw(mask).rounded_rectangle([0, 0, inner - 1, inner - 1], radius=size // 5, fill=255)
    icon.paste(photo, (margin, margin), mask)
    border = ImageDraw.Draw(icon)
    border.rounded_rectangle(
        [margin, margin, size - margin - 1, size - margin - 1], radius=size // 5, outline=(255, 255, 255, 90),
        width=max(1, size // 128),
    )  # fmt: skip
    return icon


def write_icons(out: Path) -> list[Path]:
    """desktop-sr.png (256 px, for Linux and Qt), .ico (Windows, all sizes) and .icns (macOS)."""
    big = draw_icon(1024)
    written = []
    png = out / "desktop-sr.png"
    big.resize((256, 256), Image.Resampling.LANCZOS).save(png, optimize=True)
    ico = out / "desktop-sr.ico"
    big.save(ico, sizes=[(s, s) for s in ICON_SIZES])
    icns = out / "desktop-sr.icns"
    big.resize((512, 512), Image.Resampling.LANCZOS).save(icns)
    written += [png, ico, icns]
    return written


def write_sample(out: Path) -> Path:
    """Chelsea the cat from scikit-image's data (CC0, photographer Stefan van der Walt), downscaled to 256 px wide.

    A real photo rather than a synthetic pattern, so the self-test exercises the model on the kind of input it was
    trained for (fur texture, edges, smooth background)."""
    from skimage import data  # only needed to regenerate the sample

    img = Image.fromarray(data.chelsea())
    w, h = img.size
    img = img.resize((256, round(256 * h / w)), Image.Resampling.LANCZOS)
    path = out / SAMPLE_NAME
    img.save(path, optimize=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=RESOURCES)
    parser.add_argument("--no-sample", action="store_true", help="only the icons (no scikit-image needed)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    paths = write_icons(args.out)
    if not args.no_sample:
        paths.append(write_sample(args.out))
    for p in paths:
        print(f"{p} ({p.stat().st_size / 1024:.1f} KiB)")


if __name__ == "__main__":
    main()
