"""Build desktop-sr for this platform: the PyInstaller one-folder bundle, its frozen self-test, and the archives.

    python packaging/build.py                    # CPU variant: dist/desktop-sr/ + the platform's archive/installer
    python packaging/build.py --variant cuda     # with a CUDA build of torch installed (see packaging/README.md)
    python packaging/build.py --no-archive       # bundle and self-test only

What it makes, by platform (everything under --dist, default dist/):
- all: ``desktop-sr/`` (the one-folder app) and ``build-report.json`` (sizes, self-test timings);
- Linux: ``desktop-sr-VERSION-linux-ARCH-VARIANT.tar.gz`` (the app, a .desktop entry, the icon, install.sh and
  INSTALL.txt), a ``desktop-sr.AppDir`` and, when ``appimagetool`` is on PATH, an AppImage;
- Windows: the Inno Setup installer when ISCC.exe is found (packaging/windows/desktop-sr.iss), else a .zip;
- macOS: ``desktop-sr.app`` (from the spec's BUNDLE) and a .dmg made with hdiutil.

The self-test runs the frozen app exactly as a user's machine would on its first start: with empty models and
settings folders and no network, so a missing library, Qt plugin or model file fails the build here rather than
on a workstation. Exit status: 0 when the bundle was built and its self-test passed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
SPEC = PACKAGING / "desktop-sr.spec"
NAME = "desktop-sr"
sys.path[:0] = [str(ROOT), str(PACKAGING)]

from bundle_rules import VARIANTS, keep  # noqa: E402

IS_WIN, IS_MAC, IS_LINUX = sys.platform == "win32", sys.platform == "darwin", sys.platform.startswith("linux")


class BuildError(Exception):
    """A step failed; the message says which and what to do."""


@dataclass
class FrozenRun:
    """One run of the frozen executable."""

    args: list[str]
    returncode: int
    seconds: float
    output: str


@dataclass
class BuildReport:
    version: str
    variant: str
    platform: str
    torch: str
    bundle: str
    bundle_bytes: int = 0
    build_seconds: float = 0.0
    largest: dict[str, int] = field(default_factory=dict)
    runs: dict[str, dict[str, object]] = field(default_factory=dict)
    artifacts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def version() -> str:
    """The one version number, read from desktop_sr/__init__.py (importing desktop_sr does not import torch)."""
    from desktop_sr import __version__

    return __version__


def check_torch(variant: str) -> str:
    """The installed torch must match the variant: a CPU bundle built from a CUDA torch would either carry ~3 GB of
    CUDA libraries or (with them filtered out) fail to import, and a CUDA bundle needs a CUDA build of torch."""
    try:
        import torch
    except ImportError as exc:
        raise BuildError(f"torch is not installed ({exc}); see packaging/README.md for the wheel index") from exc
    cuda = torch.version.cuda
    if variant == "cpu" and cuda:
        raise BuildError(
            f"the cpu variant needs the CPU build of torch, but torch {torch.__version__} is built for CUDA {cuda}: "
            "pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu (in a separate environment)"
        )
    if variant == "cuda" and not cuda:
        raise BuildError(
            f"the cuda variant needs a CUDA build of torch, but torch {torch.__version__} is CPU-only: "
            "pip install torch torchvision --index-url https://download.pytorch.org/whl/cu128 (see packaging/README.md)"
        )
    return f"{torch.__version__}" + (f" (CUDA {cuda})" if cuda else "")


def run_pyinstaller(variant: str, dist: Path, work: Path) -> None:
    try:
        import PyInstaller  # noqa: F401
    except ImportError as exc:
        raise BuildError('PyInstaller is not installed: pip install -e ".[package]"') from exc
    env = dict(os.environ, DESKTOP_SR_VARIANT=variant)
    cmd = [sys.executable, "-m", "PyInstaller", str(SPEC), "--noconfirm", "--clean", "--log-level", "WARN",
           "--distpath", str(dist), "--workpath", str(work)]  # fmt: skip
    print("+", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=ROOT, env=env)
    if proc.returncode != 0:
        raise BuildError(f"PyInstaller failed (exit code {proc.returncode}); its log is above")


NOTICES = "THIRD-PARTY-NOTICES.txt"


def write_notices(bundle: Path) -> Path:
    """THIRD-PARTY-NOTICES.txt next to the executable: the licences of what the bundle redistributes.

    BSD-style licences (the Real-ESRGAN weights, torch, NumPy) require the notice to travel with binary copies, and
    the LGPL requires telling users that Qt is in there and how to replace it. Each installer copies the whole
    folder, so a file here reaches every user. Full licence texts that the packages ship stay in their
    ``*.dist-info`` folders inside ``_internal``.
    """
    from importlib import metadata

    from desktop_sr.engine.backends.bundled.weights import LICENCE as REALESRGAN

    internal = bundle / "_internal" if (bundle / "_internal").is_dir() else bundle
    rows = []
    for info in sorted(internal.glob("*.dist-info"), key=lambda p: p.name.lower()):
        try:
            meta = metadata.PathDistribution(info).metadata
        except Exception:  # noqa: BLE001 - a damaged dist-info must not stop the build
            continue
        licence = meta.get("License-Expression") or (meta.get("License") or "").split("\n")[0][:80] or "see its files"
        texts = sorted(
            p.relative_to(internal).as_posix()
            for p in info.rglob("*")
            if p.is_file() and ("licen" in p.name.lower() or "licen" in p.parent.name.lower())
        )[:3]
        rows.append(f"- {meta['Name']} {meta['Version']}: {licence}" + (f" ({', '.join(texts)})" if texts else ""))
    text = f"""desktop-sr {version()} is licensed under the Apache License 2.0.

This folder also contains third-party software and data, unchanged, under their own licences.

Qt 6 and PySide6 (LGPL-3.0-only): the Qt libraries are separate shared libraries in _internal/PySide6/Qt/lib
(_internal/PySide6 on Windows) and may be replaced by compatible builds of the same Qt version. Qt's source code and
licence texts: https://www.qt.io/licensing and https://www.gnu.org/licenses/lgpl-3.0.txt ; PySide6:
https://code.qt.io/cgit/pyside/pyside-setup.git

The bundled default model:
{REALESRGAN}

Python distributions in this bundle (licence texts, where the package ships them, are in the files named):
"""
    text += "\n".join(rows) + "\n"
    out = bundle / NOTICES
    out.write_text(text, encoding="utf-8")
    app_resources = bundle.parent / f"{NAME}.app" / "Contents" / "Resources"
    if app_resources.is_dir():  # macOS: the .app is what users get
        shutil.copy2(out, app_resources / NOTICES)
    return out


def executable(dist: Path) -> Path:
    """The frozen program to run for --version and --selftest (on Windows the console twin, which has a stdout)."""
    if IS_MAC and (dist / f"{NAME}.app").is_dir():
        return dist / f"{NAME}.app" / "Contents" / "MacOS" / NAME
    return dist / NAME / (f"{NAME}-cli.exe" if IS_WIN else NAME)


def dir_size(path: Path) -> int:
    """Bytes in files under ``path`` (symlinks not followed, each file counted once), like ``du -sb``."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for p in path.rglob("*"):
        if p.is_symlink() or not p.is_file():
            continue
        st = p.stat()
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def largest_parts(bundle: Path, top: int = 12) -> dict[str, int]:
    """Sizes of the biggest top-level packages inside the bundle: where the bytes go, for the README's table."""
    internal = bundle / "_internal" if (bundle / "_internal").is_dir() else bundle
    sizes = {}
    for child in internal.iterdir():
        if child.is_symlink():  # PyInstaller links top-level names to libraries inside packages: count those once
            continue
        sizes[child.name] = dir_size(child) if child.is_dir() else child.stat().st_size
    return dict(sorted(sizes.items(), key=lambda kv: -kv[1])[:top])


def check_contents(bundle: Path, variant: str) -> None:
    """Nothing the rules drop may be in the finished bundle (hooks can add files after the spec's filter)."""
    internal = bundle / "_internal"
    if not internal.is_dir():
        return  # macOS .app layout: the spec's filter is the only check there
    leftovers = [
        p.relative_to(internal).as_posix()
        for p in internal.rglob("*")
        if p.is_file() and not keep(p.relative_to(internal).as_posix(), variant)
    ]
    if leftovers:
        shown = ", ".join(leftovers[:10]) + (" ..." if len(leftovers) > 10 else "")
        raise BuildError(f"{len(leftovers)} files that should have been left out are in the bundle: {shown}")


def run_frozen(exe: Path, args: list[str], env: dict[str, str], timeout: float = 600) -> FrozenRun:
    """Run the frozen app; wall time includes the bootloader, unpacking nothing (one-folder) and Python's start."""
    start = time.perf_counter()
    proc = subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - start
    return FrozenRun(args, proc.returncode, seconds, (proc.stdout + proc.stderr).strip())


def first_start_env(home: Path) -> dict[str, str]:
    """An environment like a new user's first start: empty models, settings and cache folders, no network, no
    display. The model is converted from the bundled weights into the empty models folder on the first run."""
    env = dict(os.environ)
    for var in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):  # the bundle must not lean on the build's Python
        env.pop(var, None)
    env.update(
        DESKTOP_SR_MODELS_DIR=str(home / "models"),
        DESKTOP_SR_CONFIG_DIR=str(home / "config"),
        XDG_CACHE_HOME=str(home / "cache"),
        HF_HUB_OFFLINE="1",
        QT_QPA_PLATFORM="offscreen",
    )
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    return env


def selftest(dist: Path, report: BuildReport) -> None:
    """--version, then --selftest twice (first start with empty folders, then a warm start), recorded in ``report``."""
    exe = executable(dist)
    if not exe.exists():
        raise BuildError(f"the frozen executable {exe} is missing")
    with tempfile.TemporaryDirectory(prefix="desktop-sr-firststart-") as tmp:
        env = first_start_env(Path(tmp))
        runs = {
            "version": run_frozen(exe, ["--version"], env),
            "selftest_first": run_frozen(exe, ["--selftest"], env),
            "selftest_second": run_frozen(exe, ["--selftest"], env),
        }
    for key, run in runs.items():
        report.runs[key] = {"seconds": round(run.seconds, 2), "returncode": run.returncode, "output": run.output}
        print(f"frozen {' '.join(run.args)}: exit {run.returncode} in {run.seconds:.1f} s\n  {run.output}", flush=True)
    if runs["version"].returncode != 0 or report.version not in runs["version"].output:
        raise BuildError(f"the frozen --version did not print {report.version}: {runs['version'].output}")
    for key in ("selftest_first", "selftest_second"):
        if runs[key].returncode != 0:
            raise BuildError(f"the frozen self-test failed (exit {runs[key].returncode}): {runs[key].output[-2000:]}")


def _machine() -> str:
    m = platform.machine().lower()
    return {"amd64": "x86_64", "x64": "x86_64", "aarch64": "arm64"}.get(m, m)


VARIANT_NOTES = {
    "cpu": "The cpu variant runs on the CPU; any x86-64 machine works.",
    "cuda": "The cuda variant needs an NVIDIA driver recent enough for the bundled CUDA runtime (packaging/README.md).",
}


def install_note(ver: str, variant: str) -> str:
    return f"""desktop-sr {ver} for Linux ({_machine()}, {variant} variant)

Install for your user (no root needed; puts the app in ~/.local/lib/desktop-sr, a `desktop-sr` command in
~/.local/bin, and a menu entry with its icon):

    ./install.sh

For every user of the machine:

    sudo ./install.sh --prefix /usr/local

Or run it in place without installing: ./desktop-sr/desktop-sr

Check an installation without a display (loads the bundled model and upscales a sample photo; exit code 0 = ok):

    desktop-sr --selftest

Remove it again with ./install.sh --uninstall (add the same --prefix if you used one). Models and settings stay in
~/.local/share/desktop-sr and ~/.config/desktop-sr.

Requirements: a 64-bit Linux with glibc {glibc()} or newer (the build machine's: a frozen app needs at least the C
library it was built against) and an X11 or Wayland desktop (on X11 Qt needs the system's libxcb-cursor0).
{VARIANT_NOTES[variant]}
"""


def glibc() -> str:
    """The build machine's glibc version: the oldest one the bundle runs on."""
    name, ver = platform.libc_ver()
    return ver if name == "glibc" and ver else "(unknown)"


def linux_archive(dist: Path, ver: str, variant: str) -> Path:
    """tar.gz: the bundle, the .desktop entry, the icon, install.sh and INSTALL.txt under one top folder."""
    from desktop_sr.resources import icon_path

    stem = f"{NAME}-{ver}-linux-{_machine()}-{variant}"
    out = dist / f"{stem}.tar.gz"
    note = dist / "INSTALL.txt"
    note.write_text(install_note(ver, variant), encoding="utf-8")
    extras = [
        (PACKAGING / "linux" / "desktop-sr.desktop", "desktop-sr.desktop", 0o644),
        (icon_path(), "desktop-sr.png", 0o644),
        (PACKAGING / "linux" / "install.sh", "install.sh", 0o755),
        (note, "INSTALL.txt", 0o644),
    ]

    def mode(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    print(f"writing {out.name} ...", flush=True)
    with tarfile.open(out, "w:gz", compresslevel=6) as tar:
        tar.add(dist / NAME, arcname=f"{stem}/{NAME}", filter=mode)
        for src, name, perm in extras:
            info = mode(tar.gettarinfo(str(src), arcname=f"{stem}/{name}"))
            info.mode = perm
            with open(src, "rb") as fh:
                tar.addfile(info, fh)
    note.unlink()
    return out


def appdir(dist: Path) -> Path:
    """An AppDir (the input of appimagetool): AppRun, the .desktop entry and icon at the top, the app in usr/lib.
    Files are hard links to the bundle where the file system allows, so this costs no extra space."""
    from desktop_sr.resources import icon_path

    root = dist / f"{NAME}.AppDir"
    shutil.rmtree(root, ignore_errors=True)
    lib = root / "usr" / "lib" / NAME

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(dist / NAME, lib, symlinks=True, copy_function=link_or_copy)
    apprun = root / "AppRun"
    apprun.write_text(f'#!/bin/sh\nexec "$(dirname "$(readlink -f "$0")")/usr/lib/{NAME}/{NAME}" "$@"\n')
    apprun.chmod(0o755)
    shutil.copy2(PACKAGING / "linux" / "desktop-sr.desktop", root / "desktop-sr.desktop")
    shutil.copy2(icon_path(), root / "desktop-sr.png")
    (root / ".DirIcon").symlink_to("desktop-sr.png")
    for sub, name in (("applications", "desktop-sr.desktop"), ("icons/hicolor/256x256/apps", "desktop-sr.png")):
        (root / "usr" / "share" / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, root / "usr" / "share" / sub / name)
    return root


def appimage(dist: Path, ver: str, variant: str, mode: str, report: BuildReport) -> Path | None:
    """An AppImage when appimagetool is available (it is not packaged in Debian or on PyPI; see the README)."""
    if mode == "no":
        return None
    root = appdir(dist)
    tool = os.environ.get("APPIMAGETOOL") or shutil.which("appimagetool") or shutil.which(f"appimagetool-{_machine()}")
    if not tool:
        note = (f"AppImage skipped: appimagetool not found. {root.name} is ready for it: "
                f"ARCH={_machine()} appimagetool {root} (see packaging/README.md)")  # fmt: skip
        if mode == "yes":
            raise BuildError(note)
        report.notes.append(note)
        print(note, flush=True)
        return None
    out = dist / f"{NAME}-{ver}-{_machine()}-{variant}.AppImage"
    env = dict(os.environ, ARCH=_machine())
    subprocess.run([tool, "--no-appstream", str(root), str(out)], check=True, env=env)
    return out


def windows_installer(dist: Path, ver: str, variant: str, report: BuildReport) -> Path:
    """Inno Setup installer when ISCC.exe is available, else a zip of the bundle."""
    candidates = [shutil.which("iscc"), shutil.which("ISCC"),
                  os.path.expandvars(r"%ProgramFiles(x86)%\Inno Setup 6\ISCC.exe"),
                  os.path.expandvars(r"%LocalAppData%\Programs\Inno Setup 6\ISCC.exe")]  # fmt: skip
    iscc = next((c for c in candidates if c and Path(c).exists()), None)
    if iscc:
        iss = PACKAGING / "windows" / "desktop-sr.iss"
        subprocess.run([iscc, f"/DAppVersion={ver}", f"/DVariant={variant}", f"/DSourceDir={dist / NAME}",
                        f"/DOutputDir={dist}", str(iss)], check=True)  # fmt: skip
        return dist / f"{NAME}-{ver}-windows-x64-{variant}-setup.exe"
    report.notes.append("Inno Setup (ISCC.exe) not found: made a .zip instead of the installer")
    return Path(shutil.make_archive(str(dist / f"{NAME}-{ver}-windows-x64-{variant}"), "zip", dist, NAME))


def mac_dmg(dist: Path, ver: str, variant: str) -> Path:
    out = dist / f"{NAME}-{ver}-macos-{_machine()}.dmg"
    out.unlink(missing_ok=True)
    subprocess.run(["hdiutil", "create", "-volname", NAME, "-srcfolder", str(dist / f"{NAME}.app"),
                    "-ov", "-format", "UDZO", str(out)], check=True)  # fmt: skip
    return out


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", choices=VARIANTS, default="cpu", help="which torch the bundle carries")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="output folder (default: dist/)")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "pyinstaller", help="PyInstaller's work folder")
    parser.add_argument("--no-archive", action="store_true", help="stop after the bundle and its self-test")
    parser.add_argument("--no-selftest", action="store_true", help="do not run the frozen self-test")
    parser.add_argument("--appimage", choices=("auto", "yes", "no"), default="auto",
                        help="Linux: make an AppDir and, if appimagetool is found, an AppImage (auto, the default); "
                        "yes fails when appimagetool is missing")  # fmt: skip
    args = parser.parse_args(argv)
    dist, work = args.dist.resolve(), args.work.resolve()

    try:
        ver = version()
        report = BuildReport(ver, args.variant, f"{sys.platform}-{_machine()}", check_torch(args.variant), "")
        print(f"building desktop-sr {ver}, {args.variant} variant, torch {report.torch}", flush=True)
        start = time.perf_counter()
        run_pyinstaller(args.variant, dist, work)
        report.build_seconds = round(time.perf_counter() - start, 1)
        bundle = dist / NAME
        report.bundle = str(bundle)
        check_contents(bundle, args.variant)
        report.bundle_bytes = dir_size(bundle)
        report.largest = largest_parts(bundle)
        write_notices(bundle)
        print(f"bundle {bundle}: {human(report.bundle_bytes)} (built in {report.build_seconds:.0f} s)", flush=True)
        if not args.no_selftest:
            selftest(dist, report)
        if not args.no_archive:
            made: list[Path | None] = []
            if IS_LINUX:
                made.append(linux_archive(dist, ver, args.variant))
                made.append(appimage(dist, ver, args.variant, args.appimage, report))
            elif IS_WIN:
                made.append(windows_installer(dist, ver, args.variant, report))
            elif IS_MAC:
                made.append(mac_dmg(dist, ver, args.variant))
            for path in filter(None, made):
                report.artifacts[path.name] = path.stat().st_size
                print(f"made {path} ({human(path.stat().st_size)})", flush=True)
    except (BuildError, subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if "report" in locals() and report.bundle:
            dist.mkdir(parents=True, exist_ok=True)
            (dist / "build-report.json").write_text(json.dumps(asdict(report), indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
