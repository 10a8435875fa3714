"""The first render of a whole ``desktop-sr upscale`` process, this checkout against another, interleaved.

One 128 px photo to a 512 px result in adjustable mode (pix 0.5 / sem 1.5: both UNet branches) on SD-2.1-base-shaped
random weights (built once into bench/out by bench/engine.py). Per round and checkout (order A B, then B A, ...):

  plain  - the command as a user runs it: wall time and the child's peak RSS,
  probe  - the same command under bench/stage_probe.py: self time per stage (imports, model load, encode, each
           UNet pass, decode, colour fix, PNG write); new checkouts also report the bare VAE decoder forward,
  version - ``desktop-sr --version``.

Prints medians per checkout and the ratios new / baseline, with the machine's load average (the machine is shared:
only ratios from one run mean anything).

    git worktree add /tmp/perf-baseline main
    python bench/first_render.py --baseline /tmp/perf-baseline --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def prepare(out: Path) -> tuple[Path, Path, Path]:
    """The SD-2.1-shaped weights, their LoRA and a 128 px photo (the astronaut test image)."""
    sys.path.insert(0, str(HERE))
    from engine import sd21_model  # bench/engine.py
    from PIL import Image

    base, lora = sd21_model(out)
    photo = out / "astronaut_128.png"
    if not photo.is_file():
        img = Image.open(ROOT / "tests" / "data" / "astronaut_512.jpg").convert("RGB")
        img.resize((128, 128), Image.Resampling.LANCZOS).save(photo)
    return base, lora, photo


def start(cmd: list[str], checkout: Path) -> tuple[subprocess.Popen, float]:
    env = dict(os.environ, PYTHONPATH=str(checkout), QT_QPA_PLATFORM="offscreen")
    return subprocess.Popen(
        cmd, env=env, cwd=str(checkout), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ), time.perf_counter()


#: CPU seconds (user + system) of the last child finished: on a shared machine wall time swings with the other load
#: (the same command took 35-105 s here in one run), CPU time far less, so the bench prints both.
LAST_CPU: list[float] = [0.0]


def finish(proc: subprocess.Popen, start: float, checkout: Path) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MB) and exit code of one child process (its CPU seconds go to ``LAST_CPU``)."""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    code = os.waitstatus_to_exitcode(status)
    LAST_CPU[0] = usage.ru_utime + usage.ru_stime
    if code != 0:
        print(f"  [{checkout}] exit {code}: {err[-2000:]}", file=sys.stderr)
    return wall, usage.ru_maxrss / 1024, code


def run(cmd: list[str], checkout: Path) -> tuple[float, float, int]:
    return finish(*start(cmd, checkout), checkout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", type=Path, required=True, help="checkout of the version to compare against")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", type=Path, help="write every measurement here")
    ap.add_argument("--plain", action="store_true", help="also time the command without the probe (slower)")
    ap.add_argument("--no-probe", action="store_true", help="only the plain command (implies --plain): the probe's "
                    "tracing slows the process and its split is noisy under load")  # fmt: skip
    ap.add_argument("--parallel", action="store_true", help="run both checkouts together "
                    "(on an overloaded machine both then see the same load)")  # fmt: skip
    args = ap.parse_args()
    args.plain = args.plain or args.no_probe

    out = HERE / "out"
    out.mkdir(exist_ok=True)
    base, lora, photo = prepare(out)
    checkouts = {"baseline": args.baseline.resolve(), "new": ROOT}
    tmp = Path(tempfile.mkdtemp(prefix="first-render-"))
    common = ["upscale", str(photo), "--model", str(base), "--lora", str(lora), "--pix", "0.5", "--sem", "1.5",
              "--scale", "4", "--device", args.device, "--overwrite", "--quiet"]  # fmt: skip
    results: dict[str, dict[str, list]] = {
        k: {"plain": [], "cpu": [], "rss": [], "probe": [], "version": []} for k in checkouts
    }
    loads = [os.getloadavg()[0]]

    def collect(res: dict, report: Path, wall_p: float, rss_p: float, code: int) -> None:
        if code == 0:
            res["rss"].append(rss_p)
            data = json.loads(report.read_text())
            data["wall"] = wall_p
            res["probe"].append(data)

    for r in range(args.rounds):
        order = list(checkouts) if r % 2 == 0 else list(reversed(checkouts))
        pending: dict[str, tuple] = {}
        for name in order:
            co = checkouts[name]
            res = results[name]
            png = tmp / f"{name}.png"
            v, _, _ = run([sys.executable, "-c", "from desktop_sr.cli import main; main(['--version'])"], co)
            res["version"].append(v)
            wall = rss = float("nan")
            if args.plain:
                wall, rss, code = run([sys.executable, "-m", "desktop_sr.cli", *common, "-o", str(png)], co)
                if code == 0:
                    res["plain"].append(wall)
                    res["cpu"].append(LAST_CPU[0])
                    if args.no_probe:
                        res["rss"].append(rss)
            if args.no_probe:
                loads.append(os.getloadavg()[0])
                print(f"round {r + 1} {name}: plain {wall:.1f} s ({LAST_CPU[0]:.1f} CPU s), {rss:.0f} MB; "
                      f"--version {v:.2f} s; "
                      f"load {loads[-1]:.1f}", file=sys.stderr)  # fmt: skip
                continue
            report = tmp / f"{name}-{r}.json"
            probe = [sys.executable, str(HERE / "stage_probe.py"), str(report), *common, "-o", str(png)]
            if args.parallel:
                pending[name] = (start(probe, co), report)
                continue
            wall_p, rss_p, code = run(probe, co)
            collect(res, report, wall_p, rss_p, code)
            loads.append(os.getloadavg()[0])
            print(f"round {r + 1} {name}: plain {wall:.1f} s, {rss:.0f} MB; probe {wall_p:.1f} s; --version {v:.2f} s"
                  f"; load {loads[-1]:.1f}", file=sys.stderr)  # fmt: skip
        for name, ((proc, t0), report) in pending.items():
            wall_p, rss_p, code = finish(proc, t0, checkouts[name])
            collect(results[name], report, wall_p, rss_p, code)
            loads.append(os.getloadavg()[0])
            print(f"round {r + 1} {name}: probe {wall_p:.1f} s, {rss_p:.0f} MB; load {loads[-1]:.1f}", file=sys.stderr)

    def med(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    def stages(name: str) -> dict[str, float]:
        runs = results[name]["probe"]
        keys = sorted({k for d in runs for k in d["stages"]})
        table = {k: med([d["stages"].get(k, 0.0) for d in runs]) for k in keys}
        unet = [[t for s, t in d["calls"] if s.startswith("unet")] for d in runs]
        for i in range(max((len(u) for u in unet), default=0)):
            table[f"  unet pass {i + 1}"] = med([u[i] for u in unet if len(u) > i])
        table["other (interpreter, argparse, glue)"] = med(
            [d["wall"] - sum(v for k, v in d["stages"].items() if not k.endswith("(thread)")) for d in runs]
        )
        table["whole process (probe)"] = med([d["wall"] for d in runs])
        table["bare VAE decoder forward (after the run)"] = med([d.get("bare_decoder_forward", 0.0) for d in runs])
        return table

    old, new = (stages("baseline"), stages("new")) if not args.no_probe else ({}, {})
    print(f"\nload average during the run: {min(loads):.1f} .. {max(loads):.1f} (2 cores); medians of {args.rounds}")
    print(f"{'stage':<40} {'baseline s':>11} {'new s':>8} {'new/base':>9}")
    for k in sorted(set(old) | set(new), key=lambda k: (k.startswith("whole"), k.startswith("other"), k)):
        a, b = old.get(k, 0.0), new.get(k, 0.0)
        ratio = f"{b / a:9.2f}" if a > 0.005 else f"{'':>9}"
        print(f"{k:<40} {a:>11.2f} {b:>8.2f} {ratio}")
    for label, key in (
        ("whole process (plain run)", "plain"),
        ("whole process, CPU seconds", "cpu"),
        ("peak RSS MB", "rss"),
        ("desktop-sr --version", "version"),
    ):
        a, b = med(results["baseline"][key]), med(results["new"][key])
        print(f"{label:<40} {a:>11.2f} {b:>8.2f} {b / a:9.2f}")
    if args.json:
        args.json.write_text(json.dumps({"loads": loads, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
