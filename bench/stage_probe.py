"""Run ``desktop-sr`` in this process with a self-time profiler wrapped around its stages; print one JSON line.

Used by ``bench/first_render.py`` to break the whole ``desktop-sr upscale`` process into start-up imports, model
load, encode, each UNet pass, decode, colour fix and PNG write, for any checkout of the app (the wrappers name
functions that exist in every version, and nothing is imported before the command itself imports it, so deferred
imports stay deferred). Each stage's time excludes the stages nested in it (e.g. a heavy import done while the
model loads counts as an import). Usage::

    PYTHONPATH=<checkout> python bench/stage_probe.py OUT.json upscale IN.png -o OUT.png --model ... --lora ...
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import json
import sys
import threading
import time

START = time.perf_counter()
#: Top-level packages whose import time is reported as "imports" (with everything they import in turn).
HEAVY = {"torch", "diffusers", "peft", "transformers", "safetensors", "PIL", "numpy", "tqdm", "platformdirs", "cv2"}


class Profiler:
    """Self time per stage; stages nest (a stack per thread), only the main thread's stack is attributed."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.calls: list[tuple[str, float]] = []
        self.stack: list[list[float]] = []  # [start, child time]
        self.lock = threading.Lock()

    def region(self, name: str, fn):  # type: ignore[no-untyped-def]
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            main = threading.current_thread() is threading.main_thread()
            if not main:  # work in another thread (e.g. a model load overlapped with the photo): wall time only
                t0 = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    with self.lock:
                        dt = time.perf_counter() - t0
                        self.totals[f"{name} (thread)"] = self.totals.get(f"{name} (thread)", 0.0) + dt
            frame = [time.perf_counter(), 0.0]
            self.stack.append(frame)
            try:
                return fn(*args, **kwargs)
            finally:
                self.stack.pop()
                elapsed = time.perf_counter() - frame[0]
                own = elapsed - frame[1]
                if self.stack:
                    self.stack[-1][1] += elapsed
                with self.lock:
                    self.totals[name] = self.totals.get(name, 0.0) + own
                    self.calls.append((name, own))

        return wrapper


PROF = Profiler()

#: module -> [(attribute path, stage name)], patched right after the module is first imported.
TARGETS: dict[str, list[tuple[str, str]]] = {
    "desktop_sr.engine.backends.pisa.model": [
        ("PisaModel.__init__", "model load"),
        ("PisaModel.eps", "unet"),
        ("PisaModel.eps_pair", "unet (both branches, one batch)"),
    ],
    "desktop_sr.engine.backends.pisa.session": [
        ("PisaSession.latent", "encode"),
        ("PisaSession._decode", "decode"),
        ("color_fix", "colour fix"),
        ("PisaSession.set_photo", "read + prepare photo"),
    ],
    "desktop_sr.engine.sd21.prompt": [("PromptEmbeddings.get", "prompt embedding")],
    "desktop_sr.imaging": [("write_photo", "write PNG"), ("read_photo", "read + prepare photo")],
}


MODELS: list = []  # the PisaModel instances, for the bare decoder forward


def _remember(init):  # type: ignore[no-untyped-def]
    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        init(self, *args, **kwargs)
        MODELS.append(self)

    return wrapper


def _patch(module, entries) -> None:  # type: ignore[no-untyped-def]
    if hasattr(module, "PisaModel"):
        module.PisaModel.__init__ = _remember(module.PisaModel.__init__)
    for path, stage in entries:
        owner = module
        *parents, attr = path.split(".")
        try:
            for p in parents:
                owner = getattr(owner, p)
            fn = getattr(owner, attr)
        except AttributeError:
            continue
        setattr(owner, attr, PROF.region(stage, fn))


class _Hook(importlib.abc.MetaPathFinder):
    """Times heavy top-level imports and patches the target modules as they load."""

    def find_spec(self, name, path, target=None):  # type: ignore[no-untyped-def]
        timed = name in HEAVY
        if not timed and name not in TARGETS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def run(module):  # type: ignore[no-untyped-def]
            if timed:
                PROF.region("imports (torch, diffusers, ...)", exec_module)(module)
            else:
                exec_module(module)
                _patch(module, TARGETS[name])

        spec.loader.exec_module = run  # type: ignore[method-assign]
        return spec


def main() -> int:
    out, argv = sys.argv[1], sys.argv[2:]
    sys.meta_path.insert(0, _Hook())
    from desktop_sr.cli import main as cli_main

    code = cli_main(argv)
    wall = time.perf_counter() - START
    report = {"wall_in_process": wall, "stages": PROF.totals, "calls": PROF.calls, "exit": code}
    if MODELS and code == 0:  # the VAE decoder's bare forward on a 512 px result's latent, same layout as the app's
        import torch

        model = MODELS[0]
        vae = model.vae
        fmt = (
            torch.channels_last
            if vae.decoder.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
            else (torch.contiguous_format)
        )
        z = torch.randn(1, 4, 64, 64, dtype=next(vae.parameters()).dtype).contiguous(memory_format=fmt)
        with torch.inference_mode():
            t0 = time.perf_counter()
            vae.decode(z)
            report["bare_decoder_forward"] = time.perf_counter() - t0
    with open(out, "w", encoding="utf-8") as f:
        json.dump(report, f)
    return code


if __name__ == "__main__":
    sys.exit(main())
