"""A device choice a user understands: the inventory (faked GPUs and this machine's real torch), ``desktop-sr
devices``, the ``--device`` check and the GUI's Device menu."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from desktop_sr.cli import ExitCode, main
from desktop_sr.engine.backends.pisa import pisa_spec
from desktop_sr.engine.hardware import devices
from desktop_sr.engine.hardware.device import select_device
from desktop_sr.engine.hardware.devices import (
    CUDA_INDEX,
    ROCM_INDEX,
    XPU_INDEX,
    DeviceEntry,
    DeviceUnavailable,
    HostFacts,
    TorchFacts,
    TorchGpu,
    build_inventory,
    choose,
    cuda_kernels_for,
    explain,
    physical_gpus,
)
from desktop_sr.engine.hardware.precision import DeviceKind, DeviceTraits

GB = 1024**3
HOST = HostFacts("Test CPU", 8, 32 * GB)
CPU_TORCH = TorchFacts("2.13.0+cpu")
#: A CUDA 12.8 build's architectures (the kind torch's wheels list): nothing before Turing.
CU128 = TorchFacts("2.13.0+cu128", cuda="12.8", arch_list=("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"))


def by_name(entries: tuple[DeviceEntry, ...], name: str) -> DeviceEntry:
    return next(e for e in entries if e.name == name)


def fake_sysfs(root: Path, cards: dict[str, tuple[str, str]]) -> Path:
    """``/sys/class/drm`` with ``cardN/device/{vendor,device}`` files (and a connector, which is not a card)."""
    drm = root / "drm"
    for card, (vendor, device) in cards.items():
        (drm / card / "device").mkdir(parents=True)
        (drm / card / "device" / "vendor").write_text(vendor + "\n")
        (drm / card / "device" / "device").write_text(device + "\n")
    (drm / "card0-DP-1").mkdir(parents=True, exist_ok=True)
    return drm


def cuda_gpu(index: int, name: str, capability: tuple[int, int], memory: int = 12 * GB) -> TorchGpu:
    traits = DeviceTraits(DeviceKind.CUDA, capability, native_bf16=capability >= (8, 0), total_memory=memory)
    return TorchGpu(index, name, traits, memory)


# -- GPUs this torch does not see ------------------------------------------------------------------------------------
def test_nvidia_gpu_with_a_cpu_build_of_torch_says_what_to_install(tmp_path):
    smi = "GPU 0: NVIDIA GeForce RTX 3060 (UUID: GPU-0b1c2d3e-aaaa-bbbb-cccc-1234567890ab)\n"
    physical = physical_gpus(fake_sysfs(tmp_path, {}), tmp_path / "no-proc", smi)
    entries = build_inventory(CPU_TORCH, HOST, physical)

    gpu = by_name(entries, "cuda:0")
    assert gpu.label == "NVIDIA GeForce RTX 3060"
    assert not gpu.usable
    assert "CPU build" in gpu.reason and "torch 2.13.0+cpu" in gpu.reason
    assert f"pip install torch --index-url {CUDA_INDEX}" in gpu.reason
    assert choose(entries, "auto").name == "cpu"
    with pytest.raises(DeviceUnavailable, match="index-url"):  # --device cuda says why, not "no CUDA"
        choose(entries, "cuda")
    tip = explain(entries, "auto", "cpu")
    assert tip.startswith("Automatic: the CPU") and "No usable GPU: NVIDIA GeForce RTX 3060" in tip


def test_nvidia_found_by_its_driver_files_once_and_without_the_driver_by_sysfs(tmp_path):
    proc = tmp_path / "proc" / "0000:01:00.0"
    proc.mkdir(parents=True)
    (proc / "information").write_text("Model: \t\t NVIDIA GeForce GTX 1080\nIRQ:   130\n")
    drm = fake_sysfs(tmp_path, {"card0": ("0x10de", "0x1b80")})
    with_driver = physical_gpus(drm, tmp_path / "proc", lambda: pytest.fail("nvidia-smi run although /proc said"))
    assert [g.label for g in with_driver] == ["NVIDIA GeForce GTX 1080"]  # not twice (sysfs sees it too)

    nouveau = physical_gpus(drm, tmp_path / "no-proc", "")
    entries = build_inventory(CPU_TORCH, HOST, nouveau)
    assert "NVIDIA's driver" in by_name(entries, "cuda:0").reason


def test_amd_and_intel_gpus_on_linux_with_a_cpu_build(tmp_path):
    drm = fake_sysfs(tmp_path, {"card0": ("0x1002", "0x744c"), "card1": ("0x8086", "0x56a0"),
                                "card2": ("0x8086", "0x9a49")})  # fmt: skip
    entries = build_inventory(CPU_TORCH, HOST, physical_gpus(drm, tmp_path / "no-proc", None))

    amd = by_name(entries, "cuda:0")
    assert amd.label.startswith("AMD") and not amd.usable and ROCM_INDEX in amd.reason
    arc, iris = by_name(entries, "xpu:0"), by_name(entries, "xpu:1")
    assert arc.label.startswith("Intel Arc") and XPU_INDEX in arc.reason
    assert not iris.usable and XPU_INDEX not in iris.reason  # an old iGPU: no install hint that cannot help
    assert choose(entries, "auto").name == "cpu"


# -- GPUs this torch sees ---------------------------------------------------------------------------------------------
def test_a_card_this_build_has_no_kernels_for_is_named_and_skipped():
    facts = replace(CU128, cuda_devices=(cuda_gpu(0, "Tesla K80", (3, 7)), cuda_gpu(1, "NVIDIA RTX 4090", (8, 9))))
    entries = build_inventory(facts, HOST)

    k80 = by_name(entries, "cuda:0")
    assert not k80.usable and "compute capability 3.7" in k80.reason and "older" in k80.reason
    assert choose(entries, "auto").name == "cuda:1"
    assert by_name(entries, "cuda:1").precision == "fp16 (VAE fp32, TF32)"
    with pytest.raises(DeviceUnavailable, match="compute capability 3.7"):
        choose(entries, "cuda:0")

    alone = replace(CU128, cuda_devices=(cuda_gpu(0, "Tesla K80", (3, 7)),))
    assert choose(build_inventory(alone, HOST), "auto").name == "cpu"


def test_cuda_kernel_rules():
    assert cuda_kernels_for((8, 9), ["sm_80", "sm_86"])  # same major, newer minor: the cubin runs
    assert not cuda_kernels_for((8, 0), ["sm_86", "sm_90"])  # an older minor: it does not
    assert cuda_kernels_for((12, 0), ["sm_80", "compute_90"])  # PTX is compiled by the driver for newer cards
    assert not cuda_kernels_for((10, 0), ["sm_90a"])  # arch-specific cubins run on that chip only
    assert not cuda_kernels_for((11, 0), list(CU128.arch_list))  # newer than the build knows, no PTX


def test_rocm_builds_report_amd_gpus_as_cuda_and_check_their_architecture():
    traits = DeviceTraits(DeviceKind.CUDA, None, native_bf16=True, total_memory=24 * GB, hip=True)
    rocm = TorchFacts("2.13.0+rocm6.4", hip="6.4.1", arch_list=("gfx1100", "gfx942"),
                      cuda_devices=(TorchGpu(0, "Radeon RX 7900 XTX", traits, 24 * GB, "gfx1100"),
                                    TorchGpu(1, "AMD Radeon 780M", traits, 8 * GB, "gfx1103")))  # fmt: skip
    entries = build_inventory(rocm, HOST)

    xtx, apu = by_name(entries, "cuda:0"), by_name(entries, "cuda:1")
    assert xtx.usable and xtx.kind is DeviceKind.CUDA
    assert xtx.label == "AMD Radeon RX 7900 XTX (ROCm)"
    assert xtx.precision == "fp16 (VAE fp32)"  # no TF32 on AMD
    assert not apu.usable and "gfx1103" in apu.reason
    assert choose(entries, "auto") is xtx
    assert explain(entries, "auto", "cuda:0").startswith("Automatic: CUDA GPU 0 (AMD Radeon RX 7900 XTX")


def test_auto_prefers_cuda_then_xpu_then_the_cpu():
    arc = TorchGpu(0, "Intel(R) Arc(TM) A770 Graphics", DeviceTraits(DeviceKind.XPU, native_bf16=True), 16 * GB)
    xpu_only = TorchFacts("2.13.0+xpu", xpu_built=True, xpu_devices=(arc,))
    assert choose(build_inventory(xpu_only, HOST), "auto").name == "xpu:0"
    both = replace(CU128, cuda_devices=(cuda_gpu(0, "NVIDIA RTX A4000", (8, 6)),), xpu_built=True, xpu_devices=(arc,))
    entries = build_inventory(both, HOST)
    assert choose(entries, "auto").name == "cuda:0"
    assert choose(entries, "xpu").name == "xpu:0"
    with pytest.raises(DeviceUnavailable, match="unknown device"):
        choose(entries, "tpu")


# -- this machine ----------------------------------------------------------------------------------------------------
def test_this_machine_has_a_usable_cpu_and_auto_agrees_with_the_engine():
    entries = devices.inventory()
    cpu = by_name(entries, "cpu")
    assert cpu.usable and cpu.precision == "fp32" and cpu.memory_bytes and cpu.memory_bytes > 0
    picked = choose(entries, "auto")
    assert picked.kind == select_device("auto").type  # the same order as the engine's own choice
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        assert picked is cpu


# -- the command line -------------------------------------------------------------------------------------------------
def test_devices_command_prints_the_cpu_row_and_marks_autos_pick(capsys):
    assert main(["devices"]) == ExitCode.OK
    out = capsys.readouterr().out
    rows = out.splitlines()
    cpu_row = next((r for r in rows[1:] if r.lstrip("* ").split()[:1] == ["cpu"]), "")
    assert "logical cores" in cpu_row and cpu_row.rstrip().endswith("fp32"), out
    picked = choose(devices.inventory(), "auto").name
    assert any(r.startswith("*") and r.split()[1] == picked for r in rows), out
    assert "this torch is" in out

    assert main(["devices", "--json"]) == ExitCode.OK
    data = json.loads(capsys.readouterr().out)
    assert data["auto"] == picked
    assert any(d["name"] == "cpu" and d["usable"] for d in data["devices"])


@pytest.mark.parametrize("command", ["upscale", "batch"])
def test_a_device_that_is_not_here_is_one_line_before_any_work(command, tmp_path, capsys):
    missing = tmp_path / "no-such-photo.png"  # would be "file not found" (exit 1) if the device were not checked first
    code = main([command, str(missing), "-o", str(tmp_path / "out"), "--device", "cuda:99"])
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "--device cuda:99" in err and "Usable here: auto" in err and "cpu" in err

    assert main([command, str(missing), "-o", str(tmp_path / "out"), "--device", "tpu"]) == ExitCode.USAGE
    assert "use auto, cpu, cuda[:N], xpu[:N], mps or vulkan[:N]" in capsys.readouterr().err


# -- the GUI ----------------------------------------------------------------------------------------------------------
def device_menu(window):  # type: ignore[no-untyped-def]
    menus = {a.text(): a.menu() for a in window.menuBar().actions()}
    assert "&Device" in menus, list(menus)
    return menus["&Device"]


def test_device_menu_lists_automatic_and_the_cpu_and_saves_the_choice(qtbot, window):
    menu = device_menu(window)
    qtbot.waitUntil(lambda: window.device_menu.entries is not None, timeout=10000)
    texts = [a.text() for a in menu.actions()]
    assert texts[0] == "Automatic" and menu.actions()[0].isChecked()
    cpu = next(a for a in menu.actions() if a.text().startswith("cpu — "))
    assert cpu.isEnabled() and not cpu.isChecked()
    picked = choose(window.device_menu.entries, "auto")
    assert f"Automatic: {picked.title}" in window.status.lbl_model.toolTip()

    cpu.trigger()
    saved = json.loads((window.settings_dir / "settings.json").read_text())
    assert saved["device"] == "cpu" and window.editor.device == "cpu"
    assert cpu.isChecked() and not menu.actions()[0].isChecked()
    assert "Chosen in the Device menu: the CPU" in window.status.lbl_model.toolTip()


def test_device_menu_greys_out_an_unusable_gpu_with_why(qtbot, monkeypatch, tmp_path):
    from desktop_sr.ui.main_window import MainWindow

    smi = "GPU 0: NVIDIA GeForce RTX 3060 (UUID: GPU-1)\n"
    fake = build_inventory(CPU_TORCH, HOST, physical_gpus(fake_sysfs(tmp_path, {}), tmp_path / "no-proc", smi))
    monkeypatch.setattr(devices, "inventory", lambda: fake)
    monkeypatch.setenv("DESKTOP_SR_MODELS_DIR", str(tmp_path / "models"))
    w = MainWindow(settings_dir=tmp_path / "config", load_model=False)
    qtbot.addWidget(w)
    qtbot.waitUntil(lambda: w.device_menu.entries is not None, timeout=10000)
    gpu = next(a for a in device_menu(w).actions() if "RTX 3060" in a.text())
    assert not gpu.isEnabled() and "unusable" in gpu.text()
    assert CUDA_INDEX in gpu.toolTip() and gpu.statusTip() == gpu.toolTip()
    assert "No usable GPU: NVIDIA GeForce RTX 3060" in w.status.lbl_model.toolTip()
    w.close()


def test_choosing_a_device_reloads_the_model_there(qtbot, window, tmp_path):
    """Through the window's real worker; the session is a numpy stand-in that records where it was asked to load."""
    from fake_session import FakeSession

    from desktop_sr.editor.jobs import LoadModel, ModelLoaded

    asked: list[str] = []

    def open_model(job: LoadModel) -> FakeSession:
        asked.append(job.device)
        session = FakeSession()
        # (FakeSession passes its timesteps where ModelInfo now has supports_color_fix: set both as the window needs)
        session.info = replace(session.info, device=job.device, supports_color_fix=True, trained_timesteps=())
        return session

    window.worker.executor.open_model = open_model
    spec = pisa_spec(tmp_path / "sd21", tmp_path / "pisa.pkl")

    def loaded_on(device: str):  # type: ignore[no-untyped-def]
        return lambda job, result: isinstance(result, ModelLoaded) and result.info.device == device

    with qtbot.waitSignal(window.worker.result, timeout=10000, check_params_cb=loaded_on("auto")):
        window.load_model(spec)
    qtbot.waitUntil(lambda: window.device_menu.entries is not None, timeout=10000)
    with qtbot.waitSignal(window.worker.result, timeout=10000, check_params_cb=loaded_on("cpu")):
        window.device_menu.actions["cpu"].trigger()
    assert asked == ["auto", "cpu"] and window.editor.model_spec == spec  # the same model, on the chosen device
    assert window.status.lbl_model.text().split(" · ")[1] == "cpu"
    assert "Chosen in the Device menu: the CPU" in window.status.lbl_model.toolTip()
